//! The LSTM end to end on real data with a small configuration: training, the promotion gate,
//! the registry, saving and loading across processes, and the bad inputs of issue 3.

use std::path::Path;
use std::process::Command;

use crate::support::{real_coingecko, small_protocol, small_spec, TestApp};
use coincast::model::lstm::{LstmSpec, TrainedLstm, DEFAULT_SPEC};
use coincast::model::registry;
use coincast::model::train::{train_and_register, TrainRequest};

async fn app_with(coins: &[&str]) -> TestApp {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(coins)).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_model_is_refused_by_the_gate_and_tracked() {
    let app = app_with(&["solana"]).await;
    let mut weak = small_spec();
    weak.hidden_size = 2;
    weak.learning_rate = 0.5;
    weak.epochs = 1;
    let o = app.train_solana(weak, 0.0).expect("trains");
    assert!(!o.verdict.passed, "{:?}", o.verdict);
    assert!(
        o.verdict.reason.contains("does not beat persistence"),
        "{}",
        o.verdict.reason
    );
    assert!(registry::champion(app.store.conn())
        .expect("query")
        .is_none());
    let row = registry::get(app.store.conn(), &o.model_id).expect("registered");
    assert_eq!(row.alias.as_deref(), Some("challenger"));
    assert!(!row.gate_passed);
    // The walk-forward includes every baseline, on the same origins as the model.
    for model in [
        "persistence",
        "drift",
        "sma_trend",
        "ema_trend",
        "linear",
        "lstm",
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
    }
    // Tracked: the experiment, its epochs, the evaluation.
    assert_eq!(app.string("SELECT state FROM experiments"), "success");
    assert_eq!(
        app.count("SELECT count(*) FROM run_metrics WHERE name = 'train_loss'"),
        1
    );
    assert!(
        app.count("SELECT count(*) FROM run_metrics WHERE name LIKE 'lstm/solana/h%/skill'") == 24
    );
    assert_eq!(app.string("SELECT device FROM experiments"), "cpu");
    assert_eq!(
        app.count("SELECT length(dataset_version) FROM experiments"),
        64
    );
    assert!(o.artifact.join("weights.safetensors").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_compares_with_the_champion_and_rolls_back() {
    let app = app_with(&["solana"]).await;
    // A floor below any plausible skill: the first model becomes champion.
    let first = app.train_solana(small_spec(), -10.0).expect("first");
    assert!(first.verdict.passed);
    assert_eq!(
        registry::champion(app.store.conn())
            .expect("q")
            .map(|m| m.model_id),
        Some(first.model_id.clone())
    );
    let mut other = small_spec();
    other.seed = 8;
    let second = app.train_solana(other, -10.0).expect("second");
    // The champion was evaluated on the same windows; the verdict names it either way.
    assert!(second.evaluation.rows.iter().any(|r| r.model == "champion"));
    assert!(
        second.verdict.reason.contains(&first.model_id),
        "{}",
        second.verdict.reason
    );
    let champion_now = registry::champion(app.store.conn())
        .expect("q")
        .expect("one");
    let expected = if second.verdict.passed {
        &second.model_id
    } else {
        &first.model_id
    };
    assert_eq!(&champion_now.model_id, expected);

    // Manual promotion of whichever is challenger (it may need --force), then rollback.
    let challenger = if second.verdict.passed {
        &first.model_id
    } else {
        &second.model_id
    };
    let forced = !registry::get(app.store.conn(), challenger)
        .expect("get")
        .gate_passed;
    registry::promote(app.store.conn(), challenger, forced).expect("promote");
    assert_eq!(
        registry::champion(app.store.conn())
            .expect("q")
            .map(|m| m.model_id),
        Some(challenger.clone())
    );
    let back = registry::rollback(app.store.conn()).expect("rollback");
    assert_eq!(&back, expected);
    assert_eq!(
        app.count("SELECT count(*) FROM model_versions WHERE alias = 'champion'"),
        1
    );
    assert!(app.count("SELECT count(*) FROM model_events WHERE event = 'demoted'") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_model_predicts_identically_in_another_process() {
    let app = app_with(&["solana"]).await;
    let o = app.train_solana(small_spec(), -10.0).expect("trains");
    let loaded = TrainedLstm::load(&o.artifact, tch::Device::Cpu).expect("loads");
    let series = coincast::model::dataset::CoinSeries::load(
        app.store.conn(),
        "solana",
        "usd",
        &loaded.card.spec.features,
    )
    .expect("series");
    let here = loaded.forecast_latest(&series).expect("forecast");
    // The batched call for many coins agrees with one coin at a time to float32 precision (BLAS
    // picks other kernels for other batch sizes, so not to the bit).
    let batched = loaded
        .forecast_latest_many(&[&series, &series])
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
    assert_eq!(there["as_of_hour"].as_i64(), Some(here.as_of_hour));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_or_incompatible_artifacts_are_refused() {
    let app = app_with(&["solana"]).await;
    let o = app.train_solana(small_spec(), -10.0).expect("trains");
    let copy = |name: &str| {
        let dir = app.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        for f in ["weights.safetensors", "model.json"] {
            std::fs::copy(o.artifact.join(f), dir.join(f)).expect("copy");
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
        Some(o.model_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_data_or_a_missing_gpu_registers_nothing() {
    let app = TestApp::new(&[]);
    let dir = tempfile::tempdir().expect("dir");
    // 600 hours of a real-looking walk: far too little for 2 weekly windows plus training.
    let points: Vec<String> = (0..600)
        .map(|h| {
            format!(
                "[{},{}]",
                1_700_000_000_000i64 / 3_600_000 * 3_600_000 + h * 3_600_000,
                100.0 + (h % 7) as f64
            )
        })
        .collect();
    let body = format!(
        r#"{{"prices":[{p}],"market_caps":[{p}],"total_volumes":[{p}]}}"#,
        p = points.join(",")
    );
    std::fs::write(dir.path().join("tiny.json"), body).expect("write");
    app.replay(dir.path(), None).await;
    let err = train_and_register(
        app.store.conn(),
        TrainRequest {
            coins: &["tiny".to_string()],
            vs_currency: "usd",
            spec: small_spec(),
            protocol: small_protocol(),
            min_score: -10.0,
            data_dir: app.dir.path(),
        },
        |_, _, _| {},
    )
    .expect_err("refused")
    .to_string();
    assert!(err.contains("not enough history"), "{err}");
    assert_eq!(app.count("SELECT count(*) FROM model_versions"), 0);

    if !tch::Cuda::is_available() {
        let text = DEFAULT_SPEC.replace("device = \"auto\"", "device = \"cuda\"");
        let err = LstmSpec::parse("gpu.toml", &text)
            .expect_err("no GPU")
            .to_string();
        assert!(err.contains("CUDA was requested"), "{err}");
    }
    let err = app_with(&["solana"]).await;
    let e = train_and_register(
        err.store.conn(),
        TrainRequest {
            coins: &["solana".to_string()],
            vs_currency: "usd",
            spec: {
                let mut s = small_spec();
                s.features.push("no_such_feature".into());
                s
            },
            protocol: small_protocol(),
            min_score: 0.0,
            data_dir: err.dir.path(),
        },
        |_, _, _| {},
    )
    .expect_err("unknown feature")
    .to_string();
    assert!(e.contains("no_such_feature"), "{e}");
    assert_eq!(err.count("SELECT count(*) FROM model_versions"), 0);
}
