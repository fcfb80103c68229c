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

use crate::model::lstm::resolve_device;
use crate::model::registry::{self, GateCheck};
use crate::model::served::ServedModel;
use crate::model::ModelError;
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

pub(super) async fn promote(
    State(state): State<Arc<AppState>>,
    ApiPath(model_id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<ChampionResponse>, ApiError> {
    let req: PromoteRequest = optional_json(&body)?;
    let data_dir = state.runtime.settings().data_dir.clone();
    change_champion(state, move |conn| {
        let previous = registry::champion(conn)?.map(|c| c.model_id);
        // Refuse a model that could not serve, before it replaces one that can.
        let row = registry::get_servable(conn, &model_id)?;
        ServedModel::load(&row.artifact_dir(&data_dir), resolve_device("auto")?)?;
        registry::promote(conn, &model_id, GateCheck::forced_if(req.force))?;
        Ok(ChampionResponse {
            champion: model_id,
            previous,
        })
    })
    .await
}

pub(super) async fn rollback(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<ChampionResponse>, ApiError> {
    let req: PromoteRequest = optional_json(&body)?;
    change_champion(state, move |conn| {
        let previous = registry::champion(conn)?.map(|c| c.model_id);
        let champion = registry::rollback(conn, GateCheck::forced_if(req.force))?;
        Ok(ChampionResponse { champion, previous })
    })
    .await
}

/// Commits a registry change off the executor and publishes it.
async fn change_champion(
    state: Arc<AppState>,
    f: impl FnOnce(&duckdb::Connection) -> Result<ChampionResponse, ModelError> + Send + 'static,
) -> Result<Json<ChampionResponse>, ApiError> {
    let response = tokio::task::spawn_blocking(move || state.runtime.change_registry(f)).await??;
    tracing::info!(
        champion = %response.champion,
        previous = ?response.previous,
        "champion changed through the API"
    );
    Ok(Json(response))
}
