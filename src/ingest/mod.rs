//! Ingest: from a source (CoinGecko or recorded files) into `raw_batches` and the staging tables.
//!
//! Invariant: every response body is recorded before it is judged, and nothing here writes
//! `market_data`; batches reach it only through the quality gate (see `crate::quality`).

pub mod batch;
pub mod budget;
pub mod coingecko;
pub mod error_body;
pub mod market_chart;
pub mod plan;
pub mod replay;
pub mod retry;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use duckdb::{params, Connection, OptionalExt};
use indicatif::ProgressBar;

use batch::{NewBatch, Source, StageOutcome};
use coingecko::{CoinGeckoClient, FetchError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {message}")]
    Replay { path: PathBuf, message: String },
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

impl crate::failure::Classify for IngestError {
    fn failure(&self) -> crate::failure::Failure {
        match self {
            IngestError::Replay { .. } => crate::failure::Failure::DataRejected,
            IngestError::Batch(_) | IngestError::Sql(_) => crate::failure::Failure::Internal,
        }
    }
}

/// What an extract produced: batches staged for the gate, and what could not be fetched.
#[derive(Debug, Default)]
pub struct ExtractReport {
    pub staged: Vec<StagedBatch>,
    /// Batches recorded as `failed` for good (unreadable bodies), with their reasons.
    pub failed_batches: Vec<(i64, String)>,
    /// Attempts recorded as `failed` batches (HTTP errors, timeouts, truncated bodies) before a
    /// retry or a give-up; a give-up is also in `fetch_errors`.
    pub failed_attempts: Vec<(i64, String)>,
    /// Coins whose fetch gave up, with the reason.
    pub fetch_errors: Vec<FetchError>,
    pub requests: u32,
    /// Coins left for a later run by the fetch cadence (the plan's call budget).
    pub not_due: Vec<String>,
    /// Replay files left out (a bad name, unreadable), each error naming its file.
    pub skipped_files: Vec<IngestError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBatch {
    pub batch_id: i64,
    pub coin_id: String,
    pub hours: u32,
}

impl ExtractReport {
    fn add(&mut self, coin_id: &str, outcome: StageOutcome) {
        match outcome {
            StageOutcome::Staged { batch_id, hours } => self.staged.push(StagedBatch {
                batch_id,
                coin_id: coin_id.to_string(),
                hours,
            }),
            StageOutcome::Failed { batch_id, reason } => {
                self.failed_batches.push((batch_id, reason))
            }
        }
    }
}

/// What to fetch from CoinGecko.
#[derive(Debug, Clone)]
pub struct LiveRequest<'a> {
    pub coins: &'a [String],
    pub vs_currency: &'a str,
    /// The end of the fetch ("now"; earlier to backfill a past stretch).
    pub until: DateTime<Utc>,
    pub backfill_days: u32,
    pub max_chunk_days: u32,
    pub run_id: Option<i64>,
    /// Fetch a coin only when its last fetch is this many hours old (1: every coin, every run).
    pub cadence_hours: u32,
    /// The plan's monthly budget when it is spent: nothing is fetched.
    pub budget_spent: Option<String>,
}

/// Fetches each coin from its last stored hour (or `backfill_days` back) to `until`, in chunks,
/// recording every attempt and staging every good body.
pub async fn extract_live(
    conn: &Connection,
    client: &CoinGeckoClient,
    req: &LiveRequest<'_>,
    progress: &ProgressBar,
) -> Result<ExtractReport, IngestError> {
    let mut report = ExtractReport::default();
    let mut plans = Vec::new();
    for coin in req.coins {
        if let Some(reason) = &req.budget_spent {
            report.fetch_errors.push(FetchError::Skipped {
                coin_id: coin.clone(),
                reason: reason.clone(),
            });
            continue;
        }
        if !budget::is_due(conn, coin, req.cadence_hours, req.until)? {
            report.not_due.push(coin.clone());
            continue;
        }
        let last = last_stored_hour(conn, coin, req.vs_currency)?;
        let start = plan::start_for(last, req.until, req.backfill_days);
        plans.push((coin, plan::windows(start, req.until, req.max_chunk_days)));
    }
    progress.set_length(plans.iter().map(|(_, w)| w.len() as u64).sum());
    let mut unreachable: Option<String> = None;
    for (coin, windows) in plans {
        if let Some(reason) = &unreachable {
            report.fetch_errors.push(FetchError::Skipped {
                coin_id: coin.clone(),
                reason: reason.clone(),
            });
            continue;
        }
        for window in windows {
            progress.set_message(format!("{coin} {}", window.from.format("%Y-%m-%d")));
            let fetched = client
                .market_chart_range(coin, req.vs_currency, window.from, window.to)
                .await;
            report.requests +=
                fetched.failed_attempts.len() as u32 + u32::from(fetched.result.is_ok());
            let base = NewBatch {
                source: Source::CoinGecko,
                coin_id: coin,
                vs_currency: req.vs_currency,
                request: fetched.request.clone(),
                range: Some((window.from, window.to)),
                fetched_at: Utc::now(),
                http_status: None,
                body: None,
                run_id: req.run_id,
            };
            for attempt in &fetched.failed_attempts {
                let reason = attempt.error.clone().unwrap_or_default();
                let failed = NewBatch {
                    fetched_at: attempt.fetched_at,
                    http_status: attempt.status,
                    body: attempt.body.as_deref(),
                    ..base.clone()
                };
                let id = batch::record(conn, &failed, batch::BatchState::Failed, Some(&reason))?;
                report
                    .failed_attempts
                    .push((id, format!("{coin}: {reason}")));
            }
            match fetched.result {
                Ok(success) => {
                    let ok = NewBatch {
                        fetched_at: success.fetched_at,
                        http_status: Some(success.status),
                        body: Some(&success.body),
                        ..base.clone()
                    };
                    let outcome = batch::record_and_stage(conn, &ok, Ok(&success.chart))?;
                    report.add(coin, outcome);
                    progress.inc(1);
                }
                Err(err) => {
                    tracing::error!(coin = coin.as_str(), "{err}");
                    if err.is_unreachable() {
                        unreachable = Some(format!(
                            "{} could not be reached ({err})",
                            client.base_url()
                        ));
                    }
                    report.fetch_errors.push(err);
                    // The coin's later windows would fail the same way; go on with the next coin.
                    break;
                }
            }
        }
    }
    Ok(report)
}

/// Records and stages every `<coin_id>.json` of `dir`.
pub fn extract_replay(
    conn: &Connection,
    dir: &Path,
    coins: Option<&[String]>,
    vs_currency: &str,
    fetched_at: Option<DateTime<Utc>>,
    run_id: Option<i64>,
    progress: &ProgressBar,
) -> Result<ExtractReport, IngestError> {
    let listing = replay::list(dir, coins)?;
    progress.set_length(listing.files.len() as u64);
    let mut report = ExtractReport {
        skipped_files: listing.skipped,
        ..ExtractReport::default()
    };
    for file in &listing.files {
        progress.set_message(file.coin_id.clone());
        let (body, when) = match replay::read(file, fetched_at) {
            Ok(read) => read,
            Err(e) => {
                report.skipped_files.push(e);
                progress.inc(1);
                continue;
            }
        };
        let parsed = market_chart::parse(&body);
        let new = NewBatch {
            source: Source::Replay,
            coin_id: &file.coin_id,
            vs_currency,
            request: file.path.display().to_string(),
            range: None,
            fetched_at: when,
            http_status: None,
            body: Some(&body),
            run_id,
        };
        let outcome = batch::record_and_stage(conn, &new, parsed.as_ref())?;
        report.add(&file.coin_id, outcome);
        progress.inc(1);
    }
    Ok(report)
}

/// The newest hour stored for a coin.
pub fn last_stored_hour(
    conn: &Connection,
    coin_id: &str,
    vs_currency: &str,
) -> Result<Option<DateTime<Utc>>, duckdb::Error> {
    conn.query_row(
        "SELECT max(ts) FROM market_data WHERE coin_id = ? AND vs_currency = ?",
        params![coin_id, vs_currency],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}
