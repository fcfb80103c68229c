//! The guards, one per scope (`crate::access`): admin (the admin routes; off while no token
//! guards them), read (`/predict`, the pages and `/api/*`; open while none does) and sql
//! (`/api/sql`, `/sql`; loopback only while none does). A token of a higher scope opens the lower
//! ones. Tokens come as `Authorization: Bearer <token>` or as the password of HTTP Basic (so a
//! browser asks), never in the URL (`refuse_token_in_url`). Each token name has its request rate
//! (429 with Retry-After), and the identity goes on to the handlers and the audit layer.

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::ApiError;
use super::state::AppState;
use crate::access::{Identity, Refusal, Scope};

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

/// Admin routes: a token of the admin scope. Off (404) while no token guards them
/// (`serve.api_token` or `serve.tokens_file`); a missing or wrong token is 401, a token of a
/// lower scope 403.
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    guard(&state, Scope::Admin, req, next).await
}

/// Reading: open while no token guards it; else a token of the read scope or above (401, and a
/// Basic challenge, without one).
pub async fn require_reader(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    guard(&state, Scope::Read, req, next).await
}

/// SQL: a token of the sql scope or above; while no token guards SQL, it is served on a
/// loopback bind only (403 elsewhere): a query may hold a core and the sandbox's memory.
pub async fn require_sql(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    guard(&state, Scope::Sql, req, next).await
}

/// Who asked, for the audit layer, which runs around the guard: the guard fills it once it knows.
#[derive(Clone, Default)]
pub struct Who(Arc<OnceLock<Identity>>);

impl Who {
    /// The token's name, or `unidentified` when the request gave none that is known.
    pub fn name(&self) -> String {
        self.0
            .get()
            .map_or_else(|| "unidentified".to_string(), |i| i.name.clone())
    }
}

/// Checks the request's token against `scope`, applies the token's rate, and hands the identity
/// on (as an extension, and to the audit layer's `Who`).
async fn guard(state: &AppState, scope: Scope, req: Request, next: Next) -> Response {
    let runtime = &state.runtime;
    let tokens = runtime.access().tokens();
    if !tokens.guards(scope) {
        return match scope {
            Scope::Admin => ApiError::not_found(
                "disabled",
                "this endpoint is off: set serve.api_token or serve.tokens_file to enable it",
            )
            .into_response(),
            Scope::Sql if !runtime.settings().serve.binds_loopback_only() => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "SQL on a non-loopback bind needs a token: serve.sql_token, serve.read_token or serve.tokens_file",
            )
            .into_response(),
            Scope::Read | Scope::Sql => {
                let anonymous = Identity {
                    name: "anonymous".into(),
                    scope,
                    requests_per_minute: None,
                };
                note(&req, &anonymous);
                pass(req, next, anonymous).await
            }
        };
    }
    let Some(presented) = presented_token(&req) else {
        return refuse(scope, "no token was given");
    };
    let who = match tokens.identify(&presented, chrono::Utc::now()) {
        Ok(who) => who,
        Err(Refusal::Unknown) => return refuse(scope, "the token is not known"),
        Err(Refusal::Expired) => return refuse(scope, "the token has expired"),
    };
    // Noted before the scope check, so a refused attempt is audited under its name too.
    note(&req, &who);
    if who.scope < scope {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the token `{}` has the {} scope; this needs {}",
                who.name,
                who.scope.name(),
                scope.name()
            ),
        )
        .into_response();
    }
    if let Err(wait) = runtime.access().admit(&who) {
        runtime
            .metrics()
            .coincast_token_requests_limited_total
            .with_label_values(&[&who.name])
            .inc();
        return over_rate(&who, wait);
    }
    pass(req, next, who).await
}

/// Tells the audit layer who asked (once: a second note changes nothing).
fn note(req: &Request, who: &Identity) {
    if let Some(slot) = req.extensions().get::<Who>() {
        let _ = slot.0.set(who.clone());
    }
}

/// Hands the identity to the handlers (those that audit, as SQL does, read it).
async fn pass(mut req: Request, next: Next, who: Identity) -> Response {
    req.extensions_mut().insert(who);
    next.run(req).await
}

/// 429 with Retry-After in whole seconds.
fn over_rate(who: &Identity, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + 1;
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "the token `{}` is over its rate of {} requests a minute: retry in {secs} s",
            who.name,
            who.requests_per_minute.unwrap_or_default()
        ),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// 401: for reading and SQL with a Basic challenge, so that a browser asks for the token.
fn refuse(scope: Scope, why: &str) -> Response {
    match scope {
        Scope::Admin => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "{why}: the admin routes need `Authorization: Bearer <token>` of the admin scope"
            ),
        )
        .into_response(),
        Scope::Read | Scope::Sql => challenge(&format!(
            "{why}: {} needs a token of the {} scope or above",
            if scope == Scope::Sql {
                "SQL"
            } else {
                "reading"
            },
            scope.name()
        )),
    }
}

/// 400 for a request that carries a token in its URL: URLs end up in proxies' and servers' logs.
pub async fn refuse_token_in_url(req: Request, next: Next) -> Response {
    const NAMES: [&str; 7] = [
        "token",
        "access_token",
        "api_token",
        "api_key",
        "apikey",
        "auth",
        "password",
    ];
    let in_url = req.uri().query().is_some_and(|query| {
        query.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
        })
    });
    if in_url {
        return ApiError::bad_request(
            "a token in the URL is refused (URLs are logged by proxies and servers): send it as `Authorization: Bearer <token>`",
        )
        .into_response();
    }
    next.run(req).await
}

/// The token a request gives, as a Bearer token or an HTTP Basic password. A header that is not
/// visible ASCII, not base64 or not UTF-8 gives none (401, never 500).
fn presented_token(req: &Request) -> Option<String> {
    bearer(req)
        .map(|t| t.trim().to_string())
        .or_else(|| basic_password(req))
        .filter(|t| !t.is_empty())
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
