//! API errors: every failure is `{"error": {"code", "message"}}` with the right status, never a
//! bare 500 for bad input. Every error is built here: handlers use `?` on the runtime's and the
//! model's errors (the `From` impls pick the status and code), and `ApiJson`, `ApiQuery` and
//! `ApiPath` map axum's rejections onto the same shape. Internal details are logged, not sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::failure::report;
use crate::model::ModelError;
use crate::query::QueryError;
use crate::runtime::answer::AnswerError;
use crate::runtime::RuntimeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "out_of_range", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// A failure of the server itself: `detail` goes to the log, the client gets a generic
    /// message (the request id in the response headers finds the log line).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to answer; the details are in its log under this request's x-request-id",
        )
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NoDatabase => Self::unavailable(
                "no_database",
                "this server has no database connection of its own",
            ),
            RuntimeError::NoWorker => {
                Self::unavailable("no_pipeline", "this server runs no pipeline worker")
            }
            RuntimeError::WorkerStopped => {
                Self::unavailable("no_pipeline", "the pipeline worker has stopped")
            }
            RuntimeError::ReadTimeout(t) => Self::unavailable(
                "page_timeout",
                format!(
                    "the page's query took longer than serve.page_timeout_secs = {} s",
                    t.as_secs()
                ),
            ),
            RuntimeError::Model(m) => m.into(),
            RuntimeError::Query(q) => q.into(),
            other => Self::internal(report(&other)),
        }
    }
}

/// Registry changes and model lookups.
impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::UnknownModel(_) => Self::not_found("unknown_model", e.to_string()),
            ModelError::Gate(_) => Self::new(StatusCode::CONFLICT, "gate_refused", e.to_string()),
            ModelError::Retired(_) => Self::new(StatusCode::GONE, "model_retired", e.to_string()),
            ModelError::Artifact { .. } | ModelError::Device(_) => {
                Self::new(StatusCode::CONFLICT, "artifact_unusable", e.to_string())
            }
            ModelError::Sql(_) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "the registry changed meanwhile, try again",
            ),
            other => Self::internal(report(&other)),
        }
    }
}

/// Analysts' SQL: 400 bad SQL, 403 a refused statement, 408 interrupted, 503 nothing published.
impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::BadSql(m) => Self::new(StatusCode::BAD_REQUEST, "bad_sql", m),
            QueryError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            QueryError::Timeout(_) => {
                Self::new(StatusCode::REQUEST_TIMEOUT, "timeout", e.to_string())
            }
            QueryError::Unavailable(m) => Self::unavailable("not_published", m),
            other => Self::internal(report(&other)),
        }
    }
}

impl From<duckdb::Error> for ApiError {
    fn from(e: duckdb::Error) -> Self {
        Self::internal(format!("reading the database: {}", report(&e)))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(format!("a blocking task failed: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// `Json<T>` whose rejections are API errors: 415 without a JSON content type, 413 over the body
/// limit, 400 for malformed JSON or wrong field types.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match &rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the request body as JSON with `Content-Type: application/json`",
                ),
                JsonRejection::BytesRejection(_)
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is larger than serve.max_body_bytes",
                    )
                }
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::bad_request(format!("malformed JSON: {}", e.body_text()))
                }
                JsonRejection::JsonDataError(e) => {
                    ApiError::bad_request(format!("invalid request: {}", e.body_text()))
                }
                other => ApiError::new(other.status(), "bad_request", other.body_text()),
            }),
        }
    }
}

/// `Query<T>` whose rejections are API errors (400 naming the parameter), not axum's text.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(format!("invalid query string: {}", e.body_text()))
            })
    }
}

/// `Path<T>` whose rejections are API errors.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| {
                ApiError::bad_request(format!("invalid path: {}", e.body_text()))
            })
    }
}

/// A JSON body that may be left out: empty (or blank) means the type's default, anything else
/// must parse (400 otherwise).
pub fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Why nothing answers for a coin, as the API says it.
impl From<AnswerError> for ApiError {
    fn from(e: AnswerError) -> Self {
        let message = e.to_string();
        match e {
            AnswerError::UnknownCoin { .. } => Self::not_found("unknown_coin", message),
            AnswerError::NoData(_) => Self::unavailable("no_data", message),
            AnswerError::NoModel(_) => Self::unavailable("no_model", message),
            AnswerError::BeyondHorizon { .. } => Self::unprocessable(message),
            AnswerError::Incomplete(_) => Self::unavailable("data_incomplete", message),
        }
    }
}
