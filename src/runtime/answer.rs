//! Who answers for a coin, and with what: the one place the choice is made, for `/predict`,
//! `/predict/batch` and `coincast predict`. The champion answers the coins it was trained on,
//! the floor the others; when the champion cannot forecast a coin now (an input missing at the
//! newest hour), the floor answers instead. Each refusal is a typed `AnswerError` that the HTTP
//! layer turns into its status and code.

use std::sync::Arc;

use super::snapshot::{ServedBy, ServingModel, Snapshot};
use crate::config::is_valid_coin_id;
use crate::model::dataset::CoinSeries;
use crate::model::forecast::Forecast;
use crate::model::ModelError;

/// Why nothing answers.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("coin `{coin}` is not served; available: {}", available.join(", "))]
    UnknownCoin {
        coin: String,
        available: Vec<String>,
    },
    #[error("no data for `{0}` yet: the next pipeline run fetches it (`coincast run`)")]
    NoData(String),
    #[error("{0}")]
    NoModel(String),
    #[error("hours_ahead {hours_ahead} is beyond what the serving model {model_id} ({family}) forecasts: up to {horizon} h ahead")]
    BeyondHorizon {
        hours_ahead: i64,
        model_id: String,
        family: String,
        horizon: usize,
    },
    /// Every answerer failed: each one's reason.
    #[error("{0}")]
    Incomplete(String),
}

/// A model that may answer for a coin, with the coin's series as it reads it.
#[derive(Clone)]
pub struct Answerer {
    pub model: Arc<ServingModel>,
    pub series: Arc<CoinSeries>,
    pub by: ServedBy,
}

impl Snapshot {
    /// Who may answer for `coin_id`, in order: the champion when it covers the coin, then the
    /// floor. A coin neither `configured` nor stored is unknown; a configured one without data
    /// has none yet.
    pub fn answerers_for(
        &self,
        coin_id: &str,
        configured: &[String],
    ) -> Result<Vec<Answerer>, AnswerError> {
        let stored = self.coins.contains_key(coin_id);
        if !is_valid_coin_id(coin_id) || (!stored && !configured.iter().any(|c| c == coin_id)) {
            return Err(AnswerError::UnknownCoin {
                coin: coin_id.chars().take(80).collect(),
                available: self.coins.keys().cloned().collect(),
            });
        }
        if !stored {
            return Err(AnswerError::NoData(coin_id.to_string()));
        }
        let found: Vec<Answerer> = self
            .answerers(coin_id)
            .into_iter()
            .map(|(model, series, by)| Answerer { model, series, by })
            .collect();
        if found.is_empty() {
            return Err(AnswerError::NoModel(self.problems.join("; ")));
        }
        Ok(found)
    }
}

/// Whether `model` forecasts `hours_ahead` hours ahead.
pub fn check_horizon(model: &ServingModel, hours_ahead: i64) -> Result<(), AnswerError> {
    if hours_ahead >= 1 && hours_ahead as usize <= model.horizon {
        return Ok(());
    }
    Err(AnswerError::BeyondHorizon {
        hours_ahead,
        model_id: model.model_id.clone(),
        family: model.family.clone(),
        horizon: model.horizon,
    })
}

/// The first answerer that can forecast `hours_ahead` with its forecast already computed, as
/// `first_that_answers` would pick it: a model whose horizon is too short is passed over, and
/// an answerer without a computed forecast ends the lookup (inference decides then).
pub fn memoized(answerers: &[Answerer], hours_ahead: i64) -> Option<(Arc<Forecast>, Answerer)> {
    for a in answerers {
        if check_horizon(&a.model, hours_ahead).is_err() {
            continue;
        }
        return a.model.cached_latest(&a.series).map(|f| (f, a.clone()));
    }
    None
}

/// Runs `f` with each answerer in order until one answers (blocking: an LSTM infers here).
pub fn first_that_answers<T>(
    answerers: Vec<Answerer>,
    f: impl Fn(&ServingModel, &CoinSeries) -> Result<T, ModelError>,
) -> Result<(T, Answerer), AnswerError> {
    let mut reasons = Vec::new();
    for a in answerers {
        match f(&a.model, &a.series) {
            Ok(value) => return Ok((value, a)),
            Err(e) => reasons.push(format!("{} ({}): {e}", a.model.model_id, a.by.name())),
        }
    }
    Err(AnswerError::Incomplete(reasons.join("; ")))
}

/// The newest forecast of the first answerer that can forecast `hours_ahead`.
pub fn latest_forecast(
    answerers: Vec<Answerer>,
    hours_ahead: i64,
) -> Result<(Arc<Forecast>, Answerer), AnswerError> {
    let mut reasons = Vec::new();
    for a in answerers {
        if let Err(e) = check_horizon(&a.model, hours_ahead) {
            reasons.push(format!("{} ({}): {e}", a.model.model_id, a.by.name()));
            continue;
        }
        match a.model.forecast_latest(&a.series) {
            Ok(f) => return Ok((f, a)),
            Err(e) => reasons.push(format!("{} ({}): {e}", a.model.model_id, a.by.name())),
        }
    }
    Err(AnswerError::Incomplete(reasons.join("; ")))
}

/// The served forecast of a coin as a fan: at every horizon, the point and the bands at the
/// inner levels (`FAN_LEVELS`, from the calibration as it is) and the served interval, drawn
/// where online coverage control holds the nominal level now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForecastFan {
    pub model_id: String,
    pub family: String,
    pub served_by: ServedBy,
    /// The hour the inputs end at, epoch seconds.
    pub as_of: i64,
    pub current_price: f64,
    /// The served interval's nominal level.
    pub nominal_level: f64,
    pub horizons: Vec<FanHorizon>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FanHorizon {
    pub hours_ahead: usize,
    /// Epoch seconds of the hour forecast.
    pub target: i64,
    pub point: f64,
    /// Inner bands first, the served interval last.
    pub bands: Vec<FanBand>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FanBand {
    /// The level the band stands for.
    pub level: f64,
    /// The calibration level it is drawn at (the ACI level for the served interval).
    pub drawn_at_level: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The inner bands of a fan, below the served interval's nominal level.
pub const FAN_LEVELS: [f64; 2] = [0.5, 0.8];

/// The fan of the model that answers for the coin now (blocking: an LSTM infers here).
pub fn forecast_fan(answerers: Vec<Answerer>) -> Result<ForecastFan, AnswerError> {
    let horizon = answerers.first().map_or(1, |a| a.model.horizon as i64);
    let (served, answerer) = latest_forecast(answerers, horizon.max(1))?;
    let model = &answerer.model;
    let inner = FAN_LEVELS
        .iter()
        .filter(|l| **l < served.interval_level)
        .map(|l| {
            model
                .forecast_latest_at(&answerer.series, *l)
                .map(|f| (*l, f))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            AnswerError::Incomplete(format!("{} ({}): {e}", model.model_id, answerer.by.name()))
        })?;
    let as_of = served.as_of_hour * 3600;
    let horizons = served
        .horizons
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut bands: Vec<FanBand> = inner
                .iter()
                .filter_map(|(level, f)| {
                    f.horizons.get(i).map(|b| FanBand {
                        level: *level,
                        drawn_at_level: b.drawn_at_level,
                        lower: b.lower,
                        upper: b.upper,
                    })
                })
                .collect();
            bands.push(FanBand {
                level: served.interval_level,
                drawn_at_level: h.drawn_at_level,
                lower: h.lower,
                upper: h.upper,
            });
            FanHorizon {
                hours_ahead: h.hours_ahead,
                target: as_of + 3600 * h.hours_ahead as i64,
                point: h.price,
                bands,
            }
        })
        .collect();
    Ok(ForecastFan {
        model_id: model.model_id.clone(),
        family: model.family.clone(),
        served_by: answerer.by,
        as_of,
        current_price: served.current_price,
        nominal_level: served.interval_level,
        horizons,
    })
}
