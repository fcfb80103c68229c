//! The HTTP API against a real server on 127.0.0.1: predictions, every bad input with its status
//! and JSON error, metrics in the contract shape (checked by promtool), readiness.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{get_text, real_coingecko, serve_on_localhost, small_spec, TestApp};
use coincast::serve::metrics::Metrics;
use coincast::serve::state::{AppState, Snapshot};

struct Api {
    base: String,
    http: reqwest::Client,
    _app: TestApp,
}

/// A served app: solana replayed (which registers the floor) and, if `with_model`, a small LSTM
/// champion trained on it.
async fn spawn_api(with_model: bool, max_data_age_hours: u64) -> Api {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    if with_model {
        let mut spec = small_spec();
        spec.epochs = 1;
        spec.samples_per_epoch = 1000;
        app.lstm_champion(&["solana"], spec);
    }
    let mut settings = app.settings.clone();
    settings.serve.max_data_age_hours = max_data_age_hours;
    settings.serve.max_body_bytes = 1024;
    let snapshot = Snapshot::load(app.store.conn(), &settings);
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let state = Arc::new(AppState::new(snapshot, settings, metrics));
    let base = serve_on_localhost(state).await;
    Api {
        base,
        http: reqwest::Client::new(),
        _app: app,
    }
}

impl Api {
    async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        (r.status(), r.text().await.expect("body"))
    }
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_answers_in_the_compatible_shape() {
    let api = spawn_api(true, 1_000_000).await;
    let (status, body) = api
        .post(
            "/predict",
            r#"{"coin_id": "solana", "hours_ahead": 24, "model_type": "lstm"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for field in [
        "coin_id",
        "timestamp",
        "predicted_price",
        "confidence_interval",
        "model_type",
        "prediction_horizon_hours",
        "model_version",
        "as_of",
        "current_price",
    ] {
        assert!(!body[field].is_null(), "{field} missing: {body}");
    }
    assert_eq!(body["prediction_horizon_hours"], 24);
    assert_eq!(body["as_of"], "2023-12-30T20:00:00Z");
    assert_eq!(body["timestamp"], "2023-12-31T20:00:00Z");
    let (lo, p, hi) = (
        body["confidence_interval"]["lower"]
            .as_f64()
            .expect("lower"),
        body["predicted_price"].as_f64().expect("price"),
        body["confidence_interval"]["upper"]
            .as_f64()
            .expect("upper"),
    );
    assert!(lo < p && p < hi, "{body}");
    assert_eq!(body["confidence_interval"]["level"], 0.9);
    // Defaults: hours_ahead 1, the champion; solana is the only served coin here.
    let (status, body) = api.post("/predict", r#"{"coin_id": "solana"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["prediction_horizon_hours"], 1);

    let (status, _) = api.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    // Request ids: generated when absent, kept when the client sends one.
    let r = api
        .http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("health");
    let id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let r = api
        .http
        .get(format!("{}/health", api.base))
        .header("x-request-id", "client-42")
        .send()
        .await
        .expect("health");
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-42")
    );
    let (status, text) = api.get("/ready").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&text).expect("openapi json");
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/predict",
        "/predict/batch",
        "/health",
        "/ready",
        "/models/status",
        "/metrics",
        "/api/pipeline/runs",
        "/api/models/{model_id}/promote",
        "/api/models/rollback",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} not documented");
    }
    let (_, text) = api.get("/models/status").await;
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["champion"]["coins"][0], "solana");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_status_and_a_json_error() {
    let api = spawn_api(true, 1_000_000).await;
    let (s, b) = api.post("/predict", r#"{"coin_id": "solana", "#).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = api
        .post("/predict", r#"{"coin_id": "solana", "hours_ahead": "six"}"#)
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = api.post("/predict", r#"{"coin": "solana"}"#).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    for h in ["0", "25", "-3"] {
        let (s, b) = api
            .post(
                "/predict",
                &format!(r#"{{"coin_id": "solana", "hours_ahead": {h}}}"#),
            )
            .await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
    }
    let (s, b) = api.post("/predict", r#"{"coin_id": "dogecoin"}"#).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_coin");
    let (s, b) = api
        .post("/predict", r#"{"coin_id": "<script>alert(1)</script>"}"#)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_coin");
    // Any well-formed model_type is answered by the champion, which the answer names; only a
    // malformed one is refused.
    let (s, b) = api
        .post(
            "/predict",
            r#"{"coin_id": "solana", "model_type": "arima"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model_type"], "lstm");
    assert_eq!(b["served_by"], "champion");
    let (s, b) = api
        .post(
            "/predict",
            r#"{"coin_id": "solana", "model_type": "<script>x</script>"}"#,
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
    let big = format!(r#"{{"coin_id": "{}"}}"#, "a".repeat(5000));
    let (s, b) = api.post("/predict", &big).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = api
        .http
        .post(format!("{}/predict", api.base))
        .header("content-type", "text/plain")
        .body(r#"{"coin_id": "solana"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, text) = api.get("/no/such/route").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(text.contains("\"not_found\""), "{text}");

    // Failures are counted as errors under the route template; only successes count as predictions.
    let (_, ok) = api.post("/predict", r#"{"coin_id": "solana"}"#).await;
    assert!(ok["predicted_price"].is_number());
    let (_, metrics) = api.get("/metrics").await;
    assert!(
        metrics
            .contains(r#"api_requests_total{endpoint="/predict",method="POST",status="error"} 11"#),
        "{metrics}"
    );
    assert!(metrics
        .contains(r#"api_requests_total{endpoint="/predict",method="POST",status="success"} 2"#));
    assert!(metrics.contains(r#"model_predictions_total{coin_id="solana",model_type="lstm"} 2"#));
    assert!(metrics.contains(r#"endpoint="unmatched""#));
    assert!(
        !metrics.contains("/no/such/route"),
        "raw paths must not become labels"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_champion_the_floor_answers_and_without_data_predict_is_503() {
    // Replayed data, no training: the floor (persistence, EWMA intervals) answers.
    let api = spawn_api(false, 1_000_000).await;
    let (s, b) = api
        .post("/predict", r#"{"coin_id": "solana", "hours_ahead": 24}"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "floor");
    assert_eq!(b["model_type"], "persistence_ewma");
    assert_eq!(b["predicted_price"], b["current_price"]);
    let (lo, hi) = (
        b["confidence_interval"]["lower"].as_f64().expect("lower"),
        b["confidence_interval"]["upper"].as_f64().expect("upper"),
    );
    assert!(lo < hi, "{b}");
    let (s, text) = api.get("/ready").await;
    assert_eq!(s, StatusCode::OK, "{text}");

    // No data at all: nothing can answer yet, and /ready says why.
    let app = TestApp::new(&[]);
    let settings = app.settings.clone();
    let snapshot = Snapshot::load(app.store.conn(), &settings);
    let state = Arc::new(AppState::new(
        snapshot,
        settings,
        Arc::new(Metrics::new().expect("metrics")),
    ));
    let base = serve_on_localhost(state).await;
    let empty = Api {
        base,
        http: reqwest::Client::new(),
        _app: app,
    };
    let (s, b) = empty.post("/predict", r#"{"coin_id": "solana"}"#).await;
    assert_error(s, &b, StatusCode::SERVICE_UNAVAILABLE, "no_data");
    let (s, text) = empty.get("/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("no model yet"), "{text}");
    let (_, metrics) = empty.get("/metrics").await;
    assert!(
        metrics.contains(r#"model_health_status{model_type="persistence"} 0"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_data_makes_the_server_unready() {
    let api = spawn_api(true, 3).await;
    let (s, text) = api.get("/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("stale") && text.contains("solana"), "{text}");
    // Stale data still serves (the forecast says what it is based on).
    let (s, b) = api.post("/predict", r#"{"coin_id": "solana"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_the_contract_shape_and_pass_promtool() {
    let api = spawn_api(true, 1_000_000).await;
    api.post("/predict", r#"{"coin_id": "solana", "hours_ahead": 3}"#)
        .await;
    let r = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text().await.expect("body");
    // Ages are derived at scrape time: they grow between scrapes even without a pipeline run.
    let age = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(r#"coincast_data_age_seconds{coin_id="solana"} "#))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, later) = api.get("/metrics").await;
    assert!(
        age(&later) > age(&text),
        "{} then {}",
        age(&text),
        age(&later)
    );
    for (family, kind) in [
        ("api_requests_total", "counter"),
        ("api_request_latency_seconds", "histogram"),
        ("api_active_requests", "gauge"),
        ("model_predictions_total", "counter"),
        ("model_prediction_latency_seconds", "histogram"),
        ("model_health_status", "gauge"),
        ("data_drift_ratio", "gauge"),
        ("coincast_build_info", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}")),
            "{family} {kind}\n{text}"
        );
    }
    for le in [
        "0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ] {
        assert!(
            text.contains(&format!(r#"api_request_latency_seconds_bucket{{endpoint="/predict",method="POST",le="{le}"}}"#)),
            "bucket {le}"
        );
    }
    assert!(text.contains(r#"model_prediction_latency_seconds_bucket{model_type="lstm",le="5"}"#));
    assert!(!text.contains(r#"model_prediction_latency_seconds_bucket{model_type="lstm",le="10"}"#));
    // A real linter: promtool, from Debian's prometheus package (make test installs it).
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool missing: `make test` installs Debian's prometheus package");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_trigger_runs_the_pipeline_in_the_worker_and_needs_the_token() {
    use crate::support::coingecko_server::CoinGeckoServer;
    let source = CoinGeckoServer::start_ending_now(&real_coingecko(), &["solana"]).await;
    let dir = tempfile::tempdir().expect("dir");
    let env: Vec<(String, String)> = [
        ("COINCAST__COINGECKO__BASE_URL", source.base_url()),
        ("COINCAST__COINGECKO__CALLS_PER_MINUTE", "6000".into()),
        ("COINCAST__COINS", "solana".into()),
        ("COINCAST__COINGECKO__BACKFILL_DAYS", "5".into()),
        ("COINCAST__SERVE__API_TOKEN", "s3cret".into()),
        // No schedule: only the manual trigger runs the pipeline here.
        ("COINCAST__SERVE__PIPELINE_SCHEDULE", "".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut settings = coincast::config::Settings::load_with_env(None, env).expect("settings");
    settings.data_dir = dir.path().to_path_buf();
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (worker, state) =
        coincast::serve::worker::Worker::start(settings.clone(), metrics).expect("worker");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_server() {
    let api = spawn_api(true, 1_000_000).await;
    api.post("/predict", r#"{"coin_id": "solana"}"#).await;
    let target = api.base.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}']\n\
             scrape_configs:\n  - job_name: coincast\n    static_configs:\n      - targets: ['{target}']\n",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/prometheus/alerts.yml")
                .display()
        ),
    )
    .expect("config");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let mut prometheus = std::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus missing: `make test` installs Debian's prometheus package");
    let prom = format!("http://127.0.0.1:{port}/api/v1");
    let mut up = false;
    let mut series = 0;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let Ok(r) = api.http.get(format!("{prom}/targets")).send().await else {
            continue;
        };
        let targets: Value = r.json_value().await;
        up = targets["data"]["activeTargets"][0]["health"] == "up";
        if !up {
            continue;
        }
        let q: Value = api
            .http
            .get(format!("{prom}/query"))
            .query(&[(
                "query",
                r#"api_requests_total{endpoint="/predict",status="success"}"#,
            )])
            .send()
            .await
            .expect("query")
            .json_value()
            .await;
        series = q["data"]["result"].as_array().map_or(0, Vec::len);
        if series > 0 {
            break;
        }
    }
    let rules: Value = api
        .http
        .get(format!("{prom}/rules"))
        .send()
        .await
        .expect("rules")
        .json_value()
        .await;
    // Every query of the provisioned Grafana dashboard parses in this Prometheus.
    let mut bad_queries = Vec::new();
    for expr in dashboard_queries() {
        let q: Value = api
            .http
            .get(format!("{prom}/query"))
            .query(&[("query", expr.as_str())])
            .send()
            .await
            .expect("query")
            .json_value()
            .await;
        if q["status"] != "success" {
            bad_queries.push(format!("{expr}: {q}"));
        }
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(bad_queries.is_empty(), "{bad_queries:#?}");
    assert!(up, "the scrape target never became healthy");
    assert_eq!(series, 1, "no api_requests_total series from the scrape");
    let groups = rules["data"]["groups"].as_array().map_or(0, Vec::len);
    assert_eq!(groups, 2, "alert rules not loaded: {rules}");
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The PromQL of every panel of config/grafana/dashboards/coincast.json.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value =
        serde_json::from_str(&repo_file("config/grafana/dashboards/coincast.json")).expect("json");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    exprs
}

/// Metric names a PromQL text or rule file refers to (the families coincast could export).
fn referenced_metrics(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| c.is_ascii_lowercase()) {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !is_name(c)).unwrap_or(tail.len());
        let word = &tail[..end];
        let preceded_by_name = rest[..i]
            .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.');
        // Label names share the prefixes; they are not families.
        let is_label = ["model_type"].contains(&word);
        if !preceded_by_name
            && !is_label
            && ["api_", "model_", "data_", "coincast_"]
                .iter()
                .any(|p| word.starts_with(p))
        {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            names.insert(family.to_string());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_alert_rules_use_only_metrics_coincast_exports() {
    // The registered families, read from the registrations in src/serve/metrics.rs.
    let source = repo_file("src/serve/metrics.rs");
    let exported: std::collections::BTreeSet<String> = source
        .split("_with_registry!(")
        .skip(1)
        .filter_map(|s| s.split('"').nth(1).map(str::to_string))
        .collect();
    assert!(exported.len() >= 20, "{exported:?}");
    let dashboard = dashboard_queries();
    assert!(dashboard.len() >= 25, "{} queries", dashboard.len());
    let mut used = referenced_metrics(&dashboard.join("\n"));
    let rules = repo_file("config/prometheus/alerts.yml");
    used.extend(referenced_metrics(&rules));
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "not exported: {unknown:?}");
    // The old panels and the new ones are all there.
    for family in [
        "api_requests_total",
        "api_request_latency_seconds",
        "model_predictions_total",
        "model_health_status",
        "data_drift_ratio",
        "data_drift_detections_total",
        "coincast_feature_psi",
        "coincast_live_interval_coverage",
        "coincast_pipeline_runs_total",
    ] {
        assert!(used.contains(family), "{family} not on the dashboard");
    }
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let text = self.text().await.unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_backtests_every_hour_with_actuals_and_checks_its_range() {
    let api = spawn_api(true, 1_000_000).await;
    let (s, b) = api
        .post(
            "/predict/batch",
            r#"{"coin_id": "solana", "start_date": "2023-12-20", "end_date": "2023-12-21", "hours_ahead": 24}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let preds = b["predictions"].as_array().expect("predictions");
    assert_eq!(
        preds.len() + b["skipped_hours"].as_u64().unwrap_or(0) as usize,
        48
    );
    assert_eq!(
        preds.len(),
        48,
        "the end day is included and the data is complete there"
    );
    assert_eq!(preds[0]["as_of"], "2023-12-20T00:00:00Z");
    assert_eq!(preds[0]["timestamp"], "2023-12-21T00:00:00Z");
    assert_eq!(preds[47]["as_of"], "2023-12-21T23:00:00Z");
    for p in preds {
        let (lo, mid, hi) = (
            p["lower"].as_f64().expect("lower"),
            p["predicted_price"].as_f64().expect("price"),
            p["upper"].as_f64().expect("upper"),
        );
        assert!(lo < mid && mid < hi, "{p}");
        assert!(
            p["actual_price"].is_number(),
            "actuals are known in 2023: {p}"
        );
    }
    // The newest hours have no actual yet; hours past the data have no forecast.
    let (_, b) = api
        .post(
            "/predict/batch",
            r#"{"coin_id": "solana", "start_date": "2023-12-30", "end_date": "2023-12-31"}"#,
        )
        .await;
    let preds = b["predictions"].as_array().expect("predictions");
    assert_eq!(preds.len(), 21, "2023-12-30 00:00 .. 20:00");
    assert!(preds.last().is_some_and(|p| p["actual_price"].is_null()));
    assert_eq!(b["skipped_hours"], 48 - 21);

    for (body, code) in [
        (
            r#"{"coin_id": "solana", "start_date": "2023-12-21", "end_date": "2023-12-20"}"#,
            "out_of_range",
        ),
        (
            r#"{"coin_id": "solana", "start_date": "yesterday", "end_date": "2023-12-20"}"#,
            "out_of_range",
        ),
        (
            r#"{"coin_id": "solana", "start_date": "2023-01-01", "end_date": "2023-12-20"}"#,
            "out_of_range",
        ),
        (
            r#"{"coin_id": "solana", "start_date": "2023-12-20", "end_date": "2023-12-21", "hours_ahead": 30}"#,
            "out_of_range",
        ),
    ] {
        let (s, b) = api.post("/predict/batch", body).await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    let (s, b) = api
        .post(
            "/predict/batch",
            r#"{"coin_id": "dogecoin", "start_date": "2023-12-20", "end_date": "2023-12-20"}"#,
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_coin");
    let (s, b) = api.post("/predict/batch", r#"{"coin_id": "solana"}"#).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
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
    let env: Vec<(String, String)> = [
        ("COINCAST__COINS", "solana"),
        ("COINCAST__SERVE__API_TOKEN", "s3cret"),
        ("COINCAST__SERVE__PIPELINE_SCHEDULE", ""),
        ("COINCAST__SERVE__RETRAIN_SCHEDULE", ""),
        ("COINCAST__MODEL__SPEC", &spec),
        ("COINCAST__MODEL__PROTOCOL", &protocol),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut settings = coincast::config::Settings::load_with_env(None, env).expect("settings");
    settings.data_dir = dir.clone();
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (worker, state) =
        coincast::serve::worker::Worker::start(settings, metrics).expect("worker");
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
    let jobs: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM pipeline_runs r JOIN task_runs t USING (run_id)
             WHERE r.job = 'retrain' AND t.task = 'train' AND r.state = 'success'",
            [],
            |r| r.get(0),
        )
        .expect("runs");
    assert_eq!(jobs, 2);
    let events: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM model_events WHERE event = 'promoted'",
            [],
            |r| r.get(0),
        )
        .expect("events");
    assert_eq!(
        events, 4,
        "two retrains, the forced promotion, the rollback"
    );
}

/// A served state over `app` (its snapshot now), on a free port.
async fn serve_app(app: &TestApp) -> String {
    let snapshot = Snapshot::load(app.store.conn(), &app.settings);
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let state = Arc::new(AppState::new(snapshot, app.settings.clone(), metrics));
    serve_on_localhost(state).await
}

async fn post_json(base: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = r.status();
    (status, r.json_value().await)
}

/// 120 days from the CoinGecko-compatible server (a live install's first backfill): a selection
/// run fits the windows the history allows, a champion is served, fitted up to a day before the
/// newest hour; a coin fetched after training is answered by the floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_install_gets_a_champion_and_a_new_coin_is_served_by_the_floor() {
    let server = crate::support::coingecko_server::CoinGeckoServer::start_ending_now(
        &real_coingecko(),
        &["solana", "ripple", "cardano"],
    )
    .await;
    let app = TestApp::with_server(&server.base_url(), &[]);
    let now = chrono::Utc::now();
    app.fetch(&["solana", "ripple"], now, 120).await;
    // Every coin with data is answered from the first run on: by the floor.
    let base = serve_app(&app).await;
    let (s, b) = post_json(&base, "/predict", r#"{"coin_id": "ripple"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "floor");

    // The shipped protocol (26 weekly windows configured) fits what 120 days allow.
    let mut protocol = coincast::model::evaluate::Protocol::parse(
        "models/baselines.toml",
        coincast::model::evaluate::DEFAULT_PROTOCOL,
    )
    .expect("protocol");
    protocol.candidates = ["persistence", "persistence_ewma", "linear"]
        .map(String::from)
        .to_vec();
    let o = coincast::model::train::train_and_register(
        app.store.conn(),
        coincast::model::train::TrainRequest {
            coins: &["solana".to_string(), "ripple".to_string()],
            vs_currency: "usd",
            spec: small_spec(),
            protocol,
            gate: app.settings.model.gate.clone(),
            data_dir: app.dir.path(),
            register: coincast::model::train::RegisterPolicy::Winner,
        },
        |_| {},
    )
    .expect("120 days are enough");
    // (2880 h - 24 h of targets - 36 h gap - 720 h of training) / 168: 12 weeks.
    assert!(
        (11..=12).contains(&o.evaluation.folds),
        "{} folds",
        o.evaluation.folds
    );
    assert!(o.newest_hour - o.trained_until_hour <= 25);
    let now_hour = now.timestamp() / 3600;
    assert!(now_hour - o.newest_hour <= 2, "the newest hour is now");
    // A coin fetched after training.
    app.fetch(&["cardano"], chrono::Utc::now(), 30).await;
    let base = serve_app(&app).await;
    let (s, b) = post_json(
        &base,
        "/predict",
        r#"{"coin_id": "solana", "hours_ahead": 24}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "champion");
    assert_eq!(b["model_version"], o.model_id.as_str());
    assert_eq!(b["model_type"], o.family.as_str());
    let (s, b) = post_json(&base, "/predict", r#"{"coin_id": "cardano"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "floor");
    assert!(b["model_type"]
        .as_str()
        .is_some_and(|t| t.starts_with("persistence")));
    let text = get_text(&reqwest::Client::new(), &format!("{base}/models/status")).await;
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["champion"]["model_id"], o.model_id.as_str());
    assert!(v["floor"]["model_id"].is_string(), "{v}");
}

/// A champion that forecasts 6 hours ahead serves what it has and refuses hours beyond it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_champion_with_a_short_horizon_refuses_hours_beyond_it() {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let mut spec = small_spec();
    spec.horizon = 6;
    spec.epochs = 1;
    spec.samples_per_epoch = 1000;
    app.lstm_champion(&["solana"], spec);
    let base = serve_app(&app).await;
    let (s, b) = post_json(
        &base,
        "/predict",
        r#"{"coin_id": "solana", "hours_ahead": 6}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for path in ["/predict", "/predict/batch"] {
        let body = if path == "/predict" {
            r#"{"coin_id": "solana", "hours_ahead": 7}"#
        } else {
            r#"{"coin_id": "solana", "start_date": "2023-12-20", "end_date": "2023-12-20", "hours_ahead": 7}"#
        };
        let (s, b) = post_json(&base, path, body).await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("up to 6 h ahead")),
            "{b}"
        );
    }
}
