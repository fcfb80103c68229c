//! Promotion endpoints: `POST /api/models/{model_id}/promote` (`{"force": true}` for a model
//! that failed the gate) and `POST /api/models/rollback` (the same `force` for a previous
//! champion that failed the gate). They commit through the API's own
//! connection, so they never wait behind a pipeline run, and are published before they answer:
//! the new champion serves as soon as they return.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::model::registry::GateCheck;
use crate::runtime::{ChampionChange, Runtime, RuntimeError};
use crate::serve::error::{optional_json, ApiError, ApiPath};
use crate::serve::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Promote (or roll back to) a model that failed the gate.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChampionResponse {
    pub champion: String,
    pub previous: Option<String>,
}

impl From<ChampionChange> for ChampionResponse {
    fn from(c: ChampionChange) -> Self {
        Self {
            champion: c.champion,
            previous: c.previous,
        }
    }
}

pub(super) async fn promote(
    State(state): State<Arc<AppState>>,
    ApiPath(model_id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<ChampionResponse>, ApiError> {
    let req: PromoteRequest = optional_json(&body)?;
    let check = GateCheck::forced_if(req.force);
    change_champion(state, move |runtime| runtime.promote(&model_id, check)).await
}

pub(super) async fn rollback(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<ChampionResponse>, ApiError> {
    let req: PromoteRequest = optional_json(&body)?;
    let check = GateCheck::forced_if(req.force);
    change_champion(state, move |runtime| runtime.rollback(check)).await
}

/// Runs a change of champion off the executor (it commits and publishes before it returns).
async fn change_champion(
    state: Arc<AppState>,
    change: impl FnOnce(&Runtime) -> Result<ChampionChange, RuntimeError> + Send + 'static,
) -> Result<Json<ChampionResponse>, ApiError> {
    let changed = tokio::task::spawn_blocking(move || change(&state.runtime)).await??;
    tracing::info!(
        champion = %changed.champion,
        previous = ?changed.previous,
        "champion changed through the API"
    );
    Ok(Json(changed.into()))
}
