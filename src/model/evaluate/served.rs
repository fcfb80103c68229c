//! Drawing the test forecasts' intervals: at the nominal level of each refit's calibration
//! (plain conformal), and as served, with ACI replayed by the live rule.

use std::collections::VecDeque;

use super::super::forecast::{Aci, Calibration, ACI_ALPHA_RANGE};
use super::super::metrics::Scored;
use super::TestForecast;

fn scored_at(t: &TestForecast, q: f64) -> Scored {
    let (lo, hi) = t.anchor.bounds(q);
    Scored {
        price: t.price,
        actual: t.actual,
        predicted: t.predicted,
        interval: (lo.is_finite() && hi.is_finite()).then_some((lo, hi)),
    }
}

/// Intervals at the nominal level of the refit's calibration.
pub(super) fn nominal_scored(
    tests: &[TestForecast],
    calibrations: &[Calibration],
    coin: &str,
    h: usize,
) -> Vec<Scored> {
    tests
        .iter()
        .map(|t| {
            let cal = &calibrations[t.refit];
            scored_at(t, cal.quantile(coin, h, cal.level))
        })
        .collect()
}

/// A coin's and horizon's test forecasts as served: each drawn at the ACI level in force at its
/// origin.
pub(super) struct Served {
    pub(super) scored: Vec<Scored>,
    pub(super) levels: Vec<f64>,
}

impl Served {
    /// Forecasts drawn with the level pinned at a bound of [`ACI_ALPHA_RANGE`].
    pub(super) fn pinned(&self) -> usize {
        let (lowest, highest) = (1.0 - ACI_ALPHA_RANGE.1, 1.0 - ACI_ALPHA_RANGE.0);
        self.levels
            .iter()
            .filter(|&&l| l <= lowest || l >= highest)
            .count()
    }
}

/// Intervals at the level ACI sets, by the live rule (`monitor::coverage`): one state for the
/// recipe through every refit, starting at nominal; an outcome is known h hours after its origin
/// (h = the horizon, 1-based) and judged then, at the level in force then; an outcome whose
/// origin came before a refit that is in force when it is known is judged by no one (a version
/// judges only origins after its training).
pub(super) fn aci_scored(
    tests: &[TestForecast],
    calibrations: &[Calibration],
    coin: &str,
    h: usize,
    gamma: f64,
) -> Served {
    let level = calibrations.first().map_or(0.9, |c| c.level);
    let mut aci = Aci::for_horizon(level, gamma, h + 1);
    let delay = h as i64 + 1;
    // Forecasts whose outcome is not known yet: (known at, conformity score, refit).
    let mut pending: VecDeque<(i64, f64, usize)> = VecDeque::new();
    // The first test origin of each refit: from there it is the version in force.
    let mut refit_from: Vec<i64> = Vec::new();
    let mut served = Served {
        scored: Vec::with_capacity(tests.len()),
        levels: Vec::with_capacity(tests.len()),
    };
    for t in tests {
        if refit_from.len() <= t.refit {
            refit_from.resize(t.refit + 1, t.origin_hour);
        }
        while let Some(&(known_at, score, refit)) = pending.front() {
            if known_at > t.origin_hour {
                break;
            }
            pending.pop_front();
            let judged = refit_from
                .get(refit + 1)
                .is_none_or(|&next| known_at < next);
            let q = calibrations[refit].quantile(coin, h, aci.level());
            if judged && q.is_finite() {
                aci.update(score > q);
            }
        }
        let q = calibrations[t.refit].quantile(coin, h, aci.level());
        if t.score.is_finite() {
            pending.push_back((t.origin_hour + delay, t.score, t.refit));
        }
        served.scored.push(scored_at(t, q));
        served.levels.push(aci.level());
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forecast::{Anchor, CalibrationMode};

    /// The live rule, replayed: outcomes judged when known (2 h after their origin here), one
    /// level through the refit, and the outcomes in flight when the refit takes over dropped.
    #[test]
    fn aci_replays_the_live_rule_across_a_refit() {
        let calibration = || {
            let scores: Vec<f64> = (1..=200).map(f64::from).collect();
            Calibration::from_scores(
                0.9,
                CalibrationMode::Scaled,
                &[("c".into(), vec![scores.clone(), scores])],
                String::new(),
            )
        };
        let calibrations = [calibration(), calibration()];
        // Every outcome falls far outside: each judged one is a miss.
        let tests: Vec<TestForecast> = (0..20)
            .map(|hour| TestForecast {
                origin_hour: hour,
                price: 1.0,
                actual: 0.5,
                predicted: 0.0,
                anchor: Anchor::point(0.0, 1.0),
                score: 1e6,
                refit: usize::from(hour >= 10),
            })
            .collect();
        let gamma = 0.01;
        let served = aci_scored(&tests, &calibrations, "c", 1, gamma);
        // Origin o is known at o + 2. Refit 1 is in force from hour 10: origins 8 and 9 (known
        // at 10 and 11) are judged by no one; origin 10 is judged at 12 by refit 1.
        let judged_before = |t: i64| match t {
            0..=9 => (t - 1).max(0),
            10 | 11 => 8,
            _ => 8 + (t - 11),
        };
        for (t, level) in (0..20).zip(&served.levels) {
            let expected = 0.9 + (gamma / 2.0) * 0.9 * judged_before(t) as f64;
            assert!(
                (level - expected).abs() < 1e-12,
                "hour {t}: {level} vs {expected}"
            );
        }
        assert_eq!(served.pinned(), 0);
        // A step large enough pins the level at 99.5% after the first misses.
        let pinned = aci_scored(&tests, &calibrations, "c", 1, 0.1);
        assert!(pinned.pinned() > 10, "{:?}", pinned.levels);
        assert!(pinned.levels.iter().all(|l| *l <= 0.995 + 1e-12));
    }
}
