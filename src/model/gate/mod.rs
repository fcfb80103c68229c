//! The promotion gate, readable: every verdict names its numbers, condition by condition.
//!
//! Intervals are judged as they are served: at the level online coverage control (ACI) sets, by
//! the live rule replayed over the walk-forward (`evaluate/served.rs`, `aci_scored`). A candidate
//! qualifies when, on the walk-forward windows,
//! 1. its served coverage (over the whole test period, ACI's warm-up included, averaged over the
//!    horizons) is within `coverage_tolerance` of nominal on every coin;
//! 2. on every coin, at most `max_pinned_share` of its forecasts were drawn with the level pinned
//!    at a bound (there ACI no longer steers, so its coverage guarantee is void: a forecaster
//!    whose raw intervals are far off would pass 1 only by leaning on the bounds);
//! 3. its point MSE is at most `max_mse_ratio` times persistence's (persistence forecasts are
//!    exempt: they are judged against themselves).
//!
//! The best qualified candidate by mean served interval score over every coin and horizon (within
//! [`SCORE_TIE`], the sharper one: narrower served intervals) replaces the champion when its
//! score is better than the champion's on the same windows (by at least `min_improvement`, a
//! share). A champion that no longer qualifies, or whose score persistence beats, is demoted.
//! When nothing qualifies, the floor (the better of the two persistence interval methods) is the
//! champion: a forecast is always served. The plain conformal figures (nominal level, no ACI)
//! are shown beside the served ones in every verdict.
//!
//! `scorecard` holds a candidate's numbers and how candidates rank, `verdict` the conditions;
//! this file the decision.

mod scorecard;
mod verdict;

use serde::{Deserialize, Serialize};

use super::evaluate::Evaluation;
use verdict::pct;

pub use scorecard::{IntervalFigures, Scorecard, SCORE_TIE};
pub use verdict::{judge, Condition, Verdict};

/// The gate's rules are configuration (`[model.gate]`): `config` owns their shape, the gate
/// applies them.
pub use crate::config::GateRules;

/// The floor's two interval methods: constant width or EWMA-scaled.
pub const FLOOR_CANDIDATES: [&str; 2] = ["persistence", "persistence_ewma"];

/// What happens to the champion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ChampionOutcome {
    /// There was none: the pick becomes champion.
    First,
    /// The pick beats it on the interval score: the pick replaces it.
    Replaced,
    /// It fails a condition today, persistence beats it, or its recipe could not run: demoted,
    /// the pick replaces it.
    Demoted { why: String },
    /// Its recipe is still the one to beat: refit on the newest data, it stays champion.
    Refreshed,
}

/// The decision of a training run.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// The best qualified candidate by interval score, or the floor when none qualifies.
    pub pick: String,
    pub pick_qualified: bool,
    /// The candidate whose recipe is champion after the run (refit on all data): the pick, or
    /// the champion's own recipe when it is refreshed.
    pub winner: String,
    /// The better of the floor's two interval methods.
    pub floor: String,
    pub outcome: ChampionOutcome,
    /// Every candidate's verdict against the champion.
    pub verdicts: Vec<Verdict>,
    pub scorecards: Vec<Scorecard>,
    /// One sentence: who is champion and why.
    pub summary: String,
}

impl Selection {
    pub fn verdict(&self, label: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.candidate == label)
    }

    pub fn scorecard(&self, label: &str) -> Option<&Scorecard> {
        self.scorecards.iter().find(|c| c.label == label)
    }
}

/// Judges every candidate of `eval`. `champion` is the champion's label in it (its recipe run
/// on these windows) when there is a champion. None when not even the floor could be scored.
pub fn select(eval: &Evaluation, champion: Option<&str>, rules: &GateRules) -> Option<Selection> {
    let level = eval.interval_level;
    let cards: Vec<Scorecard> = eval
        .candidates
        .iter()
        .filter_map(|c| Scorecard::of(eval, &c.label))
        .filter(|c| c.interval_score().is_finite())
        .collect();
    let card = |label: &str| cards.iter().find(|c| c.label == label);
    let champ = champion.and_then(card);
    let verdicts: Vec<Verdict> = cards
        .iter()
        .map(|c| judge(c, champ, level, rules))
        .collect();
    let qualifies = |label: &str| {
        verdicts
            .iter()
            .any(|v| v.candidate == label && v.qualifies())
    };
    let by_score = |a: &&Scorecard, b: &&Scorecard| a.rank(b);
    let floor = FLOOR_CANDIDATES
        .iter()
        .filter_map(|l| card(l))
        .min_by(by_score)?
        .clone();
    let best = cards
        .iter()
        .filter(|c| qualifies(&c.label))
        .min_by(by_score);
    let (pick, pick_qualified) = match best {
        Some(b) => (b.clone(), true),
        None => (floor.clone(), false),
    };
    let outcome = match (champion, champ) {
        (None, _) => ChampionOutcome::First,
        (Some(label), None) => ChampionOutcome::Demoted {
            why: format!("its recipe ({label}) could not be run on today's windows"),
        },
        (Some(_), Some(ch)) if ch.label == pick.label => ChampionOutcome::Refreshed,
        (Some(_), Some(ch)) => {
            let failed = verdicts
                .iter()
                .find(|v| v.candidate == ch.label)
                .filter(|v| !v.qualifies());
            if let Some(failed) = failed {
                ChampionOutcome::Demoted {
                    why: format!("it fails today's gate ({})", failed.reason()),
                }
            } else if floor.interval_score() < ch.interval_score() {
                ChampionOutcome::Demoted {
                    why: format!(
                        "it loses to persistence: served interval score {:.4} vs {}'s {:.4}",
                        ch.interval_score(),
                        floor.label,
                        floor.interval_score()
                    ),
                }
            } else if pick_qualified
                && pick.interval_score() < ch.interval_score() * (1.0 - rules.min_improvement)
            {
                ChampionOutcome::Replaced
            } else {
                ChampionOutcome::Refreshed
            }
        }
    };
    let winner = match (&outcome, champ) {
        (ChampionOutcome::Refreshed, Some(ch)) => ch.clone(),
        _ => pick.clone(),
    };
    let summary = match &outcome {
        ChampionOutcome::Refreshed => format!(
            "the champion's recipe {} stays champion, refit on the newest data: {}",
            winner.label,
            if winner.label == pick.label {
                format!(
                    "it has the best served interval score among the candidates that pass the gate ({:.4})",
                    winner.interval_score()
                )
            } else {
                format!(
                    "the best candidate, {} ({:.4}), does not beat its {:.4} by the margin",
                    pick.label,
                    pick.interval_score(),
                    winner.interval_score()
                )
            }
        ),
        _ if pick_qualified => format!(
            "{} is champion: the best served interval score among the candidates that pass the gate ({:.4}; coverage with ACI {}; MSE {:.4} × persistence){}{}",
            pick.label,
            pick.interval_score(),
            coverage_range(&pick),
            pick.mse_ratio,
            runner_up(&cards, &pick, &qualifies),
            demotion(&outcome)
        ),
        _ => format!(
            "{} (the floor) is champion: no candidate passed the gate{}",
            pick.label,
            demotion(&outcome)
        ),
    };
    Some(Selection {
        pick: pick.label.clone(),
        pick_qualified,
        winner: winner.label.clone(),
        floor: floor.label.clone(),
        outcome,
        verdicts,
        scorecards: cards.clone(),
        summary,
    })
}

/// By how much the pick beats the next qualified candidate, when there is one.
fn runner_up(cards: &[Scorecard], pick: &Scorecard, qualifies: &dyn Fn(&str) -> bool) -> String {
    cards
        .iter()
        .filter(|c| c.label != pick.label && qualifies(&c.label))
        .min_by(|a, b| a.rank(b))
        .map(|next| {
            format!(
                "; {:.2}% better than the next, {} ({:.4})",
                100.0 * (1.0 - pick.interval_score() / next.interval_score()),
                next.label,
                next.interval_score()
            )
        })
        .unwrap_or_default()
}

fn demotion(outcome: &ChampionOutcome) -> String {
    match outcome {
        ChampionOutcome::Demoted { why } => format!("; the previous champion was demoted: {why}"),
        ChampionOutcome::Replaced => "; it beats the previous champion".into(),
        _ => String::new(),
    }
}

fn coverage_range(c: &Scorecard) -> String {
    let (lo, hi) = c.served.coverage_range();
    format!("{}–{}", pct(lo), pct(hi))
}

#[cfg(test)]
mod tests;
