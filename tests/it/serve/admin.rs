//! The token-guarded endpoints: manual runs, retrain, promotion and rollback, and the
//! publisher's ordering of reloads and promotions.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_trigger_runs_the_pipeline_in_the_worker_and_needs_the_token() {
    use crate::support::coingecko_server::CoinGeckoServer;
    let source = CoinGeckoServer::start_ending_now(&real_coingecko(), &["solana"]).await;
    let dir = tempfile::tempdir().expect("dir");
    let settings = settings_in(
        dir.path(),
        &[
            ("COINCAST__COINGECKO__BASE_URL", &source.base_url()),
            ("COINCAST__COINGECKO__CALLS_PER_MINUTE", "6000"),
            ("COINCAST__COINS", "solana"),
            ("COINCAST__COINGECKO__BACKFILL_DAYS", "5"),
            ("COINCAST__SERVE__API_TOKEN", "s3cret"),
            // No schedule: only the manual trigger runs the pipeline here.
            ("COINCAST__SERVE__PIPELINE_SCHEDULE", ""),
        ],
    );
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (worker, state) = coincast::runtime::Worker::start(
        settings.clone(),
        metrics,
        crate::support::retrain_in_child(),
    )
    .expect("worker");
    let base = serve_on_localhost(state).await;
    let http = reqwest::Client::new();
    let post = |auth: Option<&'static str>| {
        let mut r = http.post(format!("{base}/api/pipeline/runs"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    assert_eq!(
        post(None).await.expect("req").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some("Bearer wrong")).await.expect("req").status(),
        StatusCode::UNAUTHORIZED
    );
    let r = post(Some("Bearer s3cret")).await.expect("req");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Wait until the worker reports the run done, as an operator would: through /metrics.
    let mut done = String::new();
    for _ in 0..200 {
        let text = get_text(&http, &format!("{base}/metrics")).await;
        if let Some(line) = text.lines().find(|l| {
            l.starts_with("coincast_pipeline_runs_total{") && l.contains(r#"trigger="api""#)
        }) {
            done = line.to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        done.contains(r#"state="success""#),
        "run not reported: {done}"
    );
    assert!(!source.requests().is_empty());
    tokio::task::spawn_blocking(move || worker.stop())
        .await
        .expect("stop");
    let store = coincast::store::Store::open(dir.path()).expect("reopen");
    let trigger: String = store
        .conn()
        .query_row("SELECT trigger FROM pipeline_runs", [], |r| r.get(0))
        .expect("a run");
    assert_eq!(trigger, "api");
    let hours: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM market_data", [], |r| r.get(0))
        .expect("count");
    assert!(hours >= 5 * 24 - 2, "{hours} hours fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_trigger_is_off() {
    let api = spawn_api(false, 3).await;
    let (s, b) = api.post("/api/pipeline/runs", "").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "disabled");
}

/// Writes a small LSTM spec and a 2-window protocol into `dir`, for training inside `serve`.
fn small_definitions(dir: &std::path::Path) -> (String, String) {
    use coincast::model::evaluate::DEFAULT_PROTOCOL;
    use coincast::model::lstm::DEFAULT_SPEC;
    let features_at = DEFAULT_SPEC.find("features = [").expect("features key");
    let spec = DEFAULT_SPEC[..features_at]
        .replace("lookback_hours = 48", "lookback_hours = 12")
        .replace("hidden_size = 32", "hidden_size = 8")
        .replace("epochs = 15", "epochs = 1")
        .replace("samples_per_epoch = 20000", "samples_per_epoch = 1000")
        .replace("device = \"auto\"", "device = \"cpu\"")
        + "features = [\"price_change_1h\", \"volatility_24h\", \"hour_sin\", \"hour_cos\"]\n";
    // Two windows, and the cheap candidates only (the LSTM's selection is tested in `model`).
    let candidates_at = DEFAULT_PROTOCOL
        .find("candidates = [")
        .expect("candidates key");
    let candidates_end = candidates_at
        + DEFAULT_PROTOCOL[candidates_at..]
            .find(']')
            .expect("end of the candidates")
        + 1;
    let protocol = format!(
        "{}candidates = [\"persistence\", \"persistence_ewma\", \"linear\"]{}",
        &DEFAULT_PROTOCOL[..candidates_at],
        &DEFAULT_PROTOCOL[candidates_end..]
    )
    .replace("windows = 26", "windows = 2");
    let (spec_path, protocol_path) = (dir.join("lstm.toml"), dir.join("baselines.toml"));
    std::fs::write(&spec_path, spec).expect("spec");
    std::fs::write(&protocol_path, protocol).expect("protocol");
    (
        spec_path.display().to_string(),
        protocol_path.display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrain_and_promotion_endpoints_change_the_served_champion() {
    // Solana in the data folder, no model yet; the worker then owns the file.
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let dir = app.dir.path().to_path_buf();
    let TestApp {
        dir: _keep, store, ..
    } = app;
    drop(store);
    let defs = tempfile::tempdir().expect("dir");
    let (spec, protocol) = small_definitions(defs.path());
    let settings = settings_in(
        &dir,
        &[
            ("COINCAST__COINS", "solana"),
            ("COINCAST__SERVE__API_TOKEN", "s3cret"),
            ("COINCAST__SERVE__PIPELINE_SCHEDULE", ""),
            ("COINCAST__SERVE__RETRAIN_SCHEDULE", ""),
            ("COINCAST__MODEL__SPEC", &spec),
            ("COINCAST__MODEL__PROTOCOL", &protocol),
        ],
    );
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (worker, state) =
        coincast::runtime::Worker::start(settings, metrics, crate::support::retrain_in_child())
            .expect("worker");
    let base = serve_on_localhost(state).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: &str, token: Option<&str>| {
        let mut r = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        async move {
            let r = r.send().await.expect("request");
            let status = r.status();
            let v: Value = r.json_value().await;
            (status, v)
        }
    };
    let models_status = || async {
        let text = get_text(&http, &format!("{base}/models/status")).await;
        serde_json::from_str::<Value>(&text).expect("json")
    };
    let champion = || async {
        let v = models_status().await;
        v["champion"]["model_id"].as_str().unwrap_or("").to_string()
    };
    let retrained = |n: usize| {
        let http = http.clone();
        let base = base.clone();
        async move {
            for _ in 0..600 {
                let text = get_text(&http, &format!("{base}/metrics")).await;
                let line = text.lines().find(|l| {
                    l.starts_with("coincast_pipeline_runs_total{")
                        && l.contains(r#"job="retrain""#)
                        && l.contains(r#"state="success""#)
                });
                if line.is_some_and(|l| l.ends_with(&format!(" {n}"))) {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        }
    };

    // Bad input first: each a JSON error with its status.
    let (s, b) = post("/api/pipeline/runs", r#"{"job": "retrain"}"#, None).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (s, b) = post("/api/pipeline/runs", r#"{"job": "dance"}"#, Some("s3cret")).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
    let (s, b) = post("/api/pipeline/runs", r#"{"job": "#, Some("s3cret")).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = post("/api/models/nope/promote", "", Some("s3cret")).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_model");
    let (s, b) = post("/api/models/rollback", "", Some("wrong")).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (s, b) = post("/api/models/rollback", "", Some("s3cret")).await;
    assert_error(s, &b, StatusCode::CONFLICT, "gate_refused");
    assert_eq!(champion().await, "");

    // Before any training the floor answers (the replay registered it).
    let (s, b) = post("/predict", r#"{"coin_id": "solana"}"#, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "floor");
    let cold_floor = b["model_version"].as_str().unwrap_or_default().to_string();

    // A retrain selects a champion, refit on all data, and it serves at once.
    let (s, b) = post(
        "/api/pipeline/runs",
        r#"{"job": "retrain"}"#,
        Some("s3cret"),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["job"], "retrain");
    assert!(retrained(1).await, "the first retrain did not succeed");
    let first = champion().await;
    assert!(!first.is_empty() && first != cold_floor, "{first}");
    let (s, b) = post("/predict", r#"{"coin_id": "solana"}"#, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model_version"], first.as_str());
    assert_eq!(b["served_by"], "champion");

    // The next retrain refits the winning recipe on the newest data: a new champion version.
    post(
        "/api/pipeline/runs",
        r#"{"job": "retrain"}"#,
        Some("s3cret"),
    )
    .await;
    assert!(retrained(2).await, "the second retrain did not succeed");
    let second = champion().await;
    assert_ne!(second, first);

    // The uncalibrated floor failed no gate but passed none either: promoting it needs force.
    let path = format!("/api/models/{cold_floor}/promote");
    let (s, b) = post(&path, "", Some("s3cret")).await;
    assert_error(s, &b, StatusCode::CONFLICT, "gate_refused");
    let (s, b) = post(&path, r#"{"force": "yes"}"#, Some("s3cret")).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = post(&path, r#"{"force": true}"#, Some("s3cret")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["champion"], cold_floor.as_str());
    assert_eq!(b["previous"], second.as_str());
    // Served at once, without a restart.
    let (_, b) = post("/predict", r#"{"coin_id": "solana"}"#, None).await;
    assert_eq!(b["model_version"], cold_floor.as_str());
    let (s, b) = post("/api/models/rollback", "", Some("s3cret")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["champion"], second.as_str());
    let (_, b) = post("/predict", r#"{"coin_id": "solana"}"#, None).await;
    assert_eq!(b["model_version"], second.as_str());
    // Rolling back again goes further back along the history, never forth to the forced
    // floor, and ends with nothing to roll back to.
    let (s, b) = post("/api/models/rollback", "", Some("s3cret")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["champion"], first.as_str());
    let (s, b) = post("/api/models/rollback", "", Some("s3cret")).await;
    assert_error(s, &b, StatusCode::CONFLICT, "gate_refused");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nothing to roll back to")),
        "{b}"
    );
    assert_eq!(champion().await, first);
    let metrics = get_text(&http, &format!("{base}/metrics")).await;
    assert!(
        metrics.contains(r#"coincast_champion_info{is_floor="#),
        "{metrics}"
    );
    assert!(
        metrics.contains("coincast_champion_changes_total{"),
        "{metrics}"
    );

    tokio::task::spawn_blocking(move || worker.stop())
        .await
        .expect("stop");
    let store = coincast::store::Store::open(&dir).expect("reopen");
    let successful_retrain_tasks = |task: &str| -> i64 {
        store
            .conn()
            .query_row(
                "SELECT count(*) FROM pipeline_runs r JOIN task_runs t USING (run_id)
                 WHERE r.job = 'retrain' AND t.task = ? AND t.state = 'success'",
                [task],
                |r| r.get(0),
            )
            .expect("runs")
    };
    assert_eq!(successful_retrain_tasks("train"), 2);
    // Each retrain ran retention after its training.
    assert_eq!(successful_retrain_tasks("cleanup"), 2);
    let events: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM model_events WHERE event IN ('promoted', 'restored')",
            [],
            |r| r.get(0),
        )
        .expect("events");
    assert_eq!(
        events, 5,
        "two retrains, the forced promotion, two rollbacks"
    );
}

/// A reload that began before a promotion committed (a pipeline run's, held open here between
/// reading the database and publishing) finishes after the promotion: it is dropped, and the
/// promoted champion keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_begun_before_a_promotion_never_puts_the_old_champion_back() {
    use coincast::runtime::{Publication, Snapshot};
    let app = TestApp::new(&[("COINCAST__SERVE__API_TOKEN", "s3cret")]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    app.forced_champion(&["solana"], "persistence_ewma", small_spec());
    let new = app.forced_champion(&["solana"], "persistence_garch", small_spec());
    // Back to the champion before (whichever the second run left): `new` waits to be promoted.
    let old = coincast::model::registry::rollback(
        app.store.conn(),
        coincast::model::registry::GateCheck::Force,
    )
    .expect("rollback");
    assert_ne!(old, new);
    let runtime = Arc::new(
        runtime_over(&app, &app.settings).with_db(app.store.conn().try_clone().expect("conn")),
    );
    let champion = |r: &coincast::runtime::Runtime| {
        r.snapshot()
            .champion
            .as_ref()
            .map(|c| c.model_id.clone())
            .expect("a champion")
    };
    assert_eq!(champion(&runtime), old);
    let base = serve_on_localhost(runtime.clone()).await;

    // The worker's reload begins and reads the database: the old champion.
    let held = runtime.publisher().begin();
    let stale = Snapshot::load(app.store.conn(), &app.settings);
    // Meanwhile the API promotes the other model: committed, published, served.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/models/{new}/promote"))
        .header("authorization", "Bearer s3cret")
        .header("content-type", "application/json")
        .body(r#"{"force": true}"#)
        .send()
        .await
        .expect("promote");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(champion(&runtime), new);
    // The held reload publishes last, and is refused.
    let publication = runtime.publisher().publish(held, stale);
    assert!(
        matches!(publication, Publication::Superseded { .. }),
        "{publication:?}"
    );
    assert_eq!(champion(&runtime), new);
    let (_, answer) = post_json(&base, "/predict", r#"{"coin_id": "solana"}"#).await;
    assert_eq!(answer["model_version"], new.as_str(), "{answer}");
    // A reload begun after the promotion publishes as usual.
    assert!(matches!(
        runtime.publisher().reload(app.store.conn(), &app.settings),
        Publication::Published { .. }
    ));
    assert_eq!(champion(&runtime), new);
}

/// A run's failure is named by its error's type: the overview says what it means, beside the
/// error and its causes, each said once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_named_by_its_kind_on_the_overview() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let dir = tempfile::tempdir().expect("dir");
    let settings = settings_in(
        dir.path(),
        &[
            (
                "COINCAST__COINGECKO__BASE_URL",
                &format!("http://{addr}/api/v3"),
            ),
            ("COINCAST__COINGECKO__MAX_RETRIES", "0"),
            ("COINCAST__COINS", "solana"),
            ("COINCAST__PIPELINE__TASK_ATTEMPTS", "1"),
            ("COINCAST__SERVE__RETRAIN_SCHEDULE", ""),
        ],
    );
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    // The start-up catch-up run fails (nothing answers): wait for it through /api/overview.
    let (worker, runtime) =
        coincast::runtime::Worker::start(settings, metrics, crate::support::retrain_in_child())
            .expect("worker");
    let base = serve_on_localhost(runtime).await;
    let http = reqwest::Client::new();
    let mut run = Value::Null;
    for _ in 0..200 {
        let page: Value = http
            .get(format!("{base}/api/overview"))
            .send()
            .await
            .expect("overview")
            .json_value()
            .await;
        if page["last_runs"][0]["state"] == "failed" {
            run = page["last_runs"][0].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(run["failure"], "source_unavailable", "{run}");
    let words = run["failure_words"].as_str().unwrap_or_default();
    assert!(words.contains("could not be reached"), "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("no coin could be fetched"), "{run}");
    assert!(!error.contains("Unknown error code"), "{run}");
    tokio::task::spawn_blocking(move || worker.stop())
        .await
        .expect("stop");
}

/// A retrain asked to stop ends before its next candidate (its child process is killed) and is
/// recorded as interrupted, not failed (what `Worker::stop` does to a retrain in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_retrain_is_recorded_as_interrupted() {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let cancel = coincast::model::Cancel::default();
    cancel.cancel();
    let mut settings = app.settings.clone();
    settings.coins = vec!["solana".into()];
    let report = coincast::pipeline::retrain(
        &app.store,
        &settings,
        "test",
        cancel,
        &crate::support::retrain_in_child(),
    )
    .await
    .expect("recorded");
    assert_eq!(report.state, coincast::pipeline::RunState::Interrupted);
    let tmp = app.dir.path().join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "the child's copy, job and result are removed"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM pipeline_runs WHERE job = 'retrain' AND state = 'interrupted' AND failure = 'interrupted'"),
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM model_versions"),
        1,
        "only the floor"
    );
}

/// A retrain child that dies without a result fails the run, with the reason, and leaves the
/// server's database as it was: no experiment, no model, no copy left in `tmp/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_retrain_child_fails_the_run_and_nothing_else() {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let mut settings = app.settings.clone();
    settings.coins = vec!["solana".into()];
    let models = app.count("SELECT count(*) FROM model_versions");
    let experiments = app.count("SELECT count(*) FROM experiments");
    let report = coincast::pipeline::retrain(
        &app.store,
        &settings,
        "test",
        coincast::model::Cancel::default(),
        &coincast::pipeline::Trainer::child_process("/bin/false".into()),
    )
    .await
    .expect("recorded");
    assert_eq!(report.state, coincast::pipeline::RunState::Failed);
    let error = coincast::failure::report(report.error.as_ref().expect("an error"));
    assert!(error.contains("left no result"), "{error}");
    assert_eq!(app.count("SELECT count(*) FROM model_versions"), models);
    assert_eq!(app.count("SELECT count(*) FROM experiments"), experiments);
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    // The database is still the server's: the next run works.
    assert!(app.count("SELECT count(*) FROM market_data") > 0);
}
