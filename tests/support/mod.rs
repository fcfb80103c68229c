//! Test support: the CoinGecko-compatible server and a `TestApp` (a data folder, settings and an
//! open store) in the spirit of zero2prod's `spawn_app`.

#![allow(dead_code)]

pub mod coingecko_server;
pub mod forecast;
pub mod postgres;
pub mod seaweedfs;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use coincast::config::Settings;
use coincast::ingest::coingecko::CoinGeckoClient;
use coincast::model::evaluate::{Protocol, DEFAULT_PROTOCOL};
use coincast::model::lstm::{LstmSpec, DEFAULT_SPEC};
use coincast::model::train::{train_and_register, RegisterPolicy, TrainOutcome, TrainRequest};
use coincast::model::ModelError;
use coincast::pipeline::{self, Extract, RunReport};
use coincast::quality::RuleSet;
use coincast::store::Store;

/// Runs the coincast binary with `args` and extra environment (RUST_LOG unset), to the end.
pub fn coincast(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    coincast_command(args, env).output().expect("run coincast")
}

/// The coincast binary as a command, not yet started.
/// The server's retrain as `coincast serve` runs it: in a child process of the real binary.
pub fn retrain_in_child() -> coincast::pipeline::Trainer {
    coincast::pipeline::Trainer::child_process(env!("CARGO_BIN_EXE_coincast").into())
}

pub fn coincast_command(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_coincast"));
    cmd.args(args);
    cmd.env_remove("RUST_LOG");
    cmd.env_remove(coincast::crashpoint::ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Standard output and error of a finished command, as text.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A runtime serving what `app`'s database holds now, with `settings` (no worker).
pub fn runtime_over(
    app: &TestApp,
    settings: &coincast::config::Settings,
) -> coincast::runtime::Runtime {
    let metrics = std::sync::Arc::new(coincast::runtime::Metrics::new().expect("metrics"));
    let snapshot = coincast::runtime::Snapshot::load(app.store.conn(), settings);
    coincast::runtime::Runtime::new(snapshot, settings.clone(), metrics)
}

/// Serves the runtime on a free port of 127.0.0.1; returns its base URL.
pub async fn serve_on_localhost(runtime: std::sync::Arc<coincast::runtime::Runtime>) -> String {
    let state = std::sync::Arc::new(coincast::serve::state::AppState::new(runtime));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(coincast::serve::serve(
        listener,
        state,
        std::future::pending(),
    ));
    base
}

/// A server on 127.0.0.1 that can be stopped, releasing its state (and database connections).
pub struct LocalServer {
    pub base: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalServer {
    pub async fn start(runtime: std::sync::Arc<coincast::runtime::Runtime>) -> Self {
        let state = std::sync::Arc::new(coincast::serve::state::AppState::new(runtime));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(coincast::serve::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            shutdown,
            handle,
        }
    }

    /// Stops serving and waits until the server (and its hold on the state) is gone.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        self.handle.await.expect("server task").expect("server");
    }
}

/// The body of a GET as text (e.g. /metrics).
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The JSON answer of a POST with a JSON body (e.g. /predict), whatever its status.
pub async fn post_json(http: &reqwest::Client, url: &str, body: &str) -> serde_json::Value {
    post_json_with_status(http, url, body).await.1
}

/// The status and the body of a POST with a JSON body (`Null` when the body is not JSON).
pub async fn post_json_with_status(
    http: &reqwest::Client,
    url: &str,
    body: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// A copy of a real coin file with only the points before `until_ms`, in `dir`.
pub fn truncated_coin_file(dir: &Path, coin: &str, until_ms: f64) {
    let text =
        std::fs::read_to_string(real_coingecko().join(format!("{coin}.json"))).expect("coin file");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("coin json");
    for series in ["prices", "market_caps", "total_volumes"] {
        if let Some(points) = v[series].as_array_mut() {
            points.retain(|p| p[0].as_f64().is_some_and(|t| t < until_ms));
        }
    }
    std::fs::write(dir.join(format!("{coin}.json")), v.to_string()).expect("write coin file");
}

/// Writes a market_chart file for `coin` with the given hourly points (ms, price).
pub fn write_chart(dir: &Path, coin: &str, points: &[(i64, f64)]) {
    let series = |scale: f64| -> Vec<serde_json::Value> {
        points
            .iter()
            .map(|(t, p)| serde_json::json!([t, p * scale]))
            .collect()
    };
    let body = serde_json::json!({
        "prices": series(1.0), "market_caps": series(1e6), "total_volumes": series(1e3)
    });
    std::fs::write(dir.join(format!("{coin}.json")), body.to_string()).expect("write chart");
}

/// One hour in milliseconds, and an hour to start synthetic series at.
pub const H: i64 = 3_600_000;
pub const T0: i64 = 1_700_000_000_000 / H * H; // 2023-11-14 22:00 UTC

/// Prices of a GARCH(1,1) walk (α 0.12, β 0.87, long-run σ 1 % per hour) from deterministic
/// noise: volatility clusters, the point forecast is a random walk.
pub fn garch_prices(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.max(1);
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (alpha, beta, long_run) = (0.12, 0.87, 1e-4);
    let omega = long_run * (1.0 - alpha - beta);
    let mut v: f64 = long_run;
    let mut price = vec![100.0];
    for _ in 1..n {
        let (a, b) = (uniform().max(1e-12), uniform());
        let z = (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos();
        let r = v.sqrt() * z;
        v = omega + alpha * r * r + beta * v;
        let last = *price.last().unwrap_or(&100.0);
        price.push(last * r.exp());
    }
    price
}

/// `shared/data/real` next to the repository (the clone sits beside `shared/`).
pub fn real_data() -> PathBuf {
    let candidates = [
        std::env::var("COINCAST_REAL_DATA").ok().map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("coingecko").is_dir())
        .expect("real data not found: set COINCAST_REAL_DATA to shared/data/real")
}

pub fn real_coingecko() -> PathBuf {
    real_data().join("coingecko")
}

/// solana.json with the price of every 500th point of its first 5,000 raised by 1 % (a provider's
/// correction of past hours).
pub fn revised_solana(dir: &Path) {
    let body = std::fs::read_to_string(real_coingecko().join("solana.json")).expect("solana");
    let mut v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let prices = v["prices"].as_array_mut().expect("prices");
    for p in prices.iter_mut().take(5000).step_by(500) {
        let price = p[1].as_f64().expect("price");
        p[1] = serde_json::json!(price * 1.01);
    }
    std::fs::write(dir.join("solana.json"), v.to_string()).expect("write");
}

/// `tests/fixtures/nan-volumes`: one market_chart file with bare NaN volumes (see its README).
pub fn nan_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nan-volumes")
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339 time")
        .with_timezone(&Utc)
}

/// A small, fast LSTM spec: 12-hour inputs, 8 hidden units, 2 short epochs, 4 features.
pub fn small_spec() -> LstmSpec {
    let mut s = LstmSpec::parse("models/lstm.toml", DEFAULT_SPEC).expect("spec");
    s.lookback_hours = 12;
    s.hidden_size = 8;
    s.epochs = 2;
    s.samples_per_epoch = 2000;
    s.batch_size = 128;
    s.device = "cpu".into();
    s.features = vec![
        "price_change_1h".into(),
        "volatility_24h".into(),
        "volume_change_1h".into(),
        "price_position_24h".into(),
    ];
    s
}

/// The shipped walk-forward protocol with 2 weekly windows (refit at the first: one fit per
/// candidate, plus the refit of the winner).
pub fn small_protocol() -> Protocol {
    let mut p = Protocol::parse("models/baselines.toml", DEFAULT_PROTOCOL).expect("protocol");
    p.windows = 2;
    p
}

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub settings: Settings,
    pub store: Store,
    pub rules: RuleSet,
}

impl TestApp {
    /// A fresh data folder with settings tuned for tests (fast backoff, generous rate limit),
    /// plus environment-style overrides such as `("COINCAST__COINGECKO__PLAN", "demo")`.
    pub fn new(overrides: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env: Vec<(String, String)> = vec![
            (
                "COINCAST__COINGECKO__CALLS_PER_MINUTE".into(),
                "60000".into(),
            ),
            ("COINCAST__COINGECKO__BACKOFF_BASE_MS".into(), "20".into()),
            ("COINCAST__COINGECKO__BACKOFF_MAX_MS".into(), "200".into()),
            ("COINCAST__COINGECKO__TIMEOUT_SECS".into(), "2".into()),
            ("COINCAST__PIPELINE__RETRY_DELAY_SECS".into(), "0".into()),
            ("COINCAST__PIPELINE__TASK_ATTEMPTS".into(), "1".into()),
            // The lake has tests of its own (tests/it/lake.rs); elsewhere it only costs time.
            ("COINCAST__LAKE__ENABLED".into(), "false".into()),
        ];
        env.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut settings = Settings::load_with_env(None, env).expect("test settings");
        settings.data_dir = dir.path().to_path_buf();
        let store = Store::open(dir.path()).expect("store");
        let rules = RuleSet::load(&settings.quality).expect("rules");
        Self {
            dir,
            settings,
            store,
            rules,
        }
    }

    pub fn with_server(base_url: &str, overrides: &[(&str, &str)]) -> Self {
        let mut all = vec![("COINCAST__COINGECKO__BASE_URL", base_url)];
        all.extend_from_slice(overrides);
        Self::new(&all)
    }

    pub fn client(&self) -> CoinGeckoClient {
        CoinGeckoClient::new(&self.settings.coingecko).expect("client")
    }

    pub async fn fetch(
        &self,
        coins: &[&str],
        until: DateTime<Utc>,
        backfill_days: u32,
    ) -> RunReport {
        let client = self.client();
        pipeline::run(
            &self.store,
            &self.settings,
            &self.rules,
            "test",
            Extract::Live {
                client: &client,
                coins: coins.iter().map(|c| c.to_string()).collect(),
                until,
                backfill_days,
                cadence: pipeline::Cadence::EveryCoin,
            },
        )
        .await
        .expect("pipeline run")
    }

    pub async fn replay(&self, dir: &Path, coins: Option<&[&str]>) -> RunReport {
        pipeline::run(
            &self.store,
            &self.settings,
            &self.rules,
            "test",
            Extract::Replay {
                dir: dir.to_path_buf(),
                coins: coins.map(|c| c.iter().map(|x| x.to_string()).collect()),
                fetched_at: None,
            },
        )
        .await
        .expect("pipeline run")
    }

    /// A selection run on `coins` (loaded) among `candidates` (the floor's two are always
    /// added) with the small protocol and the default gate.
    pub fn select(
        &self,
        coins: &[&str],
        candidates: &[&str],
        spec: LstmSpec,
        register: RegisterPolicy,
    ) -> Result<TrainOutcome, ModelError> {
        let mut protocol = small_protocol();
        protocol.candidates = candidates.iter().map(|c| c.to_string()).collect();
        let coins: Vec<String> = coins.iter().map(|c| c.to_string()).collect();
        train_and_register(
            self.store.conn(),
            TrainRequest {
                coins: &coins,
                vs_currency: "usd",
                spec,
                protocol,
                gate: self.settings.model.gate.clone(),
                data_dir: self.dir.path(),
                register,
                cancel: Default::default(),
            },
            |_| {},
        )
    }

    /// An LSTM champion whatever the gate says: a selection run that registers every candidate,
    /// then the LSTM promoted by hand (forced when it failed the gate). Returns its model id.
    pub fn lstm_champion(&self, coins: &[&str], spec: LstmSpec) -> String {
        self.forced_champion(coins, "lstm", spec)
    }

    /// Trains `candidate` alone (with the floor's methods beside it), registers it and promotes
    /// it by hand, whatever the gate said.
    pub fn forced_champion(&self, coins: &[&str], candidate: &str, spec: LstmSpec) -> String {
        let o = self
            .select(coins, &[candidate], spec, RegisterPolicy::AllCandidates)
            .expect("selection run");
        let id = if o.family == candidate {
            o.model_id
        } else {
            o.challengers
                .iter()
                .find(|(label, _)| label == candidate)
                .map(|(_, id)| id.clone())
                .unwrap_or_else(|| panic!("{candidate} registered as challenger"))
        };
        coincast::model::registry::promote(
            self.store.conn(),
            &id,
            coincast::model::registry::GateCheck::Force,
        )
        .expect("promote");
        id
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.store
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn string(&self, sql: &str) -> String {
        self.store
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A fingerprint of a table's contents, to show that something did not change.
    pub fn table_hash(&self, table: &str, columns: &str) -> String {
        self.string(&format!(
            "SELECT coalesce(CAST(sum(hash(CAST(to_json(t) AS VARCHAR))) AS VARCHAR), 'empty')
             FROM (SELECT {columns} FROM {table}) t"
        ))
    }
}

/// The venv's Python (DuckDB 1.5.5, the client the README names for analysts).
pub fn python() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("COINCAST_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/coincast/venv",
            std::env::var("HOME").unwrap_or_default()
        )
    }))
    .join("bin/python")
}

/// Runs `script` with the venv's Python and `args`; its standard output, after it succeeded.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A self-signed certificate for localhost and 127.0.0.1 (openssl), in `dir`.
pub fn certificate(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    (s(&cert), s(&key))
}
