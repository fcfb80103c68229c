//! `/sql`: the tables of the database with their sizes. The read-only query box is not served:
//! its sandboxing (read-only, time and memory limits, no file access) is its own piece of work,
//! and until then the page says how to query the file instead.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Serialize;

use super::{read, render, Layout};
use crate::serve::error::ApiError;
use crate::serve::state::AppState;

#[derive(Debug, Serialize)]
pub struct TableRow {
    pub table: String,
    pub rows: i64,
    pub columns: i64,
}

#[derive(Debug, Serialize)]
pub struct SqlPage {
    pub query_box: bool,
    pub database: String,
    pub tables: Vec<TableRow>,
}

pub async fn load(state: &Arc<AppState>) -> Result<SqlPage, ApiError> {
    let tables = read(state, |conn| {
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_tables.sql"))?;
        let rows = stmt.query_map([], |r| {
            Ok(TableRow {
                table: r.get(0)?,
                rows: r.get(1)?,
                columns: r.get(2)?,
            })
        })?;
        rows.collect()
    })
    .await?;
    Ok(SqlPage {
        query_box: false,
        database: state.runtime.settings.database_path().display().to_string(),
        tables,
    })
}

#[derive(Template)]
#[template(path = "sql.html")]
struct SqlHtml {
    layout: Layout,
    page: SqlPage,
}

pub async fn html(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let page = load(&state).await?;
    Ok(render(&SqlHtml {
        layout: Layout::new("/sql"),
        page,
    }))
}

pub async fn json(State(state): State<Arc<AppState>>) -> Result<Json<SqlPage>, ApiError> {
    Ok(Json(load(&state).await?))
}
