//! Forecast metrics per horizon. Point errors in price space (predicted price = price_t *
//! exp(r_hat)); interval and quantile scores on the log return, in percent, so that they compare
//! across coins and prices.

use serde::Serialize;

/// One evaluated forecast: the price at the origin, the actual and predicted log return, and
/// optionally an interval on the log return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub price: f64,
    pub actual: f64,
    pub predicted: f64,
    pub interval: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HorizonMetrics {
    pub horizon: u32,
    pub n: usize,
    pub mae: f64,
    pub rmse: f64,
    /// Percent.
    pub mape: f64,
    /// MAE over the MAE of persistence on the training data (scale-free; < 1 beats naive in-sample).
    pub mase: f64,
    /// Share of hits on the sign of the move; a forecast of exactly no move counts as half a hit.
    pub directional_accuracy: f64,
    /// 1 - MSE / MSE(persistence) on the same samples: > 0 beats persistence.
    pub skill: f64,
    /// Share of actual prices inside the interval (NaN without intervals).
    pub coverage: f64,
    /// Mean interval width relative to the price (NaN without intervals).
    pub width: f64,
    /// Mean interval (Winkler) score of the central interval on the log return, in percent:
    /// width + (2/α)·miss. Lower is better; it rewards narrow intervals that still cover.
    pub interval_score: f64,
    /// Mean pinball loss of the interval's ends (quantiles α/2 and 1−α/2) and the point forecast
    /// (the median) on the log return, in percent. Lower is better.
    pub pinball: f64,
}

/// Pinball loss of quantile forecast `q` at level `tau` for the outcome `y`.
pub fn pinball(tau: f64, y: f64, q: f64) -> f64 {
    let e = y - q;
    if e >= 0.0 {
        tau * e
    } else {
        (tau - 1.0) * e
    }
}

/// Interval (Winkler) score of `[lo, hi]` at miss rate `alpha` for the outcome `y`.
pub fn interval_score(alpha: f64, y: f64, lo: f64, hi: f64) -> f64 {
    (hi - lo) + (2.0 / alpha) * ((lo - y).max(0.0) + (y - hi).max(0.0))
}

/// Metrics of `scored` forecasts at one horizon; `naive_mae` is the in-sample MAE of persistence,
/// `level` the intervals' nominal coverage.
pub fn horizon_metrics(
    horizon: u32,
    scored: &[Scored],
    naive_mae: f64,
    level: f64,
) -> HorizonMetrics {
    let n = scored.len();
    if n == 0 {
        return HorizonMetrics {
            horizon,
            n,
            mae: f64::NAN,
            rmse: f64::NAN,
            mape: f64::NAN,
            mase: f64::NAN,
            directional_accuracy: f64::NAN,
            skill: f64::NAN,
            coverage: f64::NAN,
            width: f64::NAN,
            interval_score: f64::NAN,
            pinball: f64::NAN,
        };
    }
    let alpha = 1.0 - level;
    let nf = n as f64;
    let (mut abs, mut sq, mut pct, mut sq_naive, mut hits) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut covered, mut width, mut with_interval) = (0.0, 0.0, 0usize);
    let (mut winkler, mut quantile_loss) = (0.0, 0.0);
    for s in scored {
        let actual = s.price * s.actual.exp();
        let forecast = s.price * s.predicted.exp();
        let err = actual - forecast;
        abs += err.abs();
        sq += err * err;
        pct += (err / actual).abs();
        sq_naive += (actual - s.price).powi(2);
        hits += if s.predicted == 0.0 || s.actual == 0.0 {
            0.5
        } else if (s.predicted > 0.0) == (s.actual > 0.0) {
            1.0
        } else {
            0.0
        };
        if let Some((lo, hi)) = s.interval {
            with_interval += 1;
            if (lo..=hi).contains(&s.actual) {
                covered += 1.0;
            }
            width += hi.exp() - lo.exp();
            winkler += interval_score(alpha, s.actual, lo, hi);
            quantile_loss += (pinball(alpha / 2.0, s.actual, lo)
                + pinball(0.5, s.actual, s.predicted)
                + pinball(1.0 - alpha / 2.0, s.actual, hi))
                / 3.0;
        }
    }
    let mae = abs / nf;
    let interval_share = |x: f64| {
        if with_interval == 0 {
            f64::NAN
        } else {
            x / with_interval as f64
        }
    };
    HorizonMetrics {
        horizon,
        n,
        mae,
        rmse: (sq / nf).sqrt(),
        mape: 100.0 * pct / nf,
        mase: mae / naive_mae,
        directional_accuracy: hits / nf,
        skill: if sq_naive > 0.0 {
            1.0 - sq / sq_naive
        } else {
            f64::NAN
        },
        coverage: interval_share(covered),
        width: interval_share(width),
        interval_score: 100.0 * interval_share(winkler),
        pinball: 100.0 * interval_share(quantile_loss),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(price: f64, actual: f64, predicted: f64) -> Scored {
        Scored {
            price,
            actual,
            predicted,
            interval: None,
        }
    }

    #[test]
    fn persistence_has_zero_skill_and_half_direction() {
        let scored = [s(100.0, 0.01, 0.0), s(100.0, -0.02, 0.0)];
        let m = horizon_metrics(1, &scored, 1.0, 0.9);
        assert!((m.skill - 0.0).abs() < 1e-12);
        assert!((m.directional_accuracy - 0.5).abs() < 1e-12);
        let expected_mae =
            ((100.0 * 0.01f64.exp() - 100.0) + (100.0 - 100.0 * (-0.02f64).exp())) / 2.0;
        assert!((m.mae - expected_mae).abs() < 1e-9);
        assert!(m.coverage.is_nan());
    }

    #[test]
    fn a_perfect_forecast_has_skill_one() {
        let scored = [s(50.0, 0.03, 0.03), s(60.0, -0.01, -0.01)];
        let m = horizon_metrics(3, &scored, 2.0, 0.9);
        assert_eq!(m.mae, 0.0);
        assert!((m.skill - 1.0).abs() < 1e-12);
        assert_eq!(m.directional_accuracy, 1.0);
        assert_eq!(m.mase, 0.0);
    }

    #[test]
    fn coverage_and_width_of_intervals() {
        let mut a = s(100.0, 0.01, 0.0);
        a.interval = Some((-0.02, 0.02));
        let mut b = s(100.0, 0.05, 0.0);
        b.interval = Some((-0.02, 0.02));
        let m = horizon_metrics(1, &[a, b], 1.0, 0.9);
        assert_eq!(m.coverage, 0.5);
        assert!((m.width - (0.02f64.exp() - (-0.02f64).exp())).abs() < 1e-12);
        // Winkler: both 0.04 wide; b misses by 0.03, penalized 2/0.1 = 20 times.
        assert!((m.interval_score - 100.0 * (0.04 + 20.0 * 0.03 / 2.0)).abs() < 1e-9);
    }

    #[test]
    fn pinball_weighs_misses_by_the_level() {
        assert!((pinball(0.05, 1.0, 0.0) - 0.05).abs() < 1e-15);
        assert!((pinball(0.05, -1.0, 0.0) - 0.95).abs() < 1e-15);
        assert_eq!(interval_score(0.1, 0.0, -1.0, 1.0), 2.0);
    }
}
