//! The bounds every request meets, each answered in the JSON envelope:
//! - load shedding: past `serve.max_concurrent_requests` a request is answered 503 at once
//!   instead of queueing without bound (tower's ConcurrencyLimitLayer on a Router has been seen
//!   not to bound anything; a semaphore checked per request does, and is tested);
//! - a deadline per route (`serve.request_timeout_secs`): 408;
//! - a panic in a handler: 500, and the server goes on.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// How long a route may take, and the routes that may take longer (a streamed download).
#[derive(Clone, Copy)]
pub struct Deadline {
    pub after: Duration,
    pub except: &'static [&'static str],
}

/// A route layer: 408 once the deadline passes (the handler's future is dropped).
pub async fn deadline(State(d): State<Deadline>, req: Request, next: Next) -> Response {
    let exempt = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| d.except.contains(&p.as_str()));
    if exempt {
        return next.run(req).await;
    }
    match tokio::time::timeout(d.after, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request took longer than serve.request_timeout_secs = {} s",
                d.after.as_secs()
            ),
        )
        .into_response(),
    }
}

/// A handler panicked: a JSON 500; the panic's message goes to the log only.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(format!("a handler panicked: {detail}")).into_response()
}

pub async fn shed(State(permits): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    match permits.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::unavailable(
            "overloaded",
            "too many requests in flight (serve.max_concurrent_requests); retry shortly",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tokio::sync::Notify;

    #[tokio::test]
    async fn requests_past_the_limit_are_shed_with_503() {
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let (r, e) = (release.clone(), entered.clone());
        let app = Router::new()
            .route(
                "/slow",
                get(move || {
                    let (r, e) = (r.clone(), e.clone());
                    async move {
                        e.notify_one();
                        r.notified().await;
                        "done"
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(Semaphore::new(1)),
                shed,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/slow", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let first = tokio::spawn(reqwest::get(url.clone()));
        entered.notified().await;
        let second = reqwest::get(&url).await.expect("second");
        assert_eq!(second.status(), 503);
        let body = second.text().await.expect("body");
        assert!(body.contains("\"overloaded\""), "{body}");
        release.notify_one();
        let first = first.await.expect("join").expect("first");
        assert_eq!(first.status(), 200);
    }
}
