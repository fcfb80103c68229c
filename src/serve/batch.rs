//! `POST /predict/batch`: a backtest a user can query. For every hour in [start_date, end_date]
//! (the end day included), the champion's forecast `hours_ahead` ahead from the data available at
//! that hour, with the actual price where it is known. From memory, one batched forward pass.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson};
use super::predict::{
    answerers, check_horizon, check_hours_ahead, check_model_type, infer, iso_hour,
};
use super::state::AppState;
use crate::model::ModelError;
use crate::runtime::ServedBy;

/// Most hours one batch may cover (90 days).
pub const MAX_BATCH_HOURS: i64 = 90 * 24;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[serde(default = "super::predict::default_coin")]
    pub coin_id: String,
    /// `YYYY-MM-DD` (from 00:00 UTC) or an RFC 3339 time.
    pub start_date: String,
    /// `YYYY-MM-DD` (through 23:00 UTC of that day) or an RFC 3339 time.
    pub end_date: String,
    #[serde(default = "super::predict::default_hours")]
    pub hours_ahead: i64,
    #[serde(default)]
    pub model_type: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BatchPrediction {
    pub as_of: String,
    pub timestamp: String,
    pub current_price: f64,
    pub predicted_price: f64,
    pub lower: f64,
    pub upper: f64,
    /// The price at `timestamp`, when it is already stored.
    pub actual_price: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    pub coin_id: String,
    pub model_type: String,
    pub model_version: String,
    /// `champion`, or `floor` for a coin the champion does not cover or cannot forecast.
    pub served_by: ServedBy,
    pub prediction_horizon_hours: i64,
    pub interval_level: f64,
    pub predictions: Vec<BatchPrediction>,
    /// Hours of the range without a forecast (missing data in the lookback window, no data, or
    /// on a replica an hour before its publication's series has 31 days of history).
    pub skipped_hours: usize,
}

/// The hour (since the epoch) a date bound stands for.
fn parse_bound(field: &str, text: &str, end: bool) -> Result<i64, ApiError> {
    if let Ok(day) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        let hours = day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp() / 3600);
        return hours
            .map(|h| if end { h + 23 } else { h })
            .ok_or_else(|| ApiError::unprocessable(format!("{field}: `{text}` is out of range")));
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc).timestamp().div_euclid(3600))
        .map_err(|_| {
            ApiError::unprocessable(format!(
                "{field}: `{text}` is neither YYYY-MM-DD nor an RFC 3339 time"
            ))
        })
}

pub async fn predict_batch(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    check_hours_ahead(req.hours_ahead)?;
    let start = parse_bound("start_date", &req.start_date, false)?;
    let end = parse_bound("end_date", &req.end_date, true)?;
    if end < start {
        return Err(ApiError::unprocessable(format!(
            "end_date ({}) is before start_date ({})",
            req.end_date, req.start_date
        )));
    }
    if end - start + 1 > MAX_BATCH_HOURS {
        return Err(ApiError::unprocessable(format!(
            "the range covers {} hours; at most {MAX_BATCH_HOURS} (90 days) per request",
            end - start + 1
        )));
    }
    check_model_type(req.model_type.as_deref())?;
    let candidates = answerers(&state, &req.coin_id)?;
    check_horizon(&candidates[0].model, req.hours_ahead)?;
    let h = req.hours_ahead as usize;
    // A replica's series starts where its publication's does: it forecasts only from hours whose
    // whole history is in it, so that it answers as the writer does.
    let first_origin = state
        .runtime
        .snapshot()
        .publication
        .as_ref()
        .map_or(i64::MIN, |p| p.first_origin_hour());
    let (forecasts, answered) = infer(candidates, move |model, series| {
        let origins: Vec<usize> = (start.max(first_origin)..=end)
            .filter_map(|hour| usize::try_from(hour - series.first_hour).ok())
            .filter(|&i| i < series.len())
            .collect();
        let forecasts = model.forecast_at(series, &origins)?;
        if forecasts.is_empty() && !origins.is_empty() {
            return Err(ModelError::Numeric(
                "no hour of the range has the inputs this model needs".into(),
            ));
        }
        Ok(forecasts)
    })
    .await?;
    let (model, series) = (&answered.model, &answered.series);
    let iso = iso_hour;
    let predictions: Vec<BatchPrediction> = forecasts
        .iter()
        .filter_map(|f| {
            let at = f.horizons.get(h - 1)?;
            let i = usize::try_from(f.as_of_hour - series.first_hour).ok()?;
            Some(BatchPrediction {
                as_of: iso(f.as_of_hour),
                timestamp: iso(f.as_of_hour + h as i64),
                current_price: f.current_price,
                predicted_price: at.price,
                lower: at.lower,
                upper: at.upper,
                actual_price: series.price.get(i + h).copied().filter(|p| p.is_finite()),
            })
        })
        .collect();
    let skipped = (end - start + 1) as usize - predictions.len();
    state
        .runtime
        .metrics()
        .model_predictions_total
        .with_label_values(&[&model.family, &req.coin_id])
        .inc_by(predictions.len() as u64);
    Ok(Json(BatchResponse {
        coin_id: req.coin_id,
        model_type: model.family.clone(),
        model_version: model.model_id.clone(),
        served_by: answered.by,
        prediction_horizon_hours: req.hours_ahead,
        interval_level: model.interval_level,
        predictions,
        skipped_hours: skipped,
    }))
}
