//! The HTTP layer (axum) over the appliance's runtime: `POST /predict`, `/predict/batch`,
//! `GET /health`, `/ready`, `/models/status`, `/metrics`, `/openapi.json`, the dashboards, and
//! the token-guarded admin endpoints. Only this module knows HTTP and the API's JSON shapes; one
//! concern per file. It reads the runtime (`crate::runtime`) and never the other way round.
//!
//! The layers, outermost first: metrics (every response counted, 408, 503 and panics included),
//! request ids and tracing, the body read whole (`body.rs`: an unread body would cut the
//! response), panics caught as a JSON 500; then, once the route is matched, its template noted for
//! the metrics, an oversized body's 413, load shedding (503), the request deadline (408; not on the
//! streaming backup) and the admin token.

pub mod admin;
mod audit;
mod auth;
mod batch;
mod body;
mod error;
mod health;
mod history;
mod limit;
mod metrics;
mod openapi;
mod pages;
mod predict;
pub mod state;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use error::ApiError;
use state::AppState;

/// The application: routes, metrics, limits.
pub fn router(state: Arc<AppState>) -> Router {
    with_layers(routes(state.clone()), state)
}

/// Every route: the open ones, the readers' (behind `serve.read_token` when set), the SQL ones
/// (behind `serve.sql_token`) and the admin ones (behind `serve.api_token`).
fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let open = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::openapi))
        .merge(pages::assets());
    let read = Router::new()
        .route("/models/status", get(health::models_status))
        .route("/predict", post(predict::predict))
        .route("/predict/batch", post(batch::predict_batch))
        .merge(pages::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_reader,
        ));
    let sql = pages::sql_routes()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_sql,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::on_the_writer,
        ));
    open.merge(read).merge(sql).merge(admin::routes(state))
}

/// The layers around `routes` (see the module comment for their order and why).
fn with_layers(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let serve = &state.runtime.settings().serve;
    // Route layers run after routing (so the shed and the deadline are counted under their
    // route); the last added runs first.
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            limit::Deadline {
                after: Duration::from_secs(serve.request_timeout_secs),
                except: &[admin::STREAMING_ROUTE],
            },
            limit::deadline,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(tokio::sync::Semaphore::new(serve.max_concurrent_requests)),
            limit::shed,
        ))
        .route_layer(axum::middleware::from_fn(body::refuse_oversized))
        .route_layer(axum::middleware::from_fn(auth::refuse_token_in_url))
        .route_layer(axum::middleware::from_fn(metrics::note_endpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(limit::panic_response))
        .layer(DefaultBodyLimit::max(serve.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            body::BodyLimits {
                max_bytes: serve.max_body_bytes,
                within: Duration::from_secs(serve.request_timeout_secs),
            },
            body::read_whole,
        ))
        // Every request gets an `x-request-id` (kept when the client sends one), echoed in the
        // response and carried by the request's log span.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                // A 5xx is not an error of the server by itself (a 503 no_data is an answer);
                // the failures that are (a 500, a caught panic) are logged where they happen.
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG))
                .make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn_with_state(
            state.runtime.metrics().clone(),
            metrics::track,
        ))
        .layer(axum::middleware::map_response_with_state(
            instance_header(&serve.instance_name()),
            name_the_instance,
        ))
        .with_state(state)
}

/// The response header that names the server that answered.
pub const INSTANCE_HEADER: &str = "x-coincast-instance";

/// `serve.instance` as a header value (validated by the settings; a host name is checked too).
fn instance_header(name: &str) -> HeaderValue {
    HeaderValue::from_str(name).unwrap_or(HeaderValue::from_static("localhost"))
}

/// Names this server on every response, the shed, timed-out and failed ones included: behind a
/// load balancer, a client (and a test) sees who answered.
async fn name_the_instance(State(name): State<HeaderValue>, mut response: Response) -> Response {
    response.headers_mut().insert(INSTANCE_HEADER, name);
    response
}

/// Unknown routes: a JSON 404 (counted by `track` under `endpoint="unmatched"`).
async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::not_found("not_found", format!("no route {method} {}", uri.path())).into_response()
}

/// A method a route does not answer: a JSON 405, counted under the route's template.
async fn method_not_allowed(method: Method, uri: Uri, req: axum::extract::Request) -> Response {
    metrics::record_endpoint(req.extensions());
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not answer {method}", uri.path()),
    )
    .into_response()
}

/// As `serve`, over TLS (`serve.tls_cert`, `serve.tls_key`).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    pages::monitoring::spawn_sampler(state.clone());
    pages::features::spawn_warmer(state.clone());
    tls::serve(listener, router(state), config, shutdown).await
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    pages::monitoring::spawn_sampler(state.clone());
    pages::features::spawn_warmer(state.clone());
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    //! The layer order: every response is counted by the outermost layer, whoever answers it.

    use super::*;
    use crate::config::Settings;
    use crate::runtime::{Metrics, Runtime, Snapshot};
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// The real layers around the real routes plus three test routes: one that sleeps past the
    /// deadline, one that panics and one that holds its permit until told.
    fn app(max_concurrent: usize, release: Arc<tokio::sync::Notify>) -> (Router, Arc<AppState>) {
        app_with(max_concurrent, release, Vec::new())
    }

    fn app_with(
        max_concurrent: usize,
        release: Arc<tokio::sync::Notify>,
        env: Vec<(String, String)>,
    ) -> (Router, Arc<AppState>) {
        let mut settings = Settings::load_with_env(None, env).expect("settings");
        settings.serve.request_timeout_secs = 1;
        settings.serve.max_concurrent_requests = max_concurrent;
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let runtime = Runtime::new(Snapshot::empty("test"), settings, metrics);
        let state = Arc::new(AppState::new(Arc::new(runtime)));
        let routes = routes(state.clone())
            .route(
                "/test/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/test/late",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    "z".repeat(300_000)
                }),
            )
            .route(
                "/test/panic",
                get(|| async {
                    if std::hint::black_box(true) {
                        panic!("boom");
                    }
                    "never"
                }),
            )
            .route(
                "/test/hold",
                get(move || {
                    let release = release.clone();
                    async move {
                        release.notified().await;
                        "released"
                    }
                }),
            );
        (with_layers(routes, state.clone()), state)
    }

    async fn call(app: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        call_with(
            app,
            Request::get(path).body(Body::empty()).expect("request"),
        )
        .await
    }

    async fn call_with(app: &Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn counted(state: &AppState, endpoint: &str) -> u64 {
        state
            .runtime
            .metrics()
            .api_requests_total
            .with_label_values(&["GET", endpoint, "error"])
            .get()
    }

    fn active(state: &AppState) -> f64 {
        state.runtime.metrics().api_active_requests.get()
    }

    #[tokio::test]
    async fn a_timed_out_request_is_counted_and_leaves_no_active_request() {
        let (app, state) = app(8, Default::default());
        let (status, body) = call(&app, "/test/slow").await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"]["code"], "timeout", "{body}");
        assert_eq!(counted(&state, "/test/slow"), 1);
        assert_eq!(active(&state), 0.0);
    }

    #[tokio::test]
    async fn a_panic_is_a_counted_json_500_and_the_server_goes_on() {
        let (app, state) = app(8, Default::default());
        let (status, body) = call(&app, "/test/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal", "{body}");
        assert!(
            !body.to_string().contains("boom"),
            "the panic's words stay in the log: {body}"
        );
        assert_eq!(counted(&state, "/test/panic"), 1);
        assert_eq!(active(&state), 0.0);
        let (status, _) = call(&app, "/health").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_shed_request_is_counted_under_its_route() {
        let release = Arc::new(tokio::sync::Notify::new());
        let (app, state) = app(1, release.clone());
        let holder = tokio::spawn({
            let app = app.clone();
            async move { call(&app, "/test/hold").await }
        });
        while active(&state) < 1.0 {
            tokio::task::yield_now().await;
        }
        let (status, body) = call(&app, "/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "overloaded", "{body}");
        assert_eq!(counted(&state, "/health"), 1);
        release.notify_one();
        assert_eq!(holder.await.expect("join").0, StatusCode::OK);
        assert_eq!(active(&state), 0.0);
    }

    #[tokio::test]
    async fn rejections_and_unknown_routes_answer_in_the_envelope() {
        let (app, state) = app(8, Default::default());
        let (status, body) = call(&app, "/api/market?days=99999999999999999999").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        let (status, body) = call(&app, "/predict").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
        let (status, body) = call(&app, "/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found", "{body}");
        // The 405 under its route, the 404 unmatched.
        assert_eq!(counted(&state, "/predict"), 1);
        assert_eq!(counted(&state, "unmatched"), 1);
    }

    #[tokio::test]
    async fn the_read_token_guards_reading_and_leaves_health_and_metrics_open() {
        let env = vec![(
            "COINCAST__SERVE__READ_TOKEN".to_string(),
            "r3ad".to_string(),
        )];
        let (app, _) = app_with(8, Default::default(), env);
        let post = |auth: Option<&str>| {
            let mut r = Request::post("/predict").header("content-type", "application/json");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.body(Body::from(r#"{"coin_id": "bitcoin"}"#))
                .expect("request")
        };
        let response = app.clone().oneshot(post(None)).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key("www-authenticate"));
        let (status, _) = call_with(&app, post(Some("Bearer wrong"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Past the guard: nothing to serve in this empty runtime.
        let (status, body) = call_with(&app, post(Some("Bearer r3ad"))).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{body}");
        let basic = "Basic dXNlcjpyM2Fk"; // user:r3ad
        let (status, _) = call_with(
            &app,
            Request::get("/api/overview")
                .header("authorization", basic)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        assert_ne!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&app, "/api/overview").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        for open in ["/health", "/metrics", "/openapi.json", "/static/style.css"] {
            let response = app
                .clone()
                .oneshot(Request::get(open).body(Body::empty()).expect("request"))
                .await
                .expect("infallible");
            assert_eq!(response.status(), StatusCode::OK, "{open}");
        }
    }

    /// A route that reads no body, answering late and at length, on a real socket: the request's
    /// 512 KB body is read by the server before it answers, so no reset cuts the answer (without
    /// that, the first answer was already cut here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unread_body_never_cuts_a_late_answer() {
        let env = vec![(
            "COINCAST__SERVE__MAX_BODY_BYTES".to_string(),
            (1 << 20).to_string(),
        )];
        let (app, _) = app_with(8, Default::default(), env);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/test/late", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        for round in 0..20 {
            let response = http
                .get(&url)
                .body(vec![b'x'; 512 << 10])
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(response.status(), StatusCode::OK);
            let text = response
                .text()
                .await
                .unwrap_or_else(|e| panic!("round {round}: the answer was cut: {e:?}"));
            assert_eq!(text.len(), 300_000, "round {round}");
        }
    }
}
