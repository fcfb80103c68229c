//! A CoinGecko-compatible server on 127.0.0.1 for tests: `/api/v3/coins/{id}/market_chart/range`
//! and `/market_chart`, answering with the real recorded data of `shared/data/real/coingecko`
//! sliced to the requested range, with timestamps shifted off the hour as CoinGecko's are.
//! Faults queued with [`CoinGeckoServer::push_fault`] are served one per request, in order.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

/// CoinGecko's hourly points are a little after the hour; so are ours.
pub const OFFSET_MS: i64 = 123_456;

/// One prepared misbehaviour.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with the given headers (Retry-After and/or x-ratelimit-reset).
    TooManyRequests {
        retry_after: Option<String>,
        ratelimit_reset: Option<String>,
    },
    /// Any status with a raw body (500, 503 with HTML, 404 ...).
    Status { status: u16, body: String },
    /// Wait this long before answering normally.
    Slow(Duration),
    /// A 200 whose JSON body is cut in half.
    TruncatedJson,
    /// A 200 with exactly this body.
    Body(String),
}

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    pub query: HashMap<String, String>,
    pub demo_key: Option<String>,
    pub pro_key: Option<String>,
}

type Series = Vec<(i64, Value)>;

#[derive(Default)]
struct Chart {
    prices: Series,
    market_caps: Series,
    total_volumes: Series,
}

struct Shared {
    charts: HashMap<String, Chart>,
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

pub struct CoinGeckoServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl CoinGeckoServer {
    /// Serves the given coins from `<data_dir>/<coin>.json`.
    pub async fn start(data_dir: &Path, coins: &[&str]) -> Self {
        Self::start_shifted(data_dir, coins, 0).await
    }

    /// As `start`, with every timestamp moved by whole hours so that the newest point lands
    /// just before now: a live fetch "now" then finds fresh data.
    pub async fn start_ending_now(data_dir: &Path, coins: &[&str]) -> Self {
        let newest = coins
            .iter()
            .filter_map(|c| std::fs::read_to_string(data_dir.join(format!("{c}.json"))).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .filter_map(|v| {
                v["prices"]
                    .as_array()
                    .and_then(|a| a.last())
                    .and_then(|p| p[0].as_i64())
            })
            .max()
            .unwrap_or(0);
        let hour = 3_600_000;
        let now = chrono::Utc::now().timestamp_millis() / hour * hour;
        Self::start_shifted(data_dir, coins, now - hour - newest).await
    }

    async fn start_shifted(data_dir: &Path, coins: &[&str], shift_ms: i64) -> Self {
        let mut charts = HashMap::new();
        for coin in coins {
            let text = std::fs::read_to_string(data_dir.join(format!("{coin}.json")))
                .unwrap_or_else(|e| panic!("test data {coin}.json: {e}"));
            let v: Value = serde_json::from_str(&text).expect("test data is JSON");
            let series = |name: &str| -> Series {
                v[name]
                    .as_array()
                    .expect("array")
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_i64().expect("ms") + OFFSET_MS + shift_ms,
                            p[1].clone(),
                        )
                    })
                    .collect()
            };
            charts.insert(
                coin.to_string(),
                Chart {
                    prices: series("prices"),
                    market_caps: series("market_caps"),
                    total_volumes: series("total_volumes"),
                },
            );
        }
        let shared = Arc::new(Shared {
            charts,
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route(
                "/api/v3/ping",
                get(|| async { r#"{"gecko_says":"(V3) To the Moon!"}"# }),
            )
            .route("/api/v3/coins/{id}/market_chart/range", get(range))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test server");
        });
        Self { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/api/v3", self.addr)
    }

    pub fn push_fault(&self, fault: Fault) {
        self.shared.faults.lock().expect("lock").push_back(fault);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().expect("lock").clone()
    }
}

async fn range(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    shared.requests.lock().expect("lock").push(RecordedRequest {
        path: format!("/api/v3/coins/{id}/market_chart/range"),
        query: query.clone(),
        demo_key: header("x-cg-demo-api-key"),
        pro_key: header("x-cg-pro-api-key"),
    });
    let fault = shared.faults.lock().expect("lock").pop_front();
    let mut truncate = false;
    match fault {
        Some(Fault::TooManyRequests {
            retry_after,
            ratelimit_reset,
        }) => {
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."}}"#,
            )
                .into_response();
            let h = resp.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from_static("30"));
            h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            if let Some(v) = retry_after {
                h.insert("retry-after", HeaderValue::from_str(&v).expect("header"));
            }
            if let Some(v) = ratelimit_reset {
                h.insert(
                    "x-ratelimit-reset",
                    HeaderValue::from_str(&v).expect("header"),
                );
            }
            return resp;
        }
        Some(Fault::Status { status, body }) => {
            return Response::builder()
                .status(status)
                .body(Body::from(body))
                .expect("response");
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::TruncatedJson) => truncate = true,
        Some(Fault::Body(body)) => {
            return ([("content-type", "application/json")], body).into_response();
        }
        None => {}
    }
    let Some(chart) = shared.charts.get(&id) else {
        return (StatusCode::NOT_FOUND, r#"{"error":"coin not found"}"#).into_response();
    };
    let bound = |k: &str| query.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to)) = (bound("from"), bound("to")) else {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":"Missing parameter from or to"}"#,
        )
            .into_response();
    };
    let slice = |s: &Series| -> Value {
        Value::Array(
            s.iter()
                .filter(|(t, _)| *t >= from * 1000 && *t <= to * 1000)
                .map(|(t, v)| Value::Array(vec![Value::from(*t), v.clone()]))
                .collect(),
        )
    };
    let body = serde_json::json!({
        "prices": slice(&chart.prices),
        "market_caps": slice(&chart.market_caps),
        "total_volumes": slice(&chart.total_volumes),
    })
    .to_string();
    let body = if truncate {
        body[..body.len() / 2].to_string()
    } else {
        body
    };
    ([("content-type", "application/json")], body).into_response()
}
