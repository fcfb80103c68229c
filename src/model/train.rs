//! `coincast train`: train the LSTM on everything before the walk-forward test windows, evaluate
//! it against the baselines on exactly those windows, save the artifact, and register it through
//! the promotion gate. Every step is tracked in `experiments` / `run_metrics`.

use std::path::{Path, PathBuf};

use chrono::Utc;
use duckdb::Connection;
use serde::Serialize;

use super::artifacts;
use super::dataset::CoinSeries;
use super::evaluate::{self, Evaluation, Protocol};
use super::lstm::{LstmForecaster, LstmSpec, TrainReport, TrainedLstm};
use super::registry::{self, GateVerdict, NewExperiment, NewModel};
use super::ModelError;

/// The LSTM spec in `path`, or the built-in models/lstm.toml when `path` is empty.
pub fn spec_from(path: &str) -> Result<LstmSpec, ModelError> {
    match path.trim() {
        "" => LstmSpec::parse("models/lstm.toml", super::lstm::DEFAULT_SPEC),
        p => LstmSpec::parse(p, &read_definition(p)?),
    }
}

/// The walk-forward protocol in `path`, or the built-in models/baselines.toml when `path` is empty.
pub fn protocol_from(path: &str) -> Result<Protocol, ModelError> {
    match path.trim() {
        "" => Protocol::parse("models/baselines.toml", evaluate::DEFAULT_PROTOCOL),
        p => Protocol::parse(p, &read_definition(p)?),
    }
}

fn read_definition(path: &str) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|e| ModelError::Definition {
        origin: path.to_string(),
        message: e.to_string(),
    })
}

pub struct TrainRequest<'a> {
    pub coins: &'a [String],
    pub vs_currency: &'a str,
    pub spec: LstmSpec,
    /// The walk-forward protocol (windows, step, baselines); its horizon and lookback follow the spec.
    pub protocol: Protocol,
    /// The gate's floor for the mean skill vs persistence.
    pub min_score: f64,
    pub data_dir: &'a Path,
}

#[derive(Debug, Serialize)]
pub struct TrainOutcome {
    pub model_id: String,
    pub run_id: i64,
    pub artifact: PathBuf,
    pub score: f64,
    pub verdict: GateVerdict,
    pub report: TrainReport,
    pub evaluation: Evaluation,
    pub skipped_coins: Vec<String>,
}

/// Loads the coins that have features; the others are reported as skipped.
pub fn load_series(
    conn: &Connection,
    coins: &[String],
    vs_currency: &str,
    features: &[String],
) -> Result<(Vec<CoinSeries>, Vec<String>), ModelError> {
    let (mut series, mut skipped) = (Vec::new(), Vec::new());
    for coin in coins {
        match CoinSeries::load(conn, coin, vs_currency, features) {
            Ok(s) => series.push(s),
            Err(ModelError::NoData(c)) => skipped.push(c),
            Err(e) => return Err(e),
        }
    }
    if series.is_empty() {
        return Err(ModelError::NoCoins);
    }
    Ok((series, skipped))
}

/// The mean skill vs persistence of `model` over every coin and horizon of an evaluation.
pub fn mean_skill(eval: &Evaluation, model: &str) -> f64 {
    let skills: Vec<f64> = eval
        .rows
        .iter()
        .filter(|r| r.model == model && r.metrics.skill.is_finite())
        .map(|r| r.metrics.skill)
        .collect();
    if skills.is_empty() {
        f64::NAN
    } else {
        skills.iter().sum::<f64>() / skills.len() as f64
    }
}

pub fn train_and_register(
    conn: &Connection,
    req: TrainRequest<'_>,
    mut on_epoch: impl FnMut(usize, f64, f64),
) -> Result<TrainOutcome, ModelError> {
    let spec = req.spec;
    let mut protocol = req.protocol;
    protocol.horizon = spec.horizon;
    protocol.lookback_hours = spec.lookback_hours;
    protocol.features = spec.features.clone();
    let (series, skipped_coins) = load_series(conn, req.coins, req.vs_currency, &spec.features)?;
    let folds = protocol.folds(&series)?;
    let first_test = folds
        .first()
        .map(|f| f.test.start)
        .ok_or(ModelError::NoCoins)?;
    let until = first_test - protocol.gap();
    let coins: Vec<String> = series.iter().map(|s| s.coin_id.clone()).collect();
    let dataset_version = registry::dataset_version(conn, &coins, req.vs_currency, until)?;
    let params_json = serde_json::to_string(&spec).unwrap_or_default();
    let device = super::lstm::resolve_device(&spec.device)?;
    let run_id = registry::start_experiment(
        conn,
        &NewExperiment {
            family: "lstm",
            params_json: &params_json,
            coins: &coins,
            dataset_version: &dataset_version,
            trained_until_hour: until,
            device: &super::lstm::device_name(device),
        },
    )?;
    tracing::info!(run_id, device = %super::lstm::device_name(device), "training the LSTM");
    let result = (|| -> Result<TrainOutcome, ModelError> {
        let mut epoch_log = Vec::new();
        let (mut model, report) = TrainedLstm::train(&series, &spec, until, |epoch, tl, vl| {
            epoch_log.push((epoch, tl, vl));
            on_epoch(epoch, tl, vl);
        })?;
        for (epoch, tl, vl) in epoch_log {
            registry::log_metric(conn, run_id, epoch as i64, "train_loss", tl)?;
            registry::log_metric(conn, run_id, epoch as i64, "val_loss", vl)?;
        }
        let model_id = format!("lstm-{run_id}-{}", Utc::now().format("%Y%m%dT%H%M%S"));
        let artifact = artifacts::write_atomically(req.data_dir, &model_id, |dir, mid_write| {
            model.save(dir, mid_write)
        })?;
        let training_stats = serde_json::json!({
            "train_losses": model.card.train_losses,
            "val_losses": model.card.val_losses,
            "best_epoch": model.card.best_epoch,
            "feature_stats": model.card.feature_stats,
            "interval_widths": model.card.interval_widths,
        });
        // The candidate and the baselines on the same folds; the champion joins when it was
        // trained on data before these windows (otherwise its stored score stands in).
        let mut forecasters = protocol.baselines();
        forecasters.push(Box::new(LstmForecaster { model }));
        let champion = registry::champion(conn)?;
        let mut champion_in_eval = false;
        if let Some(c) = &champion {
            if let Ok(m) = TrainedLstm::load(&c.artifact_dir(req.data_dir), device) {
                let comparable = m.card.trained_until_hour <= until
                    && m.card.spec.horizon == spec.horizon
                    && series.iter().all(|s| m.card.coins.contains(&s.coin_id));
                if comparable {
                    forecasters.push(Box::new(ChampionForecaster(LstmForecaster { model: m })));
                    champion_in_eval = true;
                }
            }
        }
        let evaluation = evaluate::walk_forward(&series, &mut forecasters, &protocol)?;
        let score = mean_skill(&evaluation, "lstm");
        let champion_score = champion.as_ref().map(|c| {
            let s = if champion_in_eval {
                mean_skill(&evaluation, "champion")
            } else {
                c.score.unwrap_or(f64::NEG_INFINITY)
            };
            (c.model_id.as_str(), s)
        });
        let verdict = registry::gate(score, req.min_score, champion_score);
        for r in &evaluation.rows {
            let key = format!("{}/{}/h{}", r.model, r.coin_id, r.metrics.horizon);
            registry::log_metric(conn, run_id, 0, &format!("{key}/skill"), r.metrics.skill)?;
            registry::log_metric(conn, run_id, 0, &format!("{key}/mape"), r.metrics.mape)?;
            registry::log_metric(
                conn,
                run_id,
                0,
                &format!("{key}/coverage"),
                r.metrics.coverage,
            )?;
        }
        let metrics_json = serde_json::to_string(&evaluation).unwrap_or_default();
        registry::register(
            conn,
            &NewModel {
                model_id: &model_id,
                run_id,
                family: "lstm",
                dataset_version: &dataset_version,
                artifact_path: &artifacts::registered_path(&model_id),
                score,
                metrics_json: &metrics_json,
                training_stats_json: &training_stats.to_string(),
                verdict: &verdict,
            },
        )?;
        Ok(TrainOutcome {
            model_id,
            run_id,
            artifact,
            score,
            verdict,
            report,
            evaluation,
            skipped_coins: skipped_coins.clone(),
        })
    })();
    match &result {
        Ok(o) => {
            let summary = serde_json::json!({
                "model_id": o.model_id, "score": o.score, "gate": o.verdict, "training": o.report,
            });
            registry::finish_experiment(conn, run_id, None, &summary.to_string())?;
        }
        Err(e) => registry::finish_experiment(conn, run_id, Some(&e.to_string()), "{}")?,
    }
    result
}

/// The current champion, under its own name in the evaluation table.
struct ChampionForecaster(LstmForecaster);

impl super::baselines::Forecaster for ChampionForecaster {
    fn name(&self) -> &'static str {
        "champion"
    }
    fn fit(&mut self, t: &[(&CoinSeries, Vec<usize>)]) -> Result<(), ModelError> {
        self.0.fit(t)
    }
    fn predict(&self, s: &CoinSeries, i: usize, out: &mut [f64]) {
        self.0.predict(s, i, out)
    }
    fn predict_many(
        &self,
        s: &CoinSeries,
        origins: &[usize],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        self.0.predict_many(s, origins, horizon)
    }
    fn fixed_widths(&self, s: &CoinSeries) -> Option<Vec<f64>> {
        self.0.fixed_widths(s)
    }
}
