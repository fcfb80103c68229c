//! A global bound on requests in flight, with load shedding: past `serve.max_concurrent_requests`
//! a request is answered 503 at once instead of queueing without bound. (tower's
//! ConcurrencyLimitLayer on a Router has been seen not to bound anything; a semaphore checked per
//! request does, and is tested.)

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

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
