//! The promotion gate, readable: every verdict names its numbers, condition by condition.
//!
//! Intervals are judged as they are served: at the level online coverage control (ACI) sets, by
//! the live rule replayed over the walk-forward (`evaluate::aci_scored`). A candidate qualifies
//! when, on the walk-forward windows,
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

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::evaluate::{EvalRow, Evaluation};

/// The gate's rules are configuration (`[model.gate]`): `config` owns their shape, the gate
/// applies them.
pub use crate::config::GateRules;

/// The floor's two interval methods: constant width or EWMA-scaled.
pub const FLOOR_CANDIDATES: [&str; 2] = ["persistence", "persistence_ewma"];

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
    fn rank(&self, other: &Self) -> Ordering {
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

/// The absolute conditions (served coverage on every coin, pinned levels, point MSE) and, when
/// there is a champion, the comparison with it.
pub fn judge(
    card: &Scorecard,
    champion: Option<&Scorecard>,
    level: f64,
    rules: &GateRules,
) -> Verdict {
    let conditions = vec![
        coverage_condition(card, level, rules),
        pinned_condition(card, rules),
        mse_condition(card, rules),
        score_condition(card, champion, rules),
    ];
    Verdict {
        candidate: card.label.clone(),
        passed: conditions.iter().all(|c| c.passed),
        conditions,
    }
}

fn coverage_condition(card: &Scorecard, level: f64, rules: &GateRules) -> Condition {
    let served = &card.served;
    let outside: Vec<String> = served
        .coverage
        .iter()
        .filter(|(_, c)| (c - level).abs() > rules.coverage_tolerance)
        .map(|(coin, c)| format!("{coin} {}", pct(*c)))
        .collect();
    let (lo, hi) = served.coverage_range();
    let (plain_lo, plain_hi) = card.plain.coverage_range();
    let plain = format!("plain conformal {}–{}", pct(plain_lo), pct(plain_hi));
    Condition {
        name: "served coverage".into(),
        passed: outside.is_empty() && !served.coverage.is_empty(),
        detail: if served.coverage.is_empty() {
            "no intervals".into()
        } else if outside.is_empty() {
            format!(
                "{}–{} with ACI on {} coin(s), within {} ± {:.0} points ({plain})",
                pct(lo),
                pct(hi),
                served.coverage.len(),
                pct(level),
                100.0 * rules.coverage_tolerance
            )
        } else {
            format!(
                "with ACI outside {} ± {:.0} points: {} ({plain})",
                pct(level),
                100.0 * rules.coverage_tolerance,
                outside.join(", ")
            )
        },
    }
}

fn pinned_condition(card: &Scorecard, rules: &GateRules) -> Condition {
    let over: Vec<String> = card
        .pinned
        .iter()
        .filter(|(_, p)| *p > rules.max_pinned_share)
        .map(|(coin, p)| format!("{coin} {}", pct(*p)))
        .collect();
    Condition {
        name: "pinned level".into(),
        passed: over.is_empty(),
        detail: if over.is_empty() {
            format!(
                "at most {} of the hours at a bound of the ACI level on any coin (limit {})",
                pct(card.most_pinned()),
                pct(rules.max_pinned_share)
            )
        } else {
            format!(
                "hours at a bound of the ACI level over {}: {}",
                pct(rules.max_pinned_share),
                over.join(", ")
            )
        },
    }
}

fn mse_condition(card: &Scorecard, rules: &GateRules) -> Condition {
    if card.is_persistence {
        return Condition {
            name: "point MSE".into(),
            passed: true,
            detail: "persistence: judged against itself".into(),
        };
    }
    Condition {
        name: "point MSE".into(),
        passed: card.mse_ratio <= rules.max_mse_ratio,
        detail: format!(
            "{:.4} × persistence's (limit {:.4})",
            card.mse_ratio, rules.max_mse_ratio
        ),
    }
}

fn score_condition(card: &Scorecard, champion: Option<&Scorecard>, rules: &GateRules) -> Condition {
    let score = card.interval_score();
    let plain = format!("plain conformal {:.4}", card.plain.interval_score);
    match champion {
        Some(champ) if champ.label == card.label => Condition {
            name: "interval score".into(),
            passed: true,
            detail: format!("{score:.4} served ({plain}): the champion's own recipe"),
        },
        Some(champ) => {
            let theirs = champ.interval_score();
            Condition {
                name: "interval score".into(),
                passed: score < theirs * (1.0 - rules.min_improvement),
                detail: format!(
                    "{score:.4} served vs the champion's {theirs:.4} ({:+.2}%; {plain})",
                    100.0 * (score / theirs - 1.0)
                ),
            }
        }
        None => Condition {
            name: "interval score".into(),
            passed: score.is_finite(),
            detail: format!("{score:.4} served ({plain}); no champion yet"),
        },
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
mod tests {
    use super::*;

    fn rules() -> GateRules {
        GateRules {
            coverage_tolerance: 0.03,
            max_mse_ratio: 1.001,
            min_improvement: 0.0,
            max_pinned_share: 0.05,
        }
    }

    fn figures(score: f64, coverage: f64) -> IntervalFigures {
        IntervalFigures {
            interval_score: score,
            coverage: vec![("a".into(), coverage), ("b".into(), coverage)],
            width: 0.01,
        }
    }

    /// Served as given; plain conformal slightly worse and over-covering.
    fn card(label: &str, score: f64, coverage: f64, mse: f64) -> Scorecard {
        Scorecard {
            label: label.into(),
            served: figures(score, coverage),
            plain: figures(score * 1.01, 0.95),
            pinned: vec![("a".into(), 0.0), ("b".into(), 0.02)],
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
            reason.contains("✗ served coverage: with ACI outside 90.0% ± 3 points: a 95.0%")
                && reason.contains("(plain conformal 95.0%–95.0%)"),
            "{reason}"
        );
        assert!(
            reason.contains("✗ point MSE: 1.0020 × persistence's (limit 1.0010)"),
            "{reason}"
        );
        assert!(
            reason.contains("✓ pinned level: at most 2.0% of the hours"),
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
            v.reason().contains(
                "2.0000 served vs the champion's 2.5000 (-20.00%; plain conformal 2.0200)"
            ),
            "{}",
            v.reason()
        );
        assert!(v.reason().contains("persistence: judged against itself"));
        let mut leaning = card("lstm_quantile", 1.0, 0.9, 0.99);
        leaning.pinned[1].1 = 0.08;
        let v = judge(&leaning, None, 0.9, &rules());
        assert!(!v.passed);
        assert!(
            v.reason()
                .contains("✗ pinned level: hours at a bound of the ACI level over 5.0%: b 8.0%"),
            "{}",
            v.reason()
        );
    }

    /// One candidate of [`evaluation`]: its served figures (ACI), and its plain conformal ones.
    struct Cand {
        label: &'static str,
        served: (f64, f64),
        plain: (f64, f64),
        pinned: f64,
        width: f64,
        skill: f64,
    }

    fn cand(label: &'static str, score: f64, coverage: f64, skill: f64) -> Cand {
        Cand {
            label,
            served: (score, coverage),
            plain: (score, coverage),
            pinned: 0.0,
            width: 0.01,
            skill,
        }
    }

    /// An evaluation with one coin and one horizon.
    fn evaluation(cands: &[Cand]) -> Evaluation {
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
        let row = |c: &Cand, (score, coverage): (f64, f64), pinned_share| EvalRow {
            coin_id: "a".into(),
            model: c.label.into(),
            metrics: HorizonMetrics {
                horizon: 1,
                n: 672,
                mae: 1.0,
                rmse: 1.0,
                mape: 1.0,
                mase: 1.0,
                directional_accuracy: 0.5,
                skill: c.skill,
                coverage,
                width: c.width,
                interval_score: score,
                pinball: score / 10.0,
            },
            pinned_share,
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
            rows: cands.iter().map(|c| row(c, c.plain, None)).collect(),
            aci_rows: cands
                .iter()
                .map(|c| row(c, c.served, Some(c.pinned)))
                .collect(),
            candidates: cands
                .iter()
                .map(|c| {
                    let mut run = CandidateRun::new(&Candidate {
                        label: c.label.into(),
                        recipe: recipe(c.label),
                    });
                    run.refits = 4;
                    run
                })
                .collect(),
            aci_gamma: 0.005,
            scores: Vec::new(),
        }
    }

    #[test]
    fn a_champion_that_persistence_beats_is_demoted_and_the_floor_takes_over() {
        let eval = evaluation(&[
            cand("persistence", 10.0, 0.95, 0.0),
            cand("persistence_ewma", 9.0, 0.9, 0.0),
            cand("lstm", 9.5, 0.9, 0.0005),
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
            cand("persistence", 10.0, 0.9, 0.0),
            cand("persistence_ewma", 9.8, 0.9, 0.0),
            cand("linear", 9.0, 0.9, 0.001),
            cand("lstm", 9.5, 0.9, 0.001),
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
            cand("persistence", 10.0, 0.99, 0.0),
            cand("persistence_ewma", 9.8, 0.8, 0.0),
        ]);
        let s = select(&eval, None, &rules()).expect("selection");
        assert!(!s.pick_qualified);
        assert_eq!(s.winner, "persistence_ewma");
        assert!(s.summary.contains("the floor"), "{}", s.summary);
    }

    /// The intervals as served decide: a candidate whose plain conformal intervals miss the
    /// coverage but whose ACI intervals hold wins on its served score; one that holds only by
    /// leaning on the level's bounds is out; a tie in score goes to the sharper intervals.
    #[test]
    fn the_gate_judges_the_intervals_as_served() {
        let eval = evaluation(&[
            cand("persistence", 10.0, 0.9, 0.0),
            cand("persistence_ewma", 9.8, 0.9, 0.0),
            Cand {
                plain: (9.0, 0.95),
                ..cand("lstm_quantile", 9.5, 0.905, 0.001)
            },
            Cand {
                pinned: 0.2,
                ..cand("linear", 8.0, 0.9, 0.001)
            },
        ]);
        let s = select(&eval, Some("persistence_ewma"), &rules()).expect("selection");
        assert_eq!(s.winner, "lstm_quantile", "{}", s.summary);
        assert_eq!(s.outcome, ChampionOutcome::Replaced);
        let card = s.scorecard("lstm_quantile").expect("card");
        assert_eq!(card.interval_score(), 9.5);
        assert_eq!(card.plain.interval_score, 9.0);
        assert!(!s.verdict("linear").expect("verdict").qualifies());
        assert!(
            s.summary.contains("coverage with ACI 90.5%–90.5%"),
            "{}",
            s.summary
        );
        // 9.5 against persistence_ewma's 9.8 (linear does not qualify).
        assert!(
            s.summary
                .contains("3.06% better than the next, persistence_ewma (9.8000)"),
            "{}",
            s.summary
        );
        // A score within the tie share: the narrower served intervals win.
        let eval = evaluation(&[
            cand("persistence", 10.0, 0.9, 0.0),
            Cand {
                width: 0.020,
                ..cand("persistence_ewma", 9.0, 0.9, 0.0)
            },
            Cand {
                width: 0.019,
                ..cand("lstm_quantile", 9.0 * (1.0 + SCORE_TIE / 2.0), 0.9, 0.001)
            },
        ]);
        let s = select(&eval, None, &rules()).expect("selection");
        assert_eq!(s.winner, "lstm_quantile", "{}", s.summary);
    }
}
