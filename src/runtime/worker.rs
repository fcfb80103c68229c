//! The pipeline worker inside `coincast serve`: one thread that owns the DuckDB file and runs two
//! jobs, ingest (hourly by default) and retrain (daily by default), each on its cron schedule or
//! on a manual trigger, never two runs at once. After each run it publishes the run's metrics and
//! a new snapshot (no restart). Missed hours after downtime are caught up by the next ingest,
//! since the extract starts at each coin's last stored hour.
//!
//! Two more connections are cloned from the store at start: one for the prediction log's writer
//! thread and one for the API (promotions, pages), so that neither waits behind a long run.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;

use super::error::JobError;
use super::metrics::Metrics;
use super::prediction_log::PredictionLog;
use super::schedule::{Job, Schedules, Trigger};
use super::snapshot::Snapshot;
use super::Runtime;
use crate::config::Settings;
use crate::failure::{report, Classify};
use crate::ingest::coingecko::CoinGeckoClient;
use crate::model::Cancel;
use crate::monitor;
use crate::pipeline::{self, Extract, Trainer};
use crate::quality::RuleSet;
use crate::store::{Store, StoreError};

pub(super) enum Command {
    /// Run a job now (manual trigger).
    Run { job: Job, trigger: Trigger },
    /// Finish the current run, checkpoint and stop.
    Stop,
}

/// A handle to the worker: send commands, then `stop` to checkpoint and join.
pub struct Worker {
    sender: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    /// Set at shutdown: an in-flight run is interrupted instead of waited for.
    stopping: Cancel,
}

impl Worker {
    /// Opens the store in a new thread, loads and publishes the first snapshot, and returns once
    /// it is ready with the runtime the HTTP layer holds.
    pub fn start(
        settings: Settings,
        metrics: Arc<Metrics>,
        trainer: Trainer,
    ) -> Result<(Self, Arc<Runtime>), StoreError> {
        let (sender, receiver) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let jobs = sender.clone();
        let stopping = Cancel::default();
        let stop_flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let store = match Store::open(&settings.data_dir)
                    .and_then(|store| store.tune(&settings.store).map(|()| store))
                {
                    Ok(store) => store,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let runtime = Arc::new(start_runtime(&store, &settings, metrics).with_jobs(jobs));
                if ready_tx.send(Ok(runtime.clone())).is_err() {
                    return;
                }
                run_loop(&store, &runtime, &trainer, &receiver, &stop_flag);
                // Requests are drained by now: write the last predictions, then checkpoint.
                if let Some(log) = runtime.prediction_log() {
                    log.stop();
                }
                if let Some(log) = runtime.audit_log() {
                    log.stop();
                }
                if let Err(e) = store.checkpoint() {
                    tracing::warn!("checkpoint at shutdown failed: {}", report(&e));
                }
            })
            .map_err(|source| StoreError::DataDir {
                path: "pipeline thread".into(),
                source,
            })?;
        let runtime = match ready_rx.recv() {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::DataDir {
                    path: "pipeline thread".into(),
                    source: std::io::Error::other("the pipeline thread ended during start-up"),
                })
            }
        };
        Ok((
            Worker {
                sender,
                thread: Some(thread),
                stopping,
            },
            runtime,
        ))
    }

    /// Stops promptly: an ingest in flight is interrupted at once, a retrain's child process is
    /// killed (both recorded as interrupted; every task's writes are transactional), queued
    /// runs are dropped, then the database is checkpointed.
    pub fn stop(mut self) {
        self.stopping.cancel();
        let _ = self.sender.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The first snapshot, and connections of their own for the prediction log and the API.
fn start_runtime(store: &Store, settings: &Settings, metrics: Arc<Metrics>) -> Runtime {
    pipeline::sweep_orphan_artifacts(store, settings);
    pipeline::sweep_retrain_leftovers(&settings.data_dir);
    let snapshot = Snapshot::load(store.conn(), settings);
    for p in &snapshot.problems {
        tracing::warn!("{p}");
    }
    let mut runtime = Runtime::new(snapshot, settings.clone(), metrics.clone());
    // SQL from the copy a previous run published, before the first request.
    let _ = runtime.open_published_copy();
    match store.conn().try_clone() {
        Ok(conn) => match PredictionLog::start(conn, metrics, &settings.serve.instance_name()) {
            Ok(log) => runtime = runtime.with_prediction_log(log),
            Err(e) => tracing::warn!("predictions will not be logged: {e}"),
        },
        Err(e) => tracing::warn!("predictions will not be logged: {}", report(&e)),
    }
    match store
        .conn()
        .try_clone()
        .map_err(|e| report(&e))
        .and_then(|conn| {
            crate::access::AuditLog::start(Some(conn), &settings.serve.instance_name())
                .map_err(|e| e.to_string())
        }) {
        Ok(log) => runtime = runtime.with_audit(log),
        Err(e) => tracing::warn!("admin actions and SQL will not be audited: {e}"),
    }
    match store.conn().try_clone() {
        Ok(conn) => runtime = runtime.with_db(conn),
        Err(e) => tracing::warn!("promotion endpoints unavailable: {}", report(&e)),
    }
    match crate::publish::ServingWriter::of(settings) {
        Ok(Some(serving)) => runtime = runtime.with_serving(serving),
        Ok(None) => {}
        Err(e) => tracing::warn!("no serving publication for replicas: {}", report(&e)),
    }
    runtime
}

fn run_loop(
    store: &Store,
    runtime: &Runtime,
    trainer: &Trainer,
    commands: &Receiver<Command>,
    stopping: &Cancel,
) {
    if runtime.queries.published_version().is_none() {
        // The first copy for SQL users (a few seconds; the server answers meanwhile).
        publish_copy(store, runtime);
    }
    // Replicas serve what the writer serves from its first minute.
    runtime.publish_serving(store.conn());
    let schedules = Schedules::from_settings(&runtime.settings);
    if schedules.runs(Job::Ingest) {
        // Catch up at start-up: hours missed while the appliance was down come in now.
        run_job(
            store,
            runtime,
            trainer,
            Job::Ingest,
            Trigger::Startup,
            stopping,
        );
    }
    // Idle, the worker wakes every `tick` to take in replicas' served forecasts (when it
    // publishes; a listing at the URL) and at least every minute to hand cached pages back.
    let tick = if runtime.serving.is_some() {
        Duration::from_secs(runtime.settings.publish.poll_secs).min(RELEASE_PAGES_EVERY)
    } else {
        RELEASE_PAGES_EVERY
    };
    let mut released_at = std::time::Instant::now();
    loop {
        let next = schedules.next();
        let wait = next
            .as_ref()
            .and_then(|(at, _)| (*at - Utc::now()).to_std().ok())
            .unwrap_or(Duration::from_secs(3600));
        if stopping.is_cancelled() {
            return;
        }
        match commands.recv_timeout(wait.min(tick)) {
            Ok(Command::Run { job, trigger }) => {
                run_job(store, runtime, trainer, job, trigger, stopping)
            }
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) if wait > tick => {
                runtime.take_in_replica_segments(store.conn());
                if released_at.elapsed() >= RELEASE_PAGES_EVERY {
                    release_cached_pages(store, runtime);
                    released_at = std::time::Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                for job in next.map(|(_, due)| due).unwrap_or_default() {
                    if stopping.is_cancelled() {
                        return;
                    }
                    run_job(store, runtime, trainer, job, Trigger::Schedule, stopping);
                }
            }
        }
    }
}

/// How often an idle worker hands DuckDB's cached pages back: between runs, the prediction
/// log's appends and the pages' reads fill DuckDB's cache again.
const RELEASE_PAGES_EVERY: Duration = Duration::from_secs(60);

fn release_cached_pages(store: &Store, runtime: &Runtime) {
    if let Err(e) = crate::store::release_cached_pages(store.conn(), &runtime.settings.store) {
        tracing::warn!("DuckDB's cached pages stay: {}", report(&e));
    }
}

/// Runs a job, publishes a new snapshot, then the run's metrics.
fn run_job(
    store: &Store,
    runtime: &Runtime,
    trainer: &Trainer,
    job: Job,
    trigger: Trigger,
    stopping: &Cancel,
) {
    let settings = &runtime.settings;
    // Replicas' served forecasts first, so that the monitor scores them with this server's.
    runtime.take_in_replica_segments(store.conn());
    let outcome = match job {
        Job::Ingest => run_ingest(store, settings, trigger, stopping),
        Job::Retrain => run_retrain(store, settings, trainer, trigger, stopping),
    };
    // Publish whatever the database now holds, before the run is counted: whoever sees the
    // count sees its data and model served, and SQL users its rows in the read-only copy. The
    // snapshot is cheap and carries the API usage and incidents, so every run reloads it; the
    // copy (seconds) is published again only after a run that changed data or the registry.
    runtime.publisher.reload(store.conn(), settings);
    runtime.publish_serving(store.conn());
    if outcome.as_ref().is_ok_and(|o| o.changed) {
        publish_copy(store, runtime);
    }
    let state_label = match &outcome {
        Ok(o) => o.state,
        Err(e) if e.failure() == crate::failure::Failure::Interrupted => "interrupted",
        Err(_) => "failed",
    };
    let m = &runtime.metrics;
    m.coincast_pipeline_runs_total
        .with_label_values(&[job.name(), trigger.name(), state_label])
        .inc();
    m.coincast_pipeline_last_run_timestamp_seconds
        .with_label_values(&[job.name(), state_label])
        .set(Utc::now().timestamp() as f64);
    match &outcome {
        Ok(o) => {
            tracing::info!(job = job.name(), trigger = trigger.name(), "{}", o.line);
            publish_run_metrics(store, m, o);
        }
        // A shutdown that interrupts a run is the expected end of a server, not an error.
        Err(e) if e.failure() == crate::failure::Failure::Interrupted => tracing::info!(
            job = job.name(),
            trigger = trigger.name(),
            "run interrupted by the shutdown: {}",
            report(e)
        ),
        Err(e) => tracing::error!(
            job = job.name(),
            trigger = trigger.name(),
            failure = e.failure().name(),
            "run failed: {}",
            report(e)
        ),
    }
}

/// Publishes the read-only copy for SQL users; a failure is logged (the server goes on). The
/// copy read every table: the pages it cached go back to the system.
fn publish_copy(store: &Store, runtime: &Runtime) {
    match runtime.publish_copy(store.conn()) {
        Ok(p) => tracing::info!(
            version = %p.version,
            seconds = p.seconds,
            bytes = p.database_bytes,
            "read-only copy published"
        ),
        Err(e) => tracing::warn!("the read-only copy cannot be published: {}", report(&e)),
    }
    release_cached_pages(store, runtime);
}

fn publish_run_metrics(store: &Store, m: &Metrics, o: &JobOutcome) {
    match monitor::run_stats(store.conn(), o.run_id) {
        Ok(stats) => {
            for (task, seconds) in &stats.task_seconds {
                m.coincast_task_duration_seconds
                    .with_label_values(&[task])
                    .observe(*seconds);
            }
            for (rule, severity, n) in &stats.quality_failures {
                m.coincast_quality_failures_total
                    .with_label_values(&[rule, severity])
                    .inc_by(*n as u64);
            }
        }
        Err(e) => tracing::warn!("reading run {} for metrics: {}", o.run_id, report(&e)),
    }
    for (coin, hours) in &o.ingested {
        m.coincast_rows_ingested_total
            .with_label_values(&[coin])
            .inc_by(*hours);
    }
}

/// What a finished run reports to `run_job`.
struct JobOutcome {
    run_id: i64,
    state: &'static str,
    line: String,
    /// (coin, hours merged) for the ingest counter.
    ingested: Vec<(String, u64)>,
    /// Whether the run changed data (merged hours) or the registry (a retrain).
    changed: bool,
}

/// One ingest run from CoinGecko; interrupted (and recorded as such) when the server stops.
fn run_ingest(
    store: &Store,
    settings: &Settings,
    trigger: Trigger,
    stopping: &Cancel,
) -> Result<JobOutcome, JobError> {
    let rules = RuleSet::load(&settings.quality).map_err(JobError::Rules)?;
    let client = CoinGeckoClient::new(&settings.coingecko)?;
    let rt = current_thread()?;
    let run = pipeline::run(
        store,
        settings,
        &rules,
        trigger.name(),
        Extract::Live {
            client: &client,
            coins: settings.coins.clone(),
            until: Utc::now(),
            backfill_days: crate::ingest::budget::backfill_days(&settings.coingecko),
            // Scheduled runs keep to the plan's budget; the start-up catch-up and manual runs
            // fetch every coin.
            cadence: match trigger {
                Trigger::Schedule => pipeline::Cadence::WithinBudget,
                Trigger::Startup | Trigger::Api => pipeline::Cadence::EveryCoin,
            },
        },
    );
    let interrupted = async {
        while !stopping.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let report = rt.block_on(async {
        tokio::select! {
            report = run => Some(report),
            _ = interrupted => None,
        }
    });
    let Some(report) = report else {
        if let Err(e) = pipeline::interrupt_running(store) {
            tracing::warn!(
                "cannot record the interrupted run: {}",
                crate::failure::report(&e)
            );
        }
        return Err(JobError::Interrupted);
    };
    let report = report?;
    let s = &report.summary;
    Ok(JobOutcome {
        run_id: report.run_id,
        state: report.state.name(),
        line: format!(
            "run #{} {}: {} merged, {} quarantined, {} feature rows, {} predictions scored{}",
            report.run_id,
            report.state.name(),
            s.merged,
            s.quarantined,
            s.feature_rows,
            s.monitor.as_ref().map_or(0, |m| m.scored_predictions),
            report
                .error
                .as_ref()
                .map(|e| format!(": {}", crate::failure::report(e)))
                .unwrap_or_default()
        ),
        ingested: s
            .gated
            .iter()
            .filter(|g| g.merged)
            .map(|g| (g.coin_id.clone(), g.changed_hours))
            .collect(),
        // Merged hours or rebuilt features, or a quarantine SQL users should see.
        changed: s.feature_rows > 0
            || s.quarantined > 0
            || s.gated.iter().any(|g| g.merged && g.changed_hours > 0),
    })
}

/// One retrain run (in a child process, `trainer`); the snapshot published
/// after it serves the run's champion. A shutdown kills the child (the run is recorded as interrupted).
fn run_retrain(
    store: &Store,
    settings: &Settings,
    trainer: &Trainer,
    trigger: Trigger,
    stopping: &Cancel,
) -> Result<JobOutcome, JobError> {
    let rt = current_thread()?;
    let report = rt.block_on(pipeline::retrain(
        store,
        settings,
        trigger.name(),
        stopping.clone(),
        trainer,
    ))?;
    let line = match (&report.summary, &report.error) {
        (Some(s), _) => format!(
            "run #{} retrained: champion {} ({}): {}",
            report.run_id, s.model_id, s.family, s.summary
        ),
        (None, Some(e)) => format!(
            "run #{} {}: {}",
            report.run_id,
            report.state.name(),
            crate::failure::report(e)
        ),
        (None, None) => format!("run #{} {}", report.run_id, report.state.name()),
    };
    Ok(JobOutcome {
        run_id: report.run_id,
        state: report.state.name(),
        line,
        ingested: Vec::new(),
        changed: true,
    })
}

fn current_thread() -> Result<tokio::runtime::Runtime, JobError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(JobError::AsyncRuntime)
}
