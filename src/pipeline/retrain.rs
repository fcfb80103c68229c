//! A retrain run: one task, train (a selection over every candidate in a child process, the
//! winner registered), recorded like every run; what it registered.

use std::time::Duration;

use serde::Serialize;

use super::*;
use crate::config::Settings;
use crate::model::{self, Cancel};
use crate::store::Store;

/// What a retrain run registered.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainSummary {
    /// The champion after the run (refit on all data).
    pub model_id: String,
    /// The dataset version it was trained on (none: the lake is off or has no version).
    pub lake_version: Option<i64>,
    pub family: String,
    /// What happened to the previous champion (first, replaced, demoted, refreshed).
    pub outcome: model::gate::ChampionOutcome,
    /// Who is champion and why, in one sentence.
    pub summary: String,
    /// The floor, when it was registered apart from the champion.
    pub floor_id: Option<String>,
    pub candidates: usize,
    pub folds: usize,
    pub walk_forward_seconds: f64,
    pub refit_seconds: f64,
}

#[derive(Debug)]
pub struct RetrainReport {
    pub run_id: i64,
    pub state: RunState,
    pub summary: Option<RetrainSummary>,
    pub error: Option<PipelineError>,
}

/// One retrain run, recorded like any pipeline run (trigger, task `train`, then `cleanup` when
/// retention is on): a selection run over every candidate of `model.protocol` (the LSTM from
/// `model.spec` among them) on every configured coin with features; the gate's winner is refit on
/// all data and becomes champion. The selection runs in a child process (`trainer`) on a
/// consistent copy of the database, and this process records it. `cancel` kills the child (the
/// run is recorded as interrupted).
pub async fn retrain(
    store: &Store,
    settings: &Settings,
    trigger: &str,
    cancel: Cancel,
    trainer: &Trainer,
) -> Result<RetrainReport, PipelineError> {
    let recorder = RunRecorder::start(store.conn(), "retrain", trigger)?;
    let outcome = recorder
        .task("train", 1, Duration::ZERO, || {
            let facts =
                child::train_in_child(store.conn(), settings, trainer.executable(), &cancel)?;
            let lake_version = crate::lake::record_training(store.conn(), settings, facts.run_id);
            crate::lake::ship_models(store.conn(), settings);
            let summary = RetrainSummary {
                lake_version,
                model_id: facts.model_id.clone(),
                family: facts.family.clone(),
                outcome: facts.outcome.clone(),
                summary: facts.summary.clone(),
                floor_id: facts.floor_id.clone(),
                candidates: facts.candidates,
                folds: facts.folds,
                walk_forward_seconds: facts.walk_forward_seconds,
                refit_seconds: facts.refit_seconds,
            };
            let log = format!(
                "{} candidates on {} weekly windows in {:.1} s (refit every {} folds), winner refit in {:.1} s; champion {} ({}): {}{}",
                summary.candidates,
                summary.folds,
                summary.walk_forward_seconds,
                facts.refit_every_folds,
                summary.refit_seconds,
                summary.model_id,
                summary.family,
                summary.summary,
                facts
                    .skipped_coins
                    .iter()
                    .map(|c| format!("\nskipped {c}: no features stored"))
                    .collect::<String>()
            );
            Ok(TaskOutput::new(summary, log))
        })
        .await;
    // cleanup: after a training, so that the models it keeps are the new champion's company; a
    // failure fails the run visibly, and the next retrain cleans up again.
    let outcome = match outcome {
        Ok(summary) if settings.retention.enabled => recorder
            .task("cleanup", 1, Duration::ZERO, || {
                let report =
                    crate::retention::cleanup(store, settings, crate::retention::Mode::Apply)?;
                Ok(TaskOutput::new((), crate::retention::describe(&report)))
            })
            .await
            .map(|()| summary),
        other => other,
    };
    let (state, summary, error) = match outcome {
        Ok(s) => (RunState::Success, Some(s), None),
        Err(e) => (run_state_of(&e), None, Some(e)),
    };
    finish(store, &recorder, state, error.as_ref(), &summary)?;
    Ok(RetrainReport {
        run_id: recorder.run_id,
        state,
        summary,
        error,
    })
}
