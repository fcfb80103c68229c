//! The router under generated requests, in process, on a small fixture database (the previous
//! release's data folder: 1,500 hours of a synthetic coin and an LSTM champion, migrated on
//! open). Every route template gets well-formed requests with edge values (hours 0, 1, 24, 25,
//! unknown coins, huge numbers, unicode, dates out of range); the rest are random methods, paths,
//! headers and bodies. The bar: no 5xx but the documented 503s, no panic, every error in the
//! JSON envelope.
//!
//! `make test` runs a short version; `make fuzz` runs 10,000 requests (COINCAST_FUZZ_REQUESTS,
//! COINCAST_FUZZ_SEED) and prints the table per route template.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tower::ServiceExt;

use coincast::runtime::{Metrics, Runtime, Snapshot};
use coincast::serve::state::AppState;

const TOKEN: &str = "fuzz-token";

/// The 503s the API documents (openapi.json): anything else 5xx is a defect.
const DOCUMENTED_503: &[&str] = &[
    "overloaded",
    "not_ready",
    "no_model",
    "no_data",
    "data_incomplete",
    "no_pipeline",
    "no_database",
    "not_published",
];

/// Every route template the router serves, with its method.
const TEMPLATES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/models/status"),
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/api/pipeline/runs"),
    ("POST", "/api/models/{model_id}/promote"),
    ("POST", "/api/models/rollback"),
    ("POST", "/api/admin/backup"),
    ("POST", "/api/exports"),
    ("POST", "/api/sql"),
    ("GET", "/sql/download"),
    ("GET", "/"),
    ("GET", "/api/overview"),
    ("GET", "/market"),
    ("GET", "/api/market"),
    ("GET", "/quality"),
    ("GET", "/api/quality"),
    ("GET", "/features"),
    ("GET", "/api/features"),
    ("GET", "/pipeline"),
    ("GET", "/api/pipeline"),
    ("GET", "/models"),
    ("GET", "/api/models"),
    ("GET", "/monitoring"),
    ("GET", "/api/monitoring"),
    ("GET", "/sql"),
    ("GET", "/api/sql"),
    ("GET", "/static/style.css"),
    ("GET", "/static/app.js"),
];

/// The edge values of the issue: hours 0, 1, 24, 25, unknown coins, huge numbers, unicode, and
/// dates out of range.
const HOURS: &[&str] = &[
    "0",
    "1",
    "24",
    "25",
    "-1",
    "9223372036854775807",
    "99999999999999999999",
    "1e308",
    "1.5",
    "\"24\"",
    "null",
];
const COINS: &[&str] = &[
    "synthcoin",
    "bitcoin",
    "no-such-coin",
    "",
    "Synthcoin",
    "s\u{00fc}\u{00df}coin",
    "\u{1F680}",
    "../../etc/passwd",
    "a b",
    "%00",
];
const DATES: &[&str] = &[
    "2024-01-01",
    "0000-01-01",
    "9999-12-31",
    "2023-02-30",
    "1969-12-31",
    "2262-04-12",
    "",
    "yesterday",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00+14:00",
    "+275760-09-13",
    "\u{0662}\u{0660}\u{0662}\u{0664}-01-01",
];
const SQL: &[&str] = &[
    "SELECT count(*) FROM market_data",
    "SELECT * FROM range(100000)",
    "DROP TABLE market_data",
    "SELECT 1; SELECT 2",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELEC",
    "",
    "SELECT '\u{1F680}'",
    "SELECT 99999999999999999999999999999999999999",
];
const DAYS: &[&str] = &[
    "0",
    "1",
    "24",
    "25",
    "-5",
    "99999999999999999999",
    "abc",
    "",
    "%E2%88%9E",
];

#[derive(Default)]
struct Row {
    requests: usize,
    well_formed: usize,
    ok: usize,
    client_errors: usize,
    documented_503: usize,
    violations: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_survives_generated_requests() {
    let total: usize = env_number("COINCAST_FUZZ_REQUESTS", 1_500);
    let seed: u64 = env_number("COINCAST_FUZZ_SEED", 11);
    // Enough well-formed requests per template for the full run's bar (200), fewer in make test.
    let well_formed_each = if total >= 10_000 { 220 } else { total / 50 };
    let (dir, state) = fixture();
    let model_ids: Vec<String> = state
        .runtime
        .snapshot()
        .registry
        .iter()
        .map(|m| m.model_id.clone())
        .collect();
    let app = coincast::serve::router(state.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut table: BTreeMap<&str, Row> = BTreeMap::new();
    let mut plan: Vec<Option<usize>> = (0..TEMPLATES.len())
        .flat_map(|t| std::iter::repeat_n(Some(t), well_formed_each))
        .collect();
    plan.resize(total.max(plan.len()), None);
    for (n, slot) in plan.into_iter().enumerate() {
        let (template, request) = match slot {
            Some(t) => (TEMPLATES[t].1, well_formed(&mut rng, t, &model_ids)),
            None => random_request(&mut rng, &model_ids),
        };
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("body");
        let row = table.entry(template).or_default();
        row.requests += 1;
        row.well_formed += usize::from(slot.is_some());
        let mut violation = |what: String| {
            row.violations
                .push(format!("#{n} {method} {uri} -> {status}: {what}"))
        };
        if status.is_success() || status.is_redirection() {
            row.ok += 1;
            continue;
        }
        let envelope: Option<(String, String)> = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let code = v["error"]["code"].as_str()?.to_string();
                let message = v["error"]["message"].as_str()?.to_string();
                Some((code, message))
            });
        let code = match (&envelope, method == Method::HEAD) {
            (Some((code, message)), _) if !message.is_empty() => code.clone(),
            // A HEAD answer carries no body by definition.
            (_, true) => String::new(),
            _ => {
                violation(format!(
                    "not in the envelope ({content_type}): {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ));
                continue;
            }
        };
        if status == StatusCode::SERVICE_UNAVAILABLE
            && (code.is_empty() || DOCUMENTED_503.contains(&code.as_str()))
        {
            row.documented_503 += 1;
        } else if status.is_server_error() {
            violation(format!("server error `{code}`"));
        } else {
            row.client_errors += 1;
        }
    }
    print_table(&table, total, seed);
    let violations: Vec<&String> = table.values().flat_map(|r| &r.violations).collect();
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations
            .iter()
            .take(20)
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (method, template) in TEMPLATES {
        let row = table.get(template).expect("every template was called");
        assert!(
            row.well_formed >= well_formed_each,
            "{method} {template}: {} well-formed",
            row.well_formed
        );
    }
    let health = Request::get("/health")
        .body(Body::empty())
        .expect("request");
    let after = app.oneshot(health).await.expect("infallible");
    assert_eq!(
        after.status(),
        StatusCode::OK,
        "the server answers after the run"
    );
    drop(dir);
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The previous release's data folder, opened (migrated) by this build, served with an admin
/// token and the API's own connection; no worker.
fn fixture() -> (tempfile::TempDir, Arc<AppState>) {
    let dir = tempfile::tempdir().expect("dir");
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-v4/data.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar");
    assert!(status.success());
    let env = vec![
        ("COINCAST__SERVE__API_TOKEN".to_string(), TOKEN.to_string()),
        ("COINCAST__SERVE__MAX_BODY_BYTES".into(), "4096".into()),
        ("COINCAST__COINS".into(), "synthcoin,bitcoin".into()),
    ];
    let mut settings = coincast::config::Settings::load_with_env(None, env).expect("settings");
    settings.data_dir = dir.path().to_path_buf();
    let store = coincast::store::Store::open(dir.path()).expect("open");
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let snapshot = Snapshot::load(store.conn(), &settings);
    let runtime =
        Runtime::new(snapshot, settings, metrics).with_db(store.conn().try_clone().expect("conn"));
    // The store's own connection closes here; the runtime's keeps the database open.
    drop(store);
    (dir, Arc::new(AppState::new(Arc::new(runtime))))
}

fn pick<'a>(rng: &mut StdRng, values: &[&'a str]) -> &'a str {
    values.choose(rng).copied().unwrap_or_default()
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A request to template `t` as a client means it, with edge values.
fn well_formed(rng: &mut StdRng, t: usize, model_ids: &[String]) -> Request<Body> {
    let (method, template) = TEMPLATES[t];
    // Half the time the served coin and a valid horizon, so that answers are exercised too.
    let coin = json_string(if rng.random_bool(0.5) {
        COINS[0]
    } else {
        pick(rng, COINS)
    });
    let hours = if rng.random_bool(0.5) {
        pick(rng, &HOURS[..4])
    } else {
        pick(rng, HOURS)
    };
    let (path, body) = match template {
        "/predict" => (
            template.to_string(),
            format!(r#"{{"coin_id": {coin}, "hours_ahead": {hours}}}"#),
        ),
        "/predict/batch" => (
            template.to_string(),
            format!(
                r#"{{"coin_id": {coin}, "start_date": {}, "end_date": {}, "hours_ahead": {hours}}}"#,
                json_string(pick(rng, DATES)),
                json_string(pick(rng, DATES))
            ),
        ),
        "/api/pipeline/runs" => (
            template.to_string(),
            pick(
                rng,
                &[
                    "",
                    r#"{"job": "ingest"}"#,
                    r#"{"job": "retrain"}"#,
                    r#"{"job": "\u00fc"}"#,
                    r#"{"job": 25}"#,
                ],
            )
            .to_string(),
        ),
        "/api/models/{model_id}/promote" => {
            let id = if rng.random_bool(0.5) {
                model_ids.choose(rng).cloned().unwrap_or_default()
            } else {
                pick(
                    rng,
                    &["nope", "\u{1F680}", "lstm-99999999999999999999", "%2e%2e"],
                )
                .to_string()
            };
            (
                format!("/api/models/{}/promote", encode(&id)),
                pick(rng, &["", r#"{"force": true}"#, r#"{"force": "yes"}"#]).to_string(),
            )
        }
        "/api/sql" => (
            template.to_string(),
            format!(
                r#"{{"sql": {}, "limit": {hours}}}"#,
                json_string(pick(rng, SQL))
            ),
        ),
        "/sql/download" | "/sql" => (
            format!("{template}?q={}", encode(pick(rng, SQL))),
            String::new(),
        ),
        "/api/market" | "/market" => (
            format!(
                "{template}?coin={}&days={}",
                encode(pick(rng, COINS)),
                pick(rng, DAYS)
            ),
            String::new(),
        ),
        "/api/features" | "/features" => (
            format!("{template}?version={}", encode(pick(rng, COINS))),
            String::new(),
        ),
        "/api/models" | "/models" => {
            let model = model_ids
                .choose(rng)
                .cloned()
                .unwrap_or_else(|| "nope".into());
            let model = if rng.random_bool(0.5) {
                model
            } else {
                pick(rng, COINS).to_string()
            };
            (
                format!("{template}?model={}", encode(&model)),
                String::new(),
            )
        }
        _ => (template.to_string(), String::new()),
    };
    let mut r = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    if method == "POST" {
        r = r.header("content-type", "application/json");
    }
    r.body(Body::from(body)).expect("request")
}

/// Anything at all: a method, a path near or far from a route, headers and a body.
fn random_request(rng: &mut StdRng, model_ids: &[String]) -> (&'static str, Request<Body>) {
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
    ];
    let method = methods.choose(rng).cloned().unwrap_or(Method::GET);
    let (_, template) = TEMPLATES.choose(rng).copied().unwrap_or(TEMPLATES[0]);
    let path = match rng.random_range(0..6) {
        0 => template.replace("{model_id}", model_ids.first().map_or("x", String::as_str)),
        1 => format!("{}/{}", template.trim_end_matches('/'), random_segment(rng)),
        2 => format!("/{}", random_segment(rng)),
        3 => format!("{template}?{}={}", random_segment(rng), random_segment(rng)),
        4 => format!("//{}", template.trim_start_matches('/')),
        _ => "/".to_string() + &"a/".repeat(rng.random_range(1..400)),
    };
    let mut r = Request::builder().method(method).uri(&path);
    for _ in 0..rng.random_range(0..4) {
        let (name, value) = *[
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
            ("content-type", "application/json; charset=\u{00e9}"),
            ("authorization", "Bearer fuzz-token"),
            ("authorization", "Bearer wrong"),
            ("authorization", "Basic Zm9vOmJhcg=="),
            ("x-request-id", "\u{1F680}"),
            ("accept", "*/*"),
        ]
        .choose(rng)
        .unwrap_or(&("accept", "*/*"));
        r = r.header(name, value);
    }
    let body: Vec<u8> = match rng.random_range(0..5) {
        0 => Vec::new(),
        1 => (0..rng.random_range(1..512)).map(|_| rng.random()).collect(),
        2 => format!(
            r#"{{"coin_id": {}, "hours_ahead": {}, "start_date": {}, "end_date": {}, "job": "x", "force": true}}"#,
            json_string(pick(rng, COINS)),
            pick(rng, HOURS),
            json_string(pick(rng, DATES)),
            json_string(pick(rng, DATES))
        )
        .into_bytes(),
        3 => vec![b'['; rng.random_range(1..20_000)],
        _ => vec![b' '; 8192],
    };
    let request = r
        .body(Body::from(body))
        .unwrap_or_else(|_| Request::new(Body::empty()));
    (template_of(request.uri().path()), request)
}

/// The template a random path is filed under: the route it matches, else `(other)`.
fn template_of(path: &str) -> &'static str {
    TEMPLATES
        .iter()
        .map(|(_, t)| *t)
        .find(|t| {
            let (prefix, suffix) = t.split_once("{model_id}").unwrap_or((t, ""));
            if suffix.is_empty() && !t.contains('{') {
                return *t == path;
            }
            path.starts_with(prefix) && path.ends_with(suffix) && path.len() > prefix.len()
        })
        .unwrap_or("(other)")
}

fn random_segment(rng: &mut StdRng) -> String {
    let pieces = [
        "x",
        "%00",
        "%ff",
        "..",
        "%2F",
        "\u{00fc}",
        "99999999999999999999",
        "{model_id}",
        "%",
        "a%20b",
    ];
    (0..rng.random_range(1..4))
        .map(|_| encode(pick(rng, &pieces)))
        .collect()
}

/// Percent-encodes what a URI may not carry raw (a `%` stays, so that broken escapes get through).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'%' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_table(table: &BTreeMap<&str, Row>, total: usize, seed: u64) {
    println!("\nfuzz: {total} requests, seed {seed}");
    println!(
        "{:<34} {:>8} {:>11} {:>6} {:>6} {:>6} {:>10}",
        "route template", "requests", "well-formed", "2xx", "4xx", "503", "violations"
    );
    for (template, r) in table {
        println!(
            "{:<34} {:>8} {:>11} {:>6} {:>6} {:>6} {:>10}",
            template,
            r.requests,
            r.well_formed,
            r.ok,
            r.client_errors,
            r.documented_503,
            r.violations.len()
        );
    }
}
