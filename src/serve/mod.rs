//! The HTTP API (axum): `POST /predict`, `/predict/batch`, `GET /health`, `/ready`,
//! `/models/status`, `/metrics`, `/openapi.json`, the token-guarded `POST /api/pipeline/runs`,
//! promotion and backup endpoints; the prediction log; and the pipeline worker that runs the
//! schedules inside `serve`.
//! Only this module knows HTTP and the API's JSON shapes; one concern per file.

pub mod admin_api;
pub mod batch;
pub mod error;
pub mod health;
pub mod limit;
pub mod metrics;
pub mod models_api;
pub mod openapi;
pub mod pages;
pub mod pipeline_api;
pub mod predict;
pub mod prediction_log;
pub mod state;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use error::ApiError;
use state::AppState;

/// The application: routes, metrics, limits.
pub fn router(state: Arc<AppState>) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/models/status", get(health::models_status))
        .route("/predict", post(predict::predict))
        .route("/predict/batch", post(batch::predict_batch))
        .route("/metrics", get(render_metrics))
        .route("/openapi.json", get(openapi::openapi))
        .route("/api/pipeline/runs", post(pipeline_api::trigger))
        .route("/api/models/{model_id}/promote", post(models_api::promote))
        .route("/api/models/rollback", post(models_api::rollback))
        .route("/api/admin/backup", post(admin_api::backup))
        .merge(pages::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(tokio::sync::Semaphore::new(
                state.settings.serve.max_concurrent_requests,
            )),
            limit::shed,
        ))
        .layer(DefaultBodyLimit::max(state.settings.serve.max_body_bytes))
        // Every request gets an `x-request-id` (kept when the client sends one), echoed in the
        // response and carried by the request's log span.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.settings.serve.request_timeout_secs),
        ))
        .with_state(state)
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> Response {
    state.publish_gauges();
    state.metrics.render()
}

/// Unknown routes: a JSON 404, counted under one bounded `endpoint` label.
async fn not_found(State(state): State<Arc<AppState>>, method: Method, uri: Uri) -> Response {
    state
        .metrics
        .api_requests_total
        .with_label_values(&[method.as_str(), "unmatched", "error"])
        .inc();
    ApiError::not_found("not_found", format!("no route {method} {}", uri.path())).into_response()
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    pages::monitoring::spawn_sampler(state.clone());
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
