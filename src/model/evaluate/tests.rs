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

fn candidates(names: &[&str], p: &Protocol) -> Vec<Candidate> {
    let spec =
        crate::model::lstm::LstmSpec::parse("models/lstm.toml", crate::model::lstm::DEFAULT_SPEC)
            .expect("spec");
    names
        .iter()
        .map(|n| Candidate::new(Recipe::from_name(n, p, &spec).expect("recipe")))
        .collect()
}

/// A random walk with drift-free noise: no baseline can beat persistence by much, the
/// intervals cover close to their level, and a drifting walk is caught by `drift`.
#[test]
fn walk_forward_on_synthetic_walks() {
    let mut noise = crate::model::noise::gaussian(42);
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
    let cands = candidates(&["persistence", "drift", "linear"], &p);
    let mut seen = Vec::new();
    let eval = walk_forward(&[walk, trend], &cands, &p, |label, _, _| {
        seen.push(label.to_string());
        Ok(())
    })
    .expect("evaluates");
    assert_eq!(seen, vec!["persistence", "drift", "linear"]);
    assert_eq!(eval.folds, 10);
    // Refit at folds 0, 4 and 8.
    assert!(
        eval.candidates.iter().all(|c| c.refits == 3),
        "{:?}",
        eval.candidates
    );
    let get = |coin: &str, model: &str, h: u32| *eval.row(model, coin, h).expect("row");
    let persistence = get("walk", "persistence", 1);
    assert_eq!(persistence.n, 10 * 168);
    assert!(persistence.skill.abs() < 1e-12);
    assert!(
        (persistence.coverage - 0.9).abs() < 0.05,
        "{}",
        persistence.coverage
    );
    assert!(persistence.interval_score.is_finite() && persistence.pinball > 0.0);
    assert!(get("walk", "linear", 1).skill < 0.02);
    // On a drifting walk, 24 h ahead, the drift baseline beats persistence.
    assert!(
        get("trend", "drift", 24).skill > 0.05,
        "{:?}",
        get("trend", "drift", 24)
    );
    // The test windows' scores are kept for the final calibration.
    let oos = eval.scores_of("persistence");
    assert_eq!(oos.len(), 2);
    assert_eq!(oos[0].1[0].len(), 10 * 168);
}

/// Volatility clusters (GARCH): intervals that scale with it beat constant ones on the
/// interval score at 1 h, while covering as well.
#[test]
fn volatility_scaled_intervals_win_when_volatility_clusters() {
    let price = crate::model::volatility::tests::garch_path(12_000, 11);
    let n = price.len();
    let s = CoinSeries::from_arrays("g", 400_000, price, vec![0.0; n], vec!["f".into()]);
    let mut p = Protocol::parse("t", DEFAULT_PROTOCOL).expect("protocol");
    p.windows = 8;
    p.features = vec!["f".into()];
    let cands = candidates(
        &["persistence", "persistence_ewma", "persistence_garch"],
        &p,
    );
    let eval = walk_forward(&[s], &cands, &p, |_, _, _| Ok(())).expect("evaluates");
    let score = |m: &str| eval.row(m, "g", 1).expect("row").interval_score;
    assert!(
        score("persistence_garch") < 0.95 * score("persistence"),
        "garch {} vs constant {}",
        score("persistence_garch"),
        score("persistence")
    );
    assert!(score("persistence_ewma") < score("persistence"));
    let cover = eval.row("persistence_garch", "g", 1).expect("row").coverage;
    assert!((cover - 0.9).abs() < 0.04, "{cover}");
}

#[test]
fn the_windows_fit_the_history_and_too_little_says_how_much_is_missing() {
    let p = Protocol::parse("t", DEFAULT_PROTOCOL).expect("protocol");
    let walk = |hours: usize| {
        let price: Vec<f64> = (0..hours).map(|i| 100.0 + (i % 7) as f64).collect();
        CoinSeries::from_arrays("w", 0, price, vec![0.0; hours], vec!["f".into()])
    };
    // 120 days: (2880 - 24 - 72 - 720) / 168 = 12 windows.
    assert_eq!(p.folds(&[walk(2880)]).expect("folds").len(), 12);
    assert_eq!(p.folds(&[walk(60_000)]).expect("folds").len(), 26);
    let err = p.folds(&[walk(900)]).expect_err("too short").to_string();
    // 720 + 72 + 168 = 960 hours of origins needed, 876 there: 84 missing.
    assert!(
        err.contains("960") && err.contains("876") && err.contains("84 missing"),
        "{err}"
    );
}
