//! Every request body is read to its end before the request is routed.
//!
//! Why: hyper closes a connection whose request body was left unread, and closing a socket with
//! unread bytes in it sends a TCP reset, which can destroy a response still on its way to the
//! client. A `GET /features` carrying a 300 KB body was seen cut mid-body that way (the page never
//! reads a body). So a body within `serve.max_body_bytes` is buffered and handed on whole; a
//! larger one is read on and thrown away up to `DRAIN_CAP`, so that its 413 (answered once the
//! route is known, by `refuse_oversized`, and so counted under it) reaches the client whole.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{HeaderValue, CONNECTION};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::error::ApiError;

/// How much of an oversized body is read and discarded before the connection is given up.
const DRAIN_CAP: usize = 8 << 20;

/// The bounds of reading a body: its size, and the time it may take (the request deadline).
#[derive(Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub within: Duration,
}

/// Marks a request whose body was over `max_bytes` (its body is then empty).
#[derive(Clone, Copy)]
struct Oversized {
    max_bytes: usize,
}

enum Collected {
    Whole(Vec<u8>),
    Oversized,
}

/// The outer layer: reads the body whole (or drains an oversized one), then routes.
pub async fn read_whole(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    if req.body().size_hint().exact() == Some(0) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    match tokio::time::timeout(limits.within, collect(body, limits.max_bytes)).await {
        Ok(Ok(Collected::Whole(bytes))) => next.run(Request::from_parts(parts, bytes.into())).await,
        Ok(Ok(Collected::Oversized)) => {
            parts.extensions.insert(Oversized {
                max_bytes: limits.max_bytes,
            });
            let response = next.run(Request::from_parts(parts, Body::empty())).await;
            closing(response)
        }
        Ok(Err(e)) => closing(
            ApiError::bad_request(format!("the request body could not be read: {e}"))
                .into_response(),
        ),
        Err(_) => closing(
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the request body took longer than serve.request_timeout_secs = {} s",
                    limits.within.as_secs()
                ),
            )
            .into_response(),
        ),
    }
}

/// A route layer: the 413 of an oversized body, under the route it was sent to.
pub async fn refuse_oversized(req: Request, next: Next) -> Response {
    match req.extensions().get::<Oversized>() {
        Some(o) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is larger than serve.max_body_bytes = {} bytes",
                o.max_bytes
            ),
        )
        .into_response(),
        None => next.run(req).await,
    }
}

/// Reads up to `max_bytes`; past that, reads and discards up to `DRAIN_CAP`.
async fn collect(body: Body, max_bytes: usize) -> Result<Collected, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total += chunk.len();
        if total <= max_bytes {
            kept.extend_from_slice(&chunk);
        } else if total > DRAIN_CAP {
            break;
        }
    }
    Ok(if total <= max_bytes {
        Collected::Whole(kept)
    } else {
        Collected::Oversized
    })
}

/// The connection is not reused after a body that was not (or not wholly) read.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
