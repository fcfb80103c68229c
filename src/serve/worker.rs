//! The pipeline worker inside `coincast serve`: one thread that owns the DuckDB file and runs two
//! jobs, ingest (hourly by default) and retrain (daily by default), each on its cron schedule or
//! on a manual trigger, never two runs at once. After each run it publishes the run's metrics and
//! reloads the serving snapshot (no restart). Missed hours after downtime are caught up by the
//! next ingest, since the extract starts at each coin's last stored hour.
//!
//! Two more connections are cloned from the store at start: one for the prediction log's writer
//! thread and one for the API (promotions), so that neither waits behind a long run.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;

use super::metrics::Metrics;
use super::prediction_log::PredictionLog;
use super::state::{AppState, Snapshot};
use crate::config::Settings;
use crate::ingest::coingecko::CoinGeckoClient;
use crate::monitor;
use crate::pipeline::{self, Extract};
use crate::quality::RuleSet;
use crate::store::{Store, StoreError};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// extract → quality_gate → transform → monitor.
    Ingest,
    /// Train, evaluate and register through the gate.
    Retrain,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Ingest => "ingest",
            Job::Retrain => "retrain",
        }
    }
}

pub enum Command {
    /// Run a job now (manual trigger).
    Run { job: Job, trigger: String },
    /// Finish the current run, checkpoint and stop.
    Stop,
}

/// A handle to the worker: send commands, then `stop` to checkpoint and join.
pub struct Worker {
    sender: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    /// Set at shutdown: an in-flight run is interrupted instead of waited for.
    stopping: Arc<AtomicBool>,
}

impl Worker {
    /// Opens the store in a new thread, loads the first snapshot into a new `AppState`, and
    /// returns once it is ready; the thread keeps the state to reload it after each run.
    pub fn start(
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Arc<AppState>), StoreError> {
        let (sender, receiver) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let trigger = sender.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop_flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let store = match Store::open(&settings.data_dir) {
                    Ok(store) => store,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                pipeline::sweep_orphan_artifacts(&store, &settings);
                let snapshot = Snapshot::load(store.conn(), &settings);
                for p in &snapshot.problems {
                    tracing::warn!("{p}");
                }
                let mut state = AppState::new(snapshot, settings.clone(), metrics.clone())
                    .with_pipeline(trigger);
                // The prediction log and the API get connections of their own.
                match store.conn().try_clone() {
                    Ok(conn) => match PredictionLog::start(conn, metrics) {
                        Ok(log) => state = state.with_prediction_log(log),
                        Err(e) => tracing::warn!("predictions will not be logged: {e}"),
                    },
                    Err(e) => tracing::warn!("predictions will not be logged: {e}"),
                }
                match store.conn().try_clone() {
                    Ok(conn) => state = state.with_db(conn),
                    Err(e) => tracing::warn!("promotion endpoints unavailable: {e}"),
                }
                let state = Arc::new(state);
                if ready_tx.send(Ok(state.clone())).is_err() {
                    return;
                }
                run_loop(&store, &settings, &state, &receiver, &stop_flag);
                // Requests are drained by now: write the last predictions, then checkpoint.
                if let Some(log) = &state.prediction_log {
                    log.stop();
                }
                if let Err(e) = store.checkpoint() {
                    tracing::warn!("checkpoint at shutdown failed: {e}");
                }
            })
            .map_err(|source| StoreError::DataDir {
                path: "pipeline thread".into(),
                source,
            })?;
        let state = match ready_rx.recv() {
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
            state,
        ))
    }

    /// Stops promptly: a run in flight is interrupted (recorded as failed; every task's writes
    /// are transactional), queued runs are dropped, then the database is checkpointed.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.sender.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn parse_schedule(text: &str) -> Option<cron::Schedule> {
    cron::Schedule::from_str(text.trim()).ok()
}

fn run_loop(
    store: &Store,
    settings: &Settings,
    state: &AppState,
    commands: &Receiver<Command>,
    stopping: &AtomicBool,
) {
    let schedules: Vec<(Job, cron::Schedule)> = [
        (Job::Ingest, &settings.serve.pipeline_schedule),
        (Job::Retrain, &settings.serve.retrain_schedule),
    ]
    .into_iter()
    .filter_map(|(job, text)| parse_schedule(text).map(|s| (job, s)))
    .collect();
    if schedules.iter().any(|(job, _)| *job == Job::Ingest) {
        // Catch up at start-up: hours missed while the appliance was down come in now.
        run_job(store, settings, state, Job::Ingest, "startup", stopping);
    }
    loop {
        // The next scheduled time, and every job due then (ingest first).
        let upcoming: Vec<(Job, chrono::DateTime<Utc>)> = schedules
            .iter()
            .filter_map(|(job, s)| s.upcoming(Utc).next().map(|t| (*job, t)))
            .collect();
        let next = upcoming.iter().map(|(_, t)| *t).min();
        let wait = next
            .and_then(|t| (t - Utc::now()).to_std().ok())
            .unwrap_or(Duration::from_secs(3600));
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match commands.recv_timeout(wait) {
            Ok(Command::Run { job, trigger }) => {
                run_job(store, settings, state, job, &trigger, stopping)
            }
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                for (job, _) in upcoming.iter().filter(|(_, t)| Some(*t) == next) {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    run_job(store, settings, state, *job, "schedule", stopping);
                }
            }
        }
    }
}

/// Runs a job, publishes its metrics, and reloads the snapshot.
pub fn run_job(
    store: &Store,
    settings: &Settings,
    state: &AppState,
    job: Job,
    trigger: &str,
    stopping: &AtomicBool,
) {
    let outcome = match job {
        Job::Ingest => run_ingest(store, settings, trigger, stopping),
        Job::Retrain => run_retrain(store, settings, trigger),
    };
    // Reload whatever the database now holds (a failed run changes nothing, which is fine),
    // before the run is counted: whoever sees the count sees its data and model served.
    state.replace(Snapshot::load(store.conn(), settings));
    let state_label = match &outcome {
        Ok(o) => o.state,
        Err(_) => "failed",
    };
    let m = &state.metrics;
    m.coincast_pipeline_runs_total
        .with_label_values(&[job.name(), trigger, state_label])
        .inc();
    m.coincast_pipeline_last_run_timestamp_seconds
        .with_label_values(&[job.name(), state_label])
        .set(Utc::now().timestamp() as f64);
    match &outcome {
        Ok(o) => {
            tracing::info!(job = job.name(), trigger, "{}", o.line);
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
                Err(e) => tracing::warn!("reading run {} for metrics: {e}", o.run_id),
            }
            for (coin, hours) in &o.ingested {
                m.coincast_rows_ingested_total
                    .with_label_values(&[coin])
                    .inc_by(*hours);
            }
        }
        Err(e) => tracing::error!(job = job.name(), trigger, "run failed: {e}"),
    }
}

/// What a finished run reports to `run_job`.
struct JobOutcome {
    run_id: i64,
    state: &'static str,
    line: String,
    /// (coin, hours merged) for the ingest counter.
    ingested: Vec<(String, u64)>,
}

/// One ingest run from CoinGecko; interrupted (and recorded as such) when the server stops.
fn run_ingest(
    store: &Store,
    settings: &Settings,
    trigger: &str,
    stopping: &AtomicBool,
) -> Result<JobOutcome, String> {
    let rules = RuleSet::load(&settings.quality).map_err(|e| e.to_string())?;
    let client = CoinGeckoClient::new(&settings.coingecko).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let run = pipeline::run(
        store,
        settings,
        &rules,
        trigger,
        Extract::Live {
            client: &client,
            coins: settings.coins.clone(),
            until: Utc::now(),
            backfill_days: crate::ingest::budget::backfill_days(&settings.coingecko),
            // Scheduled runs keep to the plan's budget; the start-up catch-up and manual runs
            // fetch every coin.
            cadence: if trigger == "schedule" {
                pipeline::Cadence::WithinBudget
            } else {
                pipeline::Cadence::EveryCoin
            },
        },
    );
    let interrupted = async {
        while !stopping.load(Ordering::SeqCst) {
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
            tracing::warn!("cannot record the interrupted run: {e}");
        }
        return Err("interrupted by shutdown".to_string());
    };
    let report = report.map_err(|e| e.to_string())?;
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
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        ingested: s
            .gated
            .iter()
            .filter(|g| g.merged)
            .map(|g| (g.coin_id.clone(), g.changed_hours))
            .collect(),
    })
}

/// One retrain run; the snapshot reload that follows serves the run's champion.
fn run_retrain(store: &Store, settings: &Settings, trigger: &str) -> Result<JobOutcome, String> {
    let rt = runtime()?;
    let report = rt
        .block_on(pipeline::retrain(store, settings, trigger))
        .map_err(|e| e.to_string())?;
    let line = match (&report.summary, &report.error) {
        (Some(s), _) => format!(
            "run #{} retrained: champion {} ({}): {}",
            report.run_id, s.model_id, s.family, s.summary
        ),
        (None, Some(e)) => format!("run #{} failed: {e}", report.run_id),
        (None, None) => format!("run #{} {}", report.run_id, report.state.name()),
    };
    Ok(JobOutcome {
        run_id: report.run_id,
        state: report.state.name(),
        line,
        ingested: Vec::new(),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}
