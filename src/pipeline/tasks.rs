//! The ingest run's tasks: extract (live or replay, each batch recorded), the quality gate
//! (each staged batch merged or quarantined), the floor once a coin has a day of data, and the
//! words each task logs.

use super::*;
use crate::config::Settings;
use crate::ingest::batch::{self, BatchState, StageOutcome};
use crate::ingest::coingecko::FetchError;
use crate::ingest::{self, ExtractReport, LiveRequest};
use crate::model;
use crate::monitor::{self, MonitorReport};
use crate::progress;
use crate::quality::{self, GateOutcome, GateReport, RuleSet};
use crate::store::Store;

/// A body that cleanup moved to the lake comes back into the file before its batch is checked
/// again.
pub(super) fn bring_back_body(
    store: &Store,
    settings: &Settings,
    batch_id: i64,
) -> Result<(), TaskError> {
    let moved: bool = store.conn().query_row(
        "SELECT count(*) > 0 FROM raw_batches WHERE batch_id = ? AND body IS NULL AND body_archived = 'lake'",
        [batch_id],
        |r| r.get(0),
    )?;
    if moved {
        crate::lake::attach(store.conn(), settings)?;
        crate::lake::restore_body(store.conn(), batch_id)?;
    }
    Ok(())
}

pub(super) async fn run_extract(
    store: &Store,
    settings: &Settings,
    run_id: i64,
    extract: &Extract<'_>,
) -> Result<TaskOutput<ExtractReport>, TaskError> {
    let conn = store.conn();
    let report = match extract {
        Extract::Live {
            client,
            coins,
            until,
            backfill_days,
            cadence,
        } => {
            let usage = ingest::budget::usage(conn, &settings.coingecko, coins.len(), *until)?;
            if let Some(w) = usage.warning() {
                tracing::warn!("{w}");
            }
            let bar = progress::bar("fetch");
            let req = LiveRequest {
                coins,
                vs_currency: &settings.vs_currency,
                until: *until,
                backfill_days: *backfill_days,
                max_chunk_days: settings.coingecko.max_chunk_days,
                run_id: Some(run_id),
                cadence_hours: match cadence {
                    Cadence::EveryCoin => 1,
                    Cadence::WithinBudget => usage.cadence_hours,
                },
                budget_spent: usage.exhausted().then(|| {
                    format!(
                        "the plan's monthly budget of {} calls is spent ({} this month); fetching resumes next month (coingecko.monthly_call_budget)",
                        usage.budget.unwrap_or_default(),
                        usage.calls_this_month
                    )
                }),
            };
            let r = ingest::extract_live(conn, client, &req, &bar).await;
            bar.finish_and_clear();
            let r = r?;
            let nothing_came = !r.fetch_errors.is_empty() && r.fetch_errors.len() == coins.len();
            if nothing_came && r.fetch_errors.iter().all(FetchError::is_unavailable) {
                // Worth another attempt of the whole task.
                return Err(TaskError::SourceUnavailable {
                    url: client.base_url().to_string(),
                    first: r.fetch_errors[0].clone(),
                });
            }
            r
        }
        Extract::Replay {
            dir,
            coins,
            fetched_at,
        } => {
            let bar = progress::bar("replay");
            let r = ingest::extract_replay(
                conn,
                dir,
                coins.as_deref(),
                &settings.vs_currency,
                *fetched_at,
                Some(run_id),
                &bar,
            );
            bar.finish_and_clear();
            r?
        }
        Extract::Recheck { batch_ids } => {
            let mut r = ExtractReport::default();
            for &id in batch_ids {
                bring_back_body(store, settings, id)?;
                match batch::restage(conn, id)? {
                    StageOutcome::Staged { batch_id, hours } => {
                        r.staged.push(ingest::StagedBatch {
                            batch_id,
                            coin_id: batch_coin(store, batch_id),
                            hours,
                        })
                    }
                    StageOutcome::Failed { batch_id, reason } => {
                        r.failed_batches.push((batch_id, reason))
                    }
                }
            }
            r
        }
    };
    let log = format!(
        "{} request(s); staged {} batch(es) ({} hours); {} failed batch(es); {} failed attempt(s); {} fetch error(s); {} file(s) skipped{}",
        report.requests,
        report.staged.len(),
        report.staged.iter().map(|b| u64::from(b.hours)).sum::<u64>(),
        report.failed_batches.len(),
        report.failed_attempts.len(),
        report.fetch_errors.len(),
        report.skipped_files.len(),
        report
            .fetch_errors
            .iter()
            .map(|e| format!("\n{e}"))
            .chain(report.skipped_files.iter().map(|e| format!("\n{e}")))
            .chain(report.failed_attempts.iter().map(|(id, r)| format!("\nbatch {id}: {r}")))
            .collect::<String>()
    );
    Ok(TaskOutput::new(report, log))
}

pub(super) fn batch_coin(store: &Store, batch_id: i64) -> String {
    store
        .conn()
        .query_row(
            "SELECT coin_id FROM raw_batches WHERE batch_id = ?",
            [batch_id],
            |r| r.get(0),
        )
        .unwrap_or_default()
}

/// Gates every staged batch, oldest first.
pub(super) fn gate_staged(
    store: &Store,
    settings: &Settings,
    rules: &RuleSet,
) -> Result<TaskOutput<Vec<GatedBatch>>, TaskError> {
    let conn = store.conn();
    let ids = batch::batches_in_state(conn, BatchState::Staged)?;
    let bar = progress::bar("quality gate");
    bar.set_length(ids.len() as u64);
    let mut gated = Vec::with_capacity(ids.len());
    let mut log = String::new();
    for id in ids {
        let coin = batch_coin(store, id);
        bar.set_message(coin.clone());
        let outcome = quality::gate_batch(conn, rules, id, settings.quality.max_failing_rows)?;
        let entry = match outcome {
            GateOutcome::Merged { report, merge } => GatedBatch {
                batch_id: id,
                coin_id: coin,
                merged: true,
                changed_hours: merge.changed_hours,
                problems: problems(&report),
            },
            GateOutcome::Quarantined { report, .. } => GatedBatch {
                batch_id: id,
                coin_id: coin,
                merged: false,
                changed_hours: 0,
                problems: problems(&report),
            },
        };
        log.push_str(&format!(
            "batch {} {}: {}{}\n",
            entry.batch_id,
            entry.coin_id,
            if entry.merged {
                format!("merged, {} hours new or changed", entry.changed_hours)
            } else {
                "QUARANTINED".to_string()
            },
            if entry.problems.is_empty() {
                String::new()
            } else {
                format!(" [{}]", entry.problems.join("; "))
            }
        ));
        gated.push(entry);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(TaskOutput::new(gated, log))
}

/// The floor, once any coin has a day of returns: `/predict` answers from then on.
pub(super) fn ensure_floor(
    store: &Store,
    settings: &Settings,
) -> Result<Option<String>, TaskError> {
    let spec = model::train::spec_from(&settings.model.spec)?;
    let protocol = model::train::protocol_from(&settings.model.protocol)?;
    let coins = monitor::stored_coins(store.conn(), &settings.vs_currency)?;
    model::floor::ensure_floor(
        store.conn(),
        &model::floor::FloorRequest {
            coins: &coins,
            vs_currency: &settings.vs_currency,
            spec: &spec,
            ewma_lambda: protocol.ewma_lambda,
            data_dir: &settings.data_dir,
        },
    )
    .map_err(TaskError::from)
}

pub(super) fn monitor_log(report: &MonitorReport) -> String {
    let mut log = format!("scored {} prediction(s)\n", report.scored_predictions);
    for c in &report.coverage {
        log.push_str(&format!(
            "coverage control {}: {} outcome(s) checked, {} outside their interval; largest miss-rate shift from nominal {:.4}\n",
            c.model_id, c.scored, c.missed, c.max_alpha_shift
        ));
    }
    if let Some(skipped) = &report.psi_skipped {
        log.push_str(&format!("PSI skipped: {skipped}\n"));
    }
    if let Some(psi) = &report.psi {
        for f in &psi.features {
            log.push_str(&format!(
                "PSI {} = {:.4} ({} values)\n",
                f.feature, f.psi, f.observations
            ));
        }
    }
    log
}

pub(super) fn problems(report: &GateReport) -> Vec<String> {
    report
        .failed_errors()
        .chain(report.failed_warnings())
        .map(|r| GateReport::summary(std::iter::once(r)))
        .collect()
}
