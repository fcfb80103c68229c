//! `POST /api/pipeline/runs`: a manual pipeline run, queued to the worker. Requires
//! `Authorization: Bearer <serve.api_token>`; without a configured token the endpoint is off (404).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::AppState;
use super::worker::Command;

pub async fn trigger(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(expected) = state.settings.api_token() else {
        return Err(ApiError::not_found(
            "disabled",
            "manual pipeline runs are off: set serve.api_token (COINCAST__SERVE__API_TOKEN) to enable them",
        ));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        ));
    }
    let Some(pipeline) = &state.pipeline else {
        return Err(ApiError::unavailable(
            "no_pipeline",
            "this server runs no pipeline worker",
        ));
    };
    pipeline
        .lock()
        .map_err(|_| ApiError::internal("the pipeline channel lock is poisoned"))?
        .send(Command::Run {
            trigger: "api".into(),
        })
        .map_err(|_| ApiError::unavailable("no_pipeline", "the pipeline worker has stopped"))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": true }))))
}

/// Compares without stopping at the first difference, so timing reveals nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
