//! `POST /api/exports`: publishes the read-only copy now (database and Parquet), on the API's own
//! connection, and points the SQL sandbox at it. The answer says what was written.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use crate::serve::error::ApiError;
use crate::serve::state::AppState;
use crate::store::Publication;

pub(super) async fn export(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Publication>, ApiError> {
    let runtime = state.runtime.clone();
    let publication = tokio::task::spawn_blocking(move || {
        let conn = runtime.connect()?;
        runtime.publish_copy(&conn)
    })
    .await??;
    tracing::info!(version = %publication.version, seconds = publication.seconds, "published on request");
    Ok(Json(publication))
}
