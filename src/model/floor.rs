//! The floor before any training. As soon as a coin has a day of hourly returns
//! ([`MIN_RETURNS`]), persistence with EWMA-scaled intervals (Gaussian multipliers: there are no
//! residuals yet) is registered as the floor, so `/predict` answers from the first ingested day.
//! Every training run registers a calibrated floor in its place.

use std::path::Path;

use chrono::Utc;
use duckdb::Connection;

use super::artifacts;
use super::card;
use super::classical::ClassicalCard;
use super::lstm::LstmSpec;
use super::registry::{self, Floor, GateVerdict, NewExperiment, NewModel, Role};
use super::train::load_series;
use super::volatility::MIN_RETURNS;
use super::ModelError;

pub struct FloorRequest<'a> {
    pub coins: &'a [String],
    pub vs_currency: &'a str,
    /// Horizon, interval level and the monitored features come from the configured spec.
    pub spec: &'a LstmSpec,
    pub ewma_lambda: f64,
    pub data_dir: &'a Path,
}

/// Registers the uncalibrated floor when there is no floor yet and a coin has enough returns;
/// returns its id when it did.
pub fn ensure_floor(
    conn: &Connection,
    req: &FloorRequest<'_>,
) -> Result<Option<String>, ModelError> {
    if registry::floor(conn)?.is_some() {
        return Ok(None);
    }
    let series = match load_series(conn, req.coins, req.vs_currency, &req.spec.features) {
        Ok((series, _)) => series,
        Err(ModelError::NoCoins) => return Ok(None),
        Err(e) => return Err(e),
    };
    let ready: Vec<_> = series
        .into_iter()
        .filter(|s| s.returns_up_to(s.last_index()) >= MIN_RETURNS)
        .collect();
    if ready.is_empty() {
        return Ok(None);
    }
    let newest = ready
        .iter()
        .map(|s| s.first_hour + s.last_index() as i64)
        .max()
        .unwrap_or_default();
    let samples: Vec<(usize, usize)> = ready
        .iter()
        .enumerate()
        .flat_map(|(c, s)| {
            (0..s.len())
                .filter(|&i| s.has_inputs(i, 1))
                .map(move |i| (c, i))
        })
        .collect();
    let coins: Vec<String> = ready.iter().map(|s| s.coin_id.clone()).collect();
    let card = ClassicalCard::cold_floor(
        req.spec.horizon,
        req.spec.interval_level,
        req.ewma_lambda,
        coins.clone(),
        req.spec.features.clone(),
        card::feature_stats(&req.spec.features, &samples, &ready),
        newest,
    );
    let dataset_version = registry::dataset_version(conn, &coins, req.vs_currency, newest + 1)?;
    let run_id = registry::start_experiment(
        conn,
        &NewExperiment {
            family: "floor",
            params_json: &serde_json::to_string(&card.recipe).unwrap_or_default(),
            coins: &coins,
            dataset_version: &dataset_version,
            trained_until_hour: newest + 1,
            device: "cpu",
        },
    )?;
    let model_id = format!(
        "{}-{run_id}-{}",
        card.name,
        Utc::now().format("%Y%m%dT%H%M%S%3f")
    );
    let written = artifacts::write_atomically(req.data_dir, &model_id, |dir, mid_write| {
        mid_write();
        card.save(dir)
    });
    if let Err(e) = written {
        registry::finish_experiment(conn, run_id, Some(&e.to_string()), "{}")?;
        return Err(e);
    }
    let reason = format!(
        "the floor before any training: persistence with EWMA intervals (λ {}), {}",
        req.ewma_lambda, card.calibration.source
    );
    registry::register(
        conn,
        &NewModel {
            model_id: &model_id,
            run_id,
            family: &card.name,
            dataset_version: &dataset_version,
            artifact_path: &artifacts::registered_path(&model_id),
            score: f64::NAN,
            metrics_json: "{}",
            training_stats_json: "{}",
            verdict: &GateVerdict {
                passed: false,
                reason: reason.clone(),
            },
            verdict_json: &serde_json::json!({ "summary": reason }).to_string(),
            recipe_json: &serde_json::to_string(&card.recipe).unwrap_or_default(),
            trained_until_hour: newest,
            role: Role::Challenger,
            floor: Floor::Yes,
            demotion_reason: "",
        },
    )?;
    registry::finish_experiment(
        conn,
        run_id,
        None,
        &serde_json::json!({ "model_id": model_id, "floor": true }).to_string(),
    )?;
    tracing::info!(model_id, coins = ?coins, "registered the floor");
    Ok(Some(model_id))
}
