//! The CoinGecko HTTP client: `/coins/{id}/market_chart/range` with the plan's key header, a
//! client-side rate limit, a timeout, and retries with backoff on timeouts, transport errors,
//! truncated bodies, 5xx, 408 and 429 (honouring `Retry-After` / `x-ratelimit-reset`).
//!
//! Every attempt that got as far as a response (or failed trying) is returned to the caller, so
//! that each one can be recorded in `raw_batches`: nothing received is lost.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;

use super::error_body;
use super::market_chart::{self, ParsedChart};
use super::retry::{self, Backoff};
use crate::config::{CoinGeckoSettings, Plan};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// Why a fetch gave up. Each names the coin and what the server said.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("coin `{coin_id}` is unknown to CoinGecko: {message}")]
    UnknownCoin { coin_id: String, message: String },
    #[error("CoinGecko refused the request for `{coin_id}` (HTTP {status}): {message}")]
    Rejected {
        coin_id: String,
        status: u16,
        message: String,
    },
    #[error("CoinGecko answered `{coin_id}` with a body that is not market data: {message}")]
    BadBody { coin_id: String, message: String },
    #[error("gave up on `{coin_id}` after {attempts} attempts; last: {last}")]
    Exhausted {
        coin_id: String,
        attempts: u32,
        last: String,
        /// Whether any attempt got an HTTP answer (false: the host could not be reached at all).
        reached: bool,
    },
    #[error("skipped `{coin_id}`: {reason}")]
    Skipped { coin_id: String, reason: String },
    #[error("CoinGecko asks `{coin_id}` to wait {wait_secs} s, more than coingecko.max_retry_after_secs = {max_secs}: {message}")]
    WaitTooLong {
        coin_id: String,
        wait_secs: u64,
        max_secs: u64,
        message: String,
    },
}

impl FetchError {
    /// True when the source could not be reached or kept failing, as opposed to a definite answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            FetchError::Exhausted { .. }
                | FetchError::WaitTooLong { .. }
                | FetchError::Skipped { .. }
        )
    }

    /// True when not a single attempt reached the server: the next coins would fare no better.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, FetchError::Exhausted { reached: false, .. })
    }
}

/// One HTTP attempt as it is recorded.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub fetched_at: DateTime<Utc>,
    pub status: Option<u16>,
    pub body: Option<Vec<u8>>,
    /// Why the attempt did not count (None for the successful one).
    pub error: Option<String>,
}

/// A successful response with its parsed chart.
#[derive(Debug, Clone)]
pub struct Success {
    pub fetched_at: DateTime<Utc>,
    pub status: u16,
    pub body: Vec<u8>,
    pub chart: ParsedChart,
}

/// The outcome of one logical request: the failed attempts in order, then the result.
#[derive(Debug)]
pub struct Fetched {
    /// The request as recorded: the URL without any key.
    pub request: String,
    pub failed_attempts: Vec<Attempt>,
    pub result: Result<Success, FetchError>,
}

pub struct CoinGeckoClient {
    http: reqwest::Client,
    base_url: String,
    key_header: Option<(&'static str, String)>,
    limiter: DefaultDirectRateLimiter,
    backoff: Backoff,
    max_retries: u32,
    max_retry_after: Duration,
}

impl CoinGeckoClient {
    pub fn new(settings: &CoinGeckoSettings) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.timeout_secs.min(10)))
            .user_agent(concat!("coincast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let key_header = match (settings.plan, settings.api_key()) {
            (Plan::Demo, Some(key)) => Some(("x-cg-demo-api-key", key.to_string())),
            (Plan::Pro, Some(key)) => Some(("x-cg-pro-api-key", key.to_string())),
            _ => None,
        };
        let per_call = Duration::from_secs(60) / settings.calls_per_minute.max(1);
        let quota = Quota::with_period(per_call)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Ok(Self {
            http,
            base_url: settings.effective_base_url(),
            key_header,
            limiter: RateLimiter::direct(quota),
            backoff: Backoff {
                base: Duration::from_millis(settings.backoff_base_ms),
                max: Duration::from_millis(settings.backoff_max_ms),
            },
            max_retries: settings.max_retries,
            max_retry_after: Duration::from_secs(settings.max_retry_after_secs),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /coins/{id}/market_chart/range` for [from, to], with retries.
    pub async fn market_chart_range(
        &self,
        coin_id: &str,
        vs_currency: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Fetched {
        let request = format!(
            "{}/coins/{coin_id}/market_chart/range?vs_currency={vs_currency}&from={}&to={}",
            self.base_url,
            from.timestamp(),
            to.timestamp()
        );
        let mut failed_attempts = Vec::new();
        let mut retry = 0u32;
        loop {
            self.limiter.until_ready().await;
            let fetched_at = Utc::now();
            let verdict = self.attempt(&request, coin_id).await;
            let (attempt, next) = match verdict {
                Verdict::Done(success) => {
                    return Fetched {
                        request,
                        failed_attempts,
                        result: Ok(success.with_time(fetched_at)),
                    }
                }
                Verdict::Fatal {
                    status,
                    body,
                    error,
                } => {
                    failed_attempts.push(Attempt {
                        fetched_at,
                        status,
                        body,
                        error: Some(error.to_string()),
                    });
                    return Fetched {
                        request,
                        failed_attempts,
                        result: Err(error),
                    };
                }
                Verdict::Retry {
                    status,
                    body,
                    message,
                    server_wait,
                } => (
                    Attempt {
                        fetched_at,
                        status,
                        body,
                        error: Some(message),
                    },
                    server_wait,
                ),
            };
            let message = attempt.error.clone().unwrap_or_default();
            failed_attempts.push(attempt);
            if retry >= self.max_retries {
                let reached = failed_attempts.iter().any(|a| a.status.is_some());
                return Fetched {
                    request,
                    failed_attempts,
                    result: Err(FetchError::Exhausted {
                        coin_id: coin_id.to_string(),
                        attempts: retry + 1,
                        last: message,
                        reached,
                    }),
                };
            }
            let wait = match next {
                Some(wait) if wait > self.max_retry_after => {
                    return Fetched {
                        request,
                        failed_attempts,
                        result: Err(FetchError::WaitTooLong {
                            coin_id: coin_id.to_string(),
                            wait_secs: wait.as_secs(),
                            max_secs: self.max_retry_after.as_secs(),
                            message,
                        }),
                    };
                }
                // Honour the server's wait, plus a little jitter so that clients spread out.
                Some(wait) => wait + self.backoff.delay(0) / 4,
                None => self.backoff.delay(retry),
            };
            tracing::warn!(
                coin = coin_id,
                retry = retry + 1,
                wait_ms = wait.as_millis() as u64,
                "{message}; retrying"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn attempt(&self, url: &str, coin_id: &str) -> Verdict {
        let mut req = self.http.get(url).header("accept", "application/json");
        if let Some((name, key)) = &self.key_header {
            req = req.header(*name, key);
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Verdict::Retry {
                    status: None,
                    body: None,
                    message: describe_transport(&e),
                    server_wait: None,
                }
            }
        };
        let status = response.status();
        let wait = retry::server_wait(response.headers(), Utc::now());
        let body = match response.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                return Verdict::Retry {
                    status: Some(status.as_u16()),
                    body: None,
                    message: format!("HTTP {status}, body cut off: {}", describe_transport(&e)),
                    server_wait: None,
                }
            }
        };
        classify(coin_id, status, body, wait)
    }
}

enum Verdict {
    Done(Success),
    Retry {
        status: Option<u16>,
        body: Option<Vec<u8>>,
        message: String,
        server_wait: Option<Duration>,
    },
    Fatal {
        status: Option<u16>,
        body: Option<Vec<u8>>,
        error: FetchError,
    },
}

impl Success {
    fn with_time(mut self, fetched_at: DateTime<Utc>) -> Self {
        self.fetched_at = fetched_at;
        self
    }
}

fn classify(coin_id: &str, status: StatusCode, body: Vec<u8>, wait: Option<Duration>) -> Verdict {
    let code = status.as_u16();
    if status.is_success() {
        return match market_chart::parse(&body) {
            Ok(chart) => Verdict::Done(Success {
                fetched_at: Utc::now(),
                status: code,
                body,
                chart,
            }),
            Err(e) if e.is_transient() => Verdict::Retry {
                status: Some(code),
                body: Some(body),
                message: format!("HTTP {code} with {e}"),
                server_wait: None,
            },
            Err(e) => Verdict::Fatal {
                status: Some(code),
                error: FetchError::BadBody {
                    coin_id: coin_id.to_string(),
                    message: e.to_string(),
                },
                body: Some(body),
            },
        };
    }
    let message = error_body::describe(&body);
    let retryable = code == 429 || code == 408 || status.is_server_error();
    if retryable {
        return Verdict::Retry {
            status: Some(code),
            message: format!("HTTP {code}: {message}"),
            body: Some(body),
            server_wait: if code == 429 { wait } else { None },
        };
    }
    let error = if code == 404 {
        FetchError::UnknownCoin {
            coin_id: coin_id.to_string(),
            message,
        }
    } else {
        FetchError::Rejected {
            coin_id: coin_id.to_string(),
            status: code,
            message,
        }
    };
    Verdict::Fatal {
        status: Some(code),
        body: Some(body),
        error,
    }
}

fn describe_transport(e: &reqwest::Error) -> String {
    // reqwest's Display names the URL, which never holds the key; add the root cause.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body incomplete"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}
