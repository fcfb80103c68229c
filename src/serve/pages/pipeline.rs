//! `/pipeline`: runs with their tasks as a timeline (Gantt), durations, retries, errors and log
//! excerpts, and a trigger form that asks for the bearer token.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Serialize;

use super::overview::{runs, RunRow};
use super::svg::{self, GanttBar};
use super::{age, read, render, Layout};
use crate::model::artifacts::{self, OrphanArtifact};
use crate::serve::error::ApiError;
use crate::serve::state::AppState;

#[derive(Debug, Serialize)]
pub struct TaskRow {
    pub task: String,
    pub attempt: i64,
    pub state: String,
    pub start_offset: f64,
    pub end_offset: f64,
    pub error: Option<String>,
    pub log: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunWithTasks {
    #[serde(flatten)]
    pub run: RunRow,
    pub tasks: Vec<TaskRow>,
    /// Attempts beyond the first.
    pub retries: i64,
}

#[derive(Debug, Serialize)]
pub struct PipelinePage {
    pub runs: Vec<RunWithTasks>,
    pub ingest_schedule: String,
    pub retrain_schedule: String,
    pub trigger_enabled: bool,
    /// Artifact folders no registered model names (a crash while training), removed after
    /// `orphan_grace_hours`.
    pub orphan_artifacts: Vec<OrphanArtifact>,
    pub orphan_grace_hours: f64,
}

pub async fn load(state: &Arc<AppState>) -> Result<PipelinePage, ApiError> {
    let registered = read(state, artifacts::registered_names).await?;
    let grace = state.runtime.settings().model.orphan_artifact_grace_hours;
    let orphan_artifacts =
        artifacts::orphans_among(&registered, &state.runtime.settings().data_dir, grace);
    let runs = read(state, |conn| {
        let recent = runs(conn, 30)?;
        let oldest = recent.last().map_or(i64::MAX, |r| r.run_id);
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_run_tasks.sql"))?;
        let rows: Vec<(i64, TaskRow)> = stmt
            .query_map([oldest], |r| {
                Ok((
                    r.get(0)?,
                    TaskRow {
                        task: r.get(1)?,
                        attempt: r.get(2)?,
                        state: r.get(3)?,
                        start_offset: r.get(4)?,
                        end_offset: r.get(5)?,
                        error: r.get(6)?,
                        log: r.get(7)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut tasks: std::collections::HashMap<i64, Vec<TaskRow>> = Default::default();
        for (id, t) in rows {
            tasks.entry(id).or_default().push(t);
        }
        Ok(recent
            .into_iter()
            .map(|run| {
                let mine = tasks.remove(&run.run_id).unwrap_or_default();
                let retries = mine.iter().filter(|t| t.attempt > 1).count() as i64;
                RunWithTasks {
                    run,
                    tasks: mine,
                    retries,
                }
            })
            .collect())
    })
    .await?;
    let serve = &state.runtime.settings().serve;
    Ok(PipelinePage {
        runs,
        ingest_schedule: serve.pipeline_schedule.clone(),
        retrain_schedule: serve.retrain_schedule.clone(),
        trigger_enabled: state
            .runtime
            .access()
            .tokens()
            .guards(crate::access::Scope::Admin),
        orphan_artifacts,
        orphan_grace_hours: grace,
    })
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelineHtml {
    layout: Layout,
    page: PipelinePage,
    gantt: String,
}

impl PipelineHtml {
    fn age(&self, x: &f64) -> String {
        age(*x)
    }
    fn hours(&self, h: &f64) -> String {
        format!("{h:.1} h")
    }
    fn dur(&self, t: &TaskRow) -> String {
        format!("{:.2} s", t.end_offset - t.start_offset)
    }
}

pub async fn html(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let page = load(&state).await?;
    let rows: Vec<(String, Vec<GanttBar>)> = page
        .runs
        .iter()
        .take(12)
        .map(|r| {
            (
                format!("#{} {} {}", r.run.run_id, r.run.job, r.run.started),
                r.tasks
                    .iter()
                    .map(|t| GanttBar {
                        start: t.start_offset,
                        end: t.end_offset,
                        class: match t.state.as_str() {
                            "success" => "success",
                            "failed" => "failed",
                            "interrupted" => "interrupted",
                            _ => "running",
                        },
                        title: format!(
                            "{} attempt {}: {} in {:.2} s{}",
                            t.task,
                            t.attempt,
                            t.state,
                            t.end_offset - t.start_offset,
                            t.error
                                .as_deref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        ),
                    })
                    .collect(),
            )
        })
        .collect();
    let gantt = svg::gantt(&rows, 1100.0, "no runs yet");
    Ok(render(&PipelineHtml {
        layout: Layout::new("/pipeline"),
        page,
        gantt,
    }))
}

pub async fn json(State(state): State<Arc<AppState>>) -> Result<Json<PipelinePage>, ApiError> {
    Ok(Json(load(&state).await?))
}
