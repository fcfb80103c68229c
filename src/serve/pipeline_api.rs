//! `POST /api/pipeline/runs`: a manual run (`{"job": "ingest"}` by default, or `"retrain"`),
//! queued to the worker. Requires `Authorization: Bearer <serve.api_token>`; without a configured
//! token the endpoint is off (404).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{optional_json, ApiError};
use super::state::AppState;
use super::worker::{Command, Job};

/// `{"job": "ingest" | "retrain"}`; an empty body means ingest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    #[serde(default)]
    pub job: Option<String>,
}

pub async fn trigger(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_token(&state, &headers)?;
    let req: TriggerRequest = optional_json(&body)?;
    let job = match req.job.as_deref() {
        None | Some("ingest") => Job::Ingest,
        Some("retrain") => Job::Retrain,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "job must be `ingest` or `retrain`, got `{other}`"
            )))
        }
    };
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
            job,
            trigger: "api".into(),
        })
        .map_err(|_| ApiError::unavailable("no_pipeline", "the pipeline worker has stopped"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": true, "job": job.name() })),
    ))
}

/// 404 when no token is configured (the endpoint is off), 401 on a missing or wrong one.
pub(super) fn require_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.settings.serve.api_token() else {
        return Err(ApiError::not_found(
            "disabled",
            "this endpoint is off: set serve.api_token (COINCAST__SERVE__API_TOKEN) to enable it",
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
    Ok(())
}

/// Compares without stopping at the first difference, so timing reveals nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
