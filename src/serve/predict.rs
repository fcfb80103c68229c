//! `POST /predict`: the champion's forecast for one coin and horizon, from memory (no SQL), with
//! its split-conformal interval, and the per-request drift check of the inputs.
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
use super::prediction_log::PredictionRecord;
use super::state::{AppState, ServingModel};
use crate::config::is_valid_coin_id;
use crate::model::dataset::CoinSeries;
use crate::model::lstm::TrainedLstm;
use crate::model::ModelError;

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

/// The served model and the coin's series for a request: 503 without a model, 404 for a model
/// type or coin that is not served, 503 when the coin has no data yet.
pub(super) fn resolve(
    state: &AppState,
    coin_id: &str,
    model_type: Option<&str>,
) -> Result<(Arc<ServingModel>, Arc<CoinSeries>), ApiError> {
    let snap = state.snapshot.load_full();
    let Some(model) = snap.model.clone() else {
        return Err(ApiError::unavailable("no_model", snap.problems.join("; ")));
    };
    if let Some(t) = model_type {
        if t != model.family && t != "champion" {
            return Err(ApiError::not_found(
                "unknown_model",
                format!(
                    "model type `{t}` is not served; available: `{}` (the champion)",
                    model.family
                ),
            ));
        }
    }
    if !is_valid_coin_id(coin_id) || !model.card.coins.iter().any(|c| c == coin_id) {
        return Err(ApiError::not_found(
            "unknown_coin",
            format!(
                "coin `{coin_id}` is not served; available: {}",
                model.card.coins.join(", ")
            ),
        ));
    }
    let Some(series) = snap.series.get(coin_id).cloned() else {
        return Err(ApiError::unavailable(
            "no_data",
            format!("no data for `{coin_id}` yet: run `coincast run`"),
        ));
    };
    Ok((model, series))
}

/// Runs inference on the blocking pool under the model's lock (tch tensors are not Sync).
pub(super) async fn infer<T: Send + 'static>(
    model: &Arc<ServingModel>,
    f: impl FnOnce(&TrainedLstm) -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ApiError> {
    let model = model.clone();
    tokio::task::spawn_blocking(move || {
        let lstm = model
            .lstm
            .lock()
            .map_err(|_| ApiError::internal("the model lock is poisoned"))?;
        f(&lstm).map_err(|e| ApiError::unavailable("data_incomplete", e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("inference task failed: {e}")))?
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
    /// `lstm` (the champion's family) or `champion`; default: the champion.
    #[serde(default)]
    pub model_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfidenceInterval {
    pub lower: f64,
    pub upper: f64,
    pub level: f64,
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
}

pub async fn predict(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    check_hours_ahead(req.hours_ahead)?;
    let (model, series) = resolve(&state, &req.coin_id, req.model_type.as_deref())?;
    let started = Instant::now();
    let worker_series = series.clone();
    let forecast = infer(&model, move |lstm| lstm.forecast_latest(&worker_series)).await?;
    let latency = started.elapsed().as_secs_f64();
    let family = model.family.as_str();
    state
        .metrics
        .model_prediction_latency_seconds
        .with_label_values(&[family])
        .observe(latency);
    let drift_ratio = record_drift(&state, &model, &series);
    state
        .metrics
        .model_predictions_total
        .with_label_values(&[family, &req.coin_id])
        .inc();

    let h = &forecast.horizons[(req.hours_ahead - 1) as usize];
    if let Some(log) = &state.prediction_log {
        log.record(PredictionRecord {
            requested_at_micros: Utc::now().timestamp_micros(),
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            coin_id: forecast.coin_id.clone(),
            vs_currency: state.settings.vs_currency.clone(),
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
        },
        model_type: model.family.clone(),
        prediction_horizon_hours: req.hours_ahead as u32,
        model_version: model.model_id.clone(),
        as_of: iso(forecast.as_of_hour),
        current_price: forecast.current_price,
    }))
}

/// Counts the drifting inputs of the newest hour and returns their share.
fn record_drift(state: &AppState, model: &ServingModel, series: &CoinSeries) -> f64 {
    let Some(last) = series.len().checked_sub(1) else {
        return 0.0;
    };
    let row = series.row(last);
    let stats = &model.card.feature_stats;
    let mut drifting = 0usize;
    for (value, s) in row.iter().zip(stats) {
        if !(s.p01..=s.p99).contains(value) {
            drifting += 1;
            state
                .metrics
                .data_drift_detections_total
                .with_label_values(&[&model.family, &s.name])
                .inc();
        }
    }
    let ratio = drifting as f64 / stats.len().max(1) as f64;
    state
        .metrics
        .data_drift_ratio
        .with_label_values(&[&model.family])
        .set(ratio);
    ratio
}
