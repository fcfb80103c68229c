//! Walk-forward evaluation: every candidate on the same folds and the same origins, refit by the
//! same rule (at the first fold and every `refit_every_folds` folds after), with intervals from
//! split-conformal calibration on the newest part of each refit's training data (scores scaled by
//! the candidate's σ̂, or CQR on a quantile band). The test forecasts are scored twice: at the
//! nominal level (what the gate judges), and at the level online coverage control (ACI) would have
//! set. The out-of-sample scores of the test windows are kept: the winner's final intervals are
//! calibrated on them.

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;

use super::baselines::{FitReport, Forecaster, RefitHints};
use super::dataset::CoinSeries;
use super::forecast::{
    anchor_of, Aci, Anchor, BandMix, Calibration, CalibrationMode, ACI_ALPHA_RANGE,
};
use super::metrics::{horizon_metrics, HorizonMetrics, Scored};
use super::recipe::{PointRecipe, Recipe};
use super::volatility::ScaleModel;
use super::windows::Fold;
use super::ModelError;

pub use super::protocol::{calendar, Protocol, DEFAULT_PROTOCOL};

/// A candidate of the walk-forward: a recipe under a label (its name, or `champion`).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub label: String,
    pub recipe: Recipe,
}

impl Candidate {
    pub fn new(recipe: Recipe) -> Self {
        Self {
            label: recipe.name(),
            recipe,
        }
    }
}

/// Metrics of one forecaster on one coin at one horizon, over every fold.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub coin_id: String,
    pub model: String,
    #[serde(flatten)]
    pub metrics: HorizonMetrics,
    /// With ACI: the share of forecasts drawn with the level pinned at a bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_share: Option<f64>,
}

/// How a candidate went: its refits, their cost, and what validation chose.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateRun {
    pub label: String,
    pub recipe: Recipe,
    /// How its intervals are calibrated.
    pub mode: CalibrationMode,
    pub refits: usize,
    /// Seconds spent fitting (all refits) and predicting.
    pub fit_seconds: f64,
    pub predict_seconds: f64,
    /// Per refit: the epoch early stopping kept (networks only).
    pub chosen_epochs: Vec<usize>,
    /// The devices its refits trained on (networks only).
    pub devices: Vec<String>,
    /// Per refit: training samples per second (networks only).
    pub samples_per_second: Vec<f64>,
    /// Per refit, per coin, per horizon: the point forecast's weight against persistence
    /// (networks only).
    pub shrinkage: Vec<Vec<Vec<f64>>>,
    /// Why it has no rows, when a fit failed.
    pub error: Option<String>,
}

impl CandidateRun {
    pub fn new(candidate: &Candidate) -> Self {
        Self {
            label: candidate.label.clone(),
            recipe: candidate.recipe.clone(),
            mode: candidate.recipe.calibration_mode(),
            refits: 0,
            fit_seconds: 0.0,
            predict_seconds: 0.0,
            chosen_epochs: Vec::new(),
            devices: Vec::new(),
            samples_per_second: Vec::new(),
            shrinkage: Vec::new(),
            error: None,
        }
    }

    /// What a refit on all data reuses: the median epoch count and the mean shrinkage.
    pub fn refit_hints(&self) -> RefitHints {
        let mut epochs = self.chosen_epochs.clone();
        epochs.sort_unstable();
        let mean = |c: usize, h: usize| {
            let v: Vec<f64> = self
                .shrinkage
                .iter()
                .filter_map(|r| r.get(c).and_then(|w| w.get(h)).copied())
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let shape = self
            .shrinkage
            .first()
            .map_or((0, 0), |r| (r.len(), r.first().map_or(0, Vec::len)));
        RefitHints {
            epochs: epochs.get(epochs.len() / 2).copied(),
            shrinkage: (0..shape.0)
                .map(|c| (0..shape.1).map(|h| mean(c, h)).collect())
                .collect(),
        }
    }

    /// The mean shrinkage weight of a coin (series index) at horizon `h` (1-based) over the
    /// refits; None for a model without shrinkage.
    pub fn mean_shrinkage(&self, coin: usize, h: u32) -> Option<f64> {
        let v: Vec<f64> = self
            .shrinkage
            .iter()
            .filter_map(|r| r.get(coin).and_then(|w| w.get(h as usize - 1)).copied())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub folds: usize,
    pub windows_configured: u32,
    pub refit_every_folds: u32,
    pub interval_level: f64,
    pub aci_gamma: f64,
    pub test_from_hour: i64,
    pub test_to_hour: i64,
    pub coins: Vec<String>,
    /// Intervals at the nominal level of each refit's conformal calibration (plain conformal):
    /// the point metrics, and the interval figures shown beside the served ones.
    pub rows: Vec<EvalRow>,
    /// The same forecasts with intervals as they are served: at the level online coverage
    /// control (ACI) sets by the live rule (`aci_scored`). What the gate judges intervals by.
    pub aci_rows: Vec<EvalRow>,
    pub candidates: Vec<CandidateRun>,
    /// Per candidate, coin and tested level: the share of test outcomes inside the interval
    /// drawn at that level of each refit's calibration, over every horizon (a reliability
    /// diagram; differences between levels are the PIT histogram's bins).
    pub reliability: Vec<ReliabilityRow>,
    /// Per candidate, coin and horizon: the test windows' conformity scores.
    #[serde(skip)]
    pub scores: Vec<Vec<Vec<Vec<f64>>>>,
}

/// The levels the reliability diagram is drawn at: from the grid of calibrated levels (below
/// 0.50 the calibration keeps no quantile).
pub const RELIABILITY_LEVELS: [f64; 12] = [
    0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 0.99, 0.995,
];

/// One point of a candidate's reliability diagram for a coin.
#[derive(Debug, Clone, Serialize)]
pub struct ReliabilityRow {
    pub model: String,
    pub coin_id: String,
    pub level: f64,
    /// Outcomes inside the interval drawn at `level`, of `n`.
    pub covered: usize,
    pub n: usize,
}

impl Evaluation {
    /// A candidate's row at one coin and horizon.
    pub fn row(&self, label: &str, coin: &str, horizon: u32) -> Option<&HorizonMetrics> {
        find_row(&self.rows, label, coin, horizon)
    }

    pub fn run(&self, label: &str) -> Option<&CandidateRun> {
        self.candidates.iter().find(|c| c.label == label)
    }

    /// The out-of-sample scores of a candidate, per coin, for its final calibration.
    pub fn scores_of(&self, label: &str) -> Vec<(String, Vec<Vec<f64>>)> {
        let Some(k) = self.candidates.iter().position(|c| c.label == label) else {
            return Vec::new();
        };
        self.coins
            .iter()
            .cloned()
            .zip(self.scores.get(k).cloned().unwrap_or_default())
            .collect()
    }
}

fn find_row<'a>(
    rows: &'a [EvalRow],
    label: &str,
    coin: &str,
    horizon: u32,
) -> Option<&'a HorizonMetrics> {
    rows.iter()
        .find(|r| r.model == label && r.coin_id == coin && r.metrics.horizon == horizon)
        .map(|r| &r.metrics)
}

/// Runs every candidate through the same walk-forward folds over all coins. A candidate that
/// cannot be fitted is reported (no rows) instead of failing the others. `on_candidate` is told
/// before each candidate, and stops the run by returning an error (a cancellation).
pub fn walk_forward(
    series: &[CoinSeries],
    candidates: &[Candidate],
    p: &Protocol,
    mut on_candidate: impl FnMut(&str, usize, usize) -> Result<(), ModelError>,
) -> Result<Evaluation, ModelError> {
    let folds = p.folds(series)?;
    let hz = p.horizon;
    let naive = naive_mae(series, &folds, p);
    let (mut rows, mut aci_rows) = (Vec::new(), Vec::new());
    let mut reliability = Vec::new();
    let mut runs = Vec::new();
    let mut scores = Vec::new();
    let mut point_fits = PointFits::default();
    for (k, candidate) in candidates.iter().enumerate() {
        on_candidate(&candidate.label, k, candidates.len())?;
        let mut run = CandidateRun::new(candidate);
        match evaluate_candidate(series, &folds, candidate, p, &mut run, &mut point_fits) {
            Ok(outcome) => {
                for (c, s) in series.iter().enumerate() {
                    for (h, &naive_mae) in naive[c].iter().enumerate() {
                        let row = |scored: &[Scored], pinned_share| EvalRow {
                            coin_id: s.coin_id.clone(),
                            model: candidate.label.clone(),
                            metrics: horizon_metrics(
                                h as u32 + 1,
                                scored,
                                naive_mae,
                                p.interval_level,
                            ),
                            pinned_share,
                        };
                        rows.push(row(&outcome.nominal[c][h], None));
                        let served = &outcome.aci[c][h];
                        let share = served.pinned() as f64 / served.levels.len().max(1) as f64;
                        aci_rows.push(row(&served.scored, Some(share)));
                    }
                }
                for (s, points) in series.iter().zip(&outcome.reliability) {
                    reliability.extend(RELIABILITY_LEVELS.iter().zip(points).map(
                        |(&level, &(covered, n))| ReliabilityRow {
                            model: candidate.label.clone(),
                            coin_id: s.coin_id.clone(),
                            level,
                            covered,
                            n,
                        },
                    ));
                }
                scores.push(outcome.scores);
            }
            Err(e) => {
                tracing::warn!("candidate {} dropped: {e}", candidate.label);
                run.error = Some(e.to_string());
                scores.push(vec![vec![Vec::new(); hz]; series.len()]);
            }
        }
        runs.push(run);
    }
    Ok(Evaluation {
        folds: folds.len(),
        windows_configured: p.windows,
        refit_every_folds: p.refit_every_folds,
        interval_level: p.interval_level,
        aci_gamma: p.aci_gamma,
        test_from_hour: folds.first().map_or(0, |f| f.test.start),
        test_to_hour: folds.last().map_or(0, |f| f.test.end),
        coins: series.iter().map(|s| s.coin_id.clone()).collect(),
        rows,
        aci_rows,
        candidates: runs,
        reliability,
        scores,
    })
}

/// Persistence's in-sample MAE per coin and horizon over every fold's training origins (MASE).
fn naive_mae(series: &[CoinSeries], folds: &[Fold], p: &Protocol) -> Vec<Vec<f64>> {
    let hz = p.horizon;
    series
        .iter()
        .map(|s| {
            let mut acc = vec![(0.0, 0usize); hz];
            for fold in folds {
                for &i in &s.origins_in(&fold.train, p.lookback_hours, hz) {
                    for (h, a) in acc.iter_mut().enumerate() {
                        a.0 += (s.price[i + h + 1] - s.price[i]).abs();
                        a.1 += 1;
                    }
                }
            }
            acc.iter()
                .map(|&(sum, n)| if n > 0 { sum / n as f64 } else { f64::NAN })
                .collect()
        })
        .collect()
}

type PerCoinHorizon<T> = Vec<Vec<Vec<T>>>;

/// How a candidate's intervals are drawn: its calibration mode and, for a quantile band averaged
/// with classical scales, the mix.
#[derive(Debug, Clone, Copy)]
struct Drawing {
    mode: CalibrationMode,
    mix: Option<BandMix>,
}

/// One test forecast, before its interval is drawn.
struct TestForecast {
    origin_hour: i64,
    price: f64,
    actual: f64,
    predicted: f64,
    /// What the interval is drawn around.
    anchor: Anchor,
    score: f64,
    /// Which refit's calibration applies.
    refit: usize,
}

/// A candidate's test forecasts scored with nominal and with ACI intervals, and its scores.
struct CandidateOutcome {
    nominal: PerCoinHorizon<Scored>,
    /// With ACI, as served.
    aci: Vec<Vec<Served>>,
    scores: PerCoinHorizon<f64>,
    /// Per coin, at each of `RELIABILITY_LEVELS`: (outcomes covered, outcomes).
    reliability: Vec<Vec<(usize, usize)>>,
}

/// The point models fitted so far, per point recipe and refit: candidates that differ only in
/// their interval method (`lstm_quantile` and `lstm_quantile_mix`) share one fit per refit, since
/// a point fit never sees the scale. A recipe whose fit failed is not kept: the next candidate
/// with it fails on its own.
#[derive(Default)]
struct PointFits {
    fits: Vec<(PointRecipe, Vec<FittedPoint>)>,
}

/// A point model fitted at one refit, and what its fit reported.
type FittedPoint = (Box<dyn Forecaster>, FitReport);

impl PointFits {
    /// The fit of `recipe` at refit `k`, fitted now by `fit` unless an earlier candidate did.
    fn get_or_fit(
        &mut self,
        recipe: &Recipe,
        k: usize,
        fit: impl FnOnce(&mut dyn Forecaster) -> Result<FitReport, ModelError>,
    ) -> Result<(&dyn Forecaster, &FitReport), ModelError> {
        let slot = match self.fits.iter().position(|(r, _)| *r == recipe.point) {
            Some(i) => i,
            None => {
                self.fits.push((recipe.point.clone(), Vec::new()));
                self.fits.len() - 1
            }
        };
        let refits = &mut self.fits[slot].1;
        if refits.len() == k {
            let mut point = recipe.build(None);
            let report = fit(&mut *point)?;
            refits.push((point, report));
        }
        let (point, report) = refits.get(k).ok_or_else(|| {
            ModelError::Numeric(format!("refit {k} of {} out of order", recipe.name()))
        })?;
        Ok((&**point, report))
    }

    fn at(&self, recipe: &Recipe, k: usize) -> Option<&dyn Forecaster> {
        self.fits
            .iter()
            .find(|(r, _)| *r == recipe.point)
            .and_then(|(_, refits)| refits.get(k))
            .map(|(point, _)| &**point)
    }
}

/// One candidate over every fold: each refit fits the point model (or reuses the fit of an earlier
/// candidate with the same point recipe) and the scale on the proper training slice and
/// calibrates on the newest `calibration_share`; the test windows until the next refit are
/// forecast with that fit.
fn evaluate_candidate(
    series: &[CoinSeries],
    folds: &[Fold],
    candidate: &Candidate,
    p: &Protocol,
    run: &mut CandidateRun,
    point_fits: &mut PointFits,
) -> Result<CandidateOutcome, ModelError> {
    let (l, hz) = (p.lookback_hours, p.horizon);
    let mode = candidate.recipe.calibration_mode();
    let mut tests: PerCoinHorizon<TestForecast> = (0..series.len())
        .map(|_| (0..hz).map(|_| Vec::new()).collect())
        .collect();
    let mut calibrations: Vec<Calibration> = Vec::new();
    let mut scale = ScaleModel::new(candidate.recipe.scale);
    let drawing = Drawing {
        mode,
        mix: BandMix::new(scale.band_members(), p.interval_level),
    };
    for (k, fold) in folds.iter().enumerate() {
        if k % p.refit_every_folds as usize == 0 {
            let started = Instant::now();
            let train_len = fold.train.end - fold.train.start;
            let cal_start = fold.train.end - (train_len as f64 * p.calibration_share) as i64;
            let proper = fold.train.start..cal_start - p.gap();
            let refit = calibrations.len();
            let (point, fitted) = point_fits.get_or_fit(&candidate.recipe, refit, |point| {
                point.fit(series, &proper, l, hz)
            })?;
            let fitted = fitted.clone();
            scale.fit(series, &proper, hz)?;
            run.refits += 1;
            run.chosen_epochs.extend(fitted.epochs);
            if let Some(d) = fitted.device {
                if !run.devices.contains(&d) {
                    run.devices.push(d);
                }
            }
            run.samples_per_second.extend(fitted.samples_per_second);
            run.shrinkage.extend(fitted.shrinkage);
            run.fit_seconds += started.elapsed().as_secs_f64();
            // Split-conformal on the calibration slice, per coin (pooled for coins with too few
            // scores there).
            let calibration = cal_start..fold.train.end;
            let mut by_coin = Vec::with_capacity(series.len());
            for s in series {
                let origins = s.origins_in(&calibration, l, hz);
                let forecasts = test_forecasts(point, &scale, drawing, s, &origins, hz, refit)?;
                let scores = forecasts
                    .iter()
                    .map(|by_h| {
                        by_h.iter()
                            .map(|t| t.score)
                            .filter(|x| x.is_finite())
                            .collect()
                    })
                    .collect();
                by_coin.push((s.coin_id.clone(), scores));
            }
            calibrations.push(Calibration::from_scores(
                p.interval_level,
                mode,
                &by_coin,
                String::new(),
            ));
        }
        let started = Instant::now();
        let refit = calibrations.len() - 1;
        let point = point_fits
            .at(&candidate.recipe, refit)
            .ok_or_else(|| ModelError::Numeric(format!("no fit of {}", candidate.label)))?;
        for (c, s) in series.iter().enumerate() {
            let origins = s.origins_in(&fold.test, l, hz);
            let forecasts = test_forecasts(point, &scale, drawing, s, &origins, hz, refit)?;
            for (h, by_h) in forecasts.into_iter().enumerate() {
                tests[c][h].extend(by_h);
            }
        }
        run.predict_seconds += started.elapsed().as_secs_f64();
    }
    let mut outcome = CandidateOutcome {
        nominal: Vec::with_capacity(series.len()),
        aci: Vec::with_capacity(series.len()),
        scores: Vec::with_capacity(series.len()),
        reliability: Vec::with_capacity(series.len()),
    };
    for (s, by_h) in series.iter().zip(&tests) {
        let coin = &s.coin_id;
        outcome.nominal.push(
            by_h.iter()
                .enumerate()
                .map(|(h, t)| nominal_scored(t, &calibrations, coin, h))
                .collect(),
        );
        outcome.aci.push(
            by_h.iter()
                .enumerate()
                .map(|(h, t)| aci_scored(t, &calibrations, coin, h, p.aci_gamma))
                .collect(),
        );
        outcome
            .reliability
            .push(reliability_of(by_h, &calibrations, coin));
        outcome.scores.push(
            by_h.iter()
                .map(|t| {
                    t.iter()
                        .map(|f| f.score)
                        .filter(|x| x.is_finite())
                        .collect()
                })
                .collect(),
        );
    }
    Ok(outcome)
}

/// A coin's test outcomes over every horizon, covered at each of `RELIABILITY_LEVELS` by the
/// interval its refit's calibration draws there: (covered, outcomes) per level.
fn reliability_of(
    by_h: &[Vec<TestForecast>],
    calibrations: &[Calibration],
    coin: &str,
) -> Vec<(usize, usize)> {
    RELIABILITY_LEVELS
        .iter()
        .map(|&level| {
            let mut covered = 0;
            let mut n = 0;
            for (h, tests) in by_h.iter().enumerate() {
                for t in tests.iter().filter(|t| t.score.is_finite()) {
                    n += 1;
                    if t.score <= calibrations[t.refit].quantile(coin, h, level) {
                        covered += 1;
                    }
                }
            }
            (covered, n)
        })
        .collect()
}

/// The forecasts of a coin's origins per horizon, with their conformity scores.
fn test_forecasts(
    point: &dyn Forecaster,
    scale: &ScaleModel,
    drawing: Drawing,
    s: &CoinSeries,
    origins: &[usize],
    hz: usize,
    refit: usize,
) -> Result<Vec<Vec<TestForecast>>, ModelError> {
    let mut out: Vec<Vec<TestForecast>> =
        (0..hz).map(|_| Vec::with_capacity(origins.len())).collect();
    if origins.is_empty() {
        return Ok(out);
    }
    let predictions = point.predict_full(s, origins, hz)?;
    let band = match (drawing.mode, &predictions.band) {
        (CalibrationMode::Cqr, None) => {
            return Err(ModelError::Numeric(
                "CQR calibration needs a quantile band, and the model forecasts none".into(),
            ))
        }
        (CalibrationMode::Cqr, Some(band)) => Some(band),
        (CalibrationMode::Scaled, _) => None,
    };
    let mut sigma = vec![0.0; hz];
    for (k, (pred, &i)) in predictions.point.iter().zip(origins).enumerate() {
        scale.scales(s, i, &mut sigma);
        for (h, forecasts) in out.iter_mut().enumerate() {
            let actual = s.target(i, h + 1);
            let anchor = anchor_of(band.map(|b| b[k][h]), pred[h], sigma[h], drawing.mix);
            forecasts.push(TestForecast {
                origin_hour: s.hour_of(i),
                price: s.price[i],
                actual,
                predicted: pred[h],
                anchor,
                score: anchor.score(actual),
                refit,
            });
        }
    }
    Ok(out)
}

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
fn nominal_scored(
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
struct Served {
    scored: Vec<Scored>,
    levels: Vec<f64>,
}

impl Served {
    /// Forecasts drawn with the level pinned at a bound of [`ACI_ALPHA_RANGE`].
    fn pinned(&self) -> usize {
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
fn aci_scored(
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
        let spec = crate::model::lstm::LstmSpec::parse(
            "models/lstm.toml",
            crate::model::lstm::DEFAULT_SPEC,
        )
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
}
