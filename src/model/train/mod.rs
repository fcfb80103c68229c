//! `coincast train`: a selection run. Every candidate recipe (the persistence variants, HAR,
//! ridge, the LSTM ... and the champion's own recipe) goes through the same walk-forward, with
//! the same refit rule; the gate decides; the winner is refit on all data up to the newest hour
//! that has a target, calibrated on its walk-forward scores, and registered as champion, with
//! the floor beside it. Every step is tracked in `experiments` / `run_metrics`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use duckdb::Connection;
use serde::Serialize;

mod record;

use super::artifacts;
use super::card::{self, CARD_FORMAT};
use super::classical::ClassicalCard;
use super::dataset::{hour_label, CoinSeries};
use super::evaluate::{self, Candidate, CandidateRun, Evaluation, Protocol};
use super::forecast::Calibration;
use super::gate::{self, ChampionOutcome, GateRules, Selection, FLOOR_CANDIDATES};
use super::lstm::{self, LstmSpec};
use super::recipe::Recipe;
use super::registry::{self, Floor, GateVerdict, Role};
use super::served::ServedModel;
use super::volatility::ScaleModel;
use super::ModelError;
use record::record_rows;
pub use record::{ExperimentRecord, FailedRun, MetricRow, ModelRecord, TrainFacts, TrainedRecord};

/// A coin whose newest stored hour is this much older than the newest of all is refused: its
/// newest hours are a gap (ingest it, or leave it out).
pub const MAX_STALE_HOURS: i64 = 24;

/// The LSTM spec in `path`, or the built-in models/lstm.toml when `path` is empty.
pub fn spec_from(path: &str) -> Result<LstmSpec, ModelError> {
    match path.trim() {
        "" => LstmSpec::parse("models/lstm.toml", lstm::DEFAULT_SPEC),
        p => LstmSpec::parse(p, &read_definition(p)?),
    }
}

/// The walk-forward protocol in `path`, or the built-in models/baselines.toml when `path` is empty.
pub fn protocol_from(path: &str) -> Result<Protocol, ModelError> {
    match path.trim() {
        "" => Protocol::parse("models/baselines.toml", evaluate::DEFAULT_PROTOCOL),
        p => Protocol::parse(p, &read_definition(p)?),
    }
}

fn read_definition(path: &str) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|e| ModelError::Definition {
        origin: path.to_string(),
        message: e.to_string(),
    })
}

pub struct TrainRequest<'a> {
    pub coins: &'a [String],
    pub vs_currency: &'a str,
    /// The LSTM candidate's spec; its horizon, lookback and features set the protocol's.
    pub spec: LstmSpec,
    /// The walk-forward protocol and the candidates.
    pub protocol: Protocol,
    pub gate: GateRules,
    pub data_dir: &'a Path,
    pub register: RegisterPolicy,
    /// Stops the run before its next candidate and before the refit (`Cancel::default()`: never).
    pub cancel: super::Cancel,
}

/// Which candidates a run registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterPolicy {
    /// The winner (champion) and the floor.
    Winner,
    /// Also every other candidate, refit on all data, as challenger (to inspect or promote).
    AllCandidates,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    /// The walk-forward of every candidate (all refits).
    pub walk_forward_seconds: f64,
    /// The winner's (and the floor's) refit on all data.
    pub refit_seconds: f64,
    pub total_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct TrainOutcome {
    pub run_id: i64,
    /// The registered winner: champion after the run.
    pub model_id: String,
    pub family: String,
    pub artifact: PathBuf,
    /// The floor, when it was registered apart from the winner.
    pub floor_id: Option<String>,
    /// (candidate, model id) of the challengers registered with `RegisterPolicy::AllCandidates`.
    pub challengers: Vec<(String, String)>,
    pub selection: Selection,
    pub evaluation: Evaluation,
    /// The newest origin the winner was fitted on, and the newest stored hour.
    pub trained_until_hour: i64,
    pub newest_hour: i64,
    pub skipped_coins: Vec<String>,
    pub timings: Timings,
    /// The winner's refit on all data.
    pub refit: RefitReport,
}

/// A refit after selection.
#[derive(Debug, Clone, Serialize)]
pub struct RefitReport {
    pub label: String,
    pub samples: usize,
    /// The fixed epoch count a network was trained for (the walk-forward fits' median choice).
    pub epochs: Option<usize>,
    /// A network's training loss per epoch (empty for the others).
    pub train_losses: Vec<f64>,
    pub seconds: f64,
}

/// What a run reports while it works.
pub enum Progress<'a> {
    Candidate {
        label: &'a str,
        index: usize,
        of: usize,
    },
    Refit {
        label: &'a str,
    },
}

/// Loads the coins that have features; the others are reported as skipped.
pub fn load_series(
    conn: &Connection,
    coins: &[String],
    vs_currency: &str,
    features: &[String],
) -> Result<(Vec<CoinSeries>, Vec<String>), ModelError> {
    let (mut series, mut skipped) = (Vec::new(), Vec::new());
    for coin in coins {
        match CoinSeries::load(conn, coin, vs_currency, features) {
            Ok(s) => series.push(s),
            Err(ModelError::NoData(c)) => skipped.push(c),
            Err(e) => return Err(e),
        }
    }
    if series.is_empty() {
        return Err(ModelError::NoCoins);
    }
    Ok((series, skipped))
}

/// Refuses coins whose newest hours are a gap: the refit would end there for them.
fn check_newest_hours(series: &[CoinSeries]) -> Result<i64, ModelError> {
    let last = |s: &CoinSeries| s.first_hour + s.last_index() as i64;
    let newest = series.iter().map(last).max().ok_or(ModelError::NoCoins)?;
    for s in series {
        let behind = newest - last(s);
        if behind > MAX_STALE_HOURS {
            return Err(ModelError::StaleCoin {
                coin: s.coin_id.clone(),
                last: hour_label(last(s)),
                behind,
            });
        }
    }
    Ok(newest)
}

/// The candidates of the protocol, plus the champion's recipe when it is none of them; returns
/// them with the champion's label among them.
fn candidates(
    protocol: &Protocol,
    spec: &LstmSpec,
    champion: Option<&Recipe>,
) -> Result<(Vec<Candidate>, Option<String>), ModelError> {
    let mut list = protocol
        .candidates
        .iter()
        .map(|n| Recipe::from_name(n, protocol, spec).map(Candidate::new))
        .collect::<Result<Vec<_>, _>>()?;
    // The floor's two interval methods are always judged: the floor comes from them.
    for name in FLOOR_CANDIDATES {
        if !list.iter().any(|c| c.label == name) {
            list.push(Candidate::new(Recipe::from_name(name, protocol, spec)?));
        }
    }
    let champion_label = champion.map(|recipe| match list.iter().find(|c| &c.recipe == recipe) {
        Some(c) => c.label.clone(),
        None => {
            list.push(Candidate {
                label: "champion".into(),
                recipe: recipe.clone(),
            });
            "champion".into()
        }
    });
    Ok((list, champion_label))
}

/// The names of every list, each once, in first-seen order.
pub fn union_features(lists: &[&[String]]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in lists.iter().flat_map(|l| l.iter()) {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// What a run decided before it fits anything: its candidates and its data.
struct Plan {
    spec: LstmSpec,
    protocol: Protocol,
    candidates: Vec<Candidate>,
    champion_label: Option<String>,
    series: Vec<CoinSeries>,
    skipped_coins: Vec<String>,
    newest_hour: i64,
    trained_until_hour: i64,
    experiment: ExperimentRecord,
}

/// A selection run in this process: plan, fit (artifacts written), then record it all.
pub fn train_and_register(
    conn: &Connection,
    req: TrainRequest<'_>,
    on_progress: impl FnMut(Progress<'_>),
) -> Result<TrainOutcome, ModelError> {
    let started = Instant::now();
    let plan = plan(conn, &req)?;
    let run_id = registry::start_experiment(conn, &plan.experiment.as_new())?;
    tracing::info!(run_id, candidates = plan.candidates.len(), "selection run");
    let result = fit(plan, &req, run_id, started, on_progress).and_then(|(outcome, record)| {
        record_rows(conn, run_id, &record).map(|()| (outcome, record))
    });
    match result {
        Ok((outcome, record)) => {
            registry::finish_experiment(conn, run_id, None, &record.summary_json)?;
            Ok(outcome)
        }
        Err(e) => {
            registry::finish_experiment(conn, run_id, Some(&e.to_string()), "{}")?;
            Err(e)
        }
    }
}

/// The compute half of a selection run, for a retrain child process: reads `conn` (a copy of the
/// database, read-only), writes the artifacts, and returns the rows to record under `run_id` (an id
/// the worker reserved with [`registry::reserve_experiment_id`]).
pub fn fit_for_worker(
    conn: &Connection,
    req: TrainRequest<'_>,
    run_id: i64,
    on_progress: impl FnMut(Progress<'_>),
) -> Result<TrainedRecord, FailedRun> {
    let started = Instant::now();
    let plan = plan(conn, &req).map_err(|error| FailedRun {
        experiment: None,
        error,
    })?;
    let experiment = Box::new(plan.experiment.clone());
    fit(plan, &req, run_id, started, on_progress)
        .map(|(_, record)| record)
        .map_err(|error| FailedRun {
            experiment: Some(experiment),
            error,
        })
}

/// The record half, in the worker: the experiment that started at `started_at`, its metrics,
/// its models through the registry's transactions.
pub fn record_for_worker(
    conn: &Connection,
    run_id: i64,
    started_at: chrono::DateTime<Utc>,
    record: &TrainedRecord,
) -> Result<(), ModelError> {
    registry::record_started_experiment(conn, run_id, started_at, &record.experiment.as_new())?;
    match record_rows(conn, run_id, record) {
        Ok(()) => registry::finish_experiment(conn, run_id, None, &record.summary_json),
        Err(e) => {
            registry::finish_experiment(conn, run_id, Some(&e.to_string()), "{}")?;
            Err(e)
        }
    }
}

/// Records a child's run that failed after its plan, as an in-process run records it.
pub fn record_failed_for_worker(
    conn: &Connection,
    run_id: i64,
    started_at: chrono::DateTime<Utc>,
    experiment: &ExperimentRecord,
    error: &str,
) -> Result<(), ModelError> {
    registry::record_started_experiment(conn, run_id, started_at, &experiment.as_new())?;
    registry::finish_experiment(conn, run_id, Some(error), "{}")
}

fn plan(conn: &Connection, req: &TrainRequest<'_>) -> Result<Plan, ModelError> {
    let spec = req.spec.clone();
    let mut protocol = req.protocol.clone();
    protocol.horizon = spec.horizon;
    protocol.lookback_hours = spec.lookback_hours;
    protocol.features = spec.features.clone();
    // The champion is judged by its recipe, re-run on today's folds (never by its weights).
    let champion_row = registry::champion(conn)?;
    let champion_recipe = champion_row.as_ref().and_then(|c| {
        match ServedModel::load(&c.artifact_dir(req.data_dir), tch::Device::Cpu) {
            Ok(m) => Some(m.recipe()),
            Err(e) => {
                tracing::warn!(
                    "the champion {} cannot be loaded to read its recipe: {e}",
                    c.model_id
                );
                None
            }
        }
    });
    let (candidates, champion_label) = candidates(&protocol, &spec, champion_recipe.as_ref())?;
    let champion_label = match (&champion_row, champion_label) {
        (Some(row), None) => Some(format!("{} (unreadable)", row.model_id)),
        (_, label) => label,
    };
    let feature_lists: Vec<&[String]> = std::iter::once(spec.features.as_slice())
        .chain(candidates.iter().map(|c| c.recipe.features()))
        .collect();
    let features = union_features(&feature_lists);
    let (series, skipped_coins) = load_series(conn, req.coins, req.vs_currency, &features)?;
    let newest_hour = check_newest_hours(&series)?;
    protocol.folds(&series)?;
    let trained_until_hour = newest_hour - protocol.horizon as i64;
    let coins: Vec<String> = series.iter().map(|s| s.coin_id.clone()).collect();
    let dataset_version =
        registry::dataset_version(conn, &coins, req.vs_currency, trained_until_hour + 1)?;
    let params = serde_json::json!({
        "candidates": candidates.iter().map(|c| (&c.label, &c.recipe)).collect::<Vec<_>>(),
        "protocol": protocol,
        "gate": req.gate,
    });
    let device = lstm::device_name(lstm::resolve_device(&spec.device)?);
    Ok(Plan {
        experiment: ExperimentRecord {
            params_json: params.to_string(),
            coins,
            dataset_version,
            trained_until_hour: trained_until_hour + 1,
            device,
        },
        spec,
        protocol,
        candidates,
        champion_label,
        series,
        skipped_coins,
        newest_hour,
        trained_until_hour,
    })
}

/// The walk-forward, the gate's decision and the refits (artifacts written); nothing recorded.
fn fit(
    plan: Plan,
    req: &TrainRequest<'_>,
    run_id: i64,
    started: Instant,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Result<(TrainOutcome, TrainedRecord), ModelError> {
    let Plan {
        spec,
        protocol,
        candidates,
        champion_label,
        series,
        skipped_coins,
        newest_hour,
        trained_until_hour,
        experiment,
    } = plan;
    let wf_started = Instant::now();
    let evaluation =
        evaluate::walk_forward(&series, &candidates, &protocol, |label, index, of| {
            req.cancel.check()?;
            on_progress(Progress::Candidate { label, index, of });
            Ok(())
        })?;
    let walk_forward_seconds = wf_started.elapsed().as_secs_f64();
    let mut metrics = evaluation_rows(&evaluation);
    let selection =
        gate::select(&evaluation, champion_label.as_deref(), &req.gate).ok_or_else(|| {
            ModelError::Numeric(
                "not even persistence could be evaluated (no interval on any window)".into(),
            )
        })?;
    let refit_started = Instant::now();
    let context = RefitContext {
        series: &series,
        protocol: &protocol,
        spec: &spec,
        evaluation: &evaluation,
        trained_until_hour,
        data_dir: req.data_dir,
        run_id,
    };
    let winner = candidate(&candidates, &selection.winner)?;
    req.cancel.check()?;
    on_progress(Progress::Refit {
        label: &selection.winner,
    });
    let (winner_id, refit) = context.refit_and_save(winner)?;
    // The champion's learning curve, when it is a network (the models page draws it).
    metrics.extend(
        refit
            .train_losses
            .iter()
            .enumerate()
            .map(|(epoch, loss)| MetricRow {
                step: epoch as i64 + 1,
                name: "train_loss".into(),
                value: loss.is_finite().then_some(*loss),
            }),
    );
    let floor_is_winner = winner.recipe == candidate(&candidates, &selection.floor)?.recipe;
    let metrics_json = serde_json::to_string(&evaluation).unwrap_or_default();
    let winner_label = recipe_name(&winner.recipe);
    let verdict = GateVerdict {
        passed: selection.pick_qualified || selection.outcome == ChampionOutcome::Refreshed,
        reason: selection.summary.clone(),
    };
    let verdict_json = serde_json::json!({
        "summary": selection.summary,
        "outcome": selection.outcome,
        "conditions": selection.verdict(&selection.winner).map(|v| &v.conditions),
    })
    .to_string();
    let demotion = match &selection.outcome {
        ChampionOutcome::Demoted { why } => format!("demoted: {why}"),
        ChampionOutcome::Refreshed => {
            format!("refreshed by {winner_id} (same recipe, newer data)")
        }
        _ => format!("replaced by {winner_id}"),
    };
    let score = |label: &str| {
        selection
            .scorecard(label)
            .map(|c| c.interval_score())
            .filter(|s| s.is_finite())
    };
    let mut models = vec![ModelRecord {
        model_id: winner_id.clone(),
        family: winner_label.clone(),
        score: score(&selection.winner),
        metrics_json: metrics_json.clone(),
        training_stats_json: training_stats(&refit, &evaluation, &selection.winner),
        verdict,
        verdict_json,
        recipe_json: serde_json::to_string(&winner.recipe).unwrap_or_default(),
        role: Role::Champion,
        floor: if floor_is_winner {
            Floor::Yes
        } else {
            Floor::No
        },
        demotion_reason: demotion,
    }];
    let floor_id = if floor_is_winner {
        None
    } else {
        let floor = candidate(&candidates, &selection.floor)?;
        let (floor_id, _) = context.refit_and_save(floor)?;
        let floor_verdict = GateVerdict {
            passed: false,
            reason: format!(
                "the floor: the better persistence interval method on these windows ({})",
                selection.floor
            ),
        };
        models.push(ModelRecord {
            model_id: floor_id.clone(),
            family: selection.floor.clone(),
            score: score(&selection.floor),
            metrics_json: "{}".into(),
            training_stats_json: "{}".into(),
            verdict_json: serde_json::json!({
                "summary": floor_verdict.reason,
                "conditions": selection.verdict(&selection.floor).map(|v| &v.conditions),
            })
            .to_string(),
            verdict: floor_verdict,
            recipe_json: serde_json::to_string(&floor.recipe).unwrap_or_default(),
            role: Role::Challenger,
            floor: Floor::Yes,
            demotion_reason: String::new(),
        });
        Some(floor_id)
    };
    let mut challengers = Vec::new();
    if req.register == RegisterPolicy::AllCandidates {
        for c in candidates.iter().filter(|c| {
            c.label != selection.winner
                && c.label != selection.floor
                && c.label != "champion"
                && selection.scorecard(&c.label).is_some()
        }) {
            let (id, _) = context.refit_and_save(c)?;
            let verdict = selection.verdict(&c.label);
            let reason = GateVerdict {
                passed: false,
                reason: format!(
                    "challenger of run {run_id}: {}",
                    verdict.map(|v| v.reason()).unwrap_or_default()
                ),
            };
            models.push(ModelRecord {
                model_id: id.clone(),
                family: c.label.clone(),
                score: score(&c.label),
                metrics_json: metrics_json.clone(),
                training_stats_json: "{}".into(),
                verdict_json: serde_json::json!({
                    "summary": reason.reason,
                    "conditions": verdict.map(|v| &v.conditions),
                })
                .to_string(),
                verdict: reason,
                recipe_json: serde_json::to_string(&c.recipe).unwrap_or_default(),
                role: Role::Challenger,
                floor: Floor::No,
                demotion_reason: String::new(),
            });
            challengers.push((c.label.clone(), id));
        }
    }
    let refit_seconds = refit_started.elapsed().as_secs_f64();
    let outcome = TrainOutcome {
        challengers,
        run_id,
        artifact: artifacts::resolve(req.data_dir, &artifacts::registered_path(&winner_id)),
        model_id: winner_id,
        family: winner_label,
        floor_id,
        selection,
        evaluation,
        trained_until_hour,
        newest_hour,
        skipped_coins,
        timings: Timings {
            walk_forward_seconds,
            refit_seconds,
            total_seconds: started.elapsed().as_secs_f64(),
        },
        refit,
    };
    let record = TrainedRecord {
        experiment,
        trained_until_hour,
        metrics,
        models,
        summary_json: summary_json(&outcome),
        facts: outcome.facts(),
    };
    Ok((outcome, record))
}

impl TrainOutcome {
    /// The few facts callers report.
    pub fn facts(&self) -> TrainFacts {
        TrainFacts {
            run_id: self.run_id,
            model_id: self.model_id.clone(),
            family: self.family.clone(),
            floor_id: self.floor_id.clone(),
            outcome: self.selection.outcome.clone(),
            summary: self.selection.summary.clone(),
            candidates: self.evaluation.candidates.len(),
            folds: self.evaluation.folds,
            refit_every_folds: self.evaluation.refit_every_folds,
            walk_forward_seconds: self.timings.walk_forward_seconds,
            refit_seconds: self.timings.refit_seconds,
            skipped_coins: self.skipped_coins.clone(),
        }
    }
}

/// The experiment's `summary`: who won and why, the candidates' table, the timings.
fn summary_json(o: &TrainOutcome) -> String {
    serde_json::json!({
        "model_id": o.model_id,
        "family": o.family,
        "floor_id": o.floor_id,
        "selection": {
            "pick": o.selection.pick,
            "winner": o.selection.winner,
            "floor": o.selection.floor,
            "outcome": o.selection.outcome,
            "summary": o.selection.summary,
            "verdicts": o.selection.verdicts,
        },
        "candidates": o.evaluation.candidates,
        "timings": o.timings,
        "refit": o.refit,
    })
    .to_string()
}

fn recipe_name(recipe: &Recipe) -> String {
    recipe.name()
}

fn candidate<'a>(list: &'a [Candidate], label: &str) -> Result<&'a Candidate, ModelError> {
    list.iter()
        .find(|c| c.label == label)
        .ok_or_else(|| ModelError::Numeric(format!("no candidate `{label}`")))
}

/// Losses, epochs and the refit rule's cost, for the registry and the models page.
fn training_stats(refit: &RefitReport, eval: &Evaluation, label: &str) -> String {
    let run = eval.candidates.iter().find(|c| c.label == label);
    serde_json::json!({
        "refit": refit,
        "walk_forward": run,
    })
    .to_string()
}

/// The walk-forward table as `run_metrics` rows (`<model>/<coin>/h<h>/<metric>`, step 0).
fn evaluation_rows(eval: &Evaluation) -> Vec<MetricRow> {
    eval.rows
        .iter()
        .flat_map(|r| {
            let key = format!("{}/{}/h{}", r.model, r.coin_id, r.metrics.horizon);
            let m = &r.metrics;
            [
                ("skill", m.skill),
                ("mape", m.mape),
                ("coverage", m.coverage),
                ("interval_score", m.interval_score),
                ("pinball", m.pinball),
                ("width", m.width),
            ]
            .map(|(name, value)| MetricRow {
                step: 0,
                name: format!("{key}/{name}"),
                value: value.is_finite().then_some(value),
            })
        })
        .collect()
}

/// What a refit after selection needs.
struct RefitContext<'a> {
    series: &'a [CoinSeries],
    protocol: &'a Protocol,
    spec: &'a LstmSpec,
    evaluation: &'a Evaluation,
    trained_until_hour: i64,
    data_dir: &'a Path,
    run_id: i64,
}

impl RefitContext<'_> {
    /// Fits the candidate's recipe on every origin up to `trained_until_hour` (the LSTM for the
    /// epochs its walk-forward fits chose), calibrates it on its walk-forward scores, and
    /// writes the artifact. Returns the new model id.
    fn refit_and_save(&self, candidate: &Candidate) -> Result<(String, RefitReport), ModelError> {
        let p = self.protocol;
        let start = self.series.iter().map(|s| s.first_hour).min().unwrap_or(0);
        let range = start..self.trained_until_hour + 1;
        let hints = self
            .evaluation
            .run(&candidate.label)
            .map(CandidateRun::refit_hints)
            .unwrap_or_default();
        let mut scale = ScaleModel::new(candidate.recipe.scale);
        scale.fit(self.series, &range, p.horizon)?;
        let mut calibration = Calibration::from_scores(
            p.interval_level,
            candidate.recipe.calibration_mode(),
            &self.evaluation.scores_of(&candidate.label),
            format!(
                "walk-forward out-of-sample scores: {} weekly windows ({} to {} UTC)",
                self.evaluation.folds,
                hour_label(self.evaluation.test_from_hour),
                hour_label(self.evaluation.test_to_hour)
            ),
        );
        calibration.aci_gamma = p.aci_gamma;
        let name = candidate.recipe.name();
        let model_id = format!(
            "{name}-{}-{}",
            self.run_id,
            Utc::now().format("%Y%m%dT%H%M%S%3f")
        );
        let coins: Vec<String> = self.series.iter().map(|s| s.coin_id.clone()).collect();
        let fitted = Instant::now();
        let epochs = hints.epochs;
        let mut point = candidate.recipe.build(Some(hints));
        let fit = point.fit(self.series, &range, p.lookback_hours, p.horizon)?;
        let mut report = RefitReport {
            label: candidate.label.clone(),
            samples: fit.samples,
            epochs: candidate.recipe.is_lstm().then_some(epochs).flatten(),
            train_losses: Vec::new(),
            seconds: fitted.elapsed().as_secs_f64(),
        };
        if candidate.recipe.is_lstm() {
            let mut model = point
                .into_lstm()
                .ok_or_else(|| ModelError::Numeric(format!("{name}: no network after fitting")))?;
            model.set_calibration(calibration);
            model.card.scale = scale;
            model.card.trained_until_hour = self.trained_until_hour;
            report.train_losses = model.card.train_losses.clone();
            artifacts::write_atomically(self.data_dir, &model_id, |dir, mid_write| {
                model.save(dir, mid_write)
            })?;
            return Ok((model_id, report));
        }
        let point = point
            .into_point()
            .ok_or_else(|| ModelError::Numeric(format!("{name} has no classical form to save")))?;
        let card = ClassicalCard {
            format_version: CARD_FORMAT,
            name,
            recipe: candidate.recipe.clone(),
            point,
            scale,
            horizon: p.horizon,
            calibration,
            coins,
            trained_until_hour: self.trained_until_hour,
            monitor_features: self.spec.features.clone(),
            feature_stats: self.monitor_stats(&range)?,
        };
        artifacts::write_atomically(self.data_dir, &model_id, |dir, mid_write| {
            mid_write();
            card.save(dir)
        })?;
        Ok((model_id, report))
    }

    /// Training statistics of the configured features over the refit's origins (PSI, drift).
    fn monitor_stats(
        &self,
        range: &std::ops::Range<i64>,
    ) -> Result<Vec<card::FeatureStats>, ModelError> {
        let own: Vec<CoinSeries> = self
            .series
            .iter()
            .map(|s| s.with_features(&self.spec.features).map(|c| c.into_owned()))
            .collect::<Result<_, _>>()?;
        let samples: Vec<(usize, usize)> = own
            .iter()
            .enumerate()
            .flat_map(|(c, s)| {
                s.origins_in(range, self.protocol.lookback_hours, self.protocol.horizon)
                    .into_iter()
                    .map(move |i| (c, i))
            })
            .collect();
        Ok(card::feature_stats(&self.spec.features, &samples, &own))
    }
}
