//! A classical forecaster as it is saved and served: its recipe, the fitted point model and
//! scale, and the conformal calibration of its intervals. There are no weights: `model.json` is
//! the whole artifact.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::baselines::{Forecaster, PointModel};
use super::card::{check_card_format, FeatureStats, CARD_FORMAT};
use super::dataset::CoinSeries;
use super::forecast::{interval_forecast, Anchor, Calibration, Forecast, Levels};
use super::recipe::{PointRecipe, Recipe};
use super::volatility::{ScaleModel, ScaleRecipe, MIN_RETURNS};
use super::ModelError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassicalCard {
    pub format_version: u32,
    pub name: String,
    pub recipe: Recipe,
    pub point: PointModel,
    pub scale: ScaleModel,
    pub horizon: usize,
    pub calibration: Calibration,
    /// The coins it was fitted and calibrated on (it forecasts others with pooled parameters).
    pub coins: Vec<String>,
    /// The newest origin hour whose data it was fitted on.
    pub trained_until_hour: i64,
    /// The configured feature set at training: what PSI and the drift ratio watch, in the order
    /// of `feature_stats`.
    pub monitor_features: Vec<String>,
    pub feature_stats: Vec<FeatureStats>,
}

fn artifact_error(path: &Path, e: impl ToString) -> ModelError {
    ModelError::Artifact {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl ClassicalCard {
    /// The floor before any training: persistence with EWMA intervals and Gaussian multipliers,
    /// for any coin with [`MIN_RETURNS`] hourly returns.
    pub fn cold_floor(
        horizon: usize,
        level: f64,
        lambda: f64,
        coins: Vec<String>,
        monitor_features: Vec<String>,
        feature_stats: Vec<FeatureStats>,
        trained_until_hour: i64,
    ) -> Self {
        let recipe = Recipe {
            point: PointRecipe::Persistence,
            scale: ScaleRecipe::Ewma { lambda },
        };
        Self {
            format_version: CARD_FORMAT,
            name: recipe.name(),
            point: PointModel::Persistence,
            scale: ScaleModel::new(recipe.scale),
            recipe,
            horizon,
            calibration: Calibration::gaussian(level, horizon),
            coins,
            trained_until_hour,
            monitor_features,
            feature_stats,
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join("model.json");
        let json = serde_json::to_string_pretty(self).map_err(|e| artifact_error(&path, e))?;
        std::fs::write(&path, json).map_err(|e| artifact_error(&path, e))
    }

    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("model.json");
        let text = std::fs::read_to_string(&path).map_err(|e| artifact_error(&path, e))?;
        check_card_format(&path, &text)?;
        serde_json::from_str(&text).map_err(|e| artifact_error(&path, e))
    }

    /// The feature columns its series must carry: the point model's inputs, or (for a model
    /// that reads prices only) the monitored set.
    pub fn series_features(&self) -> Vec<String> {
        match &self.recipe.point {
            PointRecipe::Linear { features, .. } => features.clone(),
            _ => self.monitor_features.clone(),
        }
    }

    /// Every horizon from the coin's newest hour, with intervals at `levels`.
    pub fn forecast_latest(
        &self,
        s: &CoinSeries,
        levels: Levels<'_>,
    ) -> Result<Forecast, ModelError> {
        self.forecast_at(s, s.last_index(), levels)
    }

    /// Forecasts from past origins (a backtest) at the nominal level; origins it cannot
    /// forecast are left out.
    pub fn forecast_many(&self, s: &CoinSeries, origins: &[usize]) -> Vec<Forecast> {
        origins
            .iter()
            .filter_map(|&i| self.forecast_at(s, i, Levels::Nominal).ok())
            .collect()
    }

    /// Every horizon from origin `i`, with what was known then.
    pub fn forecast_at(
        &self,
        s: &CoinSeries,
        i: usize,
        levels: Levels<'_>,
    ) -> Result<Forecast, ModelError> {
        let price = s.price.get(i).copied().unwrap_or(f64::NAN);
        if !price.is_finite() {
            return Err(ModelError::NoData(s.coin_id.clone()));
        }
        if self.point.reads_features() && !s.has_inputs(i, 1) {
            return Err(ModelError::Numeric(format!(
                "{}: the features at {} are incomplete (a NULL feature); no forecast",
                s.coin_id,
                super::dataset::hour_label(s.hour_of(i))
            )));
        }
        let mut returns = vec![0.0; self.horizon];
        self.point.predict(s, i, &mut returns);
        let mut scales = vec![0.0; self.horizon];
        self.scale.scales(s, i, &mut scales);
        if scales.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::TooFewSamples {
                needed: MIN_RETURNS,
                have: s.returns_up_to(i),
            });
        }
        let anchors: Vec<Anchor> = returns
            .iter()
            .zip(scales)
            .map(|(&r, scale)| Anchor::point(r, scale))
            .collect();
        Ok(interval_forecast(
            &s.coin_id,
            s.hour_of(i),
            price,
            &self.calibration,
            levels,
            &returns,
            &anchors,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cold_floor_serves_any_coin_with_a_day_of_returns() {
        let floor = ClassicalCard::cold_floor(24, 0.9, 0.97, vec![], vec![], vec![], 0);
        let price: Vec<f64> = (0..30)
            .map(|i| 100.0 * (1.0 + 0.01 * f64::from(i % 3)))
            .collect();
        let s = CoinSeries::from_arrays("new", 1000, price, vec![], vec![]);
        let f = floor
            .forecast_latest(&s, Levels::Nominal)
            .expect("a day of returns is enough");
        assert_eq!(f.horizons.len(), 24);
        assert_eq!(f.as_of_hour, 1029);
        let h1 = &f.horizons[0];
        assert_eq!(h1.price, f.current_price);
        assert!(h1.lower < h1.price && h1.upper > h1.price);
        // √h scaling: the 24 h interval is about √24 times the 1 h one (on the log scale).
        let w = |h: &super::super::forecast::HorizonForecast| (h.upper / h.lower).ln();
        assert!((w(&f.horizons[23]) / w(h1) - 24f64.sqrt()).abs() < 1e-9);
        let short = CoinSeries::from_arrays("new", 0, vec![100.0; 10], vec![], vec![]);
        let err = floor
            .forecast_latest(&short, Levels::Nominal)
            .expect_err("too few returns");
        assert!(err.to_string().contains("24"), "{err}");
    }

    #[test]
    fn a_card_round_trips_and_a_newer_format_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let floor = ClassicalCard::cold_floor(6, 0.9, 0.97, vec!["a".into()], vec![], vec![], 7);
        floor.save(dir.path()).expect("save");
        let back = ClassicalCard::read(dir.path()).expect("read");
        assert_eq!(back.name, "persistence_ewma");
        assert_eq!(back.calibration, floor.calibration);
        let text = std::fs::read_to_string(dir.path().join("model.json")).expect("text");
        std::fs::write(
            dir.path().join("model.json"),
            text.replace("\"format_version\": 3", "\"format_version\": 9"),
        )
        .expect("write");
        let err = ClassicalCard::read(dir.path())
            .expect_err("newer")
            .to_string();
        assert!(err.contains("model format 9"), "{err}");
    }
}
