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
