//! Bookkeeping of runs and task attempts in `pipeline_runs` and `task_runs`.

use std::future::Future;
use std::time::Duration;

use duckdb::{params, Connection};

use serde::Serialize;

use super::{PipelineError, RunState, TaskOutput};

/// Longest log excerpt kept per task attempt.
const MAX_LOG: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Success,
    Failed,
}

impl TaskState {
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Success => "success",
            TaskState::Failed => "failed",
        }
    }
}

/// Why a run (and its running task) stopped at shutdown.
pub const INTERRUPTED_BY_SHUTDOWN: &str = "interrupted by shutdown";

pub(super) struct RunRecorder<'c> {
    conn: &'c Connection,
    pub run_id: i64,
}

impl<'c> RunRecorder<'c> {
    pub fn start(conn: &'c Connection, job: &str, trigger: &str) -> Result<Self, duckdb::Error> {
        let run_id = conn.query_row(
            "INSERT INTO pipeline_runs (job, trigger, state, started_at)
             VALUES (?, ?, 'running', now())
             RETURNING run_id",
            params![job, trigger],
            |r| r.get(0),
        )?;
        tracing::info!(run_id, job, trigger, "pipeline run started");
        Ok(Self { conn, run_id })
    }

    pub fn finish(
        &self,
        state: RunState,
        error: Option<&str>,
        summary: &impl Serialize,
    ) -> Result<(), duckdb::Error> {
        let summary = serde_json::to_string(summary).unwrap_or_else(|_| "{}".into());
        self.conn.execute(
            "UPDATE pipeline_runs SET state = ?, finished_at = now(), error = ?, summary = ?
             WHERE run_id = ?",
            params![state.name(), error, summary, self.run_id],
        )?;
        tracing::info!(
            run_id = self.run_id,
            state = state.name(),
            "pipeline run finished"
        );
        Ok(())
    }

    /// Runs a task up to `attempts` times, recording each attempt.
    pub async fn task<T>(
        &self,
        name: &'static str,
        attempts: u32,
        delay: Duration,
        mut f: impl FnMut() -> Result<TaskOutput<T>, String>,
    ) -> Result<T, PipelineError> {
        self.task_async(name, attempts, delay, || std::future::ready(f()))
            .await
    }

    /// As [`RunRecorder::task`], for a task that awaits.
    pub async fn task_async<T, Fut>(
        &self,
        name: &'static str,
        attempts: u32,
        delay: Duration,
        mut f: impl FnMut() -> Fut,
    ) -> Result<T, PipelineError>
    where
        Fut: Future<Output = Result<TaskOutput<T>, String>>,
    {
        let attempts = attempts.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            self.conn.execute(
                "INSERT INTO task_runs (run_id, task, attempt, state, started_at)
                 VALUES (?, ?, ?, 'running', now())",
                params![self.run_id, name, attempt],
            )?;
            let result = f().await;
            let (state, error, log) = match &result {
                Ok(out) => (TaskState::Success, None, excerpt(&out.log)),
                Err(e) => (TaskState::Failed, Some(e.as_str()), String::new()),
            };
            self.conn.execute(
                "UPDATE task_runs SET state = ?, finished_at = now(), error = ?, log = ?
                 WHERE run_id = ? AND task = ? AND attempt = ?",
                params![state.name(), error, log, self.run_id, name, attempt],
            )?;
            match result {
                Ok(out) => {
                    tracing::info!(run_id = self.run_id, task = name, attempt, "task succeeded");
                    return Ok(out.value);
                }
                Err(e) => {
                    tracing::warn!(
                        run_id = self.run_id,
                        task = name,
                        attempt,
                        "task failed: {e}"
                    );
                    last_error = e;
                    if attempt < attempts {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        Err(PipelineError::Task {
            task: name,
            attempts,
            message: last_error,
        })
    }
}

fn excerpt(log: &str) -> String {
    if log.len() <= MAX_LOG {
        return log.to_string();
    }
    let mut end = MAX_LOG;
    while !log.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… ({} more bytes)", &log[..end], log.len() - end)
}
