//! The server's retrain in a child process. The worker holds the live file, so the child reads a
//! consistent copy of it (read-only; the backup's `COPY FROM DATABASE`, taken when the run
//! starts), fits every candidate and writes the artifacts; the worker then records the experiment
//! and registers the models through the registry's transactions.
//! The child's memory goes back to the system when it exits, it runs at a lower priority than
//! the server, and its crash fails the run, never the server.
//!
//! The two sides speak through two JSON files in `<data_dir>/tmp/`, beside the copy: the job
//! (written by the worker) and the result (written by the child, then renamed into place). All
//! three are removed when the run ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::model::gate::GateRules;
use crate::model::train::{self, ExperimentRecord, TrainFacts, TrainedRecord};
use crate::model::{registry, Cancel, ModelError};

/// The hidden subcommand that runs a job: `coincast retrain-job <JOB.json>`.
pub const SUBCOMMAND: &str = "retrain-job";
/// The child's niceness: below the server's requests, above nothing else of ours.
const NICENESS: i32 = 10;
/// How often the worker looks at the child and at its own shutdown.
const POLL: Duration = Duration::from_millis(200);

/// How the server's retrain runs: in a child process started from `executable` (this binary,
/// or the built one in tests).
#[derive(Debug, Clone)]
pub struct Trainer {
    executable: PathBuf,
}

impl Trainer {
    pub fn child_process(executable: PathBuf) -> Self {
        Self { executable }
    }

    pub(super) fn executable(&self) -> &Path {
        &self.executable
    }
}

/// What the worker asks of the child.
#[derive(Debug, Serialize, Deserialize)]
pub struct RetrainJob {
    /// The copy of the database to read.
    pub source: PathBuf,
    pub data_dir: PathBuf,
    /// The experiment id the worker reserved; the models are named after it.
    pub run_id: i64,
    pub coins: Vec<String>,
    pub vs_currency: String,
    /// `model.spec` and `model.protocol` as configured (empty: the built-in ones).
    pub spec: String,
    pub protocol: String,
    pub gate: GateRules,
    /// Where the child writes its result.
    pub result: PathBuf,
}

/// What the child hands back.
#[derive(Debug, Serialize, Deserialize)]
pub enum RetrainResult {
    Trained(Box<TrainedRecord>),
    Failed {
        /// Set when it failed after its plan: the worker records a failed experiment.
        experiment: Option<ExperimentRecord>,
        error: String,
        interrupted: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("retrain job {path}: {message}")]
    Job { path: String, message: String },
    #[error("the database copy {path} cannot be opened: {source}")]
    Source {
        path: String,
        #[source]
        source: duckdb::Error,
    },
}

/// The child's side: runs the job in `path` and writes its result. An error here means no
/// result could be written; a failed selection is a result.
pub fn run_job(path: &Path) -> Result<(), ChildError> {
    let job_error = |message: String| ChildError::Job {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| job_error(e.to_string()))?;
    let job: RetrainJob = serde_json::from_str(&text).map_err(|e| job_error(e.to_string()))?;
    lower_priority();
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .map_err(|source| ChildError::Source {
            path: job.source.display().to_string(),
            source,
        })?;
    let conn = duckdb::Connection::open_with_flags(&job.source, config).map_err(|source| {
        ChildError::Source {
            path: job.source.display().to_string(),
            source,
        }
    })?;
    let result = match fit(&conn, &job) {
        Ok(record) => RetrainResult::Trained(Box::new(record)),
        Err(failed) => RetrainResult::Failed {
            experiment: failed.experiment.map(|e| *e),
            interrupted: matches!(failed.error, ModelError::Cancelled),
            error: crate::failure::report(&failed.error),
        },
    };
    let body = serde_json::to_vec(&result).map_err(|e| job_error(e.to_string()))?;
    let partial = job.result.with_extension("partial");
    std::fs::write(&partial, body)
        .and_then(|()| std::fs::rename(&partial, &job.result))
        .map_err(|e| job_error(format!("writing {}: {e}", job.result.display())))
}

fn fit(conn: &duckdb::Connection, job: &RetrainJob) -> Result<TrainedRecord, train::FailedRun> {
    let failed = |error| train::FailedRun {
        experiment: None,
        error,
    };
    let spec = train::spec_from(&job.spec).map_err(failed)?;
    let protocol = train::protocol_from(&job.protocol).map_err(failed)?;
    train::fit_for_worker(
        conn,
        train::TrainRequest {
            coins: &job.coins,
            vs_currency: &job.vs_currency,
            spec,
            protocol,
            gate: job.gate.clone(),
            data_dir: &job.data_dir,
            register: train::RegisterPolicy::Winner,
            cancel: Cancel::default(),
        },
        job.run_id,
        |p| {
            if let train::Progress::Candidate { label, index, of } = p {
                tracing::info!(candidate = label, index, of, "walk-forward (retrain child)")
            }
        },
    )
}

/// Below the server's threads: a retrain must not slow the answers.
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, NICENESS) {
        tracing::warn!("the retrain child keeps its priority: {e}");
    }
}

/// The worker's side: copies the database for the child, runs it, records what it returns.
/// `cancel` kills the child.
pub fn train_in_child(
    conn: &duckdb::Connection,
    settings: &Settings,
    exe: &Path,
    cancel: &Cancel,
) -> Result<TrainFacts, ModelError> {
    let tmp = settings.data_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| child_error(format!("{}: {e}", tmp.display())))?;
    let run_id = registry::reserve_experiment_id(conn)?;
    let started_at = Utc::now();
    let source = tmp.join(format!("retrain-{run_id}.duckdb"));
    let job_path = tmp.join(format!("retrain-{run_id}.job.json"));
    let result_path = tmp.join(format!("retrain-{run_id}.result.json"));
    let outcome = copy_database(conn, settings, &source).and_then(|()| {
        run_job_in_child(
            settings,
            exe,
            run_id,
            &source,
            &job_path,
            &result_path,
            cancel,
        )
    });
    for path in [&source, &job_path, &result_path] {
        let _ = std::fs::remove_file(path);
    }
    match outcome? {
        RetrainResult::Trained(record) => {
            train::record_for_worker(conn, run_id, started_at, &record)?;
            Ok(record.facts)
        }
        RetrainResult::Failed {
            experiment,
            error,
            interrupted,
        } => {
            if let Some(e) = &experiment {
                train::record_failed_for_worker(conn, run_id, started_at, e, &error)?;
            }
            Err(if interrupted {
                ModelError::Cancelled
            } else {
                child_error(error)
            })
        }
    }
}

/// A consistent copy of the live database (a leftover of a crashed run is replaced); the pages
/// the copy cached in this process go back to the system.
fn copy_database(
    conn: &duckdb::Connection,
    settings: &Settings,
    dest: &Path,
) -> Result<(), ModelError> {
    let _ = std::fs::remove_file(dest);
    crate::store::snapshot_to(conn, dest).map_err(|e| {
        child_error(format!(
            "copying the database for it: {}",
            crate::failure::report(&e)
        ))
    })?;
    if let Err(e) = crate::store::release_cached_pages(conn, &settings.store) {
        tracing::warn!("DuckDB's cached pages stay: {}", crate::failure::report(&e));
    }
    Ok(())
}

/// Writes the job, runs the child on it and reads its result.
fn run_job_in_child(
    settings: &Settings,
    exe: &Path,
    run_id: i64,
    source: &Path,
    job_path: &Path,
    result_path: &Path,
    cancel: &Cancel,
) -> Result<RetrainResult, ModelError> {
    let job = RetrainJob {
        source: source.to_path_buf(),
        data_dir: settings.data_dir.clone(),
        run_id,
        coins: settings.coins.clone(),
        vs_currency: settings.vs_currency.clone(),
        spec: settings.model.spec.clone(),
        protocol: settings.model.protocol.clone(),
        gate: settings.model.gate.clone(),
        result: result_path.to_path_buf(),
    };
    let body = serde_json::to_vec(&job).map_err(|e| child_error(e.to_string()))?;
    std::fs::write(job_path, body)
        .map_err(|e| child_error(format!("{}: {e}", job_path.display())))?;
    let status = run_child(exe, job_path, cancel)?;
    let text = std::fs::read_to_string(result_path)
        .map_err(|e| child_error(format!("it exited with {status} and left no result ({e})")))?;
    serde_json::from_str(&text).map_err(|e| child_error(format!("its result is unreadable: {e}")))
}

/// Removes what a retrain left in `<data_dir>/tmp/` when the server died during it (a copy is as
/// large as the database). Called before the worker starts, when no child can be running.
pub fn sweep_leftovers(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("tmp")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("retrain-") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!("removed a crashed retrain's {}", entry.path().display()),
                Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

/// Starts the child and waits for it; a shutdown kills it (the run is then interrupted).
fn run_child(exe: &Path, job: &Path, cancel: &Cancel) -> Result<ExitStatus, ModelError> {
    let mut child: Child = Command::new(exe)
        .arg(SUBCOMMAND)
        .arg(job)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| child_error(format!("cannot start {}: {e}", exe.display())))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if cancel.is_cancelled() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ModelError::Cancelled);
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(child_error(format!("waiting for it: {e}"))),
        }
    }
}

fn child_error(message: String) -> ModelError {
    ModelError::Child(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crashed_retrains_files_are_swept_and_nothing_else() {
        let dir = tempfile::tempdir().expect("dir");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("tmp");
        for name in ["retrain-7.duckdb", "retrain-7.job.json", "other.txt"] {
            std::fs::write(tmp.join(name), b"x").expect("write");
        }
        sweep_leftovers(dir.path());
        let left: Vec<String> = std::fs::read_dir(&tmp)
            .expect("read")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["other.txt".to_string()]);
        // No tmp folder at all is fine too.
        sweep_leftovers(&dir.path().join("missing"));
    }
}
