//! The token-guarded endpoints, nested under one auth layer (`auth::require_admin`): manual
//! pipeline runs, promotion and rollback, the online backup and the publication of the read-only
//! copy. Without `serve.api_token` they are off (404); a missing or wrong token is 401; on a
//! replica they are 409, naming the writer. The handlers themselves never check the token.

mod backup;
mod exports;
mod models;
mod runs;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

pub use backup::MANIFEST_HEADER;
pub use models::{ChampionResponse, PromoteRequest};
pub use runs::TriggerRequest;

use super::state::AppState;

/// The backup streams a whole database: no request deadline applies to it.
pub const STREAMING_ROUTE: &str = "/api/admin/backup";

pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/pipeline/runs", post(runs::trigger))
        .route("/api/models/{model_id}/promote", post(models::promote))
        .route("/api/models/rollback", post(models::rollback))
        .route(STREAMING_ROUTE, post(backup::backup))
        .route("/api/exports", post(exports::export))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::auth::require_admin,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            super::auth::on_the_writer,
        ))
}
