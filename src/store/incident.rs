//! Incidents: what the store had to repair at start-up, recorded in `incidents` so that
//! `coincast status`, the overview and `coincast_store_incidents_open` say so until a successful
//! ingest or replay has fetched again what may be missing.

use std::path::Path;

use chrono::{DateTime, Utc};
use duckdb::{params, Connection};
use serde::Serialize;

use super::wal::SetAsideWal;
use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// DuckDB could not replay the WAL; it was set aside and the last checkpoint opened.
    UnreplayableWal,
}

impl IncidentKind {
    pub fn name(self) -> &'static str {
        match self {
            IncidentKind::UnreplayableWal => "unreplayable_wal",
        }
    }
}

/// Per coin: what survived, and how many hours after it may be missing.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MissingHours {
    pub coin_id: String,
    /// The newest hour the opened file holds (RFC 3339), if any.
    pub newest_kept_hour: Option<String>,
    /// Hours between that hour and the WAL's last write: at most this many may be missing.
    pub hours_may_be_missing: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub incident_id: i64,
    pub kind: String,
    pub detected_at: String,
    pub detail: String,
    /// The set-aside file, relative to the data folder.
    pub kept_file: Option<String>,
    pub kept_bytes: Option<i64>,
    pub lost_after: Option<String>,
    pub lost_until: Option<String>,
    pub missing: Vec<MissingHours>,
    pub resolved_at: Option<String>,
    pub resolution: Option<String>,
}

impl Incident {
    /// One line for logs, `coincast status` and the overview.
    pub fn summary(&self) -> String {
        let coins: Vec<String> = self
            .missing
            .iter()
            .filter(|m| m.hours_may_be_missing > 0)
            .map(|m| format!("{} ≤{} h", m.coin_id, m.hours_may_be_missing))
            .collect();
        format!(
            "incident #{} ({}, {}): {}. Kept: {}. Changes after {} may be lost{}",
            self.incident_id,
            self.kind,
            self.detected_at,
            self.detail,
            self.kept_file.as_deref().unwrap_or("-"),
            self.lost_after.as_deref().unwrap_or("the last checkpoint"),
            if coins.is_empty() {
                String::new()
            } else {
                format!(" ({})", coins.join(", "))
            }
        )
    }
}

const INCIDENT_COLUMNS: &str = "incident_id, kind,
    strftime(detected_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), detail, kept_file, kept_bytes,
    strftime(lost_after AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'),
    strftime(lost_until AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), CAST(missing AS VARCHAR),
    strftime(resolved_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), resolution";

fn incident_row(r: &duckdb::Row<'_>) -> Result<Incident, duckdb::Error> {
    let missing: Option<String> = r.get(8)?;
    Ok(Incident {
        incident_id: r.get(0)?,
        kind: r.get(1)?,
        detected_at: r.get(2)?,
        detail: r.get(3)?,
        kept_file: r.get(4)?,
        kept_bytes: r.get(5)?,
        lost_after: r.get(6)?,
        lost_until: r.get(7)?,
        missing: missing
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        resolved_at: r.get(9)?,
        resolution: r.get(10)?,
    })
}

/// Records a set-aside WAL, with the hours each coin may be missing.
pub(super) fn record_wal(
    conn: &Connection,
    data_dir: &Path,
    wal: &SetAsideWal,
) -> Result<Incident, StoreError> {
    let until = wal.last_write.unwrap_or_else(Utc::now);
    let missing = missing_hours(conn, until)?;
    let kept = wal
        .kept
        .strip_prefix(data_dir)
        .unwrap_or(&wal.kept)
        .display()
        .to_string();
    let detail = format!(
        "DuckDB could not replay the write-ahead log ({}); it was set aside and the last \
         checkpoint opened",
        wal.error
    );
    let id: i64 = conn.query_row(
        "INSERT INTO incidents (kind, detected_at, detail, kept_file, kept_bytes, lost_after,
                                lost_until, missing)
         VALUES (?, now(), ?, ?, ?, ?, ?, ?) RETURNING incident_id",
        params![
            IncidentKind::UnreplayableWal.name(),
            detail,
            kept,
            wal.bytes as i64,
            wal.checkpointed_at,
            until,
            serde_json::to_string(&missing).unwrap_or_else(|_| "[]".into()),
        ],
        |r| r.get(0),
    )?;
    let incident = conn.query_row(
        &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE incident_id = ?"),
        params![id],
        incident_row,
    )?;
    Ok(incident)
}

fn missing_hours(conn: &Connection, until: DateTime<Utc>) -> Result<Vec<MissingHours>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT coin_id, strftime(max(ts) AT TIME ZONE 'UTC', '%Y-%m-%dT%H:00:00Z'),
                greatest(0, floor((epoch(?::TIMESTAMPTZ) - epoch(max(ts))) / 3600))::BIGINT
         FROM market_data GROUP BY coin_id ORDER BY coin_id",
    )?;
    let rows = stmt
        .query_map(params![until], |r| {
            Ok(MissingHours {
                coin_id: r.get(0)?,
                newest_kept_hour: r.get(1)?,
                hours_may_be_missing: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Incidents not yet resolved, oldest first.
pub fn open_incidents(conn: &Connection) -> Result<Vec<Incident>, duckdb::Error> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_at IS NULL ORDER BY incident_id"
    ))?;
    let rows = stmt
        .query_map([], incident_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A successful ingest or replay run fetched every coin again from its newest stored hour:
/// what an incident may have lost is back. Returns how many incidents it resolved.
pub fn resolve_incidents(conn: &Connection, resolution: &str) -> Result<usize, duckdb::Error> {
    conn.execute(
        "UPDATE incidents SET resolved_at = now(), resolution = ? WHERE resolved_at IS NULL",
        params![resolution],
    )
}
