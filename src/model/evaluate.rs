//! Walk-forward evaluation: every forecaster on the same folds, the same origins, with
//! split-conformal intervals calibrated on the newest part of each fold's training data.

use serde::{Deserialize, Serialize};

use super::baselines::{Drift, EmaTrend, Forecaster, Persistence, Ridge, SmaTrend};
use super::dataset::CoinSeries;
use super::metrics::{horizon_metrics, HorizonMetrics, Scored};
use super::windows::WalkForward;
use super::ModelError;

/// `models/baselines.toml`: the walk-forward protocol and the baselines' settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub horizon: usize,
    pub windows: u32,
    pub step_hours: i64,
    pub lookback_hours: usize,
    pub calibration_share: f64,
    pub interval_level: f64,
    pub drift_hours: usize,
    pub ridge_lambda: f64,
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
        if self.lookback_hours == 0 || self.windows == 0 || self.step_hours <= 0 {
            return Err(bad(
                "`lookback_hours`, `windows` and `step_hours` must be positive",
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
        Ok(())
    }

    /// Hours between the last training origin and the first test origin.
    pub fn gap(&self) -> i64 {
        (self.lookback_hours + self.horizon) as i64
    }

    /// The walk-forward folds over the coins' common calendar (absolute hours).
    pub fn folds(&self, series: &[CoinSeries]) -> Result<Vec<super::windows::Fold>, ModelError> {
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
        let wf = WalkForward {
            windows: self.windows,
            step_hours: self.step_hours,
            gap_hours: self.gap(),
        };
        // A training window needs room for its calibration part, a gap and something to fit on.
        Ok(wf.folds(start..end - self.horizon as i64, 2 * self.gap() + 14 * 24)?)
    }

    /// The baselines, fresh.
    pub fn baselines(&self) -> Vec<Box<dyn Forecaster>> {
        vec![
            Box::new(Persistence),
            Box::new(Drift {
                hours: self.drift_hours,
            }),
            Box::new(SmaTrend),
            Box::new(EmaTrend),
            Box::new(Ridge::new(self.ridge_lambda, self.horizon)),
        ]
    }
}

/// Metrics of one forecaster on one coin at one horizon, over every fold.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub coin_id: String,
    pub model: String,
    #[serde(flatten)]
    pub metrics: HorizonMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub folds: usize,
    pub test_from_hour: i64,
    pub test_to_hour: i64,
    pub rows: Vec<EvalRow>,
}

/// Runs every forecaster through the same walk-forward folds over all coins.
pub fn walk_forward(
    series: &[CoinSeries],
    forecasters: &mut [Box<dyn Forecaster>],
    p: &Protocol,
) -> Result<Evaluation, ModelError> {
    let folds = p.folds(series)?;
    let (l, hz) = (p.lookback_hours, p.horizon);
    let models = forecasters.len();
    // scored[model][coin][h]
    let mut scored: Vec<Vec<Vec<Vec<Scored>>>> =
        vec![vec![vec![Vec::new(); hz]; series.len()]; models];
    let mut naive = vec![vec![(0.0, 0usize); hz]; series.len()];
    for fold in &folds {
        let train_len = fold.train.end - fold.train.start;
        let cal_start = fold.train.end - (train_len as f64 * p.calibration_share) as i64;
        let proper = fold.train.start..cal_start - p.gap();
        let calibration = cal_start..fold.train.end;
        let fit_set: Vec<(&CoinSeries, Vec<usize>)> = series
            .iter()
            .map(|s| (s, s.origins_in(&proper, l, hz)))
            .filter(|(_, o)| !o.is_empty())
            .collect();
        if fit_set.is_empty() {
            continue;
        }
        for (c, s) in series.iter().enumerate() {
            for &i in &s.origins_in(&proper, l, hz) {
                for (h, acc) in naive[c].iter_mut().enumerate() {
                    acc.0 += (s.price[i + h + 1] - s.price[i]).abs();
                    acc.1 += 1;
                }
            }
        }
        for (m, model) in forecasters.iter_mut().enumerate() {
            model.fit(&fit_set)?;
            // Split-conformal per coin (volatility differs by coin): the level-quantile of
            // |residual| on that coin's calibration origins, per horizon.
            let widths: Vec<Vec<f64>> = series
                .iter()
                .map(|s| {
                    if let Some(w) = model.fixed_widths(s) {
                        return Ok(w);
                    }
                    let origins = s.origins_in(&calibration, l, hz);
                    let preds = model.predict_many(s, &origins, hz)?;
                    let mut residuals = vec![Vec::new(); hz];
                    for (pred, &i) in preds.iter().zip(&origins) {
                        for (h, r) in residuals.iter_mut().enumerate() {
                            r.push((s.target(i, h + 1) - pred[h]).abs());
                        }
                    }
                    Ok(residuals
                        .iter_mut()
                        .map(|r| conformal_quantile(r, p.interval_level))
                        .collect())
                })
                .collect::<Result<_, ModelError>>()?;
            for (c, s) in series.iter().enumerate() {
                let origins = s.origins_in(&fold.test, l, hz);
                let preds = model.predict_many(s, &origins, hz)?;
                for (pred, &i) in preds.iter().zip(&origins) {
                    for h in 0..hz {
                        let w = widths[c].get(h).copied().unwrap_or(f64::NAN);
                        scored[m][c][h].push(Scored {
                            price: s.price[i],
                            actual: s.target(i, h + 1),
                            predicted: pred[h],
                            interval: w.is_finite().then(|| (pred[h] - w, pred[h] + w)),
                        });
                    }
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (c, s) in series.iter().enumerate() {
        for (m, model) in forecasters.iter().enumerate() {
            for h in 0..hz {
                let (sum, n) = naive[c][h];
                let naive_mae = if n > 0 { sum / n as f64 } else { f64::NAN };
                rows.push(EvalRow {
                    coin_id: s.coin_id.clone(),
                    model: model.name().to_string(),
                    metrics: horizon_metrics(h as u32 + 1, &scored[m][c][h], naive_mae),
                });
            }
        }
    }
    Ok(Evaluation {
        folds: folds.len(),
        test_from_hour: folds.first().map_or(0, |f| f.test.start),
        test_to_hour: folds.last().map_or(0, |f| f.test.end),
        rows,
    })
}

/// The ceil((n+1) * level)-th smallest value: split-conformal's finite-sample quantile.
/// NaN without residuals; the largest one when n is too small for the level.
pub fn conformal_quantile(values: &mut [f64], level: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() + 1) as f64 * level).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_protocol_parses() {
        let p = Protocol::parse("models/baselines.toml", DEFAULT_PROTOCOL).expect("valid");
        assert_eq!(p.horizon, 24);
        assert_eq!(p.gap(), 72);
        let err = Protocol::parse(
            "x.toml",
            &DEFAULT_PROTOCOL.replace("horizon = 24", "horizon = 48"),
        )
        .expect_err("out of range")
        .to_string();
        assert!(err.contains("x.toml") && err.contains("horizon"), "{err}");
        let err = Protocol::parse("y.toml", &format!("{DEFAULT_PROTOCOL}\nwindow = 3\n"))
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("window"), "{err}");
    }

    #[test]
    fn conformal_rank() {
        let mut v: Vec<f64> = (1..=9).map(f64::from).collect();
        // ceil(10 * 0.9) = 9th smallest.
        assert_eq!(conformal_quantile(&mut v, 0.9), 9.0);
        let mut v: Vec<f64> = (1..=99).map(f64::from).collect();
        assert_eq!(conformal_quantile(&mut v, 0.9), 90.0);
        assert!(conformal_quantile(&mut [], 0.9).is_nan());
    }

    /// A random walk with drift-free noise: no baseline can beat persistence by much, the
    /// intervals cover close to their level, and a drifting walk is caught by `drift`.
    #[test]
    fn walk_forward_on_synthetic_walks() {
        let mut state = 42u64;
        let mut noise = || {
            // xorshift + Box-Muller: deterministic Gaussian noise.
            let mut u = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64
            };
            let (a, b) = (u().max(1e-12), u());
            (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
        };
        let n = 6000;
        let make = |name: &str, drift: f64, noise: &mut dyn FnMut() -> f64| {
            let mut price = vec![100.0];
            for i in 1..n {
                let last: f64 = price[i - 1];
                price.push(last * (drift + 0.01 * noise()).exp());
            }
            let feature: Vec<f64> = (0..n).map(|i| (i % 24) as f64).collect();
            CoinSeries::from_arrays(name, 400_000, price, feature, vec!["hour".into()])
        };
        let walk = make("walk", 0.0, &mut noise);
        let trend = make("trend", 0.002, &mut noise);
        let mut p = Protocol::parse("t", DEFAULT_PROTOCOL).expect("protocol");
        p.windows = 10;
        p.features = vec!["hour".into()];
        let mut models = p.baselines();
        let eval = walk_forward(&[walk, trend], &mut models, &p).expect("evaluates");
        assert_eq!(eval.folds, 10);
        let get = |coin: &str, model: &str, h: u32| {
            eval.rows
                .iter()
                .find(|r| r.coin_id == coin && r.model == model && r.metrics.horizon == h)
                .map(|r| r.metrics)
                .expect("row")
        };
        let persistence = get("walk", "persistence", 1);
        assert_eq!(persistence.n, 10 * 168);
        assert!(persistence.skill.abs() < 1e-12);
        assert!(
            (persistence.coverage - 0.9).abs() < 0.05,
            "{}",
            persistence.coverage
        );
        assert!(get("walk", "linear", 1).skill < 0.02);
        // On a drifting walk, 24 h ahead, the drift baseline beats persistence.
        assert!(
            get("trend", "drift", 24).skill > 0.05,
            "{:?}",
            get("trend", "drift", 24)
        );
    }
}
