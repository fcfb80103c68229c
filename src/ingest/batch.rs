//! Raw batches: every source response is recorded before anything is judged, then staged.
//!
//! States: `staged` (parsed into staged_* and waiting for the gate), `merged`, `quarantined` (an
//! error rule failed; staged rows kept for inspection) and `failed` (nothing could be staged: a
//! transport error, an HTTP error, or a body that is not a market_chart object).

use chrono::{DateTime, Utc};
use duckdb::{params, Connection, OptionalExt};
use sha2::{Digest, Sha256};

use super::market_chart::{self, ParseError, ParsedChart};
use crate::crashpoint::{self, CrashPoint};

/// Where a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CoinGecko,
    Replay,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::CoinGecko => "coingecko",
            Source::Replay => "replay",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchState {
    Staged,
    Merged,
    Quarantined,
    Failed,
}

impl BatchState {
    pub fn name(self) -> &'static str {
        match self {
            BatchState::Staged => "staged",
            BatchState::Merged => "merged",
            BatchState::Quarantined => "quarantined",
            BatchState::Failed => "failed",
        }
    }
}

/// A response (or a failed attempt at one) as it is recorded in `raw_batches`.
#[derive(Debug, Clone)]
pub struct NewBatch<'a> {
    pub source: Source,
    pub coin_id: &'a str,
    pub vs_currency: &'a str,
    /// The URL without the API key, or the replayed file.
    pub request: String,
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub fetched_at: DateTime<Utc>,
    pub http_status: Option<u16>,
    pub body: Option<&'a [u8]>,
    pub run_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("batch {0} does not exist")]
    NotFound(i64),
    #[error("batch {batch_id} has no body to stage")]
    NoBody { batch_id: i64 },
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

/// Records a response with its state and reason, returning its batch id.
pub fn record(
    conn: &Connection,
    batch: &NewBatch<'_>,
    state: BatchState,
    reason: Option<&str>,
) -> Result<i64, BatchError> {
    let body = batch.body.unwrap_or_default();
    let id: i64 = conn.query_row(
        include_str!("../../sql/ingest/record_batch.sql"),
        params![
            batch.source.name(),
            batch.coin_id,
            batch.vs_currency,
            batch.request,
            batch.range.map(|r| r.0),
            batch.range.map(|r| r.1),
            batch.fetched_at,
            batch.http_status.map(i32::from),
            batch.body,
            body.len() as i64,
            hex::encode(Sha256::digest(body)),
            state.name(),
            reason,
            batch.run_id,
        ],
        |r| r.get(0),
    )?;
    Ok(id)
}

/// Records a body and stages it: parse, staged_series/staged_points, staged_rows. A body that
/// cannot be parsed is recorded as `failed` with the reason; nothing is lost either way.
///
/// The batch row and its staged rows commit together: a crash in between leaves neither, so the
/// gate never sees a half-staged batch (the source is asked again by the next run).
pub fn record_and_stage(
    conn: &Connection,
    batch: &NewBatch<'_>,
    parsed: Result<&ParsedChart, &ParseError>,
) -> Result<StageOutcome, BatchError> {
    match parsed {
        Ok(chart) => crate::store::in_transaction(conn, || {
            let batch_id = record(conn, batch, BatchState::Staged, None)?;
            crashpoint::hit(CrashPoint::AfterBatchInsert);
            let hours = stage(conn, batch_id, chart)?;
            Ok(StageOutcome::Staged { batch_id, hours })
        }),
        Err(err) => {
            let reason = format!("{} {}: {err}", batch.coin_id, batch.request);
            let batch_id = record(conn, batch, BatchState::Failed, Some(&reason))?;
            Ok(StageOutcome::Failed { batch_id, reason })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageOutcome {
    Staged { batch_id: i64, hours: u32 },
    Failed { batch_id: i64, reason: String },
}

/// Writes a parsed chart into the staging tables and builds its hourly rows.
pub fn stage(conn: &Connection, batch_id: i64, chart: &ParsedChart) -> Result<u32, BatchError> {
    clear_staging(conn, batch_id)?;
    {
        let mut series_app = conn.appender("staged_series")?;
        let mut points_app = conn.appender("staged_points")?;
        for s in &chart.series {
            let points = s.points.as_deref().unwrap_or_default();
            series_app.append_row(params![
                batch_id,
                s.series.name(),
                s.points.is_some(),
                points.len() as i64
            ])?;
            for p in points {
                points_app.append_row(params![
                    batch_id,
                    s.series.name(),
                    p.index,
                    p.ts_ms,
                    p.value,
                    p.raw.as_deref()
                ])?;
            }
        }
        series_app.flush()?;
        points_app.flush()?;
    }
    crashpoint::hit(CrashPoint::MidStaging);
    set_batch_variable(conn, batch_id)?;
    conn.execute_batch(include_str!("../../sql/ingest/stage_rows.sql"))?;
    let hours: i64 = conn.query_row(
        "SELECT count(*) FROM staged_rows WHERE batch_id = ?",
        params![batch_id],
        |r| r.get(0),
    )?;
    let hours = u32::try_from(hours).unwrap_or(u32::MAX);
    conn.execute(
        "UPDATE raw_batches SET row_count = ?, state = 'staged', reason = NULL, updated_at = now()
         WHERE batch_id = ?",
        params![hours, batch_id],
    )?;
    Ok(hours)
}

/// Parses a recorded batch again from its stored body and restages it (after a rule or parser
/// change), in one transaction.
pub fn restage(conn: &Connection, batch_id: i64) -> Result<StageOutcome, BatchError> {
    crate::store::in_transaction(conn, || restage_in_transaction(conn, batch_id))
}

fn restage_in_transaction(conn: &Connection, batch_id: i64) -> Result<StageOutcome, BatchError> {
    let row: Option<(Option<Vec<u8>>, String, String)> = conn
        .query_row(
            "SELECT body, coin_id, request FROM raw_batches WHERE batch_id = ?",
            params![batch_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (body, coin_id, request) = row.ok_or(BatchError::NotFound(batch_id))?;
    let body = body
        .filter(|b| !b.is_empty())
        .ok_or(BatchError::NoBody { batch_id })?;
    match market_chart::parse(&body) {
        Ok(chart) => Ok(StageOutcome::Staged {
            batch_id,
            hours: stage(conn, batch_id, &chart)?,
        }),
        Err(err) => {
            clear_staging(conn, batch_id)?;
            let reason = format!("{coin_id} {request}: {err}");
            set_state(conn, batch_id, BatchState::Failed, Some(&reason))?;
            Ok(StageOutcome::Failed { batch_id, reason })
        }
    }
}

pub fn set_state(
    conn: &Connection,
    batch_id: i64,
    state: BatchState,
    reason: Option<&str>,
) -> Result<(), BatchError> {
    conn.execute(
        "UPDATE raw_batches SET state = ?, reason = ?, updated_at = now() WHERE batch_id = ?",
        params![state.name(), reason, batch_id],
    )?;
    Ok(())
}

/// Drops the staged copy of a batch (once merged, market_data holds it; the body stays).
pub fn clear_staging(conn: &Connection, batch_id: i64) -> Result<(), BatchError> {
    for table in ["staged_series", "staged_points", "staged_rows"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE batch_id = ?"),
            params![batch_id],
        )?;
    }
    Ok(())
}

/// SQL files address the batch under work as getvariable('batch_id').
pub fn set_batch_variable(conn: &Connection, batch_id: i64) -> Result<(), duckdb::Error> {
    conn.execute_batch(&format!("SET VARIABLE batch_id = {batch_id};"))
}

/// Batch ids in a state, oldest first.
pub fn batches_in_state(conn: &Connection, state: BatchState) -> Result<Vec<i64>, BatchError> {
    let mut stmt =
        conn.prepare("SELECT batch_id FROM raw_batches WHERE state = ? ORDER BY batch_id")?;
    let ids = stmt
        .query_map(params![state.name()], |r| r.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(ids)
}
