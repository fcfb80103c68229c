//! A registered model loaded to forecast, whatever its kind: a classical card, or an LSTM with
//! its weights. `model.json` says which (a classical card carries a `recipe`, an LSTM card its
//! `spec`); a card from a newer coincast is refused with its format named, an older LSTM card
//! (format 1) is read as it is.

use std::path::Path;

use tch::Device;

use super::card::{check_card_format, FeatureStats};
use super::classical::ClassicalCard;
use super::dataset::CoinSeries;
use super::forecast::{Calibration, Forecast, Levels};
use super::lstm::{Objective, TrainedLstm};
use super::recipe::{PointRecipe, Recipe};
use super::ModelError;

pub enum ServedModel {
    Classical(Box<ClassicalCard>),
    Lstm(Box<TrainedLstm>),
}

impl ServedModel {
    /// Loads the artifact in `dir`.
    pub fn load(dir: &Path, device: Device) -> Result<Self, ModelError> {
        let path = dir.join("model.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Artifact {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        check_card_format(&path, &text)?;
        let is_classical = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .is_some_and(|v| v.get("recipe").is_some() && v.get("spec").is_none());
        if is_classical {
            Ok(ServedModel::Classical(Box::new(ClassicalCard::read(dir)?)))
        } else {
            Ok(ServedModel::Lstm(Box::new(TrainedLstm::load(dir, device)?)))
        }
    }

    /// The forecaster's name (`model_type`).
    pub fn name(&self) -> String {
        self.recipe().name()
    }

    /// The recipe it was fitted from (for an LSTM: its spec, head and scale).
    pub fn recipe(&self) -> Recipe {
        match self {
            ServedModel::Classical(c) => c.recipe.clone(),
            ServedModel::Lstm(m) => {
                let spec = Box::new(m.card.spec.clone());
                Recipe {
                    point: match m.card.objective {
                        Objective::Mean => PointRecipe::Lstm { spec },
                        Objective::Quantiles { .. } => PointRecipe::QuantileLstm { spec },
                    },
                    scale: m.card.scale.recipe(),
                }
            }
        }
    }

    /// The conformal calibration of its intervals.
    pub fn calibration(&self) -> &Calibration {
        match self {
            ServedModel::Classical(c) => &c.calibration,
            ServedModel::Lstm(m) => m.calibration(),
        }
    }

    /// The coins it was trained (or calibrated) on.
    pub fn coins(&self) -> &[String] {
        match self {
            ServedModel::Classical(c) => &c.coins,
            ServedModel::Lstm(m) => &m.card.coins,
        }
    }

    /// Whether it can forecast a coin it was not trained on (classical models: pooled
    /// parameters; the LSTM cannot, its coin is an input).
    pub fn forecasts_any_coin(&self) -> bool {
        matches!(self, ServedModel::Classical(_))
    }

    pub fn horizon(&self) -> usize {
        match self {
            ServedModel::Classical(c) => c.horizon,
            ServedModel::Lstm(m) => m.card.spec.horizon,
        }
    }

    pub fn interval_level(&self) -> f64 {
        self.calibration().level
    }

    pub fn trained_until_hour(&self) -> i64 {
        match self {
            ServedModel::Classical(c) => c.trained_until_hour,
            ServedModel::Lstm(m) => m.card.trained_until_hour,
        }
    }

    /// The feature columns its forecasts read (none for a classical model of prices only).
    pub fn input_features(&self) -> Vec<String> {
        match self {
            ServedModel::Classical(c) if !c.point.reads_features() => Vec::new(),
            other => other.series_features(),
        }
    }

    /// The feature columns a coin's series must carry for it.
    pub fn series_features(&self) -> Vec<String> {
        match self {
            ServedModel::Classical(c) => c.series_features(),
            ServedModel::Lstm(m) => m.card.spec.features.clone(),
        }
    }

    /// Training statistics of the monitored features (PSI, drift ratio), in the order of
    /// `series_features` when the model reads them, else of its monitored set.
    pub fn feature_stats(&self) -> &[FeatureStats] {
        match self {
            ServedModel::Classical(c) => &c.feature_stats,
            ServedModel::Lstm(m) => &m.card.feature_stats,
        }
    }

    /// Where its interval calibration came from, in words.
    pub fn calibration_source(&self) -> String {
        self.calibration().source.clone()
    }

    /// Every horizon from the coin's newest hour, with intervals at `levels`.
    pub fn forecast_latest(
        &self,
        s: &CoinSeries,
        levels: Levels<'_>,
    ) -> Result<Forecast, ModelError> {
        match self {
            ServedModel::Classical(c) => c.forecast_latest(s, levels),
            ServedModel::Lstm(m) => m.forecast_latest(s, levels),
        }
    }

    /// Every horizon from origin `i` of the coin, with intervals at `levels`.
    pub fn forecast_origin(
        &self,
        s: &CoinSeries,
        i: usize,
        levels: Levels<'_>,
    ) -> Result<Forecast, ModelError> {
        match self {
            ServedModel::Classical(c) => c.forecast_at(s, i, levels),
            ServedModel::Lstm(m) => m.forecast_origin(s, i, levels),
        }
    }

    /// Forecasts from past origins (a backtest); origins it cannot forecast are left out.
    pub fn forecast_at(
        &self,
        s: &CoinSeries,
        origins: &[usize],
    ) -> Result<Vec<Forecast>, ModelError> {
        match self {
            ServedModel::Classical(c) => Ok(c.forecast_many(s, origins)),
            ServedModel::Lstm(m) => m.forecast_at(s, origins),
        }
    }
}
