//! The dashboards in a real browser: headless Chromium (Debian's `chromium`, a fresh profile)
//! driven over the DevTools protocol visits every page of a server loaded with real data and a
//! trained champion. Each page must load without console errors or exceptions, show data points
//! in its charts, link only to pages that answer 200, and render hostile text as text. A
//! screenshot of each page goes to `target/screenshots/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{real_coingecko, serve_on_localhost, small_spec, TestApp};
use coincast::runtime::{Metrics, PredictionLog, Runtime, Snapshot};

const HOSTILE: &str = "<script>window.__xss=1</script>";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A DevTools session on one page target.
struct Cdp {
    socket: Socket,
    session: String,
    next_id: u64,
    /// Events received while waiting for responses.
    events: Vec<Value>,
}

impl Cdp {
    async fn connect(ws_url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("DevTools websocket");
        let mut cdp = Self {
            socket,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
        };
        let target = cdp
            .call(
                "Target.createTarget",
                json!({ "url": "about:blank" }),
                false,
            )
            .await;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
                false,
            )
            .await;
        cdp.session = attached["sessionId"].as_str().expect("session").to_string();
        for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
            cdp.call(method, json!({}), true).await;
        }
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
            true,
        )
        .await;
        cdp
    }

    async fn call(&mut self, method: &str, params: Value, on_page: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if on_page {
            msg["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("send");
        loop {
            let v = self.receive().await;
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    async fn receive(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("DevTools answered within 30 s")
                .expect("socket open")
                .expect("message");
            if let Message::Text(t) = msg {
                return serde_json::from_str(&t).expect("json");
            }
        }
    }

    /// Navigates and waits for the load event; returns the errors the page reported.
    async fn visit(&mut self, url: &str) -> Vec<String> {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url }), true)
            .await;
        while !self
            .events
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            let v = self.receive().await;
            self.events.push(v);
        }
        // Let deferred scripts run.
        self.eval("new Promise(r => setTimeout(r, 200))").await;
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    Some(e["params"]["exceptionDetails"].to_string())
                }
                Some("Runtime.consoleAPICalled") if e["params"]["type"] == "error" => {
                    Some(e["params"]["args"].to_string())
                }
                Some("Log.entryAdded") if e["params"]["entry"]["level"] == "error" => {
                    Some(e["params"]["entry"]["text"].to_string())
                }
                _ => None,
            })
            .collect()
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
                true,
            )
            .await;
        r["result"]["value"].clone()
    }

    async fn screenshot(&mut self, path: &Path) {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
                true,
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("png data"))
            .expect("base64");
        std::fs::write(path, png).expect("screenshot");
    }
}

struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws_url: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch_chromium() -> Browser {
    let profile = tempfile::tempdir().expect("profile");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium missing: `make test` installs Debian's chromium package");
    let stderr = child.stderr.take().expect("stderr");
    let mut ws_url = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("chromium output");
        if let Some(url) = line.split("DevTools listening on ").nth(1) {
            ws_url = url.trim().to_string();
            break;
        }
    }
    assert!(!ws_url.is_empty(), "chromium did not open DevTools");
    Browser {
        child,
        _profile: profile,
        ws_url,
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_real_data_in_a_real_browser() {
    // Real solana data, a small champion, an ingest run after it (PSI), hostile text.
    let app = TestApp::new(&[("COINCAST__COINS", "solana")]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let mut spec = small_spec();
    spec.epochs = 2;
    spec.samples_per_epoch = 1000;
    app.lstm_champion(&["solana"], spec);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    app.store
        .conn()
        .execute(
            "INSERT INTO quality_results VALUES (1, ?, 'warn', false, 1, NULL, ?, now())",
            [HOSTILE, HOSTILE],
        )
        .expect("hostile rule");
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let log = PredictionLog::start(
        app.store.conn().try_clone().expect("conn"),
        metrics.clone(),
        "test",
    )
    .expect("log");
    let state = Arc::new(
        Runtime::new(
            Snapshot::load(app.store.conn(), &app.settings),
            app.settings.clone(),
            metrics,
        )
        .with_prediction_log(log)
        .with_db(app.store.conn().try_clone().expect("conn")),
    );
    let base = serve_on_localhost(state.clone()).await;
    let http = reqwest::Client::new();
    for h in [1, 6, 24] {
        let r = http
            .post(format!("{base}/predict"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"coin_id": "solana", "hours_ahead": {h}}}"#))
            .send()
            .await
            .expect("predict");
        assert!(r.status().is_success());
    }
    let flushed = state.clone();
    tokio::task::spawn_blocking(move || flushed.prediction_log().expect("log").flush())
        .await
        .expect("flush");

    let browser = launch_chromium();
    let mut cdp = Cdp::connect(&browser.ws_url).await;
    let shots = screenshots_dir();
    // Page, the data points its charts must show (a CSS selector), at least how many.
    let pages = [
        ("overview", "/", "svg path.line", 1),
        (
            "market",
            "/market?coin=solana&days=30",
            "svg path.line, svg circle.point",
            4,
        ),
        ("quality", "/quality", "svg circle.point", 1),
        ("features", "/features", "svg rect.bin", 70 * 5),
        ("pipeline", "/pipeline", "svg rect.task", 8),
        (
            "models",
            "/models",
            "svg path.line, table[data-horizon] td",
            10,
        ),
        ("monitoring", "/monitoring", "svg rect.bar", 4),
        ("sql", "/sql", "table td", 20),
    ];
    let mut links = std::collections::BTreeSet::new();
    for (name, path, points, at_least) in pages {
        let errors = cdp.visit(&format!("{base}{path}")).await;
        assert!(errors.is_empty(), "{path}: console errors {errors:#?}");
        let title = cdp.eval("document.title").await;
        assert!(
            title.as_str().is_some_and(|t| t.ends_with("· coincast")),
            "{path}: title {title}"
        );
        let n = cdp
            .eval(&format!("document.querySelectorAll({points:?}).length"))
            .await
            .as_i64()
            .unwrap_or(0);
        assert!(
            n >= at_least,
            "{path}: {n} of `{points}`, expected >= {at_least}"
        );
        // Hostile text is shown as text and never runs.
        assert_eq!(cdp.eval("typeof window.__xss").await, "undefined", "{path}");
        let page_links = cdp
            .eval(
                "[...document.querySelectorAll('a[href^=\"/\"]')].map(a => a.getAttribute('href'))",
            )
            .await;
        for l in page_links.as_array().into_iter().flatten() {
            links.insert(l.as_str().unwrap_or_default().to_string());
        }
        cdp.screenshot(&shots.join(format!("{name}.png"))).await;
    }
    cdp.visit(&format!("{base}/quality")).await;
    let text = cdp.eval("document.body.innerText").await;
    assert!(
        text.as_str().is_some_and(|t| t.contains(HOSTILE)),
        "the hostile rule name is not shown as text"
    );
    // Every link on every page answers.
    assert!(links.len() >= 12, "{links:?}");
    for l in &links {
        let status = http
            .get(format!("{base}{l}"))
            .send()
            .await
            .expect("link")
            .status();
        assert!(status.is_success(), "{l}: {status}");
    }
    // The JSON twins answer too.
    for api in [
        "/api/overview",
        "/api/market?coin=solana",
        "/api/quality",
        "/api/features",
        "/api/pipeline",
        "/api/models",
        "/api/monitoring",
        "/api/sql",
    ] {
        let r = http.get(format!("{base}{api}")).send().await.expect("api");
        assert!(r.status().is_success(), "{api}: {}", r.status());
        let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
        assert!(v.is_object(), "{api}");
    }
    // The forecast served now, as a fan: every horizon, bands nested around the point.
    let market: Value = serde_json::from_str(
        &http
            .get(format!("{base}/api/market?coin=solana"))
            .send()
            .await
            .expect("market")
            .text()
            .await
            .expect("body"),
    )
    .expect("json");
    let fan = &market["forecast_bands"];
    let horizons = fan["horizons"].as_array().expect("a fan for solana");
    assert!(horizons.len() >= 24, "{fan}");
    for h in horizons {
        let bands = h["bands"].as_array().expect("bands");
        let levels: Vec<f64> = bands
            .iter()
            .map(|b| b["level"].as_f64().unwrap_or(0.0))
            .collect();
        assert_eq!(levels[..2], [0.5, 0.8], "{h}");
        let point = h["point"].as_f64().expect("point");
        let mut inner = (point, point);
        for b in bands {
            let (lo, hi) = (
                b["lower"].as_f64().expect("lower"),
                b["upper"].as_f64().expect("upper"),
            );
            assert!(
                lo <= inner.0 + 1e-9 && hi >= inner.1 - 1e-9,
                "bands not nested: {h}"
            );
            inner = (lo, hi);
        }
    }
    // Bad input to a page: a JSON error, not a panic.
    let r = http
        .get(format!("{base}/api/market?coin=solana&days=0"))
        .send()
        .await
        .expect("market");
    assert_eq!(r.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    // As the README says: an unknown coin is 404, and the range is 1-365 days.
    let r = http
        .get(format!("{base}/api/market?coin=doge"))
        .send()
        .await
        .expect("market");
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
    assert_eq!(v["error"]["code"], "unknown_coin", "{v}");
    for days in [366, 400] {
        let r = http
            .get(format!("{base}/api/market?coin=solana&days={days}"))
            .send()
            .await
            .expect("market");
        assert_eq!(
            r.status(),
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "days={days}"
        );
    }
    for name in [
        "overview",
        "market",
        "quality",
        "features",
        "pipeline",
        "models",
        "monitoring",
        "sql",
    ] {
        let size = std::fs::metadata(shots.join(format!("{name}.png")))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "{name}.png is {size} bytes");
    }
}
