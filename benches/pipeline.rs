//! `make bench`: figures for the foundation, as medians of repeated runs on this machine.
//!
//! 1. replay of all real data (5 coins): points/s and hours/s through parse → stage → gate → merge;
//! 2. full feature build for the real coins, and for the real data replicated to 100 coins;
//! 3. an incremental run after one new hour per coin (whole pipeline run, and the feature step);
//! 4. the same feature set in pandas on the same rows (bench/pandas_features.py), and the ratios:
//!    coincast's compute only (every value, nothing written) and its full build (delete, insert,
//!    commit) against pandas' compute;
//! 5. the baselines' and the default LSTM's walk-forward on the real coins, LSTM training throughput
//!    and inference latency.
//!
//! Flags: `--pandas "<python> bench/pandas_features.py"` (skipped when absent), `--repeat N` (3),
//! `--data DIR` (default: the real data next to the repository).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use coincast::config::Settings;
use coincast::features;
use coincast::model::evaluate::Evaluation;
use coincast::model::forecast::Levels;
use coincast::pipeline::{self, Extract};
use coincast::quality::RuleSet;
use coincast::store::Store;

struct Args {
    pandas: Option<String>,
    pytorch: Option<String>,
    repeat: usize,
    data: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        pandas: None,
        pytorch: None,
        repeat: 3,
        data: std::env::var("COINCAST_REAL_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real"))
            .join("coingecko"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--pandas" => a.pandas = it.next(),
            "--pytorch" => a.pytorch = it.next(),
            "--repeat" => a.repeat = it.next().and_then(|v| v.parse().ok()).unwrap_or(3),
            "--data" => a.data = it.next().map(PathBuf::from).unwrap_or(a.data),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median wall time of `runs` calls of `f`.
fn median_of(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One line per walk-forward row: the scale-free metrics.
fn settings(dir: &Path) -> Settings {
    let mut s = Settings::load_with_env(None, Vec::<(String, String)>::new()).expect("settings");
    s.data_dir = dir.to_path_buf();
    s
}

fn count(store: &Store, sql: &str) -> i64 {
    store
        .conn()
        .query_row(sql, [], |r| r.get(0))
        .expect("count query")
}

fn replay(store: &Store, s: &Settings, rules: &RuleSet, dir: &Path, rt: &tokio::runtime::Runtime) {
    let report = rt
        .block_on(pipeline::run(
            store,
            s,
            rules,
            "bench",
            Extract::Replay {
                dir: dir.to_path_buf(),
                coins: None,
                fetched_at: None,
            },
        ))
        .expect("replay");
    assert!(report.error.is_none(), "{:?}", report.error);
}

/// Writes, per coin, a market_chart file with its last 30 stored hours plus one new hour.
fn write_next_hour(store: &Store, dir: &Path) -> usize {
    std::fs::create_dir_all(dir).expect("dir");
    let mut stmt = store
        .conn()
        .prepare(
            "SELECT coin_id, list([epoch_ms(ts), price, market_cap, total_volume] ORDER BY ts)
             FROM (SELECT *, row_number() OVER (PARTITION BY coin_id ORDER BY ts DESC) AS rn FROM market_data)
             WHERE rn <= 30 GROUP BY coin_id",
        )
        .expect("prepare");
    let rows: Vec<(String, Vec<Vec<f64>>)> = stmt
        .query_map([], |r| {
            let coin: String = r.get(0)?;
            let list: duckdb::types::Value = r.get(1)?;
            Ok((coin, list_to_rows(list)))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (coin, mut points) in rows.iter().cloned() {
        let last = points.last().cloned().expect("a row");
        points.push(vec![
            last[0] + 3_600_000.0,
            last[1] * 1.001,
            last[2],
            last[3],
        ]);
        let series = |i: usize| -> Vec<serde_json::Value> {
            points
                .iter()
                .map(|p| serde_json::json!([p[0] as i64, p[i]]))
                .collect()
        };
        let body = serde_json::json!({"prices": series(1), "market_caps": series(2), "total_volumes": series(3)});
        std::fs::write(dir.join(format!("{coin}.json")), body.to_string()).expect("write");
    }
    rows.len()
}

fn list_to_rows(v: duckdb::types::Value) -> Vec<Vec<f64>> {
    use duckdb::types::Value;
    let num = |v: &Value| match v {
        Value::Double(x) => *x,
        Value::BigInt(x) => *x as f64,
        Value::HugeInt(x) => *x as f64,
        _ => f64::NAN,
    };
    match v {
        Value::List(rows) => rows
            .iter()
            .map(|r| match r {
                Value::List(cells) | Value::Array(cells) => cells.iter().map(num).collect(),
                _ => vec![],
            })
            .collect(),
        _ => vec![],
    }
}

/// Training steps on random batches and single-sample forward latency, with the default model's
/// shapes: the same measurement bench/pytorch_lstm.py makes in PyTorch-Python.
fn tch_micro(spec: &coincast::model::lstm::LstmSpec, in_dim: i64) -> (f64, f64, f64) {
    use tch::nn::{Module, OptimizerConfig, RNN};
    tch::set_num_threads(spec.threads);
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let lstm = tch::nn::lstm(
        vs.root() / "lstm",
        in_dim,
        spec.hidden_size,
        tch::nn::RNNConfig {
            num_layers: spec.num_layers,
            ..Default::default()
        },
    );
    let head = tch::nn::linear(
        vs.root() / "head",
        spec.hidden_size,
        spec.horizon as i64,
        Default::default(),
    );
    let forward = |x: &tch::Tensor| head.forward(&lstm.seq(x).0.select(1, -1));
    let mut opt = tch::nn::Adam::default().build(&vs, 1e-3).expect("adam");
    let b = spec.batch_size as i64;
    let x = tch::Tensor::randn(
        [b, spec.lookback_hours as i64, in_dim],
        (tch::Kind::Float, tch::Device::Cpu),
    );
    let y = tch::Tensor::randn(
        [b, spec.horizon as i64],
        (tch::Kind::Float, tch::Device::Cpu),
    );
    let step = |opt: &mut tch::nn::Optimizer| {
        let loss = forward(&x).mse_loss(&y, tch::Reduction::Mean);
        opt.backward_step_clip_norm(&loss, 1.0);
    };
    for _ in 0..10 {
        step(&mut opt);
    }
    let steps = 200;
    let t = Instant::now();
    for _ in 0..steps {
        step(&mut opt);
    }
    let train = (steps * spec.batch_size) as f64 / secs(t.elapsed());
    let one = tch::Tensor::randn(
        [1, spec.lookback_hours as i64, in_dim],
        (tch::Kind::Float, tch::Device::Cpu),
    );
    let mut lat: Vec<f64> = tch::no_grad(|| {
        for _ in 0..50 {
            let _ = forward(&one);
        }
        (0..1000)
            .map(|_| {
                let t = Instant::now();
                let _ = forward(&one);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect()
    });
    lat.sort_by(f64::total_cmp);
    (train, lat[500], lat[990])
}

/// The forecast issues' table: per coin, forecaster and horizon (1, 6, 24): interval score,
/// pinball, coverage, width, MAE, MSE skill, direction and (networks) the shrinkage weight; the
/// quantile LSTM and the EWMA anchor also with online coverage control (ACI).
fn print_selection_table(e: &Evaluation) {
    println!(
        "selection run, {} coins, {} candidates, {} weekly folds (refit every {} folds), {} to {} UTC, 90% intervals; IS = interval score and pinball in % of price, lower is better; +aci: the same forecasts with ACI (gamma {}):",
        e.coins.len(),
        e.candidates.len(),
        e.folds,
        e.refit_every_folds,
        coincast::model::dataset::hour_label(e.test_from_hour),
        coincast::model::dataset::hour_label(e.test_to_hour),
        e.aci_gamma
    );
    println!(
        "  {:<9} {:<22} {:>3} {:>8} {:>8} {:>6} {:>7} {:>11} {:>8} {:>6} {:>7}",
        "coin",
        "forecaster",
        "h",
        "IS",
        "pinball",
        "cover",
        "width",
        "MAE",
        "skill",
        "dir",
        "shrink"
    );
    // Every candidate twice: plain conformal, and as served (+aci: what the gate judges).
    let rows = e
        .rows
        .iter()
        .map(|r| (r, ""))
        .chain(e.aci_rows.iter().map(|r| (r, "+aci")))
        .filter(|(r, _)| [1, 6, 24].contains(&r.metrics.horizon));
    let mut rows: Vec<_> = rows.collect();
    rows.sort_by_key(|(r, tag)| (r.coin_id.clone(), r.model.clone(), *tag, r.metrics.horizon));
    for (r, tag) in rows {
        let m = &r.metrics;
        let coin = e.coins.iter().position(|c| *c == r.coin_id).unwrap_or(0);
        let shrink = e
            .run(&r.model)
            .and_then(|run| run.mean_shrinkage(coin, m.horizon))
            .map_or("".to_string(), |w| format!("{w:.3}"));
        println!(
            "  {:<9} {:<22} {:>3} {:>8.4} {:>8.4} {:>6.3} {:>7.4} {:>11.4} {:>8.4} {:>6.3} {:>7}",
            r.coin_id,
            format!("{}{tag}", r.model),
            m.horizon,
            m.interval_score,
            m.pinball,
            m.coverage,
            m.width,
            m.mae,
            m.skill,
            m.directional_accuracy,
            shrink
        );
    }
}

/// The quantile LSTM issue's goal, measured: coverage of every coin within 88-92%, the interval
/// score against persistence with constant width (at 1 h, and over 1-24 h), and the point MSE.
fn print_goal(e: &Evaluation, champion: &str) {
    println!("  goal: 90% intervals covering 88-92% on every coin; IS >= 15% better than constant-width persistence at 1 h and >= 5% over 1-24 h; MSE <= persistence's");
    let mean = |rows: &[&coincast::model::metrics::HorizonMetrics],
                f: fn(&coincast::model::metrics::HorizonMetrics) -> f64| {
        rows.iter().map(|m| f(m)).sum::<f64>() / rows.len().max(1) as f64
    };
    let pick = |aci: bool,
                label: &str,
                h: Option<u32>|
     -> Vec<&coincast::model::metrics::HorizonMetrics> {
        let rows = if aci { &e.aci_rows } else { &e.rows };
        rows.iter()
            .filter(|r| r.model == label && h.is_none_or(|h| r.metrics.horizon == h))
            .map(|r| &r.metrics)
            .collect()
    };
    let base_1h = mean(&pick(false, "persistence", Some(1)), |m| m.interval_score);
    let base_all = mean(&pick(false, "persistence", None), |m| m.interval_score);
    let mut shown: Vec<(&str, bool)> = vec![("lstm_quantile", false), ("lstm_quantile", true)];
    for label in [champion, "persistence_ewma"] {
        if !shown.contains(&(label, false)) {
            shown.push((label, false));
            shown.push((label, true));
        }
    }
    for (label, aci) in shown {
        let all = pick(aci, label, None);
        if all.is_empty() {
            continue;
        }
        let per_coin: Vec<String> = e
            .coins
            .iter()
            .map(|c| {
                let rows: Vec<_> = (if aci { &e.aci_rows } else { &e.rows })
                    .iter()
                    .filter(|r| r.model == label && r.coin_id == *c)
                    .map(|r| &r.metrics)
                    .collect();
                format!("{c} {:.1}%", 100.0 * mean(&rows, |m| m.coverage))
            })
            .collect();
        let is_1h = mean(&pick(aci, label, Some(1)), |m| m.interval_score);
        let is_all = mean(&all, |m| m.interval_score);
        println!(
            "  {:<22} coverage {}; IS {:.4} (1 h {:.4}); vs persistence: 1 h {:+.1}%, 1-24 h {:+.1}%; MSE/persistence {:.4}",
            format!("{label}{}", if aci { "+aci" } else { "" }),
            per_coin.join(", "),
            is_all,
            is_1h,
            100.0 * (is_1h / base_1h - 1.0),
            100.0 * (is_all / base_all - 1.0),
            mean(&all, |m| 1.0 - m.skill),
        );
    }
}

fn pandas_seconds(cmd: &str, store: &Store, tmp: &Path, repeat: usize) -> Option<f64> {
    let parquet = tmp.join("market_data.parquet");
    store
        .conn()
        .execute_batch(&format!(
            "COPY (SELECT coin_id, ts, price, market_cap, total_volume FROM market_data ORDER BY coin_id, ts) TO '{}' (FORMAT parquet)",
            parquet.display()
        ))
        .expect("export parquet");
    let mut parts = cmd.split_whitespace();
    let program = parts.next()?;
    let out = Command::new(program)
        .args(parts)
        .arg(&parquet)
        .arg("--repeat")
        .arg(repeat.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "pandas benchmark failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("pandas_seconds="))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args = args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "coincast bench (median of {} runs unless noted)",
        args.repeat
    );
    println!("data: {}", args.data.display());

    // 1. Replay of all real data.
    let points: usize = std::fs::read_dir(&args.data)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|body| coincast::ingest::market_chart::parse(&body).ok())
        .map(|chart| {
            chart
                .series
                .iter()
                .map(|s| s.points.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .sum();
    let mut replay_times = Vec::new();
    let mut hours = 0;
    let mut keep = None;
    for _ in 0..args.repeat {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let rules = RuleSet::load(&s.quality).expect("rules");
        let store = Store::open(dir.path()).expect("store");
        let t = Instant::now();
        replay(&store, &s, &rules, &args.data, &rt);
        replay_times.push(t.elapsed());
        hours = count(&store, "SELECT sum(row_count) FROM raw_batches");
        keep = Some((dir, store, s, rules));
    }
    let (dir, store, s, rules) = keep.expect("one run");
    let replay_time = median(replay_times);
    let merged_hours = count(&store, "SELECT count(*) FROM market_data");
    println!(
        "replay, 5 coins: {:.2} s for {} points / {} hours ({} merged, the rest quarantined) -> {:.0} points/s, {:.0} hours/s (parse, stage, gate, merge and features)",
        secs(replay_time),
        points,
        hours,
        merged_hours,
        points as f64 / secs(replay_time),
        hours as f64 / secs(replay_time)
    );

    // 2a. Full feature build, real coins.
    let coins = count(&store, "SELECT count(DISTINCT coin_id) FROM market_data");
    let full_real = median_of(args.repeat, || {
        features::rebuild_all(store.conn()).expect("features");
    });
    println!(
        "features, full build, {coins} coins / {merged_hours} rows: {:.2} s ({:.0} rows/s)",
        secs(full_real),
        merged_hours as f64 / secs(full_real)
    );
    let compute_real = median_of(args.repeat, || {
        features::compute_all(store.conn()).expect("compute");
    });
    println!(
        "features, compute only (every value, nothing written), {coins} coins: {:.2} s",
        secs(compute_real)
    );
    let pandas_real = args
        .pandas
        .as_deref()
        .and_then(|cmd| pandas_seconds(cmd, &store, dir.path(), args.repeat));
    if let Some(p) = pandas_real {
        println!(
            "pandas, same features, same rows, compute only: {:.2} s -> coincast/DuckDB compute is {:.2}x pandas' speed, the full build (delete, insert, commit) {:.2}x",
            p,
            p / secs(compute_real),
            p / secs(full_real)
        );
    }

    // 3a. Incremental run after one new hour per coin (real coins).
    let next = dir.path().join("next");
    let mut inc_runs = Vec::new();
    let mut inc_features = Vec::new();
    for _ in 0..args.repeat {
        let n = write_next_hour(&store, &next);
        let t = Instant::now();
        replay(&store, &s, &rules, &next, &rt);
        inc_runs.push(t.elapsed());
        // The feature step alone: the same one-hour backlog again.
        store
            .conn()
            .execute_batch(
                "INSERT INTO feature_backlog SELECT coin_id, vs_currency, max(ts) FROM market_data GROUP BY ALL",
            )
            .expect("backlog");
        let t = Instant::now();
        let stats = features::build_backlog(store.conn()).expect("incremental");
        inc_features.push(t.elapsed());
        assert_eq!(stats.rows_written as usize, n);
    }
    println!(
        "incremental, one new hour x {coins} coins: pipeline run {:.3} s, of which features {:.3} s",
        secs(median(inc_runs)),
        secs(median(inc_features))
    );

    // The forecast issue's table: every candidate through the same walk-forward over the last
    // 26 weeks (refit every 4 folds), at horizons 1, 6 and 24; the gate's decision; the winner
    // refit on all data. Every candidate is also registered, so the LSTM can be timed below.
    let protocol = coincast::model::evaluate::Protocol::parse(
        "models/baselines.toml",
        coincast::model::evaluate::DEFAULT_PROTOCOL,
    )
    .expect("protocol");
    let spec = coincast::model::lstm::LstmSpec::parse(
        "models/lstm.toml",
        coincast::model::lstm::DEFAULT_SPEC,
    )
    .expect("spec");
    let t = Instant::now();
    let trained = coincast::model::train::train_and_register(
        store.conn(),
        coincast::model::train::TrainRequest {
            coins: &s.coins,
            vs_currency: &s.vs_currency,
            spec: spec.clone(),
            protocol: protocol.clone(),
            gate: s.model.gate.clone(),
            data_dir: dir.path(),
            register: coincast::model::train::RegisterPolicy::AllCandidates,
            cancel: Default::default(),
        },
        |_| {},
    )
    .expect("selection run");
    let total = secs(t.elapsed());
    let e = &trained.evaluation;
    print_selection_table(e);
    println!("  the gate, per candidate (mean over coins and horizons 1-24): served = with ACI by the live rule (judged), plain = conformal at the nominal level (beside):");
    for c in &trained.selection.scorecards {
        let run = e.run(&c.label);
        let (lo, hi) = c.served.coverage_range();
        let (plain_lo, plain_hi) = c.plain.coverage_range();
        println!(
            "  {:<18} served IS {:>8.4} coverage {:>5.1}-{:>5.1}% width {:.4} pinned {:>4.1}% | plain IS {:>8.4} coverage {:>5.1}-{:>5.1}% | MSE/persistence {:>7.4}  fit {:>6.1} s in {} refits  {}",
            c.label,
            c.interval_score(),
            lo * 100.0,
            hi * 100.0,
            c.served.width,
            100.0 * c.most_pinned(),
            c.plain.interval_score,
            plain_lo * 100.0,
            plain_hi * 100.0,
            c.mse_ratio,
            run.map_or(0.0, |r| r.fit_seconds),
            run.map_or(0, |r| r.refits),
            trained
                .selection
                .verdict(&c.label)
                .map(|v| v.reason())
                .unwrap_or_default()
        );
    }
    println!(
        "  champion: {} ({}): {}",
        trained.model_id, trained.family, trained.selection.summary
    );
    println!(
        "  trained_until {} UTC, newest hour {} UTC: {} h apart",
        coincast::model::dataset::hour_label(trained.trained_until_hour),
        coincast::model::dataset::hour_label(trained.newest_hour),
        trained.newest_hour - trained.trained_until_hour
    );
    println!(
        "  CPU wall time: walk-forward {:.1} s; the winner's refit on all data {:.1} s; with the floor and every other candidate refit and registered too {:.1} s; {:.1} s in all (1 run, {} libtorch thread)",
        trained.timings.walk_forward_seconds,
        trained.refit.seconds,
        trained.timings.refit_seconds,
        total,
        spec.threads
    );
    print_goal(e, &trained.family);
    for label in ["lstm", "lstm_quantile"] {
        if let Some(run) = e.run(label) {
            let mut sps = run.samples_per_second.clone();
            sps.sort_by(f64::total_cmp);
            println!(
                "  {label} training on {}: {:.0} samples/s (median of {} refits; data resident on the device, batches indexed there)",
                run.devices.join(","),
                sps.get(sps.len() / 2).copied().unwrap_or(f64::NAN),
                sps.len()
            );
        }
    }
    let lstm_id = if trained.family == "lstm" {
        trained.model_id.clone()
    } else {
        trained
            .challengers
            .iter()
            .find(|(label, _)| label == "lstm")
            .map(|(_, id)| id.clone())
            .expect("the LSTM registered")
    };
    let mut series = Vec::new();
    for coin in &s.coins {
        if let Ok(cs) = coincast::model::dataset::CoinSeries::load(
            store.conn(),
            coin,
            &s.vs_currency,
            &spec.features,
        ) {
            series.push(cs);
        }
    }
    let model = coincast::model::lstm::TrainedLstm::load(
        &dir.path().join("models").join(&lstm_id),
        tch::Device::Cpu,
    )
    .expect("load");
    let mut single: Vec<Duration> = (0..300)
        .map(|k| {
            let cs = &series[k % series.len()];
            let t = Instant::now();
            model
                .forecast_latest(cs, Levels::Nominal)
                .expect("forecast");
            t.elapsed()
        })
        .collect();
    single.sort();
    let mut batch: Vec<Duration> = (0..100)
        .map(|_| {
            let refs: Vec<_> = series.iter().map(|s| (s, Levels::Nominal)).collect();
            let t = Instant::now();
            model.forecast_latest_many(&refs).expect("forecast");
            t.elapsed()
        })
        .collect();
    batch.sort();
    let pct = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "lstm inference, all 24 horizons from the latest window: single p50 {:.0} us, p99 {:.0} us; {} coins in one batch p50 {:.0} us, p99 {:.0} us",
        pct(&single, 0.5),
        pct(&single, 0.99),
        series.len(),
        pct(&batch, 0.5),
        pct(&batch, 0.99)
    );

    let in_dim = (spec.features.len() + series.len()) as i64;
    let (train_sps, p50, p99) = tch_micro(&spec, in_dim);
    println!(
        "lstm micro (random batches, default shapes {}x{}x{}, hidden {}, {} thread): tch training {:.0} samples/s, forward p50 {:.0} us p99 {:.0} us",
        spec.batch_size, spec.lookback_hours, in_dim, spec.hidden_size, spec.threads, train_sps, p50, p99
    );
    if let Some(cmd) = args.pytorch.as_deref() {
        let mut parts = cmd.split_whitespace();
        let out = parts.next().and_then(|program| {
            Command::new(program)
                .args(parts)
                .args([
                    "--in-dim",
                    &in_dim.to_string(),
                    "--threads",
                    &spec.threads.to_string(),
                ])
                .output()
                .ok()
        });
        match out.map(|o| String::from_utf8_lossy(&o.stdout).to_string()) {
            Some(text) if text.contains("pytorch_train_samples_per_s=") => {
                let field = |name: &str| -> f64 {
                    text.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN)
                };
                let (py_train, py50) = (
                    field("pytorch_train_samples_per_s="),
                    field("pytorch_forward_p50_us="),
                );
                println!(
                    "pytorch-python, same shapes and threads: training {:.0} samples/s, forward p50 {:.0} us p99 {:.0} us -> tch/pytorch training {:.2}x, forward latency {:.2}x lower",
                    py_train, py50, field("pytorch_forward_p99_us="), train_sps / py_train, py50 / p50
                );
            }
            _ => {
                println!("pytorch-python comparison skipped (no torch: see bench/pytorch_lstm.py)")
            }
        }
    }

    // 2b/3b. The real data replicated to 100 coins.
    let copies = (100 + coins - 1) / coins;
    store
        .conn()
        .execute_batch(&format!(
            "CREATE TEMP TABLE base AS SELECT * FROM market_data;
             INSERT INTO market_data
             SELECT coin_id || '-' || c, vs_currency, ts, price, market_cap, total_volume, source_ts, batch_id, merged_at
             FROM base, range(1, {copies}) r(c);"
        ))
        .expect("replicate");
    let coins100 = count(&store, "SELECT count(DISTINCT coin_id) FROM market_data");
    let rows100 = count(&store, "SELECT count(*) FROM market_data");
    let runs100 = args.repeat.clamp(1, 2);
    let full100 = median_of(runs100, || {
        features::rebuild_all(store.conn()).expect("features 100");
    });
    println!(
        "features, full build, {coins100} coins / {rows100} rows: {:.2} s ({:.0} rows/s; median of {runs100})",
        secs(full100),
        rows100 as f64 / secs(full100)
    );
    let inc100: Duration = median((0..args.repeat)
        .map(|_| {
            store
                .conn()
                .execute_batch(
                    "INSERT INTO feature_backlog SELECT coin_id, vs_currency, max(ts) FROM market_data GROUP BY ALL",
                )
                .expect("backlog");
            let t = Instant::now();
            features::build_backlog(store.conn()).expect("incremental 100");
            t.elapsed()
        })
        .collect());
    println!(
        "incremental features, one new hour x {coins100} coins: {:.3} s ({:.0}x faster than the full build)",
        secs(inc100),
        secs(full100) / secs(inc100)
    );
    if let Some(cmd) = args.pandas.as_deref() {
        if let Some(p) = pandas_seconds(cmd, &store, dir.path(), 1) {
            println!(
                "pandas, same features, {coins100} coins: {:.2} s (1 run) -> coincast/DuckDB is {:.2}x pandas' speed",
                p,
                p / secs(full100)
            );
        }
    }
}
