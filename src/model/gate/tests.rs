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
        v.reason()
            .contains("2.0000 served vs the champion's 2.5000 (-20.00%; plain conformal 2.0200)"),
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
