//! Recipes: what a forecaster is before it is fitted (a point model and an interval scale, with
//! their hyperparameters). Every candidate of a training run is a recipe, the champion is judged
//! again by re-running its recipe on today's folds, and every model card keeps its recipe.
//!
//! Names: the point model (`persistence`, `drift`, `sma_trend`, `ema_trend`, `linear`, `lstm`),
//! then `_ewma`, `_ewma_coin` (λ chosen per coin), `_garch`, `_har` or `_mix` (the three
//! averaged) when the interval scales with volatility instead of having a constant width:
//! `persistence_ewma`, `persistence_garch`, `persistence_har`. The quantile LSTM's interval is its own quantile band, conformalized (CQR):
//! `lstm_quantile`, or with a suffix, normalized by that scale (`lstm_quantile_ewma`: scores in
//! units of the EWMA volatility).

use serde::{Deserialize, Serialize};

use super::baselines::{Forecaster, PointModel, RefitHints, Ridge};
use super::forecast::CalibrationMode;
use super::lstm::{LstmCandidate, LstmSpec, Objective};
use super::protocol::Protocol;
use super::volatility::ScaleRecipe;
use super::ModelError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PointRecipe {
    Persistence,
    Drift {
        hours: usize,
    },
    SmaTrend,
    EmaTrend,
    Linear {
        lambda: f64,
        features: Vec<String>,
    },
    Lstm {
        spec: Box<LstmSpec>,
    },
    /// The LSTM with a quantile head (the spec's `quantiles`), pinball loss, median as point.
    QuantileLstm {
        spec: Box<LstmSpec>,
    },
}

impl PointRecipe {
    fn base_name(&self) -> &'static str {
        match self {
            PointRecipe::Persistence => "persistence",
            PointRecipe::Drift { .. } => "drift",
            PointRecipe::SmaTrend => "sma_trend",
            PointRecipe::EmaTrend => "ema_trend",
            PointRecipe::Linear { .. } => "linear",
            PointRecipe::Lstm { .. } => "lstm",
            PointRecipe::QuantileLstm { .. } => "lstm_quantile",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub point: PointRecipe,
    pub scale: ScaleRecipe,
}

impl Recipe {
    /// The forecaster's name, also its `model_type` on the API.
    pub fn name(&self) -> String {
        match self.scale.suffix() {
            "" => self.point.base_name().to_string(),
            s => format!("{}_{s}", self.point.base_name()),
        }
    }

    /// The recipe a candidate name stands for, with the hyperparameters of the protocol and the
    /// LSTM spec.
    pub fn from_name(name: &str, protocol: &Protocol, spec: &LstmSpec) -> Result<Self, ModelError> {
        let (base, suffix) = match name.strip_suffix("_ewma_coin") {
            Some(b) => (b, "ewma_coin"),
            None => match name.rsplit_once('_') {
                Some((b, s @ ("ewma" | "garch" | "har" | "mix"))) => (b, s),
                _ => (name, ""),
            },
        };
        let scale = match suffix {
            "ewma" => ScaleRecipe::Ewma {
                lambda: protocol.ewma_lambda,
            },
            "ewma_coin" => ScaleRecipe::EwmaPerCoin {
                lambda: protocol.ewma_lambda,
            },
            "mix" => ScaleRecipe::Mix {
                lambda: protocol.ewma_lambda,
            },
            "garch" => ScaleRecipe::Garch,
            "har" => ScaleRecipe::Har,
            _ => ScaleRecipe::Constant,
        };
        let point = match base {
            "persistence" => PointRecipe::Persistence,
            "drift" => PointRecipe::Drift {
                hours: protocol.drift_hours,
            },
            "sma_trend" => PointRecipe::SmaTrend,
            "ema_trend" => PointRecipe::EmaTrend,
            "linear" => PointRecipe::Linear {
                lambda: protocol.ridge_lambda,
                features: protocol.features.clone(),
            },
            "lstm" => PointRecipe::Lstm {
                spec: Box::new(spec.clone()),
            },
            "lstm_quantile" => PointRecipe::QuantileLstm {
                spec: Box::new(spec.clone()),
            },
            _ => {
                return Err(ModelError::Definition {
                    origin: "candidates".into(),
                    message: format!(
                        "unknown forecaster `{name}`: use persistence, drift, sma_trend, ema_trend, linear, lstm or lstm_quantile, optionally with _ewma, _ewma_coin, _garch, _har or _mix"
                    ),
                })
            }
        };
        Ok(Self { point, scale })
    }

    /// The feature columns the point model reads (empty: it needs prices only).
    pub fn features(&self) -> &[String] {
        match &self.point {
            PointRecipe::Linear { features, .. } => features,
            PointRecipe::Lstm { spec } | PointRecipe::QuantileLstm { spec } => &spec.features,
            _ => &[],
        }
    }

    /// How its intervals are calibrated: CQR on a quantile band, else scores scaled by σ̂.
    pub fn calibration_mode(&self) -> CalibrationMode {
        match self.point {
            PointRecipe::QuantileLstm { .. } => CalibrationMode::Cqr,
            _ => CalibrationMode::Scaled,
        }
    }

    /// Whether the point forecast is r̂ = 0 (persistence is judged against itself on MSE).
    pub fn is_persistence(&self) -> bool {
        self.point == PointRecipe::Persistence
    }

    /// Whether fitting it trains a network (the costly kind).
    pub fn is_lstm(&self) -> bool {
        matches!(
            self.point,
            PointRecipe::Lstm { .. } | PointRecipe::QuantileLstm { .. }
        )
    }

    /// A fresh, unfitted point model. The LSTM trains with early stopping, or, for a refit
    /// after selection (`hints`), for the epochs and with the shrinkage validation chose.
    pub fn build(&self, hints: Option<RefitHints>) -> Box<dyn Forecaster> {
        match &self.point {
            PointRecipe::Persistence => Box::new(PointModel::Persistence),
            PointRecipe::Drift { hours } => Box::new(PointModel::Drift { hours: *hours }),
            PointRecipe::SmaTrend => Box::new(PointModel::SmaTrend),
            PointRecipe::EmaTrend => Box::new(PointModel::EmaTrend),
            PointRecipe::Linear { lambda, features } => Box::new(LinearOn {
                features: features.clone(),
                model: PointModel::Linear(Ridge::new(*lambda)),
            }),
            PointRecipe::Lstm { spec } => {
                Box::new(LstmCandidate::new((**spec).clone(), Objective::Mean, hints))
            }
            PointRecipe::QuantileLstm { spec } => Box::new(LstmCandidate::new(
                (**spec).clone(),
                Objective::Quantiles {
                    levels: spec.quantiles.clone(),
                },
                hints,
            )),
        }
    }
}

/// Ridge on its own feature columns, whatever else the series carries.
pub struct LinearOn {
    pub features: Vec<String>,
    pub model: PointModel,
}

impl Forecaster for LinearOn {
    fn fit(
        &mut self,
        series: &[super::dataset::CoinSeries],
        train: &std::ops::Range<i64>,
        lookback: usize,
        horizon: usize,
    ) -> Result<super::baselines::FitReport, ModelError> {
        let own: Vec<super::dataset::CoinSeries> = series
            .iter()
            .map(|s| {
                s.with_features(&self.features)
                    .map(std::borrow::Cow::into_owned)
            })
            .collect::<Result<_, _>>()?;
        self.model.fit(&own, train, lookback, horizon)
    }

    fn predict(&self, s: &super::dataset::CoinSeries, i: usize, out: &mut [f64]) {
        match s.with_features(&self.features) {
            Ok(own) => self.model.predict(&own, i, out),
            Err(_) => out.fill(f64::NAN),
        }
    }

    fn predict_many(
        &self,
        s: &super::dataset::CoinSeries,
        origins: &[usize],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        let own = s.with_features(&self.features)?;
        self.model.predict_many(&own, origins, horizon)
    }

    fn into_point(self: Box<Self>) -> Option<PointModel> {
        Some(self.model)
    }
}
