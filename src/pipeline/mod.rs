//! The pipeline runner. An ingest run is the tasks extract → quality_gate → transform → monitor;
//! a retrain run is one task, train (a selection over every candidate, the winner registered).
//! Each attempt of a task is recorded in `task_runs` (state, attempt, timings, error and the kind
//! of failure, log) under a `pipeline_runs` row.
//!
//! monitor registers the floor once a coin has a day of data, scores served predictions whose
//! hour has arrived, moves online coverage control (ACI) and stores the champion's feature PSI.
//!
//! A failed attempt keeps its error's type (`TaskError`, with the failing module's error as its
//! source): the run's state, the exit code and the pages' words come from it. A shutdown or a bad
//! setting is not retried.
//!
//! Each task reads its input from the database, not from the task before it: the gate takes every
//! `staged` batch and the transform the whole `feature_backlog`, so whatever a crashed run left
//! behind is finished by the next one (a run left `running` is marked `interrupted` by the
//! store's start-up recovery). A successful run resolves open store incidents; every run sweeps
//! model folders that no registered model names once their grace period is over.

mod child;
mod record;
mod shard;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::failure::{Classify, Failure};
use crate::features::{self, FeatureError};
use crate::ingest::batch::{self, BatchError, BatchState, StageOutcome};
use crate::ingest::coingecko::{CoinGeckoClient, FetchError};
use crate::ingest::{self, ExtractReport, IngestError, LiveRequest};
use crate::model::{self, Cancel, ModelError};
use crate::monitor::{self, MonitorError, MonitorReport};
use crate::progress;
use crate::quality::{self, GateOutcome, GateReport, QualityError, RuleSet};
use crate::store::Store;
pub use child::{
    run_job as run_retrain_job, sweep_leftovers as sweep_retrain_leftovers, ChildError, Trainer,
};
use record::RunRecorder;
pub use shard::{Shard, ShardError, INDEX_VARIABLE as SHARD_INDEX_VARIABLE};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("task {task} failed after {attempts} attempt(s)")]
    Task {
        task: &'static str,
        attempts: u32,
        #[source]
        source: Box<TaskError>,
    },
    #[error("recording the run failed")]
    Record(#[from] duckdb::Error),
}

impl Classify for PipelineError {
    fn failure(&self) -> Failure {
        match self {
            PipelineError::Task { source, .. } => source.failure(),
            PipelineError::Record(_) => Failure::Internal,
        }
    }
}

/// Why one attempt of a task failed, with the failing module's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("no coin could be fetched from {url}")]
    SourceUnavailable {
        url: String,
        #[source]
        first: FetchError,
    },
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Quality(#[from] QualityError),
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// Boxed: the lake's error is large and tasks return this on every attempt.
    #[error(transparent)]
    Lake(Box<crate::lake::LakeError>),
    /// Boxed like the lake's.
    #[error(transparent)]
    Retention(Box<crate::retention::RetentionError>),
    #[error("reading the database")]
    Sql(#[from] duckdb::Error),
}

impl From<crate::retention::RetentionError> for TaskError {
    fn from(e: crate::retention::RetentionError) -> Self {
        TaskError::Retention(Box::new(e))
    }
}

impl From<crate::lake::LakeError> for TaskError {
    fn from(e: crate::lake::LakeError) -> Self {
        TaskError::Lake(Box::new(e))
    }
}

impl Classify for TaskError {
    fn failure(&self) -> Failure {
        match self {
            TaskError::SourceUnavailable { .. } => Failure::SourceUnavailable,
            TaskError::Ingest(e) => e.failure(),
            TaskError::Quality(e) => e.failure(),
            TaskError::Model(e) => e.failure(),
            TaskError::Monitor(MonitorError::Model(e)) => e.failure(),
            TaskError::Lake(e) => e.failure(),
            TaskError::Retention(e) => e.failure(),
            TaskError::Batch(_)
            | TaskError::Features(_)
            | TaskError::Monitor(_)
            | TaskError::Sql(_) => Failure::Internal,
        }
    }
}

/// Which coins a live extract fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// Every coin (manual runs, the start-up catch-up).
    EveryCoin,
    /// The coins due under the plan's monthly budget (scheduled runs).
    WithinBudget,
}

/// Where the extract task gets its batches.
pub enum Extract<'a> {
    /// CoinGecko, from each coin's last stored hour (or a backfill) to `until`.
    Live {
        client: &'a CoinGeckoClient,
        coins: Vec<String>,
        until: DateTime<Utc>,
        backfill_days: u32,
        cadence: Cadence,
    },
    /// Recorded `<coin_id>.json` files.
    Replay {
        dir: PathBuf,
        coins: Option<Vec<String>>,
        fetched_at: Option<DateTime<Utc>>,
    },
    /// Batches already recorded, parsed again from their bodies and gated again.
    Recheck { batch_ids: Vec<i64> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Every batch merged.
    Success,
    /// The run finished, but some batches were quarantined or failed, or some coins could not be fetched.
    Partial,
    /// A task failed.
    Failed,
    /// Stopped before it finished: by a shutdown, or found `running` at start-up after a crash.
    Interrupted,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Success => "success",
            RunState::Partial => "partial",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// One gated batch, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct GatedBatch {
    pub batch_id: i64,
    pub coin_id: String,
    pub merged: bool,
    pub changed_hours: u64,
    /// The failed rules, `rule (severity): ...`, errors first.
    pub problems: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct RunSummary {
    pub requests: u32,
    pub staged: usize,
    pub merged: usize,
    pub quarantined: usize,
    pub failed_batches: Vec<String>,
    /// The run's batches recorded as `failed` (attempts that errored, retried or given up, and
    /// unreadable bodies), counted in `raw_batches` when the run ends.
    pub failed_attempts: usize,
    pub fetch_errors: Vec<String>,
    /// Replay files left out (a bad name, unreadable), each naming its file.
    pub skipped_files: Vec<String>,
    /// True when no coin could be fetched because the source could not be reached (the extract
    /// failed with `TaskError::SourceUnavailable`).
    pub source_unavailable: bool,
    pub gated: Vec<GatedBatch>,
    pub feature_rows: u64,
    pub monitor: Option<MonitorReport>,
    /// The dataset version the run committed to the lake (none: nothing changed, or the lake is
    /// off).
    pub dataset_version: Option<i64>,
}

#[derive(Debug)]
pub struct RunReport {
    pub run_id: i64,
    pub state: RunState,
    pub summary: RunSummary,
    pub error: Option<PipelineError>,
}

/// Executes one pipeline run.
pub async fn run(
    store: &Store,
    settings: &Settings,
    rules: &RuleSet,
    trigger: &str,
    extract: Extract<'_>,
) -> Result<RunReport, PipelineError> {
    let conn = store.conn();
    let recorder = RunRecorder::start(conn, "ingest", trigger)?;
    let mut summary = RunSummary::default();
    let attempts = settings.pipeline.task_attempts;
    let delay = Duration::from_secs(settings.pipeline.retry_delay_secs);

    let outcome: Result<(), PipelineError> = async {
        // extract
        let report = recorder
            .task_async("extract", attempts, delay, || {
                run_extract(store, settings, recorder.run_id, &extract)
            })
            .await;
        summary.source_unavailable = report
            .as_ref()
            .is_err_and(|e| e.failure() == Failure::SourceUnavailable);
        let report = report?;
        summary.staged = report.staged.len();
        summary.failed_batches = report
            .failed_batches
            .iter()
            .map(|(_, r)| r.clone())
            .collect();
        summary.fetch_errors = report
            .fetch_errors
            .iter()
            .map(ToString::to_string)
            .collect();
        summary.skipped_files = report
            .skipped_files
            .iter()
            .map(ToString::to_string)
            .collect();

        // quality_gate
        let gated = recorder
            .task("quality_gate", attempts, delay, || {
                gate_staged(store, settings, rules)
            })
            .await?;
        summary.merged = gated.iter().filter(|g| g.merged).count();
        summary.quarantined = gated.iter().filter(|g| !g.merged).count();
        summary.gated = gated;

        // transform
        let built = recorder
            .task("transform", attempts, delay, || {
                let bar = progress::spinner("features");
                let stats = features::build_backlog(store.conn());
                bar.finish_and_clear();
                let stats = stats?;
                Ok(TaskOutput::new(
                    stats,
                    format!(
                        "rebuilt {} feature rows for {} coin(s)",
                        stats.rows_written, stats.coins
                    ),
                ))
            })
            .await?;
        summary.feature_rows = built.rows_written;

        // monitor
        let monitored = recorder
            .task("monitor", attempts, delay, || {
                let floor = ensure_floor(store, settings)?;
                let report = monitor::run(
                    store.conn(),
                    &settings.data_dir,
                    &settings.vs_currency,
                    recorder.run_id,
                )?;
                let mut log = monitor_log(&report);
                if let Some(id) = floor {
                    log.push_str(&format!(
                        "registered the floor {id} (uncalibrated: no training yet)\n"
                    ));
                }
                Ok(TaskOutput::new(report, log))
            })
            .await?;
        summary.monitor = Some(monitored);

        // version: after monitor, so that a lake that cannot be reached never holds back the
        // scoring of forecasts; a failure here fails the run visibly, and the next run commits
        // what this one could not (the watermarks have not moved).
        if settings.lake.enabled {
            summary.dataset_version = recorder
                .task("version", attempts, delay, || {
                    crate::lake::attach(store.conn(), settings)?;
                    let version = crate::lake::commit(
                        store.conn(),
                        Some(recorder.run_id),
                        &settings.vs_currency,
                        rules,
                    )?;
                    let mut log = match &version {
                        Some(v) => format!(
                            "dataset version {}: {} coin(s) changed, {} batch(es), {} market rows\n",
                            v.version,
                            v.info.changed.len(),
                            v.info.batch_ids.len(),
                            v.info.rows.market_data
                        ),
                        None => "nothing changed: no dataset version\n".to_string(),
                    };
                    // Models the bucket lacks (a training's upload that failed, the floor).
                    if let Some(bucket) = crate::lake::Bucket::of(settings)? {
                        let n = crate::lake::upload_models(
                            store.conn(),
                            &bucket,
                            &settings.data_dir,
                        )?;
                        if n > 0 {
                            log.push_str(&format!("uploaded {n} model(s) to {}\n", bucket.url()));
                        }
                    }
                    Ok(TaskOutput::new(version.map(|v| v.version), log))
                })
                .await?;
        }
        Ok(())
    }
    .await;

    let (state, error) = match outcome {
        Err(e) => (run_state_of(&e), Some(e)),
        Ok(())
            if summary.quarantined > 0
                || !summary.failed_batches.is_empty()
                || !summary.fetch_errors.is_empty()
                || !summary.skipped_files.is_empty() =>
        {
            (RunState::Partial, None)
        }
        Ok(()) => (RunState::Success, None),
    };
    count_recorded_batches(conn, recorder.run_id, &mut summary)?;
    finish(store, &recorder, state, error.as_ref(), &summary)?;
    if state == RunState::Success {
        resolve_incidents(store, recorder.run_id, trigger);
    }
    sweep_orphan_artifacts(store, settings);
    Ok(RunReport {
        run_id: recorder.run_id,
        state,
        summary,
        error,
    })
}

/// The run's requests and failed attempts as `raw_batches` holds them, so that the summary
/// agrees with what was recorded also when the extract gave up (CoinGecko unreachable).
fn count_recorded_batches(
    conn: &duckdb::Connection,
    run_id: i64,
    summary: &mut RunSummary,
) -> Result<(), PipelineError> {
    let (requests, failed): (u32, usize) = conn.query_row(
        include_str!("../../sql/pipeline/run_batches.sql"),
        [run_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    summary.requests = requests;
    summary.failed_attempts = failed;
    Ok(())
}

/// Every coin was fetched again from its newest stored hour (or replayed): whatever an incident
/// may have lost is back.
fn resolve_incidents(store: &Store, run_id: i64, trigger: &str) {
    let resolution = format!(
        "run #{run_id} ({trigger}) succeeded: every coin was fetched again from its newest stored hour"
    );
    match crate::store::resolve_incidents(store.conn(), &resolution) {
        Ok(0) => {}
        Ok(n) => tracing::warn!("{n} incident(s) resolved: {resolution}"),
        Err(e) => tracing::warn!("cannot resolve incidents: {e}"),
    }
}

/// Artifact folders that no registered model names (a crash mid-training) go after the grace period.
pub fn sweep_orphan_artifacts(store: &Store, settings: &Settings) {
    if let Err(e) = model::artifacts::sweep(
        store.conn(),
        store.data_dir(),
        settings.model.orphan_artifact_grace_hours,
    ) {
        tracing::warn!("cannot sweep orphan artifacts: {e}");
    }
}

/// Marks the run in flight, and its running task, interrupted (the server is stopping).
pub fn interrupt_running(store: &Store) -> Result<(), duckdb::Error> {
    store.conn().execute(
        "UPDATE pipeline_runs SET state = ?, finished_at = now(), error = ?, failure = 'interrupted' WHERE state = 'running'",
        duckdb::params![RunState::Interrupted.name(), record::INTERRUPTED_BY_SHUTDOWN],
    )?;
    store.conn().execute(
        "UPDATE task_runs SET state = ?, finished_at = now(), error = ?, failure = 'interrupted' WHERE state = 'running'",
        duckdb::params![
            RunState::Interrupted.name(),
            record::INTERRUPTED_BY_SHUTDOWN
        ],
    )?;
    Ok(())
}

/// What a retrain run registered.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainSummary {
    /// The champion after the run (refit on all data).
    pub model_id: String,
    /// The dataset version it was trained on (none: the lake is off or has no version).
    pub lake_version: Option<i64>,
    pub family: String,
    /// What happened to the previous champion (first, replaced, demoted, refreshed).
    pub outcome: model::gate::ChampionOutcome,
    /// Who is champion and why, in one sentence.
    pub summary: String,
    /// The floor, when it was registered apart from the champion.
    pub floor_id: Option<String>,
    pub candidates: usize,
    pub folds: usize,
    pub walk_forward_seconds: f64,
    pub refit_seconds: f64,
}

#[derive(Debug)]
pub struct RetrainReport {
    pub run_id: i64,
    pub state: RunState,
    pub summary: Option<RetrainSummary>,
    pub error: Option<PipelineError>,
}

/// One retrain run, recorded like any pipeline run (trigger, task `train`, then `cleanup` when
/// retention is on): a selection run over every candidate of `model.protocol` (the LSTM from
/// `model.spec` among them) on every configured coin with features; the gate's winner is refit on
/// all data and becomes champion. The selection runs in a child process (`trainer`) on a
/// consistent copy of the database, and this process records it. `cancel` kills the child (the
/// run is recorded as interrupted).
pub async fn retrain(
    store: &Store,
    settings: &Settings,
    trigger: &str,
    cancel: Cancel,
    trainer: &Trainer,
) -> Result<RetrainReport, PipelineError> {
    let recorder = RunRecorder::start(store.conn(), "retrain", trigger)?;
    let outcome = recorder
        .task("train", 1, Duration::ZERO, || {
            let facts =
                child::train_in_child(store.conn(), settings, trainer.executable(), &cancel)?;
            let lake_version = crate::lake::record_training(store.conn(), settings, facts.run_id);
            crate::lake::ship_models(store.conn(), settings);
            let summary = RetrainSummary {
                lake_version,
                model_id: facts.model_id.clone(),
                family: facts.family.clone(),
                outcome: facts.outcome.clone(),
                summary: facts.summary.clone(),
                floor_id: facts.floor_id.clone(),
                candidates: facts.candidates,
                folds: facts.folds,
                walk_forward_seconds: facts.walk_forward_seconds,
                refit_seconds: facts.refit_seconds,
            };
            let log = format!(
                "{} candidates on {} weekly windows in {:.1} s (refit every {} folds), winner refit in {:.1} s; champion {} ({}): {}{}",
                summary.candidates,
                summary.folds,
                summary.walk_forward_seconds,
                facts.refit_every_folds,
                summary.refit_seconds,
                summary.model_id,
                summary.family,
                summary.summary,
                facts
                    .skipped_coins
                    .iter()
                    .map(|c| format!("\nskipped {c}: no features stored"))
                    .collect::<String>()
            );
            Ok(TaskOutput::new(summary, log))
        })
        .await;
    // cleanup: after a training, so that the models it keeps are the new champion's company; a
    // failure fails the run visibly, and the next retrain cleans up again.
    let outcome = match outcome {
        Ok(summary) if settings.retention.enabled => recorder
            .task("cleanup", 1, Duration::ZERO, || {
                let report =
                    crate::retention::cleanup(store, settings, crate::retention::Mode::Apply)?;
                Ok(TaskOutput::new((), crate::retention::describe(&report)))
            })
            .await
            .map(|()| summary),
        other => other,
    };
    let (state, summary, error) = match outcome {
        Ok(s) => (RunState::Success, Some(s), None),
        Err(e) => (run_state_of(&e), None, Some(e)),
    };
    finish(store, &recorder, state, error.as_ref(), &summary)?;
    Ok(RetrainReport {
        run_id: recorder.run_id,
        state,
        summary,
        error,
    })
}

/// Records the end of a run, then checkpoints so that the file is readable by other processes
/// once this one exits.
fn finish(
    store: &Store,
    recorder: &RunRecorder<'_>,
    state: RunState,
    error: Option<&PipelineError>,
    summary: &impl Serialize,
) -> Result<(), PipelineError> {
    recorder.finish(state, error, summary)?;
    if let Err(e) = store.checkpoint() {
        tracing::warn!("checkpoint after run {} failed: {e}", recorder.run_id);
    }
    Ok(())
}

/// A run that a shutdown stopped is interrupted, not failed.
fn run_state_of(e: &PipelineError) -> RunState {
    match e.failure() {
        Failure::Interrupted => RunState::Interrupted,
        _ => RunState::Failed,
    }
}

/// A task's result plus the log excerpt recorded with it.
pub(crate) struct TaskOutput<T> {
    pub value: T,
    pub log: String,
}

impl<T> TaskOutput<T> {
    fn new(value: T, log: String) -> Self {
        Self { value, log }
    }
}

/// A body that cleanup moved to the lake comes back into the file before its batch is checked
/// again.
fn bring_back_body(store: &Store, settings: &Settings, batch_id: i64) -> Result<(), TaskError> {
    let moved: bool = store.conn().query_row(
        "SELECT count(*) > 0 FROM raw_batches WHERE batch_id = ? AND body IS NULL AND body_archived = 'lake'",
        [batch_id],
        |r| r.get(0),
    )?;
    if moved {
        crate::lake::attach(store.conn(), settings)?;
        crate::lake::restore_body(store.conn(), batch_id)?;
    }
    Ok(())
}

async fn run_extract(
    store: &Store,
    settings: &Settings,
    run_id: i64,
    extract: &Extract<'_>,
) -> Result<TaskOutput<ExtractReport>, TaskError> {
    let conn = store.conn();
    let report = match extract {
        Extract::Live {
            client,
            coins,
            until,
            backfill_days,
            cadence,
        } => {
            let usage = ingest::budget::usage(conn, &settings.coingecko, coins.len(), *until)?;
            if let Some(w) = usage.warning() {
                tracing::warn!("{w}");
            }
            let bar = progress::bar("fetch");
            let req = LiveRequest {
                coins,
                vs_currency: &settings.vs_currency,
                until: *until,
                backfill_days: *backfill_days,
                max_chunk_days: settings.coingecko.max_chunk_days,
                run_id: Some(run_id),
                cadence_hours: match cadence {
                    Cadence::EveryCoin => 1,
                    Cadence::WithinBudget => usage.cadence_hours,
                },
                budget_spent: usage.exhausted().then(|| {
                    format!(
                        "the plan's monthly budget of {} calls is spent ({} this month); fetching resumes next month (coingecko.monthly_call_budget)",
                        usage.budget.unwrap_or_default(),
                        usage.calls_this_month
                    )
                }),
            };
            let r = ingest::extract_live(conn, client, &req, &bar).await;
            bar.finish_and_clear();
            let r = r?;
            let nothing_came = !r.fetch_errors.is_empty() && r.fetch_errors.len() == coins.len();
            if nothing_came && r.fetch_errors.iter().all(FetchError::is_unavailable) {
                // Worth another attempt of the whole task.
                return Err(TaskError::SourceUnavailable {
                    url: client.base_url().to_string(),
                    first: r.fetch_errors[0].clone(),
                });
            }
            r
        }
        Extract::Replay {
            dir,
            coins,
            fetched_at,
        } => {
            let bar = progress::bar("replay");
            let r = ingest::extract_replay(
                conn,
                dir,
                coins.as_deref(),
                &settings.vs_currency,
                *fetched_at,
                Some(run_id),
                &bar,
            );
            bar.finish_and_clear();
            r?
        }
        Extract::Recheck { batch_ids } => {
            let mut r = ExtractReport::default();
            for &id in batch_ids {
                bring_back_body(store, settings, id)?;
                match batch::restage(conn, id)? {
                    StageOutcome::Staged { batch_id, hours } => {
                        r.staged.push(ingest::StagedBatch {
                            batch_id,
                            coin_id: batch_coin(store, batch_id),
                            hours,
                        })
                    }
                    StageOutcome::Failed { batch_id, reason } => {
                        r.failed_batches.push((batch_id, reason))
                    }
                }
            }
            r
        }
    };
    let log = format!(
        "{} request(s); staged {} batch(es) ({} hours); {} failed batch(es); {} failed attempt(s); {} fetch error(s); {} file(s) skipped{}",
        report.requests,
        report.staged.len(),
        report.staged.iter().map(|b| u64::from(b.hours)).sum::<u64>(),
        report.failed_batches.len(),
        report.failed_attempts.len(),
        report.fetch_errors.len(),
        report.skipped_files.len(),
        report
            .fetch_errors
            .iter()
            .map(|e| format!("\n{e}"))
            .chain(report.skipped_files.iter().map(|e| format!("\n{e}")))
            .chain(report.failed_attempts.iter().map(|(id, r)| format!("\nbatch {id}: {r}")))
            .collect::<String>()
    );
    Ok(TaskOutput::new(report, log))
}

fn batch_coin(store: &Store, batch_id: i64) -> String {
    store
        .conn()
        .query_row(
            "SELECT coin_id FROM raw_batches WHERE batch_id = ?",
            [batch_id],
            |r| r.get(0),
        )
        .unwrap_or_default()
}

/// Gates every staged batch, oldest first.
fn gate_staged(
    store: &Store,
    settings: &Settings,
    rules: &RuleSet,
) -> Result<TaskOutput<Vec<GatedBatch>>, TaskError> {
    let conn = store.conn();
    let ids = batch::batches_in_state(conn, BatchState::Staged)?;
    let bar = progress::bar("quality gate");
    bar.set_length(ids.len() as u64);
    let mut gated = Vec::with_capacity(ids.len());
    let mut log = String::new();
    for id in ids {
        let coin = batch_coin(store, id);
        bar.set_message(coin.clone());
        let outcome = quality::gate_batch(conn, rules, id, settings.quality.max_failing_rows)?;
        let entry = match outcome {
            GateOutcome::Merged { report, merge } => GatedBatch {
                batch_id: id,
                coin_id: coin,
                merged: true,
                changed_hours: merge.changed_hours,
                problems: problems(&report),
            },
            GateOutcome::Quarantined { report, .. } => GatedBatch {
                batch_id: id,
                coin_id: coin,
                merged: false,
                changed_hours: 0,
                problems: problems(&report),
            },
        };
        log.push_str(&format!(
            "batch {} {}: {}{}\n",
            entry.batch_id,
            entry.coin_id,
            if entry.merged {
                format!("merged, {} hours new or changed", entry.changed_hours)
            } else {
                "QUARANTINED".to_string()
            },
            if entry.problems.is_empty() {
                String::new()
            } else {
                format!(" [{}]", entry.problems.join("; "))
            }
        ));
        gated.push(entry);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(TaskOutput::new(gated, log))
}

/// The floor, once any coin has a day of returns: `/predict` answers from then on.
fn ensure_floor(store: &Store, settings: &Settings) -> Result<Option<String>, TaskError> {
    let spec = model::train::spec_from(&settings.model.spec)?;
    let protocol = model::train::protocol_from(&settings.model.protocol)?;
    let coins = monitor::stored_coins(store.conn(), &settings.vs_currency)?;
    model::floor::ensure_floor(
        store.conn(),
        &model::floor::FloorRequest {
            coins: &coins,
            vs_currency: &settings.vs_currency,
            spec: &spec,
            ewma_lambda: protocol.ewma_lambda,
            data_dir: &settings.data_dir,
        },
    )
    .map_err(TaskError::from)
}

fn monitor_log(report: &MonitorReport) -> String {
    let mut log = format!("scored {} prediction(s)\n", report.scored_predictions);
    for c in &report.coverage {
        log.push_str(&format!(
            "coverage control {}: {} outcome(s) checked, {} outside their interval; largest miss-rate shift from nominal {:.4}\n",
            c.model_id, c.scored, c.missed, c.max_alpha_shift
        ));
    }
    if let Some(skipped) = &report.psi_skipped {
        log.push_str(&format!("PSI skipped: {skipped}\n"));
    }
    if let Some(psi) = &report.psi {
        for f in &psi.features {
            log.push_str(&format!(
                "PSI {} = {:.4} ({} values)\n",
                f.feature, f.psi, f.observations
            ));
        }
    }
    log
}

fn problems(report: &GateReport) -> Vec<String> {
    report
        .failed_errors()
        .chain(report.failed_warnings())
        .map(|r| GateReport::summary(std::iter::once(r)))
        .collect()
}
