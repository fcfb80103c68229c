//! What a forecast is, whoever made it: a point log return per horizon and an interval
//! r̂ ± q·σ̂, where σ̂ is the model's scale at the origin and q the conformal multiplier of its
//! calibration (per coin, or pooled over coins for a coin it was not calibrated on).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::evaluate::conformal_quantile;

/// A forecast of every horizon from a coin's latest hour.
#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    pub coin_id: String,
    /// The hour the inputs end at (hours since the epoch).
    pub as_of_hour: i64,
    pub current_price: f64,
    pub interval_level: f64,
    pub horizons: Vec<HorizonForecast>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HorizonForecast {
    pub hours_ahead: usize,
    pub log_return: f64,
    pub price: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Builds the forecast from point returns, scales and multipliers (one of each per horizon).
pub fn interval_forecast(
    coin_id: &str,
    as_of_hour: i64,
    price: f64,
    level: f64,
    returns: &[f64],
    scales: &[f64],
    multipliers: &[f64],
) -> Forecast {
    let horizons = returns
        .iter()
        .enumerate()
        .map(|(h, &r)| {
            let half = scales.get(h).copied().unwrap_or(f64::NAN)
                * multipliers.get(h).copied().unwrap_or(f64::NAN);
            HorizonForecast {
                hours_ahead: h + 1,
                log_return: r,
                price: price * r.exp(),
                lower: price * (r - half).exp(),
                upper: price * (r + half).exp(),
            }
        })
        .collect();
    Forecast {
        coin_id: coin_id.to_string(),
        as_of_hour,
        current_price: price,
        interval_level: level,
        horizons,
    }
}

/// Conformal multipliers: the `level` quantile of normalized residuals |r − r̂| / σ̂, per coin
/// and horizon, and pooled over coins for the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub level: f64,
    /// Where the multipliers come from, in words (shown on the models page).
    pub source: String,
    pub per_coin: BTreeMap<String, Vec<f64>>,
    pub pooled: Vec<f64>,
    /// Per coin: the fewest residuals behind any of its horizons.
    pub residuals: BTreeMap<String, usize>,
}

/// A coin needs this many residuals per horizon for multipliers of its own (else: pooled).
pub const MIN_CALIBRATION_RESIDUALS: usize = 50;

impl Calibration {
    /// The multipliers for a coin: its own, or the pooled ones.
    pub fn multipliers(&self, coin: &str) -> &[f64] {
        self.per_coin.get(coin).unwrap_or(&self.pooled)
    }

    /// Before any residual exists: a Gaussian interval, q = z_{(1+level)/2} on every horizon.
    pub fn gaussian(level: f64, horizon: usize) -> Self {
        let z = normal_quantile(0.5 + level / 2.0);
        Self {
            level,
            source: format!(
                "uncalibrated: Gaussian z = {z:.3} for {:.0}% (no walk-forward residuals yet)",
                level * 100.0
            ),
            per_coin: BTreeMap::new(),
            pooled: vec![z; horizon],
            residuals: BTreeMap::new(),
        }
    }

    /// From normalized residuals `[coin][horizon]`.
    pub fn from_residuals(
        level: f64,
        residuals: &[(String, Vec<Vec<f64>>)],
        source: String,
    ) -> Self {
        let horizon = residuals.first().map_or(0, |(_, r)| r.len());
        let mut per_coin = BTreeMap::new();
        let mut counts = BTreeMap::new();
        let mut pooled: Vec<Vec<f64>> = vec![Vec::new(); horizon];
        for (coin, by_h) in residuals {
            let fewest = by_h.iter().map(Vec::len).min().unwrap_or(0);
            counts.insert(coin.clone(), fewest);
            for (h, r) in by_h.iter().enumerate() {
                if let Some(p) = pooled.get_mut(h) {
                    p.extend_from_slice(r);
                }
            }
            if fewest >= MIN_CALIBRATION_RESIDUALS {
                let q = by_h
                    .iter()
                    .map(|r| conformal_quantile(&mut r.clone(), level))
                    .collect();
                per_coin.insert(coin.clone(), q);
            }
        }
        let pooled = pooled
            .iter_mut()
            .map(|r| conformal_quantile(r, level))
            .collect();
        Self {
            level,
            source,
            per_coin,
            pooled,
            residuals: counts,
        }
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    if !(0.0..1.0).contains(&p) || p == 0.0 {
        return f64::NAN;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.95) - 1.644_853_626_951).abs() < 1e-8);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.005) + 2.575_829_303_549).abs() < 1e-8);
    }

    #[test]
    fn a_coin_with_too_few_residuals_uses_the_pooled_multipliers() {
        let many: Vec<f64> = (1..=100).map(f64::from).collect();
        let few = vec![1000.0; 10];
        let c = Calibration::from_residuals(
            0.9,
            &[("a".into(), vec![many]), ("b".into(), vec![few])],
            "test".into(),
        );
        // ceil(101 * 0.9) = the 91st smallest.
        assert_eq!(c.multipliers("a"), &[91.0]);
        assert_eq!(c.multipliers("b"), c.pooled.as_slice());
        assert_eq!(c.multipliers("unknown"), c.pooled.as_slice());
        assert_eq!(c.residuals["b"], 10);
    }
}
