//! The HTTP API against a real server on 127.0.0.1, by endpoint group: `predict` (answers, bad
//! input, readiness, the floor), `metrics` (the contract shape, promtool, a real Prometheus, the
//! dashboards' queries), `admin` (the token-guarded endpoints: runs, promotion, the publisher's
//! ordering), `pages` (the dashboards' cached data), `replicas` (a writer, its replicas and
//! haproxy, through the real binary). The helpers here are shared.

mod access;
mod admin;
mod exposure;
mod metrics;
mod pages;
mod predict;
mod replicas;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{
    get_text, post_json_with_status, real_coingecko, runtime_over, serve_on_localhost, small_spec,
    TestApp,
};
use coincast::runtime::Metrics;

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
    // Only solana has data: a configured coin without any makes the server unready.
    settings.coins = vec!["solana".into()];
    settings.serve.max_data_age_hours = max_data_age_hours;
    settings.serve.max_body_bytes = 1024;
    let base = serve_on_localhost(Arc::new(runtime_over(&app, &settings))).await;
    Api {
        base,
        http: reqwest::Client::new(),
        _app: app,
    }
}

impl Api {
    async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        post_json_with_status(&self.http, &format!("{}{path}", self.base), body).await
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

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let text = self.text().await.unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// A served state over `app` (its snapshot now), on a free port.
async fn serve_app(app: &TestApp) -> String {
    serve_on_localhost(Arc::new(runtime_over(app, &app.settings))).await
}

async fn post_json(base: &str, path: &str, body: &str) -> (StatusCode, Value) {
    post_json_with_status(&reqwest::Client::new(), &format!("{base}{path}"), body).await
}

/// Settings for the data folder `dir`: the defaults, overridden by `env` (`COINCAST__...` pairs).
fn settings_in(dir: &std::path::Path, env: &[(&str, &str)]) -> coincast::config::Settings {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let mut settings = coincast::config::Settings::load_with_env(None, env).expect("settings");
    settings.data_dir = dir.to_path_buf();
    settings
}
