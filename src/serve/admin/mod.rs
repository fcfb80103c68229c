//! The token-guarded endpoints, nested under one auth layer (`auth::require_admin`): manual
//! pipeline runs, promotion and rollback, the online backup, the publication of the read-only
//! copy and the audit trail's page. While no admin token exists (`serve.api_token`,
//! `serve.tokens_file`) they are off (404); a missing or wrong token is 401, one of a lower scope
//! 403; on a replica they are 409, naming the writer. Every request to them is recorded in the
//! audit trail (`serve::audit`). The handlers themselves never check the token.

mod backup;
mod exports;
mod models;
mod runs;

use std::sync::Arc;

use axum::routing::{get, post};
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
        .route("/api/audit", get(super::pages::audit::json))
        .route("/audit", get(super::pages::audit::html))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::auth::require_admin,
        ))
        // Around the guard, so refused attempts are recorded too.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::audit::record_admin,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            super::auth::on_the_writer,
        ))
}
