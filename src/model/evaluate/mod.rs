//! Walk-forward evaluation: every candidate on the same folds and the same origins, refit by the
//! same rule (at the first fold and every `refit_every_folds` folds after), with intervals from
//! split-conformal calibration on the newest part of each refit's training data (scores scaled by
//! the candidate's σ̂, or CQR on a quantile band). The test forecasts are scored twice
//! (`served`): at the nominal level (plain conformal, shown beside), and as served, at the level
//! online coverage control (ACI) sets by the live rule (what the gate judges). Candidates with the
//! same point recipe share its fits (`fits`). The out-of-sample scores of the test windows are
//! kept: the winner's final intervals are calibrated on them.

mod fits;
mod served;

use std::time::Instant;

use serde::Serialize;

use super::baselines::{Forecaster, RefitHints};
use super::dataset::CoinSeries;
use super::forecast::{anchor_of, Anchor, BandMix, Calibration, CalibrationMode};
use super::metrics::{horizon_metrics, HorizonMetrics, Scored};
use super::recipe::Recipe;
use super::volatility::ScaleModel;
use super::windows::Fold;
use super::ModelError;
use fits::PointFits;
use served::{aci_scored, nominal_scored, Served};

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

#[cfg(test)]
mod tests;
