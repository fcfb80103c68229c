//! The three guards: the admin token (`serve.api_token`, for the admin routes; off without it),
//! the readers' token (`serve.read_token`, for `/predict`, the pages and `/api/*`; open without
//! it) and the SQL token (`serve.sql_token`, else the readers'; loopback only without either).
//! All accept `Authorization: Bearer <token>`; the readers' and the SQL one also HTTP Basic with
//! the token as the password, so that a browser asks for it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::ApiError;
use super::state::AppState;

/// On a replica, 409 for what only the writer does (admin writes; SQL unless the lake is shared),
/// naming the writer: a replica never performs them, whatever the token, and the writer's URL
/// is no secret.
pub async fn on_the_writer(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let elsewhere = if req.uri().path().contains("sql") {
        state.runtime.sql_elsewhere()
    } else {
        state.runtime.writer_only("admin requests")
    };
    match elsewhere {
        Some(message) => ApiError::new(StatusCode::CONFLICT, "replica", message).into_response(),
        None => next.run(req).await,
    }
}

/// 404 when no admin token is configured (the routes are off), 401 on a missing or wrong one.
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.runtime.settings().serve.api_token() else {
        return ApiError::not_found(
            "disabled",
            "this endpoint is off: set serve.api_token (COINCAST__SERVE__API_TOKEN) to enable it",
        )
        .into_response();
    };
    if bearer(&req).is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes())) {
        return next.run(req).await;
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong bearer token",
    )
    .into_response()
}

/// Open without a readers' token; with one, 401 (and a Basic challenge) unless it is given.
pub async fn require_reader(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    match state.runtime.settings().serve.read_token() {
        None => next.run(req).await,
        Some(expected) if gives(&req, expected) => next.run(req).await,
        Some(_) => challenge("reading needs serve.read_token"),
    }
}

/// SQL needs `serve.sql_token` (else the readers' token); with neither, it is served on a
/// loopback bind only (403 elsewhere): a query may hold a core and the sandbox's memory.
pub async fn require_sql(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let serve = &state.runtime.settings().serve;
    match serve.sql_token() {
        Some(expected) if gives(&req, expected) => next.run(req).await,
        Some(_) => challenge("SQL needs serve.sql_token (or serve.read_token)"),
        None if serve.binds_loopback_only() => next.run(req).await,
        None => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "SQL on a non-loopback bind needs serve.sql_token (or serve.read_token)",
        )
        .into_response(),
    }
}

/// Whether the request carries `expected` as a Bearer token or a Basic password.
fn gives(req: &Request, expected: &str) -> bool {
    let given = bearer(req)
        .map(str::to_string)
        .or_else(|| basic_password(req));
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()))
}

/// 401 with a Basic challenge, so that a browser asks for the token.
fn challenge(what: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        format!(
            "{what}: send `Authorization: Bearer <token>` (or HTTP Basic with the token as the password)"
        ),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="coincast", charset="UTF-8""#),
    );
    response
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The password of an HTTP Basic header (the user name is ignored).
fn basic_password(req: &Request) -> Option<String> {
    let encoded = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// Compares without stopping at the first difference, so timing reveals nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
