//! `POST /api/pipeline/runs`: a manual run (`{"job": "ingest"}` by default, or `"retrain"`),
//! queued to the worker.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::runtime::Job;
use crate::serve::error::{optional_json, ApiError};
use crate::serve::state::AppState;

/// `{"job": "ingest" | "retrain"}`; an empty body means ingest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    #[serde(default)]
    pub job: Option<String>,
}

pub(super) async fn trigger(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: TriggerRequest = optional_json(&body)?;
    let job = match req.job.as_deref() {
        None => Job::Ingest,
        Some(name) => Job::from_name(name).ok_or_else(|| {
            ApiError::unprocessable(format!("job must be `ingest` or `retrain`, got `{name}`"))
        })?,
    };
    state.runtime.queue(job)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": true, "job": job.name() })),
    ))
}
