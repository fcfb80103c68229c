//! Promotion endpoints: `POST /api/models/{model_id}/promote` (`{"force": true}` for a model
//! that failed the gate) and `POST /api/models/rollback`. Both need the bearer token, like
//! manual runs. They write through the API's own connection, so they never wait behind a
//! pipeline run, and the new champion serves as soon as they answer (snapshot reload).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{optional_json, ApiError};
use super::pipeline_api::require_token;
use super::state::{AppState, Snapshot};
use crate::model::lstm::resolve_device;
use crate::model::served::ServedModel;
use crate::model::{registry, ModelError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Promote a model that failed the gate.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChampionResponse {
    pub champion: String,
    pub previous: Option<String>,
}

pub async fn promote(
    State(state): State<Arc<AppState>>,
    UrlPath(model_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ChampionResponse>, ApiError> {
    require_token(&state, &headers)?;
    let req: PromoteRequest = optional_json(&body)?;
    let data_dir = state.settings.data_dir.clone();
    with_db(state, move |conn| {
        let previous = registry::champion(conn)?.map(|c| c.model_id);
        // Refuse a model that could not serve, before it replaces one that can.
        let row = registry::get(conn, &model_id)?;
        ServedModel::load(&row.artifact_dir(&data_dir), resolve_device("auto")?)?;
        registry::promote(conn, &model_id, req.force)?;
        Ok(ChampionResponse {
            champion: model_id,
            previous,
        })
    })
    .await
}

pub async fn rollback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<ChampionResponse>, ApiError> {
    require_token(&state, &headers)?;
    with_db(state, |conn| {
        let previous = registry::champion(conn)?.map(|c| c.model_id);
        let champion = registry::rollback(conn)?;
        Ok(ChampionResponse { champion, previous })
    })
    .await
}

/// Runs a registry change on the API's connection off the executor, then reloads the snapshot.
async fn with_db(
    state: Arc<AppState>,
    f: impl FnOnce(&duckdb::Connection) -> Result<ChampionResponse, ModelError> + Send + 'static,
) -> Result<Json<ChampionResponse>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let Some(db) = &state.db else {
            return Err(ApiError::unavailable(
                "no_database",
                "this server has no database connection for promotions",
            ));
        };
        let conn = db
            .lock()
            .map_err(|_| ApiError::internal("the database lock is poisoned"))?;
        let response = f(&conn).map_err(registry_error)?;
        state.replace(Snapshot::load(&conn, &state.settings));
        tracing::info!(
            champion = %response.champion,
            previous = ?response.previous,
            "champion changed through the API"
        );
        Ok(Json(response))
    })
    .await
    .map_err(|e| ApiError::internal(format!("promotion task failed: {e}")))?
}

fn registry_error(e: ModelError) -> ApiError {
    match e {
        ModelError::UnknownModel(_) => ApiError::not_found("unknown_model", e.to_string()),
        ModelError::Gate(_) => ApiError::new(StatusCode::CONFLICT, "gate_refused", e.to_string()),
        ModelError::Artifact { .. } | ModelError::Device(_) => {
            ApiError::new(StatusCode::CONFLICT, "artifact_unusable", e.to_string())
        }
        ModelError::Sql(_) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the registry changed meanwhile, try again: {e}"),
        ),
        other => ApiError::internal(other.to_string()),
    }
}
