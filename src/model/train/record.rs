//! What a selection run records, as rows: the experiment, its metrics and the models it fitted.
//! A retrain child process computes them against a copy of the database and hands them to the
//! worker as JSON, which records them on the live file (`record_rows`).

use duckdb::Connection;
use serde::{Deserialize, Serialize};

use super::super::artifacts;
use super::super::gate::ChampionOutcome;
use super::super::registry::{self, Floor, GateVerdict, NewExperiment, NewModel, Role};
use super::super::ModelError;

/// The `experiments` row of a selection run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentRecord {
    pub params_json: String,
    pub coins: Vec<String>,
    pub dataset_version: String,
    pub trained_until_hour: i64,
    pub device: String,
}

impl ExperimentRecord {
    pub(super) fn as_new(&self) -> NewExperiment<'_> {
        NewExperiment {
            family: "selection",
            params_json: &self.params_json,
            coins: &self.coins,
            dataset_version: &self.dataset_version,
            trained_until_hour: self.trained_until_hour,
            device: &self.device,
        }
    }
}

/// One `run_metrics` row of a selection run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricRow {
    pub step: i64,
    pub name: String,
    pub value: Option<f64>,
}

/// A fitted model to register; its artifact is already written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRecord {
    pub model_id: String,
    pub family: String,
    /// The promotion metric (none when the candidate has no scorecard).
    pub score: Option<f64>,
    pub metrics_json: String,
    pub training_stats_json: String,
    pub verdict: GateVerdict,
    pub verdict_json: String,
    pub recipe_json: String,
    pub role: Role,
    pub floor: Floor,
    pub demotion_reason: String,
}

/// What a selection run decided, in the few facts its callers report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainFacts {
    /// The experiment.
    pub run_id: i64,
    pub model_id: String,
    pub family: String,
    pub floor_id: Option<String>,
    pub outcome: ChampionOutcome,
    pub summary: String,
    pub candidates: usize,
    pub folds: usize,
    pub refit_every_folds: u32,
    pub walk_forward_seconds: f64,
    pub refit_seconds: f64,
    pub skipped_coins: Vec<String>,
}

/// Everything a selection run records, as rows: what a retrain child process computes against a
/// copy of the database and hands to the worker, which owns the live file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedRecord {
    pub experiment: ExperimentRecord,
    /// The newest origin the models were fitted on.
    pub trained_until_hour: i64,
    pub metrics: Vec<MetricRow>,
    /// The winner (champion) first, then the floor and challengers: the order they register in.
    pub models: Vec<ModelRecord>,
    pub summary_json: String,
    pub facts: TrainFacts,
}

/// A selection run that failed; `experiment` is set when it failed after its plan (the worker
/// records the experiment as failed then, as an in-process run does).
#[derive(Debug)]
pub struct FailedRun {
    pub experiment: Option<Box<ExperimentRecord>>,
    pub error: ModelError,
}

/// Records a run's metrics and registers its models, in the order they were fitted.
pub(super) fn record_rows(
    conn: &Connection,
    run_id: i64,
    record: &TrainedRecord,
) -> Result<(), ModelError> {
    let mut app = conn.appender("run_metrics")?;
    for m in &record.metrics {
        app.append_row(duckdb::params![run_id, m.step, m.name, m.value])?;
    }
    app.flush()?;
    let e = &record.experiment;
    for m in &record.models {
        registry::register(
            conn,
            &NewModel {
                model_id: &m.model_id,
                run_id,
                family: &m.family,
                dataset_version: &e.dataset_version,
                artifact_path: &artifacts::registered_path(&m.model_id),
                score: m.score.unwrap_or(f64::NAN),
                metrics_json: &m.metrics_json,
                training_stats_json: &m.training_stats_json,
                verdict: &m.verdict,
                verdict_json: &m.verdict_json,
                recipe_json: &m.recipe_json,
                trained_until_hour: record.trained_until_hour,
                role: m.role,
                floor: m.floor,
                demotion_reason: &m.demotion_reason,
            },
        )?;
    }
    Ok(())
}
