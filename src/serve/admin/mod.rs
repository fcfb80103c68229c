//! The token-guarded endpoints, nested under one auth layer: manual pipeline runs, promotion and
//! rollback, and the online backup. Without `serve.api_token` they are off (404); a missing or
//! wrong token is 401. The handlers themselves never check the token.

mod backup;
mod models;
mod runs;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

pub use backup::MANIFEST_HEADER;
pub use models::{ChampionResponse, PromoteRequest};
pub use runs::TriggerRequest;

use super::error::ApiError;
use super::state::AppState;

/// The backup streams a whole database: no request deadline applies to it.
pub const STREAMING_ROUTE: &str = "/api/admin/backup";

pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/pipeline/runs", post(runs::trigger))
        .route("/api/models/{model_id}/promote", post(models::promote))
        .route("/api/models/rollback", post(models::rollback))
        .route(STREAMING_ROUTE, post(backup::backup))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

/// 404 when no token is configured (the endpoints are off), 401 on a missing or wrong one.
async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(expected) = state.runtime.settings.serve.api_token() else {
        return ApiError::not_found(
            "disabled",
            "this endpoint is off: set serve.api_token (COINCAST__SERVE__API_TOKEN) to enable it",
        )
        .into_response();
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
        .into_response();
    }
    next.run(req).await
}

/// Compares without stopping at the first difference, so timing reveals nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
