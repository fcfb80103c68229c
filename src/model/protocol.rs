//! `models/baselines.toml`: the walk-forward protocol (horizon, windows, refits, calibration),
//! the candidates and their settings, and the folds it cuts from the coins' common calendar. Its
//! own file: a recipe reads the protocol's settings, and the evaluation reads both.

use serde::{Deserialize, Serialize};

use super::dataset::CoinSeries;
use super::forecast::default_aci_gamma;
use super::windows::{Fold, WalkForward};
use super::ModelError;

/// `models/baselines.toml`: the walk-forward protocol, the candidates and their settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub horizon: usize,
    pub windows: u32,
    pub step_hours: i64,
    pub lookback_hours: usize,
    pub min_train_hours: i64,
    pub refit_every_folds: u32,
    pub calibration_share: f64,
    pub interval_level: f64,
    pub drift_hours: usize,
    pub ridge_lambda: f64,
    pub ewma_lambda: f64,
    /// The step of online coverage control (ACI) in the walk-forward and for live intervals.
    #[serde(default = "default_aci_gamma")]
    pub aci_gamma: f64,
    pub candidates: Vec<String>,
    pub features: Vec<String>,
}

/// The built-in protocol, also the file users read.
pub const DEFAULT_PROTOCOL: &str = include_str!("../../models/baselines.toml");

impl Protocol {
    pub fn parse(origin: &str, text: &str) -> Result<Self, ModelError> {
        let p: Protocol = super::parse_definition(origin, text)?;
        p.validate(origin)?;
        Ok(p)
    }

    fn validate(&self, origin: &str) -> Result<(), ModelError> {
        let bad = |message: &str| ModelError::Definition {
            origin: origin.to_string(),
            message: message.to_string(),
        };
        if !(1..=24).contains(&self.horizon) {
            return Err(bad("`horizon` must be 1..=24"));
        }
        if self.lookback_hours == 0
            || self.windows == 0
            || self.step_hours <= 0
            || self.refit_every_folds == 0
            || self.min_train_hours <= 0
        {
            return Err(bad(
                "`lookback_hours`, `windows`, `step_hours`, `refit_every_folds` and `min_train_hours` must be positive",
            ));
        }
        if !(0.01..=0.5).contains(&self.calibration_share) {
            return Err(bad("`calibration_share` must be within 0.01..=0.5"));
        }
        if !(0.5..1.0).contains(&self.interval_level) {
            return Err(bad("`interval_level` must be within 0.5..1"));
        }
        if !self.ridge_lambda.is_finite() || self.ridge_lambda < 0.0 {
            return Err(bad("`ridge_lambda` must be >= 0"));
        }
        if !(0.5..1.0).contains(&self.ewma_lambda) {
            return Err(bad("`ewma_lambda` must be within 0.5..1"));
        }
        if !(self.aci_gamma > 0.0 && self.aci_gamma <= 0.1) {
            return Err(bad("`aci_gamma` must be within (0, 0.1]"));
        }
        if self.candidates.is_empty() {
            return Err(bad("`candidates` must name at least one forecaster"));
        }
        Ok(())
    }

    /// Hours between the last training origin and the first test origin.
    pub fn gap(&self) -> i64 {
        (self.lookback_hours + self.horizon) as i64
    }

    /// The walk-forward folds over the coins' common calendar (absolute hours): as many weekly
    /// windows as the history allows after `min_train_hours` of training origins, up to
    /// `windows`. Too little history is an error that says how many hours are missing.
    pub fn folds(&self, series: &[CoinSeries]) -> Result<Vec<Fold>, ModelError> {
        let (start, end) = calendar(series)?;
        let origins = start..end - self.horizon as i64;
        let have = origins.end - origins.start;
        let fit = (have - self.gap() - self.min_train_hours) / self.step_hours;
        let windows = u32::try_from(fit.clamp(0, i64::from(self.windows))).unwrap_or(0);
        if windows == 0 {
            return Err(super::windows::WindowError::TooShort {
                what: "one weekly test window after the minimum training history",
                needed: self.min_train_hours + self.gap() + self.step_hours,
                have,
            }
            .into());
        }
        let wf = WalkForward {
            windows,
            step_hours: self.step_hours,
            gap_hours: self.gap(),
        };
        Ok(wf.folds(origins, self.min_train_hours)?)
    }
}

/// The first hour and the end (exclusive) of the coins' common calendar.
pub fn calendar(series: &[CoinSeries]) -> Result<(i64, i64), ModelError> {
    let start = series
        .iter()
        .map(|s| s.first_hour)
        .min()
        .ok_or(ModelError::NoCoins)?;
    let end = series
        .iter()
        .map(|s| s.first_hour + s.len() as i64)
        .max()
        .ok_or(ModelError::NoCoins)?;
    Ok((start, end))
}
