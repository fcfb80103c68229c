//! The promotion gate, readable: every verdict names its numbers, condition by condition.
//!
//! A candidate qualifies when, on the walk-forward windows,
//! 1. its coverage (averaged over the horizons) is within `coverage_tolerance` of nominal on
//!    every coin, and
//! 2. its point MSE is at most `max_mse_ratio` times persistence's (persistence forecasts are
//!    exempt: they are judged against themselves).
//!
//! The best qualified candidate by mean interval score over every coin and horizon replaces the
//! champion when its score is better than the champion's on the same windows (by at least
//! `min_improvement`, a share). A champion that no longer qualifies, or whose score persistence
//! beats, is demoted. When nothing qualifies, the floor (the better of the two persistence
//! interval methods) is the champion: a forecast is always served.

use serde::{Deserialize, Serialize};

use super::evaluate::Evaluation;

/// The gate's rules are configuration (`[model.gate]`): `config` owns their shape, the gate
/// applies them.
pub use crate::config::GateRules;

/// The floor's two interval methods: constant width or EWMA-scaled.
pub const FLOOR_CANDIDATES: [&str; 2] = ["persistence", "persistence_ewma"];

/// A candidate's numbers on the walk-forward windows.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecard {
    pub label: String,
    /// Mean interval score over every coin and horizon (percent of the price, lower is better).
    pub interval_score: f64,
    /// Per coin: coverage averaged over the horizons.
    pub coverage: Vec<(String, f64)>,
    /// Mean over coins and horizons of MSE / MSE(persistence).
    pub mse_ratio: f64,
    /// Mean skill vs persistence (1 − MSE ratio), for continuity with older verdicts.
    pub skill: f64,
    pub is_persistence: bool,
}

impl Scorecard {
    /// The lowest and highest coin coverage.
    pub fn coverage_range(&self) -> (f64, f64) {
        self.coverage
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
                (lo.min(*v), hi.max(*v))
            })
    }

    /// The candidate's card, when it has rows.
    pub fn of(eval: &Evaluation, label: &str) -> Option<Self> {
        let rows: Vec<_> = eval.rows.iter().filter(|r| r.model == label).collect();
        if rows.is_empty() {
            return None;
        }
        let mean = |v: Vec<f64>| {
            let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let coverage = eval
            .coins
            .iter()
            .filter_map(|coin| {
                let c = mean(
                    rows.iter()
                        .filter(|r| &r.coin_id == coin)
                        .map(|r| r.metrics.coverage)
                        .collect(),
                );
                c.is_finite().then(|| (coin.clone(), c))
            })
            .collect();
        let skill = mean(rows.iter().map(|r| r.metrics.skill).collect());
        let is_persistence = eval
            .candidates
            .iter()
            .find(|c| c.label == label)
            .is_some_and(|c| c.recipe.is_persistence());
        Some(Self {
            label: label.to_string(),
            interval_score: mean(rows.iter().map(|r| r.metrics.interval_score).collect()),
            coverage,
            mse_ratio: 1.0 - skill,
            skill,
            is_persistence,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub name: String,
    pub passed: bool,
    /// The numbers behind it.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub candidate: String,
    /// Whether it qualifies and beats the champion (or there is none).
    pub passed: bool,
    pub conditions: Vec<Condition>,
}

impl Verdict {
    /// One line: each condition with its numbers.
    pub fn reason(&self) -> String {
        self.conditions
            .iter()
            .map(|c| {
                format!(
                    "{} {}: {}",
                    if c.passed { "✓" } else { "✗" },
                    c.name,
                    c.detail
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn qualifies(&self) -> bool {
        self.conditions
            .iter()
            .filter(|c| c.name != "interval score")
            .all(|c| c.passed)
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The absolute conditions (coverage on every coin, point MSE) and, when there is a champion,
/// the comparison with it.
pub fn judge(
    card: &Scorecard,
    champion: Option<&Scorecard>,
    level: f64,
    rules: &GateRules,
) -> Verdict {
    let mut conditions = Vec::new();
    let outside: Vec<String> = card
        .coverage
        .iter()
        .filter(|(_, c)| (c - level).abs() > rules.coverage_tolerance)
        .map(|(coin, c)| format!("{coin} {}", pct(*c)))
        .collect();
    let (lo, hi) = card.coverage_range();
    conditions.push(Condition {
        name: "coverage".into(),
        passed: outside.is_empty() && !card.coverage.is_empty(),
        detail: if card.coverage.is_empty() {
            "no intervals".into()
        } else if outside.is_empty() {
            format!(
                "{}–{} on {} coin(s), within {} ± {:.0} points",
                pct(lo),
                pct(hi),
                card.coverage.len(),
                pct(level),
                100.0 * rules.coverage_tolerance
            )
        } else {
            format!(
                "outside {} ± {:.0} points: {}",
                pct(level),
                100.0 * rules.coverage_tolerance,
                outside.join(", ")
            )
        },
    });
    conditions.push(if card.is_persistence {
        Condition {
            name: "point MSE".into(),
            passed: true,
            detail: "persistence: judged against itself".into(),
        }
    } else {
        Condition {
            name: "point MSE".into(),
            passed: card.mse_ratio <= rules.max_mse_ratio,
            detail: format!(
                "{:.4} × persistence's (limit {:.4})",
                card.mse_ratio, rules.max_mse_ratio
            ),
        }
    });
    conditions.push(match champion {
        Some(champ) if champ.label == card.label => Condition {
            name: "interval score".into(),
            passed: true,
            detail: format!("{:.4}: the champion's own recipe", card.interval_score),
        },
        Some(champ) => {
            let change = card.interval_score / champ.interval_score - 1.0;
            Condition {
                name: "interval score".into(),
                passed: card.interval_score < champ.interval_score * (1.0 - rules.min_improvement),
                detail: format!(
                    "{:.4} vs the champion's {:.4} ({:+.2}%)",
                    card.interval_score,
                    champ.interval_score,
                    100.0 * change
                ),
            }
        }
        None => Condition {
            name: "interval score".into(),
            passed: card.interval_score.is_finite(),
            detail: format!("{:.4}; no champion yet", card.interval_score),
        },
    });
    Verdict {
        candidate: card.label.clone(),
        passed: conditions.iter().all(|c| c.passed),
        conditions,
    }
}

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
        .filter(|c| c.interval_score.is_finite())
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
    let by_score = |a: &&Scorecard, b: &&Scorecard| a.interval_score.total_cmp(&b.interval_score);
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
            } else if floor.interval_score < ch.interval_score {
                ChampionOutcome::Demoted {
                    why: format!(
                        "it loses to persistence: interval score {:.4} vs {}'s {:.4}",
                        ch.interval_score, floor.label, floor.interval_score
                    ),
                }
            } else if pick_qualified
                && pick.interval_score < ch.interval_score * (1.0 - rules.min_improvement)
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
                    "it has the best interval score among the candidates that pass the gate ({:.4})",
                    winner.interval_score
                )
            } else {
                format!(
                    "the best candidate, {} ({:.4}), does not beat its {:.4} by the margin",
                    pick.label, pick.interval_score, winner.interval_score
                )
            }
        ),
        _ if pick_qualified => format!(
            "{} is champion: the best interval score among the candidates that pass the gate ({:.4}; coverage {}; MSE {:.4} × persistence){}",
            pick.label,
            pick.interval_score,
            coverage_range(&pick),
            pick.mse_ratio,
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

fn demotion(outcome: &ChampionOutcome) -> String {
    match outcome {
        ChampionOutcome::Demoted { why } => format!("; the previous champion was demoted: {why}"),
        ChampionOutcome::Replaced => "; it beats the previous champion".into(),
        _ => String::new(),
    }
}

fn coverage_range(c: &Scorecard) -> String {
    let (lo, hi) = c.coverage_range();
    format!("{}–{}", pct(lo), pct(hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> GateRules {
        GateRules {
            coverage_tolerance: 0.03,
            max_mse_ratio: 1.001,
            min_improvement: 0.0,
        }
    }

    fn card(label: &str, score: f64, coverage: f64, mse: f64) -> Scorecard {
        Scorecard {
            label: label.into(),
            interval_score: score,
            coverage: vec![("a".into(), coverage), ("b".into(), coverage)],
            mse_ratio: mse,
            skill: 1.0 - mse,
            is_persistence: label.starts_with("persistence"),
        }
    }

    #[test]
    fn each_condition_names_its_numbers() {
        let v = judge(&card("linear", 2.0, 0.95, 1.002), None, 0.9, &rules());
        assert!(!v.passed);
        let reason = v.reason();
        assert!(
            reason.contains("✗ coverage") && reason.contains("a 95.0%"),
            "{reason}"
        );
        assert!(
            reason.contains("✗ point MSE: 1.0020 × persistence's (limit 1.0010)"),
            "{reason}"
        );
        let champ = card("lstm", 2.5, 0.9, 0.99);
        let v = judge(
            &card("persistence_ewma", 2.0, 0.9, 1.5),
            Some(&champ),
            0.9,
            &rules(),
        );
        assert!(v.passed, "{}", v.reason());
        assert!(
            v.reason()
                .contains("2.0000 vs the champion's 2.5000 (-20.00%)"),
            "{}",
            v.reason()
        );
        assert!(v.reason().contains("persistence: judged against itself"));
    }

    /// An evaluation with one coin, one horizon and the given (label, interval score,
    /// coverage, MSE skill) per candidate.
    fn evaluation(cards: &[(&str, f64, f64, f64)]) -> Evaluation {
        use super::super::evaluate::{Candidate, CandidateRun, EvalRow};
        use super::super::metrics::HorizonMetrics;
        use super::super::recipe::{PointRecipe, Recipe};
        use super::super::volatility::ScaleRecipe;
        let recipe = |label: &str| Recipe {
            point: if label.starts_with("persistence") {
                PointRecipe::Persistence
            } else {
                PointRecipe::SmaTrend
            },
            scale: ScaleRecipe::Constant,
        };
        Evaluation {
            folds: 4,
            windows_configured: 4,
            refit_every_folds: 1,
            interval_level: 0.9,
            test_from_hour: 0,
            test_to_hour: 672,
            reliability: Vec::new(),
            coins: vec!["a".into()],
            rows: cards
                .iter()
                .map(|&(label, score, coverage, skill)| EvalRow {
                    coin_id: "a".into(),
                    model: label.into(),
                    metrics: HorizonMetrics {
                        horizon: 1,
                        n: 672,
                        mae: 1.0,
                        rmse: 1.0,
                        mape: 1.0,
                        mase: 1.0,
                        directional_accuracy: 0.5,
                        skill,
                        coverage,
                        width: 0.01,
                        interval_score: score,
                        pinball: score / 10.0,
                    },
                })
                .collect(),
            candidates: cards
                .iter()
                .map(|&(label, ..)| {
                    let mut run = CandidateRun::new(&Candidate {
                        label: label.into(),
                        recipe: recipe(label),
                    });
                    run.refits = 4;
                    run
                })
                .collect(),
            aci_rows: Vec::new(),
            aci_gamma: 0.005,
            scores: Vec::new(),
        }
    }

    #[test]
    fn a_champion_that_persistence_beats_is_demoted_and_the_floor_takes_over() {
        let eval = evaluation(&[
            ("persistence", 10.0, 0.95, 0.0),
            ("persistence_ewma", 9.0, 0.9, 0.0),
            ("lstm", 9.5, 0.9, 0.0005),
        ]);
        let s = select(&eval, Some("lstm"), &rules()).expect("selection");
        assert_eq!(s.floor, "persistence_ewma");
        assert_eq!(s.winner, "persistence_ewma");
        match &s.outcome {
            ChampionOutcome::Demoted { why } => {
                assert!(why.contains("loses to persistence"), "{why}");
                assert!(why.contains("9.5000") && why.contains("9.0000"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(s.summary.contains("demoted"), "{}", s.summary);
    }

    #[test]
    fn the_champion_is_replaced_refreshed_or_kept_by_the_numbers() {
        // A better qualified candidate replaces it.
        let eval = evaluation(&[
            ("persistence", 10.0, 0.9, 0.0),
            ("persistence_ewma", 9.8, 0.9, 0.0),
            ("linear", 9.0, 0.9, 0.001),
            ("lstm", 9.5, 0.9, 0.001),
        ]);
        let s = select(&eval, Some("lstm"), &rules()).expect("selection");
        assert_eq!(s.outcome, ChampionOutcome::Replaced);
        assert_eq!(s.winner, "linear");
        // The champion's recipe still best: refit, it stays.
        let s = select(&eval, Some("linear"), &rules()).expect("selection");
        assert_eq!(s.outcome, ChampionOutcome::Refreshed);
        assert_eq!(s.winner, "linear");
        // Better, but not by the required margin: the champion's recipe stays.
        let strict = GateRules {
            min_improvement: 0.1,
            ..rules()
        };
        let s = select(&eval, Some("lstm"), &strict).expect("selection");
        assert_eq!(s.outcome, ChampionOutcome::Refreshed);
        assert_eq!(s.winner, "lstm");
        // Nothing qualifies (coverage everywhere off): the floor is champion.
        let eval = evaluation(&[
            ("persistence", 10.0, 0.99, 0.0),
            ("persistence_ewma", 9.8, 0.8, 0.0),
        ]);
        let s = select(&eval, None, &rules()).expect("selection");
        assert!(!s.pick_qualified);
        assert_eq!(s.winner, "persistence_ewma");
        assert!(s.summary.contains("the floor"), "{}", s.summary);
    }
}
