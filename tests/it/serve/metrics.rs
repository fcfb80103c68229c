//! `/metrics`: the contract shape, promtool, a real Prometheus scraping, and the dashboards' and
//! alert rules' queries.

use super::*;

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
    // The registered families, read from the registrations in src/runtime/metrics.rs.
    let source = repo_file("src/runtime/metrics.rs");
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

/// A fresh server (no data, no model) exposes every seed family with its type before its first
/// event, so `rate()` panels and absence alerts see them from start-up; a served model's label
/// values (its features' drift counters, its coins' predictions) start at 0 too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_family_is_exposed_from_start_up() {
    let seed = [
        ("api_requests_total", "counter"),
        ("api_request_latency_seconds", "histogram"),
        ("api_active_requests", "gauge"),
        ("model_predictions_total", "counter"),
        ("model_prediction_latency_seconds", "histogram"),
        ("model_health_status", "gauge"),
        ("data_drift_ratio", "gauge"),
        ("data_drift_detections_total", "counter"),
    ];
    let app = TestApp::new(&[]);
    let base = serve_on_localhost(Arc::new(runtime_over(&app, &app.settings))).await;
    let http = reqwest::Client::new();
    let text = get_text(&http, &format!("{base}/metrics")).await;
    let exposes_every_seed_family = |text: &str| {
        for (family, kind) in seed {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}")),
                "{family} {kind}:\n{text}"
            );
        }
    };
    exposes_every_seed_family(&text);
    assert!(
        text.contains(r#"data_drift_detections_total{feature="none",model_type="none"} 0"#),
        "{text}"
    );

    // With a model: its features' counters at 0 before any prediction, and no "none" left.
    let api = spawn_api(true, 1_000_000).await;
    let (_, text) = api.get("/metrics").await;
    exposes_every_seed_family(&text);
    assert!(
        text.contains(r#"model_predictions_total{coin_id="solana",model_type="lstm"} 0"#),
        "{text}"
    );
    let drift_zeros = text
        .lines()
        .filter(|l| l.starts_with("data_drift_detections_total{") && l.ends_with(" 0"))
        .count();
    assert!(
        drift_zeros >= 3,
        "{drift_zeros} drift counters at 0:\n{text}"
    );
    assert!(!text.contains(r#"model_type="none""#), "{text}");
}
