//! `POST /predict`: the champion's forecast for one coin and horizon, from memory (no SQL), with
//! its conformal interval, and the per-request drift check of the monitored features. A coin the
//! champion does not cover (or cannot forecast now) is answered by the floor, persistence; once a
//! coin has data, something answers.
//!
//! Drift rule: a feature drifts when its value at the newest hour lies outside the
//! [p01, p99] range of the training origins (stored with the model); `data_drift_ratio` is the
//! share of drifting features, and each drifting feature counts in `data_drift_detections_total`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson};
use super::state::AppState;
use crate::model::dataset::CoinSeries;
use crate::model::ModelError;
use crate::runtime::answer::{self, Answerer};
use crate::runtime::PredictionRecord;
use crate::runtime::{ServedBy, ServingModel};

pub(super) fn default_coin() -> String {
    "bitcoin".into()
}

pub(super) fn default_hours() -> i64 {
    1
}

/// 422 unless 1 <= hours_ahead <= 24.
pub(super) fn check_hours_ahead(hours_ahead: i64) -> Result<(), ApiError> {
    if (1..=24).contains(&hours_ahead) {
        return Ok(());
    }
    Err(ApiError::unprocessable(format!(
        "hours_ahead must be between 1 and 24, got {hours_ahead}"
    )))
}

/// A `model_type` is a name (letters, digits, `_`, `-`, at most 64); any well-formed one is
/// answered by the champion, whose type the response names (clients of the old service send
/// `lstm`). Only a malformed one is refused.
pub(super) fn check_model_type(model_type: Option<&str>) -> Result<(), ApiError> {
    let Some(t) = model_type else {
        return Ok(());
    };
    let well_formed = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if well_formed {
        return Ok(());
    }
    Err(ApiError::unprocessable(format!(
        "model_type must be a name of letters, digits, `_` or `-` (at most 64), got {:?}",
        t.chars().take(80).collect::<String>()
    )))
}

/// Who may answer for a coin, in order (the champion when it covers the coin, then the floor):
/// 404 for a coin that is neither configured nor stored, 503 when nothing can serve it yet.
pub(super) fn answerers(state: &AppState, coin_id: &str) -> Result<Vec<Answerer>, ApiError> {
    Ok(state
        .runtime
        .snapshot()
        .answerers_for(coin_id, &state.runtime.settings().coins)?)
}

/// 422 when the answering model forecasts fewer hours ahead than asked.
pub(super) fn check_horizon(model: &ServingModel, hours_ahead: i64) -> Result<(), ApiError> {
    Ok(answer::check_horizon(model, hours_ahead)?)
}

/// Runs `f` on the blocking pool with the first answerer that can (the floor when the champion
/// cannot forecast the coin now). 503 when none can.
pub(super) async fn infer<T: Send + 'static>(
    answerers: Vec<Answerer>,
    f: impl Fn(&ServingModel, &CoinSeries) -> Result<T, ModelError> + Send + 'static,
) -> Result<(T, Answerer), ApiError> {
    Ok(
        tokio::task::spawn_blocking(move || answer::first_that_answers(answerers, f))
            .await
            .map_err(|e| ApiError::internal(format!("inference task failed: {e}")))??,
    )
}

/// An hour since the epoch as ISO 8601 UTC.
pub(super) fn iso_hour(hour: i64) -> String {
    DateTime::<Utc>::from_timestamp(hour * 3600, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    #[serde(default = "default_coin")]
    pub coin_id: String,
    #[serde(default = "default_hours")]
    pub hours_ahead: i64,
    /// Accepted for clients of the old service; the champion answers whatever it names, and the
    /// response's `model_type` says which forecaster did.
    #[serde(default)]
    pub model_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfidenceInterval {
    pub lower: f64,
    pub upper: f64,
    /// The nominal level: what the interval aims to cover.
    pub level: f64,
    /// The conformal level it is drawn at, where online coverage control (ACI) has moved it.
    #[serde(default)]
    pub drawn_at_level: f64,
}

/// The old service's fields, plus `model_version`, `as_of` and `current_price`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PredictResponse {
    pub coin_id: String,
    /// The predicted hour, ISO 8601 UTC.
    pub timestamp: String,
    pub predicted_price: f64,
    pub confidence_interval: ConfidenceInterval,
    pub model_type: String,
    pub prediction_horizon_hours: u32,
    pub model_version: String,
    /// The newest hour the forecast is based on.
    pub as_of: String,
    pub current_price: f64,
    /// `champion`, or `floor` (persistence) for a coin the champion does not cover or cannot
    /// forecast now.
    pub served_by: ServedBy,
}

pub async fn predict(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    check_hours_ahead(req.hours_ahead)?;
    check_model_type(req.model_type.as_deref())?;
    let candidates = answerers(&state, &req.coin_id)?;
    check_horizon(&candidates[0].model, req.hours_ahead)?;
    let hours_ahead = req.hours_ahead;
    let started = Instant::now();
    // Computed once per publication: a lookup, with inference (off the async threads) only
    // when the forecast is not there yet.
    let (forecast, answered) = match answer::memoized(&candidates, hours_ahead) {
        Some(hit) => hit,
        None => {
            tokio::task::spawn_blocking(move || answer::latest_forecast(candidates, hours_ahead))
                .await
                .map_err(|e| ApiError::internal(format!("inference task failed: {e}")))??
        }
    };
    let latency = started.elapsed().as_secs_f64();
    let model = &answered.model;
    let family = model.family.as_str();
    state
        .runtime
        .metrics()
        .model_prediction_latency_seconds
        .with_label_values(&[family])
        .observe(latency);
    let drift_ratio = record_drift(&state, model, &answered.series);
    state
        .runtime
        .metrics()
        .model_predictions_total
        .with_label_values(&[family, &req.coin_id])
        .inc();

    let Some(h) = forecast.horizons.get((req.hours_ahead - 1) as usize) else {
        return Err(ApiError::unprocessable(format!(
            "hours_ahead {} is beyond the forecast's {} horizons",
            req.hours_ahead,
            forecast.horizons.len()
        )));
    };
    if let Some(log) = state.runtime.prediction_log() {
        log.record(PredictionRecord {
            requested_at_micros: Utc::now().timestamp_micros(),
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            coin_id: forecast.coin_id.clone(),
            vs_currency: state.runtime.settings().vs_currency.clone(),
            model_id: model.model_id.clone(),
            model_type: model.family.clone(),
            horizon: req.hours_ahead,
            as_of_hour: forecast.as_of_hour,
            current_price: forecast.current_price,
            predicted_price: h.price,
            lower: h.lower,
            upper: h.upper,
            level: forecast.interval_level,
            latency_ms: latency * 1e3,
            drift_ratio,
        });
    }
    let iso = iso_hour;
    Ok(Json(PredictResponse {
        coin_id: forecast.coin_id.clone(),
        timestamp: iso(forecast.as_of_hour + req.hours_ahead),
        predicted_price: h.price,
        confidence_interval: ConfidenceInterval {
            lower: h.lower,
            upper: h.upper,
            level: forecast.interval_level,
            drawn_at_level: h.drawn_at_level,
        },
        model_type: model.family.clone(),
        prediction_horizon_hours: req.hours_ahead as u32,
        model_version: model.model_id.clone(),
        as_of: iso(forecast.as_of_hour),
        current_price: forecast.current_price,
        served_by: answered.by,
    }))
}

/// Counts the drifting inputs of the newest hour and returns their share.
fn record_drift(state: &AppState, model: &ServingModel, series: &CoinSeries) -> f64 {
    let Some(last) = series.len().checked_sub(1) else {
        return 0.0;
    };
    let row = series.row(last);
    let stats = &model.feature_stats;
    let mut drifting = 0usize;
    for (value, s) in row.iter().zip(stats) {
        // A feature without a training range (no values at training) cannot drift from it.
        let known_range = s.p01.is_finite() && s.p99.is_finite();
        if known_range && !(s.p01..=s.p99).contains(value) {
            drifting += 1;
            state
                .runtime
                .metrics()
                .data_drift_detections_total
                .with_label_values(&[&model.family, &s.name])
                .inc();
        }
    }
    let ratio = drifting as f64 / stats.len().max(1) as f64;
    state
        .runtime
        .metrics()
        .data_drift_ratio
        .with_label_values(&[&model.family])
        .set(ratio);
    ratio
}
