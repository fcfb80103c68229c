//! The pipeline worker inside `coincast serve`: one thread that owns the DuckDB file, runs the
//! pipeline on the configured schedule or on a manual trigger, never two at once, and after each
//! run reloads the serving snapshot (no restart). Missed hours after downtime are caught up by the
//! next run, since the extract starts at each coin's last stored hour.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;

use super::metrics::Metrics;
use super::state::{AppState, Snapshot};
use crate::config::Settings;
use crate::ingest::coingecko::CoinGeckoClient;
use crate::pipeline::{self, Extract};
use crate::quality::RuleSet;
use crate::store::{Store, StoreError};

pub enum Command {
    /// Run the pipeline now (manual trigger).
    Run { trigger: String },
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
                let snapshot = Snapshot::load(store.conn(), &settings);
                for p in &snapshot.problems {
                    tracing::warn!("{p}");
                }
                let state = Arc::new(
                    AppState::new(snapshot, settings.serve.clone(), metrics).with_pipeline(trigger),
                );
                if ready_tx.send(Ok(state.clone())).is_err() {
                    return;
                }
                run_loop(&store, &settings, &state, &receiver, &stop_flag);
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

fn run_loop(
    store: &Store,
    settings: &Settings,
    state: &AppState,
    commands: &Receiver<Command>,
    stopping: &AtomicBool,
) {
    let schedule = cron::Schedule::from_str(settings.serve.pipeline_schedule.trim()).ok();
    if schedule.is_some() {
        // Catch up at start-up: hours missed while the appliance was down come in now.
        run_once(store, settings, state, "startup", stopping);
    }
    loop {
        let wait = schedule
            .as_ref()
            .and_then(|s| s.upcoming(Utc).next())
            .and_then(|next| (next - Utc::now()).to_std().ok())
            .unwrap_or(Duration::from_secs(3600));
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let trigger = match commands.recv_timeout(wait) {
            Ok(Command::Run { trigger }) => trigger,
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) if schedule.is_some() => "schedule".to_string(),
            Err(RecvTimeoutError::Timeout) => continue,
        };
        run_once(store, settings, state, &trigger, stopping);
    }
}

/// One pipeline run from CoinGecko, then a snapshot reload.
pub fn run_once(
    store: &Store,
    settings: &Settings,
    state: &AppState,
    trigger: &str,
    stopping: &AtomicBool,
) {
    let outcome = (|| -> Result<(String, &'static str), String> {
        let rules = RuleSet::load(&settings.quality).map_err(|e| e.to_string())?;
        let client = CoinGeckoClient::new(&settings.coingecko).map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let run = pipeline::run(
            store,
            settings,
            &rules,
            trigger,
            Extract::Live {
                client: &client,
                coins: settings.coins.clone(),
                until: Utc::now(),
                backfill_days: settings.coingecko.backfill_days,
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
            let _ = store.conn().execute_batch(
                "UPDATE pipeline_runs SET state = 'failed', finished_at = now(), error = 'interrupted by shutdown' WHERE state = 'running';
                 UPDATE task_runs SET state = 'failed', finished_at = now(), error = 'interrupted by shutdown' WHERE state = 'running';",
            );
            return Err("interrupted by shutdown".to_string());
        };
        let report = report.map_err(|e| e.to_string())?;
        Ok((
            format!(
                "run #{} {}: {} merged, {} quarantined, {} feature rows",
                report.run_id,
                report.state.name(),
                report.summary.merged,
                report.summary.quarantined,
                report.summary.feature_rows
            ),
            report.state.name(),
        ))
    })();
    let state_label = match &outcome {
        Ok((_, run_state)) => *run_state,
        Err(_) => "failed",
    };
    state
        .metrics
        .coincast_pipeline_runs_total
        .with_label_values(&[trigger, state_label])
        .inc();
    state
        .metrics
        .coincast_pipeline_last_run_timestamp_seconds
        .with_label_values(&[state_label])
        .set(Utc::now().timestamp() as f64);
    match outcome {
        Ok((line, _)) => tracing::info!(trigger, "{line}"),
        Err(e) => tracing::error!(trigger, "pipeline run failed: {e}"),
    }
    // Reload whatever the database now holds (a failed run changes nothing, which is fine).
    state.replace(Snapshot::load(store.conn(), settings));
}
