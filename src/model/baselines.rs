//! The point forecaster interface and the classical point models: persistence, drift, SMA/EMA
//! trend and ridge. All forecast log returns r_h for h = 1..=H from what is known at the origin.
//! The classical ones are one serializable enum (`PointModel`), so a fitted model goes into a
//! model card as it is; the LSTM implements the same trait (`lstm`).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::dataset::CoinSeries;
use super::ModelError;

/// What a fit reports besides the fitted state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FitReport {
    /// Epochs the validation chose (the LSTM's best epoch); None for closed-form fits.
    pub epochs: Option<usize>,
    pub samples: usize,
    /// Where it trained, and its throughput (networks only).
    pub device: Option<String>,
    pub samples_per_second: Option<f64>,
    /// Per coin (series order), per horizon: the point forecast's weight against persistence,
    /// fitted on validation (networks only).
    pub shrinkage: Option<Vec<Vec<f64>>>,
}

/// What a refit after selection reuses from the walk-forward's fits, instead of validating
/// again on data it now trains on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefitHints {
    /// The epochs to train for (the median of the walk-forward's choices).
    pub epochs: Option<usize>,
    /// Per coin (series order), per horizon: the mean of the walk-forward's shrinkage weights.
    pub shrinkage: Vec<Vec<f64>>,
}

/// Forecasts of many origins: the point log return per horizon and, from a model with a
/// quantile head, the band `(lower, upper)` of its nominal level per horizon.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predictions {
    pub point: Vec<Vec<f64>>,
    pub band: Option<Vec<Vec<(f64, f64)>>>,
}

pub trait Forecaster: Send {
    /// Learns from the valid origins of `series` in the hours `train` (inputs over `lookback`
    /// hours, targets `horizon` hours ahead).
    fn fit(
        &mut self,
        series: &[CoinSeries],
        train: &Range<i64>,
        lookback: usize,
        horizon: usize,
    ) -> Result<FitReport, ModelError>;
    /// Fills `out[h-1]` with the predicted log return at horizon h for origin `i`.
    fn predict(&self, series: &CoinSeries, i: usize, out: &mut [f64]);
    /// Predictions for many origins of a coin (models that batch override this).
    fn predict_many(
        &self,
        series: &CoinSeries,
        origins: &[usize],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        Ok(origins
            .iter()
            .map(|&i| {
                let mut out = vec![0.0; horizon];
                self.predict(series, i, &mut out);
                out
            })
            .collect())
    }
    /// Point forecasts and, from a model that forecasts quantiles, their band.
    fn predict_full(
        &self,
        series: &CoinSeries,
        origins: &[usize],
        horizon: usize,
    ) -> Result<Predictions, ModelError> {
        Ok(Predictions {
            point: self.predict_many(series, origins, horizon)?,
            band: None,
        })
    }
    /// The fitted classical model, for a forecaster that is one.
    fn into_point(self: Box<Self>) -> Option<PointModel> {
        None
    }
    /// The trained network, for a forecaster that is one (the LSTM).
    fn into_lstm(self: Box<Self>) -> Option<super::lstm::TrainedLstm> {
        None
    }
}

/// The classical point models with their fitted state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PointModel {
    /// r_h = 0: the price stays where it is.
    Persistence,
    /// r_h = h * the mean hourly log return of the past `hours`.
    Drift { hours: usize },
    /// r_h = h * the last hourly change of the 24-hour simple moving average.
    SmaTrend,
    /// r_h = h * the last hourly change of the 24-hour EMA.
    EmaTrend,
    /// Ridge regression of every horizon's return on the standardized features at the origin.
    Linear(Ridge),
}

impl PointModel {
    /// Whether the model reads features (else it needs only prices).
    pub fn reads_features(&self) -> bool {
        matches!(self, PointModel::Linear(_))
    }
}

impl Forecaster for PointModel {
    fn fit(
        &mut self,
        series: &[CoinSeries],
        train: &Range<i64>,
        lookback: usize,
        horizon: usize,
    ) -> Result<FitReport, ModelError> {
        match self {
            PointModel::Linear(ridge) => ridge.fit(series, train, lookback, horizon),
            _ => Ok(FitReport::default()),
        }
    }

    fn predict(&self, s: &CoinSeries, i: usize, out: &mut [f64]) {
        match self {
            PointModel::Persistence => out.fill(0.0),
            PointModel::Drift { hours } => {
                let from = i.saturating_sub(*hours).max(1);
                let (sum, n) = (from..=i)
                    .map(|j| s.hourly_return(j))
                    .filter(|r| r.is_finite())
                    .fold((0.0, 0usize), |(a, n), r| (a + r, n + 1));
                extrapolate(if n > 0 { sum / n as f64 } else { 0.0 }, out);
            }
            PointModel::SmaTrend => {
                let sma = |end: usize| -> f64 {
                    if end < 23 {
                        return f64::NAN;
                    }
                    s.price[end - 23..=end].iter().sum::<f64>() / 24.0
                };
                let slope = if i >= 24 {
                    (sma(i) / sma(i - 1)).ln()
                } else {
                    f64::NAN
                };
                extrapolate(if slope.is_finite() { slope } else { 0.0 }, out);
            }
            PointModel::EmaTrend => {
                let slope = if i >= 1 {
                    (s.ema24[i] / s.ema24[i - 1]).ln()
                } else {
                    f64::NAN
                };
                extrapolate(if slope.is_finite() { slope } else { 0.0 }, out);
            }
            PointModel::Linear(ridge) => ridge.predict(s, i, out),
        }
    }

    fn into_point(self: Box<Self>) -> Option<PointModel> {
        Some(*self)
    }
}

fn extrapolate(per_hour: f64, out: &mut [f64]) {
    for (k, o) in out.iter_mut().enumerate() {
        *o = per_hour * (k + 1) as f64;
    }
}

/// Ridge regression of every horizon's return on the standardized features at the origin, with
/// an unpenalized intercept; standardization uses the training origins only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ridge {
    pub lambda: f64,
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// `[feature][horizon]`.
    coef: Vec<f64>,
    /// `[horizon]`.
    intercept: Vec<f64>,
}

impl Ridge {
    pub fn new(lambda: f64) -> Self {
        Self {
            lambda,
            mean: Vec::new(),
            scale: Vec::new(),
            coef: Vec::new(),
            intercept: Vec::new(),
        }
    }

    fn fit(
        &mut self,
        series: &[CoinSeries],
        range: &Range<i64>,
        lookback: usize,
        horizon: usize,
    ) -> Result<FitReport, ModelError> {
        let train: Vec<(&CoinSeries, Vec<usize>)> = series
            .iter()
            .map(|s| (s, s.origins_in(range, lookback, horizon)))
            .filter(|(_, o)| !o.is_empty())
            .collect();
        let Some((first, _)) = train.first() else {
            return Err(ModelError::TooFewSamples { needed: 1, have: 0 });
        };
        let f = first.feature_names.len();
        let n: usize = train.iter().map(|(_, o)| o.len()).sum();
        if n <= f + 1 {
            return Err(ModelError::TooFewSamples {
                needed: f + 2,
                have: n,
            });
        }
        // Means and scales of the features.
        let (mut mean, mut sq) = (vec![0.0; f], vec![0.0; f]);
        for (s, origins) in &train {
            for &i in origins {
                for (k, v) in s.row(i).iter().enumerate() {
                    mean[k] += v;
                    sq[k] += v * v;
                }
            }
        }
        let nf = n as f64;
        let scale: Vec<f64> = (0..f)
            .map(|k| {
                mean[k] /= nf;
                let var = (sq[k] / nf - mean[k] * mean[k]).max(0.0);
                if var > 1e-24 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        // Normal equations on centered targets: (Z'Z + lambda I) B = Z'(Y - mean Y).
        let mut ymean = vec![0.0; horizon];
        for (s, origins) in &train {
            for &i in origins {
                for (h, y) in ymean.iter_mut().enumerate() {
                    *y += s.target(i, h + 1);
                }
            }
        }
        ymean.iter_mut().for_each(|y| *y /= nf);
        let mut a = vec![0.0; f * f];
        let mut b = vec![0.0; f * horizon];
        let mut z = vec![0.0; f];
        for (s, origins) in &train {
            for &i in origins {
                for (k, v) in s.row(i).iter().enumerate() {
                    z[k] = (v - mean[k]) / scale[k];
                }
                for r in 0..f {
                    for c in 0..=r {
                        a[r * f + c] += z[r] * z[c];
                    }
                    for h in 0..horizon {
                        b[r * horizon + h] += z[r] * (s.target(i, h + 1) - ymean[h]);
                    }
                }
            }
        }
        for r in 0..f {
            for c in 0..r {
                a[c * f + r] = a[r * f + c];
            }
            a[r * f + r] += self.lambda;
        }
        cholesky_solve(&mut a, f, &mut b, horizon)?;
        self.mean = mean;
        self.scale = scale;
        self.coef = b;
        self.intercept = ymean;
        Ok(FitReport {
            samples: n,
            ..FitReport::default()
        })
    }

    fn predict(&self, s: &CoinSeries, i: usize, out: &mut [f64]) {
        let horizon = self.intercept.len();
        for (h, o) in out.iter_mut().enumerate() {
            if h >= horizon {
                *o = 0.0;
                continue;
            }
            *o = self.intercept[h]
                + s.row(i)
                    .iter()
                    .enumerate()
                    .map(|(k, v)| (v - self.mean[k]) / self.scale[k] * self.coef[k * horizon + h])
                    .sum::<f64>();
        }
    }
}

/// Solves A X = B in place (A symmetric positive definite, n x n; B n x m; X replaces B).
fn cholesky_solve(a: &mut [f64], n: usize, b: &mut [f64], m: usize) -> Result<(), ModelError> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err(ModelError::Numeric(
                "the ridge system is not positive definite".into(),
            ));
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / d;
        }
    }
    for c in 0..m {
        for i in 0..n {
            let mut v = b[i * m + c];
            for k in 0..i {
                v -= a[i * n + k] * b[k * m + c];
            }
            b[i * m + c] = v / a[i * n + i];
        }
        for i in (0..n).rev() {
            let mut v = b[i * m + c];
            for k in i + 1..n {
                v -= a[k * n + i] * b[k * m + c];
            }
            b[i * m + c] = v / a[i * n + i];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(price: Vec<f64>, feature: Vec<f64>) -> CoinSeries {
        CoinSeries::from_arrays("c", 0, price, feature, vec!["x".into()])
    }

    #[test]
    fn cholesky_solves_a_small_system() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        cholesky_solve(&mut a, 2, &mut b, 1).expect("spd");
        // [4 2; 2 3] x = [2; 1]  =>  x = [0.5, 0]
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12, "{b:?}");
    }

    #[test]
    fn drift_extrapolates_the_mean_log_return() {
        let price: Vec<f64> = (0..50).map(|i| 100.0 * (0.01 * i as f64).exp()).collect();
        let s = series(price, vec![0.0; 50]);
        let mut out = [0.0; 3];
        PointModel::Drift { hours: 10 }.predict(&s, 30, &mut out);
        for (k, o) in out.iter().enumerate() {
            assert!((o - 0.01 * (k + 1) as f64).abs() < 1e-12);
        }
    }

    #[test]
    fn ridge_recovers_a_linear_signal() {
        // Next-hour return = 0.002 * x, with x alternating; price follows it exactly.
        let n = 400;
        let x: Vec<f64> = (0..n).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
        let mut price = vec![100.0];
        for i in 0..n - 1 {
            let last = price[i];
            price.push(last * (0.002 * x[i]).exp());
        }
        let s = series(price, x.clone());
        let mut model = PointModel::Linear(Ridge::new(1e-6));
        model
            .fit(std::slice::from_ref(&s), &(0..n as i64 - 30), 1, 24)
            .expect("fit");
        let mut out = [0.0; 24];
        model.predict(&s, n - 10, &mut out);
        assert!((out[0] - 0.002 * x[n - 10]).abs() < 1e-6, "{}", out[0]);
    }
}
