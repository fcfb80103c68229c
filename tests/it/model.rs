//! Selection runs end to end on real and synthetic data: every candidate on the same folds, the
//! readable gate, the winner refit on all data and calibrated out of sample, the floor, demotion,
//! the registry, the LSTM saved and loaded across processes, and the bad inputs.

use std::path::Path;
use std::process::Command;

use crate::support::{garch_prices, real_coingecko, small_spec, write_chart, TestApp, H, T0};
use coincast::model::forecast::Levels;
use coincast::model::gate::ChampionOutcome;
use coincast::model::lstm::{LstmSpec, TrainedLstm, DEFAULT_SPEC};
use coincast::model::registry;
use coincast::model::served::ServedModel;
use coincast::model::train::RegisterPolicy;

async fn app_with(coins: &[&str]) -> TestApp {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(coins)).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_run_judges_every_candidate_alike_and_registers_the_winner_refit() {
    let app = app_with(&["solana"]).await;
    // The replay registered the floor before any training.
    let cold = registry::floor(app.store.conn())
        .expect("q")
        .expect("a floor after the first data");
    assert_eq!(cold.family, "persistence_ewma");
    let o = app
        .select(
            &["solana"],
            &[
                "persistence",
                "persistence_ewma",
                "persistence_garch",
                "linear",
                "lstm",
                "lstm_quantile",
                "lstm_quantile_mix",
            ],
            small_spec(),
            RegisterPolicy::Winner,
        )
        .expect("selection");
    // Every candidate on the same origins, one row per horizon, refit by the same rule; the
    // same forecasts again with ACI intervals.
    for model in [
        "persistence",
        "persistence_ewma",
        "persistence_garch",
        "linear",
        "lstm",
        "lstm_quantile",
    ] {
        let n: Vec<usize> = o
            .evaluation
            .rows
            .iter()
            .filter(|r| r.model == model)
            .map(|r| r.metrics.n)
            .collect();
        assert_eq!(n.len(), 24, "{model}: one row per horizon");
        assert!(n.iter().all(|&x| x == 2 * 168), "{model}: {n:?}");
        let aci = o
            .evaluation
            .aci_rows
            .iter()
            .filter(|r| r.model == model && r.metrics.n == 2 * 168)
            .count();
        assert_eq!(aci, 24, "{model}: ACI rows");
        let run = o
            .evaluation
            .candidates
            .iter()
            .find(|c| c.label == model)
            .expect("run");
        assert_eq!(run.refits, 1, "{model}: 2 windows, refit every 4 folds");
    }
    let lstm = o
        .evaluation
        .candidates
        .iter()
        .find(|c| c.label == "lstm")
        .expect("lstm");
    assert_eq!(lstm.chosen_epochs.len(), 1, "early stopping chose an epoch");
    // The quantile LSTM: CQR on its band, a shrinkage weight per coin and horizon in [0, 1],
    // fitted on validation; both networks report their training throughput.
    let quantile = o
        .evaluation
        .run("lstm_quantile")
        .expect("the quantile LSTM ran");
    assert_eq!(
        quantile.mode,
        coincast::model::forecast::CalibrationMode::Cqr
    );
    assert_eq!(quantile.shrinkage.len(), 1, "one refit");
    assert_eq!(quantile.shrinkage[0].len(), 1, "one coin");
    assert_eq!(quantile.shrinkage[0][0].len(), 24, "every horizon");
    assert!(quantile.shrinkage[0][0]
        .iter()
        .all(|w| (0.0..=1.0).contains(w)));
    assert!(quantile.error.is_none(), "{:?}", quantile.error);
    for run in [lstm, quantile] {
        assert!(run.samples_per_second.iter().all(|s| *s > 0.0));
        assert_eq!(run.devices, vec!["cpu".to_string()]);
    }
    // The quantile average with the classical scales shares the quantile LSTM's network (one fit
    // per refit): the same point forecasts, other intervals.
    let mixed = o.evaluation.run("lstm_quantile_mix").expect("the mix ran");
    assert!(mixed.error.is_none(), "{:?}", mixed.error);
    assert_eq!(mixed.shrinkage, quantile.shrinkage);
    assert_eq!(mixed.chosen_epochs, quantile.chosen_epochs);
    for h in 1..=24 {
        let plain = o.evaluation.row("lstm_quantile", "solana", h).expect("row");
        let mix = o
            .evaluation
            .row("lstm_quantile_mix", "solana", h)
            .expect("row");
        assert_eq!(plain.mae, mix.mae, "h{h}: the same point forecasts");
        assert_ne!(plain.width, mix.width, "h{h}: other intervals");
    }
    // Every candidate has a verdict that names its numbers.
    for v in &o.selection.verdicts {
        let reason = v.reason();
        assert!(
            reason.contains("coverage") && reason.contains("interval score"),
            "{reason}"
        );
    }
    // The winner is champion, refit up to the newest hour with every target.
    let champion = registry::champion(app.store.conn())
        .expect("q")
        .expect("champion");
    assert_eq!(champion.model_id, o.model_id);
    assert_eq!(champion.family, o.selection.winner);
    assert_eq!(champion.artifact_path, format!("models/{}", o.model_id));
    assert_eq!(o.newest_hour - o.trained_until_hour, 24);
    assert_eq!(champion.trained_until_hour, Some(o.trained_until_hour));
    let served = ServedModel::load(&o.artifact, tch::Device::Cpu).expect("loads");
    assert_eq!(served.trained_until_hour(), o.trained_until_hour);
    assert!(
        served.calibration_source().contains("walk-forward"),
        "{}",
        served.calibration_source()
    );
    // Exactly one floor: the cold one retired, a persistence method in its place.
    assert_eq!(
        app.count("SELECT count(*) FROM model_versions WHERE floor"),
        1
    );
    let floor = registry::floor(app.store.conn())
        .expect("q")
        .expect("floor");
    assert_ne!(floor.model_id, cold.model_id);
    assert!(floor.family.starts_with("persistence"), "{}", floor.family);
    // Tracked: the experiment, the table in run_metrics, the verdict with its conditions.
    assert_eq!(
        app.string(&format!(
            "SELECT state FROM experiments WHERE run_id = {}",
            o.run_id
        )),
        "success"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM run_metrics WHERE name LIKE 'lstm/solana/h%/interval_score'"
        ),
        24
    );
    assert!(app
        .string(&format!(
            "SELECT CAST(verdict AS VARCHAR) FROM model_versions WHERE model_id = '{}'",
            o.model_id
        ))
        .contains("conditions"));
}

/// A test app holding `prices` as `coin`'s hourly series from T0 (replayed through the gate).
async fn app_with_prices(coin: &str, prices: &[f64]) -> TestApp {
    let dir = tempfile::tempdir().expect("dir");
    let points: Vec<(i64, f64)> = prices
        .iter()
        .enumerate()
        .map(|(h, p)| (T0 + h as i64 * H, *p))
        .collect();
    write_chart(dir.path(), coin, &points);
    let app = TestApp::new(&[]);
    app.replay(dir.path(), None).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volatility_clusters_promote_a_scaled_interval_over_constant_width_then_refit() {
    // 6,000 hours of a GARCH(1,1) walk: the predictable part is the scale.
    let app = app_with_prices("garchcoin", &garch_prices(6000, 3)).await;
    let o = app
        .select(
            &["garchcoin"],
            &["persistence", "persistence_ewma", "persistence_garch"],
            small_spec(),
            RegisterPolicy::Winner,
        )
        .expect("selection");
    let score = |m: &str| o.selection.scorecard(m).expect("card").interval_score();
    assert!(
        score("persistence_garch") < score("persistence")
            && score("persistence_ewma") < score("persistence"),
        "{:?}",
        o.selection.scorecards
    );
    assert_ne!(o.family, "persistence", "{}", o.selection.summary);
    assert!(o.family.starts_with("persistence_"), "{}", o.family);
    // Refit on everything up to the newest hour with targets, and it serves from there.
    assert_eq!(o.newest_hour - o.trained_until_hour, 24);
    let served = ServedModel::load(&o.artifact, tch::Device::Cpu).expect("load");
    let series = coincast::model::dataset::CoinSeries::load(
        app.store.conn(),
        "garchcoin",
        "usd",
        &served.series_features(),
    )
    .expect("series");
    let f = served
        .forecast_latest(&series, Levels::Nominal)
        .expect("forecast");
    assert_eq!(f.as_of_hour, o.newest_hour);
    assert!(f.horizons[0].lower < f.horizons[0].price && f.horizons[0].price < f.horizons[0].upper);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_champion_that_loses_to_persistence_is_demoted() {
    // A random walk: drift's extrapolation only adds error.
    let app = app_with_prices("walk", &garch_prices(4000, 5)).await;
    // Make drift champion by hand, as an operator could.
    let o = app
        .select(
            &["walk"],
            &["drift"],
            small_spec(),
            RegisterPolicy::AllCandidates,
        )
        .expect("selection");
    let drift = o
        .challengers
        .iter()
        .find(|(label, _)| label == "drift")
        .map(|(_, id)| id.clone())
        .expect("drift registered");
    registry::promote(app.store.conn(), &drift, registry::GateCheck::Force).expect("forced");
    // The next run re-runs drift's recipe on today's windows: it loses to persistence.
    let again = app
        .select(
            &["walk"],
            &["persistence", "persistence_ewma", "drift"],
            small_spec(),
            RegisterPolicy::Winner,
        )
        .expect("selection");
    let ChampionOutcome::Demoted { why } = &again.selection.outcome else {
        panic!("not demoted: {:?}", again.selection.outcome);
    };
    assert!(why.contains("persistence"), "{why}");
    let champion = registry::champion(app.store.conn())
        .expect("q")
        .expect("one");
    assert!(
        champion.family.starts_with("persistence"),
        "{}",
        champion.family
    );
    let reason = app.string(&format!(
        "SELECT reason FROM model_events WHERE model_id = '{drift}' AND event = 'demoted'"
    ));
    assert!(reason.starts_with("demoted: it"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_and_rollback_across_kinds() {
    let app = app_with(&["solana"]).await;
    let lstm = app.lstm_champion(&["solana"], small_spec());
    let o = app
        .select(
            &["solana"],
            &["persistence", "persistence_ewma"],
            small_spec(),
            RegisterPolicy::Winner,
        )
        .expect("selection");
    // The LSTM champion's recipe ran on the same windows, under its own label.
    assert!(o
        .evaluation
        .candidates
        .iter()
        .any(|c| c.label == "champion"));
    let now = registry::champion(app.store.conn())
        .expect("q")
        .expect("one");
    assert_eq!(now.model_id, o.model_id);
    let back = registry::rollback(app.store.conn(), registry::GateCheck::Force).expect("rollback");
    assert_eq!(back, lstm);
    assert_eq!(
        app.count("SELECT count(*) FROM model_versions WHERE alias = 'champion'"),
        1
    );
    assert!(app.count("SELECT count(*) FROM model_events WHERE event = 'demoted'") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_lstm_predicts_identically_in_another_process() {
    let app = app_with(&["solana"]).await;
    let id = app.lstm_champion(&["solana"], small_spec());
    let artifact = app.dir.path().join("models").join(&id);
    let loaded = TrainedLstm::load(&artifact, tch::Device::Cpu).expect("loads");
    let series = coincast::model::dataset::CoinSeries::load(
        app.store.conn(),
        "solana",
        "usd",
        &loaded.card.spec.features,
    )
    .expect("series");
    let here = loaded
        .forecast_latest(&series, Levels::Nominal)
        .expect("forecast");
    // The batched call for many coins agrees with one coin at a time to float32 precision (BLAS
    // picks other kernels for other batch sizes, so not to the bit).
    let batched = loaded
        .forecast_latest_many(&[(&series, Levels::Nominal), (&series, Levels::Nominal)])
        .expect("batch");
    assert_eq!(batched.len(), 2);
    for f in &batched {
        for (b, one) in f.horizons.iter().zip(&here.horizons) {
            assert!(
                (b.price / one.price - 1.0).abs() < 1e-6,
                "{} vs {}",
                b.price,
                one.price
            );
        }
    }
    let TestApp { dir, store, .. } = app;
    drop(store);
    let out = Command::new(env!("CARGO_BIN_EXE_coincast"))
        .args([
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
            "predict",
            "--coin",
            "solana",
            "--json",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let there: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(there["horizons"].as_array().map(Vec::len), Some(24));
    for (h, mine) in here.horizons.iter().enumerate() {
        assert_eq!(
            there["horizons"][h]["price"].as_f64(),
            Some(mine.price),
            "h{}",
            h + 1
        );
        assert_eq!(there["horizons"][h]["lower"].as_f64(), Some(mine.lower));
    }
    let as_of = chrono::DateTime::<chrono::Utc>::from_timestamp(here.as_of_hour * 3600, 0)
        .expect("hour")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(there["as_of"].as_str(), Some(as_of.as_str()));
    assert_eq!(there["model_id"].as_str(), Some(id.as_str()));
    assert_eq!(there["served_by"].as_str(), Some("champion"));
    assert_eq!(there["model_type"].as_str(), Some("lstm"));
}

/// The quantile LSTM as it is registered and served: its interval is its conformalized band
/// (CQR), drawn wider at a higher ACI level and narrower at a lower one, around a median that is
/// shrunk toward persistence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_quantile_lstm_serves_conformalized_bands_at_any_level() {
    let app = app_with(&["solana"]).await;
    let id = app.forced_champion(&["solana"], "lstm_quantile", small_spec());
    let served = ServedModel::load(&app.dir.path().join("models").join(&id), tch::Device::Cpu)
        .expect("loads");
    assert_eq!(served.name(), "lstm_quantile");
    assert_eq!(
        served.calibration().mode,
        coincast::model::forecast::CalibrationMode::Cqr
    );
    let ServedModel::Lstm(model) = &served else {
        panic!("a network");
    };
    assert_eq!(model.card.shrinkage.len(), 1);
    assert!(model.card.shrinkage[0]
        .iter()
        .all(|w| (0.0..=1.0).contains(w)));
    let series = coincast::model::dataset::CoinSeries::load(
        app.store.conn(),
        "solana",
        "usd",
        &served.series_features(),
    )
    .expect("series");
    let at = |level: f64| {
        let levels = vec![level; 24];
        served
            .forecast_latest(&series, Levels::PerHorizon(&levels))
            .expect("forecast")
    };
    let (low, nominal, high) = (at(0.8), at(0.9), at(0.98));
    for h in 0..24 {
        let width = |f: &coincast::model::forecast::Forecast| {
            (f.horizons[h].upper / f.horizons[h].lower).ln()
        };
        assert!(width(&low) <= width(&nominal) && width(&nominal) <= width(&high));
        assert!(width(&low) < width(&high), "h{}", h + 1);
        assert_eq!(high.horizons[h].drawn_at_level, 0.98);
        assert_eq!(low.horizons[h].price, high.horizons[h].price);
    }
    // The artifact says which head it has; an older coincast would refuse format 3 by name.
    let card = std::fs::read_to_string(app.dir.path().join("models").join(&id).join("model.json"))
        .expect("card");
    assert!(card.contains("\"kind\": \"quantiles\"") && card.contains("\"format_version\": 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_incompatible_or_newer_artifacts_are_refused() {
    let app = app_with(&["solana"]).await;
    let id = app.lstm_champion(&["solana"], small_spec());
    let artifact = app.dir.path().join("models").join(&id);
    let copy = |name: &str| {
        let dir = app.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        for f in ["weights.safetensors", "model.json"] {
            std::fs::copy(artifact.join(f), dir.join(f)).expect("copy");
        }
        dir
    };
    let corrupt = copy("corrupt");
    let mut bytes = std::fs::read(corrupt.join("weights.safetensors")).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(corrupt.join("weights.safetensors"), bytes).expect("write");
    let err = TrainedLstm::load(&corrupt, tch::Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("checksum"), "{err}");

    let incompatible = copy("incompatible");
    let card = std::fs::read_to_string(incompatible.join("model.json")).expect("read");
    std::fs::write(
        incompatible.join("model.json"),
        card.replace("\"hidden_size\": 8", "\"hidden_size\": 16"),
    )
    .expect("write");
    let err = TrainedLstm::load(&incompatible, tch::Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("do not fit"), "{err}");

    // A card from a newer coincast is refused with its format named.
    let newer = copy("newer");
    let card = std::fs::read_to_string(newer.join("model.json")).expect("read");
    std::fs::write(
        newer.join("model.json"),
        card.replace("\"format_version\": 3", "\"format_version\": 7"),
    )
    .expect("write");
    let err = ServedModel::load(&newer, tch::Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("model format 7"), "{err}");

    let err = TrainedLstm::load(Path::new("/nonexistent/model"), tch::Device::Cpu)
        .err()
        .expect("missing")
        .to_string();
    assert!(err.contains("/nonexistent/model"), "{err}");
    // The champion is untouched by failed loads.
    assert_eq!(
        registry::champion(app.store.conn())
            .expect("q")
            .map(|m| m.model_id),
        Some(id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_registers_nothing_and_leaves_the_champion_alone() {
    let app = TestApp::new(&[]);
    let dir = tempfile::tempdir().expect("dir");
    // 900 hours: the floor serves, but a selection needs 960 hours of origins.
    let points: Vec<(i64, f64)> = (0..900)
        .map(|h| (T0 + h * H, 100.0 + (h % 7) as f64))
        .collect();
    write_chart(dir.path(), "tiny", &points);
    app.replay(dir.path(), None).await;
    let before = app.count("SELECT count(*) FROM model_versions");
    assert_eq!(before, 1, "the floor");
    let err = app
        .select(
            &["tiny"],
            &["persistence"],
            small_spec(),
            RegisterPolicy::Winner,
        )
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("not enough history") && err.contains("missing"),
        "{err}"
    );
    assert_eq!(app.count("SELECT count(*) FROM model_versions"), before);

    if !tch::Cuda::is_available() {
        let text = DEFAULT_SPEC.replace("device = \"auto\"", "device = \"cuda\"");
        let err = LstmSpec::parse("gpu.toml", &text)
            .expect_err("no GPU")
            .to_string();
        assert!(err.contains("CUDA was requested"), "{err}");
    }

    let app = app_with(&["solana", "ripple"]).await;
    let champion = app.lstm_champion(&["solana"], small_spec());
    let versions = app.count("SELECT count(*) FROM model_versions");
    let unchanged = |app: &TestApp| {
        assert_eq!(app.count("SELECT count(*) FROM model_versions"), versions);
        assert_eq!(
            registry::champion(app.store.conn())
                .expect("q")
                .map(|m| m.model_id),
            Some(champion.clone())
        );
    };
    // An unknown feature.
    let mut spec = small_spec();
    spec.features.push("no_such_feature".into());
    let e = app
        .select(&["solana"], &["lstm"], spec, RegisterPolicy::Winner)
        .expect_err("unknown feature")
        .to_string();
    assert!(e.contains("no_such_feature"), "{e}");
    unchanged(&app);
    // An infinite input.
    app.store
        .conn()
        .execute_batch(
            "UPDATE features SET volatility_24h = 'inf'::DOUBLE
             WHERE coin_id = 'solana' AND ts = (SELECT max(ts) - INTERVAL 100 HOUR FROM features)",
        )
        .expect("poison");
    let e = app
        .select(&["solana"], &["lstm"], small_spec(), RegisterPolicy::Winner)
        .expect_err("infinite")
        .to_string();
    assert!(
        e.contains("volatility_24h") && e.contains("infinite"),
        "{e}"
    );
    unchanged(&app);
    app.store
        .conn()
        .execute_batch("UPDATE features SET volatility_24h = NULL WHERE isinf(volatility_24h)")
        .expect("heal");
    // A coin whose newest hours are a gap.
    app.store
        .conn()
        .execute_batch(
            "DELETE FROM features WHERE coin_id = 'ripple' AND ts > (SELECT max(ts) - INTERVAL 48 HOUR FROM features);
             DELETE FROM market_data WHERE coin_id = 'ripple' AND ts > (SELECT max(ts) - INTERVAL 48 HOUR FROM market_data)",
        )
        .expect("gap");
    let e = app
        .select(
            &["solana", "ripple"],
            &["persistence"],
            small_spec(),
            RegisterPolicy::Winner,
        )
        .expect_err("stale coin")
        .to_string();
    assert!(
        e.contains("ripple") && e.contains("newest hours are a gap"),
        "{e}"
    );
    unchanged(&app);
}
