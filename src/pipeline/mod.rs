//! The pipeline runner (`run`; the tasks in `tasks.rs`, the retrain in `retrain.rs`, the errors in
//! `error.rs`). An ingest run is the tasks extract → quality_gate → transform → monitor;
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
mod error;
mod record;
mod retrain;
mod shard;
mod tasks;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::failure::{Classify, Failure};
use crate::features;
use crate::ingest::coingecko::CoinGeckoClient;
use crate::model;
use crate::monitor::{self, MonitorReport};
use crate::progress;
use crate::quality::RuleSet;
use crate::store::Store;
pub use child::{
    run_job as run_retrain_job, sweep_leftovers as sweep_retrain_leftovers, ChildError, Trainer,
};
pub use error::{PipelineError, TaskError};
use record::RunRecorder;
pub use retrain::{retrain, RetrainReport, RetrainSummary};
pub use shard::{Shard, ShardError, INDEX_VARIABLE as SHARD_INDEX_VARIABLE};
use tasks::*;

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
