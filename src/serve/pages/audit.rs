//! `/audit` (admin scope): who did what, from the audit trail (`audit_log`): each token name's
//! count of actions and statements, and the newest events, optionally of one name (`?who=`).
//! A replica has no trail of its own (its events go to its log): the page says so.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{read, render, Layout};
use crate::serve::error::{ApiError, ApiQuery};
use crate::serve::state::AppState;

/// The newest events the page lists.
const EVENTS: i64 = 500;

#[derive(Debug, Serialize)]
pub struct AuditRow {
    pub at: String,
    pub instance: String,
    pub token: String,
    pub channel: String,
    pub action: String,
    pub statement: String,
    pub outcome: String,
    pub duration_ms: f64,
    pub client: String,
}

#[derive(Debug, Serialize)]
pub struct TokenSummary {
    pub token: String,
    pub events: i64,
    pub statements: i64,
    pub refused_or_failed: i64,
    pub last_at: String,
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    /// The name the events are filtered to, if any.
    pub who: Option<String>,
    pub tokens: Vec<TokenSummary>,
    pub events: Vec<AuditRow>,
    /// Why the trail is not here (a replica), if it is not.
    pub elsewhere: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    pub who: Option<String>,
}

pub async fn load(state: &Arc<AppState>, who: Option<String>) -> Result<AuditPage, ApiError> {
    if state.runtime.role() == crate::runtime::Role::Replica {
        return Ok(AuditPage {
            who,
            tokens: Vec::new(),
            events: Vec::new(),
            elsewhere: Some(
                "this server is a replica: its audit events go to its log (target coincast::audit); the writer's trail is on the writer's /audit".into(),
            ),
        });
    }
    let filter = who.clone().filter(|w| !w.trim().is_empty());
    let (tokens, events) = read(state, move |conn| {
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/audit_summary.sql"))?;
        let tokens = stmt
            .query_map([], |r| {
                Ok(TokenSummary {
                    token: r.get(0)?,
                    events: r.get(1)?,
                    statements: r.get(2)?,
                    refused_or_failed: r.get(3)?,
                    last_at: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/audit_recent.sql"))?;
        let events = stmt
            .query_map(duckdb::params![filter, EVENTS], |r| {
                Ok(AuditRow {
                    at: r.get(0)?,
                    instance: r.get(1)?,
                    token: r.get(2)?,
                    channel: r.get(3)?,
                    action: r.get(4)?,
                    statement: r.get(5)?,
                    outcome: r.get(6)?,
                    duration_ms: r.get(7)?,
                    client: r.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((tokens, events))
    })
    .await?;
    Ok(AuditPage {
        who,
        tokens,
        events,
        elsewhere: None,
    })
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditHtml {
    layout: Layout,
    page: AuditPage,
}

pub async fn html(
    State(state): State<Arc<AppState>>,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> Result<Response, ApiError> {
    let page = load(&state, filter.who).await?;
    Ok(render(&AuditHtml {
        layout: Layout::new("/audit"),
        page,
    }))
}

pub async fn json(
    State(state): State<Arc<AppState>>,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(load(&state, filter.who).await?))
}
