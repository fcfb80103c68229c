//! The HTTP side of the audit trail (`crate::access::AuditLog`): every request to an admin route
//! is recorded with who asked (the guard tells `auth::Who`), the route, its status and its
//! duration, refused ones included. SQL statements are recorded where they run
//! (`pages::sql`), with their text.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::auth::Who;
use super::state::AppState;
use crate::access::{AuditEvent, Channel};

/// A route layer around the admin guard.
pub async fn record_admin(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let who = Who::default();
    req.extensions_mut().insert(who.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let action = format!("{} {route}", req.method());
    let path = req.uri().path().to_string();
    let client = client_of(&req);
    let started = Instant::now();
    let response = next.run(req).await;
    state.runtime.audit(AuditEvent {
        at: chrono::Utc::now(),
        token: who.name(),
        channel: Channel::Http,
        action,
        statement: Some(AuditEvent::truncated(&path)),
        outcome: response.status().as_u16().to_string(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        client,
    });
    response
}

/// The client as a proxy in front names it (`x-forwarded-for`, first address), if one does.
pub fn client_of(req: &Request) -> Option<String> {
    req.headers()
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .split(',')
        .next()
        .map(|a| a.trim().chars().take(64).collect())
}
