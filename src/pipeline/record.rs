//! Bookkeeping of runs and task attempts in `pipeline_runs` and `task_runs`.

use std::future::Future;
use std::time::Duration;

use duckdb::{params, Connection};

use serde::Serialize;

use super::{PipelineError, RunState, TaskError, TaskOutput};
use crate::failure::{report, Classify, Failure};

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
            include_str!("../../sql/pipeline/start_run.sql"),
            params![job, trigger],
            |r| r.get(0),
        )?;
        tracing::info!(run_id, job, trigger, "pipeline run started");
        Ok(Self { conn, run_id })
    }

    pub fn finish(
        &self,
        state: RunState,
        error: Option<&PipelineError>,
        summary: &impl Serialize,
    ) -> Result<(), duckdb::Error> {
        let summary = serde_json::to_string(summary).unwrap_or_else(|_| "{}".into());
        self.conn.execute(
            include_str!("../../sql/pipeline/finish_run.sql"),
            params![
                state.name(),
                error.map(|e| report(e)),
                error.map(|e| e.failure().name()),
                summary,
                self.run_id
            ],
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
        mut f: impl FnMut() -> Result<TaskOutput<T>, TaskError>,
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
        Fut: Future<Output = Result<TaskOutput<T>, TaskError>>,
    {
        let attempts = attempts.max(1);
        let mut attempt = 1;
        loop {
            self.conn.execute(
                include_str!("../../sql/pipeline/start_task.sql"),
                params![self.run_id, name, attempt],
            )?;
            let result = f().await;
            let (state, error, failure, log) = match &result {
                Ok(out) => (TaskState::Success, None, None, excerpt(&out.log)),
                Err(e) => (
                    TaskState::Failed,
                    Some(report(e)),
                    Some(e.failure().name()),
                    String::new(),
                ),
            };
            self.conn.execute(
                include_str!("../../sql/pipeline/finish_task.sql"),
                params![
                    state.name(),
                    error,
                    failure,
                    log,
                    self.run_id,
                    name,
                    attempt
                ],
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
                        "task failed: {}",
                        report(&e)
                    );
                    // A shutdown or a bad setting fails the next attempt the same way.
                    let final_attempt = attempt >= attempts
                        || matches!(e.failure(), Failure::Interrupted | Failure::Usage);
                    if final_attempt {
                        return Err(PipelineError::Task {
                            task: name,
                            attempts: attempt,
                            source: Box::new(e),
                        });
                    }
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
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
