//! The HTTP side of the metrics: `track` counts and times every response, as the outermost
//! layer (so 408 timeouts, 503 sheds, 413s and caught panics are all counted), and `/metrics`
//! renders the registry. `endpoint` is the matched route template (bounded series, also for a
//! 405 on a known route), or `unmatched` (404); `status` is `success` (HTTP < 400) or `error`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::Gauge;

use super::error::ApiError;
use super::state::AppState;
use crate::runtime::Metrics;

/// The route template of a request, filled in by `note_endpoint` once the router has matched
/// it: the outermost layer runs before routing, and still needs the template when an inner layer
/// answers for the handler (a timeout, a shed request, a panic).
#[derive(Clone, Default)]
struct Endpoint(Arc<OnceLock<String>>);

/// Counts and times every request under its route template.
pub async fn track(State(metrics): State<Arc<Metrics>>, mut req: Request, next: Next) -> Response {
    let endpoint = Endpoint::default();
    req.extensions_mut().insert(endpoint.clone());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let response = {
        // Held across the request: dropped (and the gauge lowered) however it ends, even when
        // the client goes away and the future is dropped.
        let _active = Active::enter(&metrics.api_active_requests);
        next.run(req).await
    };
    let endpoint = endpoint.0.get().map_or("unmatched", String::as_str);
    let status = if response.status().as_u16() < 400 {
        "success"
    } else {
        "error"
    };
    metrics
        .api_requests_total
        .with_label_values(&[&method, endpoint, status])
        .inc();
    metrics
        .api_request_latency_seconds
        .with_label_values(&[&method, endpoint])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Records the matched route template for `track` (a route layer: runs only on matched routes).
pub async fn note_endpoint(req: Request, next: Next) -> Response {
    record_endpoint(req.extensions());
    next.run(req).await
}

/// Hands the route template the router matched (if it matched one) to `track`; also called by
/// the 405 answer, which no route layer wraps.
pub fn record_endpoint(extensions: &axum::http::Extensions) {
    if let (Some(slot), Some(path)) = (
        extensions.get::<Endpoint>(),
        extensions.get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.as_str().to_string());
    }
}

/// One request in flight on the gauge, for as long as it lives.
struct Active<'a>(&'a Gauge);

impl<'a> Active<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`: the gauges are set from the served snapshot first (ages grow between runs).
pub async fn render(State(state): State<Arc<AppState>>) -> Response {
    let runtime = &state.runtime;
    runtime.publisher().publish_gauges();
    runtime.publish_access_gauges();
    match runtime.metrics().encode() {
        Ok(text) => ([(CONTENT_TYPE, Metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::internal(format!("encoding metrics: {e}")).into_response(),
    }
}
