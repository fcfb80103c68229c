//! The dashboards: server-rendered HTML pages (askama templates in `templates/`, SVG charts from
//! `svg.rs`) for overview, market, quality, features, pipeline, models, monitoring and SQL, each
//! also served as JSON under `/api/...` for programs. Every asset is in the binary (no CDN).
//!
//! Pages read the database through connections of their own (`Runtime::read_page`: a few, each
//! read bounded), off the executor; the `/predict` hot path never waits for them, nor does a
//! promotion. The features profile (seconds of work) is cached (`features.rs`).

pub(super) mod audit;
pub(super) mod features;
mod market;
mod models;
pub(super) mod monitoring;
mod overview;
mod pipeline;
mod quality;
mod sql;
mod svg;

use std::sync::Arc;

use askama::Template;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use duckdb::Connection;

use super::error::ApiError;
use super::state::AppState;

/// The page routes and their JSON twins.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(overview::html))
        .route("/api/overview", get(overview::json))
        .route("/market", get(market::html))
        .route("/api/market", get(market::json))
        .route("/quality", get(quality::html))
        .route("/api/quality", get(quality::json))
        .route("/features", get(features::html))
        .route("/api/features", get(features::json))
        .route("/pipeline", get(pipeline::html))
        .route("/api/pipeline", get(pipeline::json))
        .route("/models", get(models::html))
        .route("/api/models", get(models::json))
        .route("/monitoring", get(monitoring::html))
        .route("/api/monitoring", get(monitoring::json))
}

/// The SQL page and API (behind the SQL guard).
pub fn sql_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sql", get(sql::html))
        .route("/sql/download", get(sql::download))
        .route("/api/sql", get(sql::json).post(sql::query))
}

/// The stylesheet and the script (open: they hold no data).
pub fn assets() -> Router<Arc<AppState>> {
    Router::new()
        .route("/static/style.css", get(style))
        .route("/static/app.js", get(script))
}

/// The navigation, in page order: (path, title).
pub const NAV: [(&str, &str); 8] = [
    ("/", "Overview"),
    ("/market", "Market"),
    ("/quality", "Quality"),
    ("/features", "Features"),
    ("/pipeline", "Pipeline"),
    ("/models", "Models"),
    ("/monitoring", "Monitoring"),
    ("/sql", "SQL"),
];

/// What every page's layout needs.
pub struct Layout {
    pub active: &'static str,
    pub generated: String,
}

impl Layout {
    pub fn new(active: &'static str) -> Self {
        Self {
            active,
            generated: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        }
    }

    pub fn nav(&self) -> Vec<(&'static str, &'static str, bool)> {
        NAV.iter()
            .map(|(p, t)| (*p, *t, *p == self.active))
            .collect()
    }
}

/// Renders a template, or a JSON error when the template fails.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => ApiError::internal(format!("rendering the page: {e}")).into_response(),
    }
}

/// Runs `f` on one of the pages' connections, off the executor, bounded by
/// `serve.page_timeout_secs`. Readers beyond the connections wait here, as tasks, rather than as
/// blocking threads parked on the pool (256 readers made 256 threads, each with its allocations).
pub async fn read<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Connection) -> Result<T, duckdb::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let _turn = state
        .page_readers
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the pages' readers are closed"))?;
    let state = state.clone();
    Ok(tokio::task::spawn_blocking(move || state.runtime.read_page(f)).await??)
}

/// Epoch seconds as `YYYY-MM-DD HH:MM` UTC.
pub fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A duration in words: `0.43 s`, `42 s`, `5 min`, `3.2 h`, `4 days`.
pub fn age(seconds: f64) -> String {
    match seconds {
        s if !s.is_finite() => "–".into(),
        s if s < 10.0 => format!("{s:.2} s"),
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.0} days", s / 86400.0),
    }
}

/// A share as a percentage.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x * 100.0)
    } else {
        "–".into()
    }
}

async fn style() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../../static/style.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../../static/app.js"),
    )
        .into_response()
}
