//! A candidate's numbers on the walk-forward windows: its intervals as served and plain, the
//! hours its ACI level was pinned, its point MSE; and how candidates rank.

use std::cmp::Ordering;

use serde::Serialize;

use super::super::evaluate::{EvalRow, Evaluation};

/// Interval scores closer than this share are a tie, broken by sharpness.
pub const SCORE_TIE: f64 = 0.001;

/// Interval figures of a candidate over every coin and horizon.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalFigures {
    /// Mean interval score (percent of the price, lower is better).
    pub interval_score: f64,
    /// Per coin: coverage averaged over the horizons.
    pub coverage: Vec<(String, f64)>,
    /// Mean width relative to the price (sharpness: lower is sharper).
    pub width: f64,
}

impl IntervalFigures {
    fn of(eval: &Evaluation, rows: &[&EvalRow]) -> Self {
        let coverage = eval
            .coins
            .iter()
            .filter_map(|coin| {
                let c = finite_mean(
                    rows.iter()
                        .filter(|r| &r.coin_id == coin)
                        .map(|r| r.metrics.coverage),
                );
                c.is_finite().then(|| (coin.clone(), c))
            })
            .collect();
        Self {
            interval_score: finite_mean(rows.iter().map(|r| r.metrics.interval_score)),
            coverage,
            width: finite_mean(rows.iter().map(|r| r.metrics.width)),
        }
    }

    /// The lowest and highest coin coverage.
    pub fn coverage_range(&self) -> (f64, f64) {
        self.coverage
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
                (lo.min(*v), hi.max(*v))
            })
    }
}

fn finite_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// A candidate's numbers on the walk-forward windows.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecard {
    pub label: String,
    /// As served (ACI levels): what the gate judges.
    pub served: IntervalFigures,
    /// Plain conformal at the nominal level: shown beside.
    pub plain: IntervalFigures,
    /// Per coin: the share of served forecasts (over the horizons) drawn with the ACI level
    /// pinned at a bound.
    pub pinned: Vec<(String, f64)>,
    /// Mean over coins and horizons of MSE / MSE(persistence).
    pub mse_ratio: f64,
    /// Mean skill vs persistence (1 − MSE ratio), for continuity with older verdicts.
    pub skill: f64,
    pub is_persistence: bool,
}

impl Scorecard {
    /// The served mean interval score: what candidates are ranked by.
    pub fn interval_score(&self) -> f64 {
        self.served.interval_score
    }

    /// The candidate's card, when it has rows with and without ACI.
    pub fn of(eval: &Evaluation, label: &str) -> Option<Self> {
        let plain: Vec<&EvalRow> = eval.rows.iter().filter(|r| r.model == label).collect();
        let served: Vec<&EvalRow> = eval.aci_rows.iter().filter(|r| r.model == label).collect();
        if plain.is_empty() || served.is_empty() {
            return None;
        }
        let pinned = eval
            .coins
            .iter()
            .map(|coin| {
                let share = finite_mean(
                    served
                        .iter()
                        .filter(|r| &r.coin_id == coin)
                        .filter_map(|r| r.pinned_share),
                );
                (coin.clone(), if share.is_finite() { share } else { 0.0 })
            })
            .collect();
        let skill = finite_mean(plain.iter().map(|r| r.metrics.skill));
        let is_persistence = eval
            .candidates
            .iter()
            .find(|c| c.label == label)
            .is_some_and(|c| c.recipe.is_persistence());
        Some(Self {
            label: label.to_string(),
            served: IntervalFigures::of(eval, &served),
            plain: IntervalFigures::of(eval, &plain),
            pinned,
            mse_ratio: 1.0 - skill,
            skill,
            is_persistence,
        })
    }

    /// The largest share of pinned forecasts on any coin.
    pub fn most_pinned(&self) -> f64 {
        self.pinned.iter().map(|(_, p)| *p).fold(0.0, f64::max)
    }

    /// Lower served interval score first; within [`SCORE_TIE`], narrower served intervals.
    pub(super) fn rank(&self, other: &Self) -> Ordering {
        let (a, b) = (self.interval_score(), other.interval_score());
        if (a - b).abs() <= SCORE_TIE * a.abs().min(b.abs()) {
            self.served
                .width
                .total_cmp(&other.served.width)
                .then(a.total_cmp(&b))
        } else {
            a.total_cmp(&b)
        }
    }
}
