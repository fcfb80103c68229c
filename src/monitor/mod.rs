//! Monitoring, the pipeline's last task: scores logged predictions once their hour has arrived,
//! moves the served models' online coverage control (`coverage`: ACI levels), and measures
//! feature drift (PSI) of the champion's inputs. The server turns what this stores into metrics
//! and intervals (`live_accuracy`, `latest_psi`, `coverage::load_state`); the hot path only
//! appends predictions (serve::prediction_log).
//!
//! Drift alerts and suggests; nothing here ever promotes or retrains a model.

pub mod accuracy;
pub mod coverage;
pub mod predictions;
pub mod psi;

use std::path::Path;

use duckdb::Connection;
use serde::Serialize;

use crate::model::served::ServedModel;
use crate::model::{registry, ModelError};

pub use accuracy::{live_accuracy, score_predictions, LiveAccuracy};
pub use coverage::{AciRow, CoverageUpdate};
pub use psi::{latest_psi, FeaturePsi, PsiReport};

/// Hours of newest data compared against the training distribution.
pub const PSI_WINDOW_HOURS: i64 = 24;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("database: {0}")]
    Db(#[from] duckdb::Error),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// What one monitor task did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MonitorReport {
    /// Predictions whose actual price arrived in this run.
    pub scored_predictions: usize,
    /// What online coverage control did for the champion and the floor.
    pub coverage: Vec<CoverageUpdate>,
    /// The champion's PSI, when there is a champion with PSI bins and recent data.
    pub psi: Option<PsiReport>,
    /// Why PSI was not computed, when it was not.
    pub psi_skipped: Option<String>,
}

/// What a finished pipeline run measured, for the server's metrics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunStats {
    /// (task, seconds) per attempt.
    pub task_seconds: Vec<(String, f64)>,
    /// (rule, severity, failed checks).
    pub quality_failures: Vec<(String, String, i64)>,
}

pub fn run_stats(conn: &Connection, run_id: i64) -> Result<RunStats, duckdb::Error> {
    let mut stmt = conn.prepare(include_str!("../../sql/monitor/run_tasks.sql"))?;
    let task_seconds = stmt
        .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(include_str!("../../sql/monitor/run_quality_failures.sql"))?;
    let quality_failures = stmt
        .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(RunStats {
        task_seconds,
        quality_failures,
    })
}

/// Scores what can be scored, then computes and stores the PSI of the configured features for
/// the model that serves (the champion, else the floor) under `run_id`. It is computed whatever
/// the model reads: persistence reads no feature, and its card still carries their training
/// statistics.
pub fn run(
    conn: &Connection,
    data_dir: &Path,
    vs_currency: &str,
    run_id: i64,
) -> Result<MonitorReport, MonitorError> {
    let mut report = MonitorReport {
        scored_predictions: score_predictions(conn)?,
        ..Default::default()
    };
    let (champion, floor) = (registry::champion(conn)?, registry::floor(conn)?);
    let coins = stored_coins(conn, vs_currency)?;
    for row in [&champion, &floor].into_iter().flatten() {
        if report.coverage.iter().any(|c| c.model_id == row.model_id) {
            continue;
        }
        report.coverage.push(coverage::update(
            conn,
            data_dir,
            row,
            &coins,
            vs_currency,
            run_id,
        )?);
    }
    let Some(model) = champion.or(floor) else {
        report.psi_skipped = Some("no model yet".into());
        return Ok(report);
    };
    let loaded = ServedModel::load(&model.artifact_dir(data_dir), tch::Device::Cpu)?;
    match psi::compute(
        conn,
        loaded.feature_stats(),
        loaded.coins(),
        vs_currency,
        PSI_WINDOW_HOURS,
    )? {
        Some(psi) => {
            psi::record(conn, run_id, &model.model_id, &psi)?;
            report.psi = Some(psi);
        }
        None => {
            report.psi_skipped = Some(format!(
                "{}: no PSI bins in its card (trained before PSI) or no recent features",
                model.model_id
            ))
        }
    }
    Ok(report)
}

/// Every coin with features in the quote currency.
pub fn stored_coins(conn: &Connection, vs_currency: &str) -> Result<Vec<String>, duckdb::Error> {
    let mut stmt = conn.prepare(include_str!("../../sql/monitor/stored_coins.sql"))?;
    let coins = stmt
        .query_map([vs_currency], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(coins)
}
