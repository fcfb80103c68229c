//! `/sql`: the query box over the published read-only copy (`crate::query`'s sandbox), with
//! example queries, the result as a table and a CSV download (`/sql/download`), and the tables
//! with their sizes; `POST /api/sql` for programs (`?format=csv` for CSV). All of it behind the
//! SQL guard (`auth::require_sql`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{read, render, Layout};
use crate::access::{AuditEvent, Channel, Identity};
use crate::query::QueryResult;
use crate::serve::error::{ApiError, ApiJson, ApiQuery};
use crate::serve::state::AppState;

/// Rows the page's query box shows unless the form names another limit; a program's request
/// without a limit (`POST /api/sql`, `/sql/download`) gets up to `serve.sql_max_rows`.
const PAGE_ROWS: usize = 1_000;

/// Headers on every SQL answer (JSON and CSV), so an incomplete export is never silent.
const TRUNCATED_HEADER: &str = "x-coincast-truncated";
const ROW_COUNT_HEADER: &str = "x-coincast-row-count";
const ROW_LIMIT_HEADER: &str = "x-coincast-row-limit";

/// The example queries the page offers: (title, SQL).
const EXAMPLES: [(&str, &str); 3] = [
    (
        "The last 24 hours of bitcoin",
        "SELECT ts, price, market_cap, total_volume\nFROM market_data\nWHERE coin_id = 'bitcoin'\nORDER BY ts DESC\nLIMIT 24",
    ),
    (
        "Quality failures per rule",
        "SELECT rule, severity, count(*) AS failed_batches, sum(violations) AS violations\nFROM quality_results\nWHERE NOT passed\nGROUP BY ALL\nORDER BY failed_batches DESC",
    ),
    (
        "Live accuracy of the champion",
        "SELECT p.coin_id, p.horizon, count(*) AS scored,\n       avg(p.abs_pct_error) AS mape,\n       avg(CAST(p.covered AS DOUBLE)) AS coverage\nFROM predictions p\nJOIN model_versions m ON m.model_id = p.model_id AND m.alias = 'champion'\nWHERE p.actual_price IS NOT NULL\nGROUP BY ALL\nORDER BY ALL",
    ),
];

#[derive(Debug, Serialize)]
pub struct TableRow {
    pub table: String,
    pub rows: i64,
    pub columns: i64,
}

#[derive(Debug, Serialize)]
pub struct Example {
    pub title: &'static str,
    pub sql: &'static str,
    /// The page running it.
    pub href: String,
}

/// What a replica's queries read instead of a published copy.
#[derive(Debug, Serialize)]
pub struct LakeSource {
    /// The catalog, named without a password.
    pub catalog: String,
    /// The tables that keep the live file's names (`sql/query/lake_views.sql`).
    pub views: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct SqlPage {
    /// The publication queries read, if any.
    pub published: Option<String>,
    /// Set when queries read the lake (a replica with a shared catalog).
    pub lake: Option<LakeSource>,
    pub published_database: String,
    pub published_parquet: String,
    pub tables: Vec<TableRow>,
    pub examples: Vec<Example>,
    pub max_rows: usize,
    /// Rows the query box shows unless the form names another limit.
    pub page_rows: usize,
    pub timeout_secs: u64,
}

/// `GET /sql?q=...&limit=N`: the page, with the result of `q` when given.
#[derive(Debug, Default, Deserialize)]
pub struct SqlForm {
    pub q: Option<String>,
    pub limit: Option<usize>,
}

/// `POST /api/sql`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    pub sql: String,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SqlFormat {
    pub format: Option<String>,
}

pub async fn load(state: &Arc<AppState>) -> Result<SqlPage, ApiError> {
    let settings = &state.runtime.settings();
    let (lake, tables) = if state.runtime.queries().reads_lake() {
        let source = LakeSource {
            catalog: crate::lake::Location::of(settings).catalog_name(),
            views: crate::query::LAKE_TABLES.to_vec(),
        };
        (Some(source), lake_tables(state).await?)
    } else {
        (None, file_tables(state).await?)
    };
    let published = settings.data_dir.join(crate::store::PUBLISHED_DIR);
    Ok(SqlPage {
        published: state.runtime.queries().published_version(),
        lake,
        published_database: crate::store::published_database(&settings.data_dir)
            .display()
            .to_string(),
        published_parquet: published.join("parquet").display().to_string(),
        tables,
        examples: EXAMPLES
            .iter()
            .map(|(title, sql)| Example {
                title,
                sql,
                href: format!("/sql?q={}", urlencode(sql)),
            })
            .collect(),
        max_rows: settings.serve.sql_max_rows,
        page_rows: PAGE_ROWS.min(settings.serve.sql_max_rows),
        timeout_secs: settings.serve.sql_timeout_secs,
    })
}

/// The tables of the file the pages read, with their estimated rows.
async fn file_tables(state: &Arc<AppState>) -> Result<Vec<TableRow>, ApiError> {
    read(state, |conn| {
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
    .await
}

/// The lake's tables, read in the SQL sandbox that queries run in.
async fn lake_tables(state: &Arc<AppState>) -> Result<Vec<TableRow>, ApiError> {
    let sql = include_str!("../../../sql/reports/lake_tables.sql").to_string();
    let result = run_unrecorded(state, sql, PAGE_ROWS).await?;
    Ok(result
        .rows
        .iter()
        .map(|row| TableRow {
            table: row
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            rows: row.get(1).and_then(Value::as_i64).unwrap_or_default(),
            columns: row.get(2).and_then(Value::as_i64).unwrap_or_default(),
        })
        .collect())
}

/// Runs `sql` in the sandbox for `who`, off the executor: at most `limit` rows (capped at
/// `serve.sql_max_rows`), or `default_rows` when the request names no limit. Recorded in the
/// audit trail with its outcome.
async fn run(
    state: &Arc<AppState>,
    who: &Identity,
    sql: String,
    limit: Option<usize>,
    default_rows: usize,
) -> Result<QueryResult, ApiError> {
    let max = state.runtime.settings().serve.sql_max_rows;
    let limit = match limit {
        Some(0) => return Err(ApiError::unprocessable("limit must be at least 1")),
        Some(n) => n.min(max),
        None => default_rows.min(max),
    };
    let statement = AuditEvent::truncated(&sql);
    let started = std::time::Instant::now();
    let result = run_unrecorded(state, sql, limit).await;
    state.runtime.audit(AuditEvent {
        at: chrono::Utc::now(),
        token: who.name.clone(),
        channel: Channel::Http,
        action: "sql".into(),
        statement: Some(statement),
        outcome: match &result {
            Ok(_) => "ok".into(),
            Err(e) => e.code.to_string(),
        },
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        client: None,
    });
    result
}

/// Runs `sql` in the sandbox, off the executor, with at most `limit` rows (the page's own reads).
async fn run_unrecorded(
    state: &Arc<AppState>,
    sql: String,
    limit: usize,
) -> Result<QueryResult, ApiError> {
    let runtime = state.runtime.clone();
    Ok(tokio::task::spawn_blocking(move || runtime.queries().run(&sql, limit)).await??)
}

#[derive(Template)]
#[template(path = "sql.html")]
struct SqlHtml {
    layout: Layout,
    page: SqlPage,
    query: String,
    result: Option<QueryResult>,
    error: Option<String>,
    download: String,
}

impl SqlHtml {
    fn cell(&self, v: &Value) -> String {
        match v {
            Value::Null => "NULL".into(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

pub async fn html(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiQuery(form): ApiQuery<SqlForm>,
) -> Result<Response, ApiError> {
    let page = load(&state).await?;
    let query = form.q.unwrap_or_default();
    let (result, error) = if query.trim().is_empty() {
        (None, None)
    } else {
        match run(&state, &who, query.clone(), form.limit, PAGE_ROWS).await {
            Ok(r) => (Some(r), None),
            // Shown on the page, beside the query to fix.
            Err(e) => (None, Some(format!("{} ({})", e.message, e.code))),
        }
    };
    // The download gives the rows the page shows: the same limit.
    let limit = result.as_ref().map_or(page.page_rows, |r| r.limit);
    let download = format!("/sql/download?q={}&limit={limit}", urlencode(&query));
    Ok(render(&SqlHtml {
        layout: Layout::new("/sql"),
        page,
        query,
        result,
        error,
        download,
    }))
}

pub async fn json(State(state): State<Arc<AppState>>) -> Result<Json<SqlPage>, ApiError> {
    Ok(Json(load(&state).await?))
}

/// `POST /api/sql`: `{"sql", "limit"}` → columns, rows, `truncated`, `elapsed_ms` (or CSV).
pub async fn query(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiQuery(format): ApiQuery<SqlFormat>,
    ApiJson(req): ApiJson<SqlRequest>,
) -> Result<Response, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "format must be `json` or `csv`, got `{other}`"
            )))
        }
    };
    let max = state.runtime.settings().serve.sql_max_rows;
    let result = run(&state, &who, req.sql, req.limit, max).await?;
    let headers = completeness_headers(&result);
    Ok(if csv {
        csv_response(&result, max)
    } else {
        (headers, Json(result)).into_response()
    })
}

/// `GET /sql/download?q=...`: the result as a CSV file.
pub async fn download(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiQuery(form): ApiQuery<SqlForm>,
) -> Result<Response, ApiError> {
    let sql = form
        .q
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("give the query as ?q="))?;
    let max = state.runtime.settings().serve.sql_max_rows;
    Ok(csv_response(
        &run(&state, &who, sql, form.limit, max).await?,
        max,
    ))
}

/// Whether the answer is the whole result, and its row count and limit.
fn completeness_headers(result: &QueryResult) -> [(&'static str, String); 3] {
    [
        (TRUNCATED_HEADER, result.truncated.to_string()),
        (ROW_COUNT_HEADER, result.rows.len().to_string()),
        (ROW_LIMIT_HEADER, result.limit.to_string()),
    ]
}

/// The result as CSV; a truncated one ends with a `#` line that says so (a CSV reader without a
/// comment character sees a malformed last row, never a silently short file).
fn csv_response(result: &QueryResult, max_rows: usize) -> Response {
    let mut out = String::new();
    let header: Vec<String> = result.columns.iter().map(|c| csv_field(&c.name)).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for row in &result.rows {
        let fields: Vec<String> = row
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                Value::String(s) => csv_field(s),
                other => csv_field(&other.to_string()),
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    if result.truncated {
        out.push_str(&format!(
            "# truncated: the first {} rows of a longer result (limit {}; at most serve.sql_max_rows = {max_rows}); narrow the query or raise the limit\n",
            result.rows.len(),
            result.limit
        ));
    }
    (
        completeness_headers(result),
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"coincast-query.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
