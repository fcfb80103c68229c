//! A verdict, condition by condition, each naming its numbers.

use serde::Serialize;

use super::{GateRules, Scorecard};

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

    pub(super) fn qualifies(&self) -> bool {
        self.conditions
            .iter()
            .filter(|c| c.name != "interval score")
            .all(|c| c.passed)
    }
}

pub(super) fn pct(x: f64) -> String {
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
