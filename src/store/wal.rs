//! Opening the file when DuckDB cannot replay its WAL.
//!
//! DuckDB 1.5 can write WALs that it cannot replay (duckdb/duckdb#18259, #20543, #22124); the
//! file then never opens again. Waiting for a fix is no answer for an appliance, so the WAL is
//! moved aside under a timestamped name (kept, never deleted), the checkpointed file opens, and
//! the caller records an incident naming what may be lost.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use duckdb::Connection;

use super::file::wal_path;
use super::{classify_open_error, StoreError};

/// A WAL that could not be replayed, now under another name.
#[derive(Debug, Clone)]
pub(super) struct SetAsideWal {
    /// Where the WAL is now.
    pub kept: PathBuf,
    pub bytes: u64,
    /// DuckDB's error.
    pub error: String,
    /// The database file's last write (its last checkpoint): changes after it were in the WAL.
    pub checkpointed_at: Option<DateTime<Utc>>,
    /// The WAL's last write: the last change it held.
    pub last_write: Option<DateTime<Utc>>,
}

/// The message DuckDB gives when the WAL it found cannot be replayed.
fn is_unreplayable_wal(error: &str) -> bool {
    error.contains("replaying WAL")
}

fn modified(path: &Path) -> Option<DateTime<Utc>> {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(DateTime::<Utc>::from)
}

/// Opens the file; if its WAL cannot be replayed, sets the WAL aside and opens the file without it.
pub(super) fn open(path: &Path) -> Result<(Connection, Option<SetAsideWal>), StoreError> {
    let checkpointed_at = modified(path);
    let error = match Connection::open(path) {
        Ok(conn) => return Ok((conn, None)),
        Err(e) => e,
    };
    let wal = wal_path(path);
    let text = error.to_string();
    if !is_unreplayable_wal(&text) || !wal.exists() {
        return Err(classify_open_error(path, error));
    }
    let kept = set_aside_name(&wal);
    let bytes = fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let last_write = modified(&wal);
    fs::rename(&wal, &kept).map_err(|source| StoreError::File {
        action: "cannot set aside the unreplayable WAL",
        path: wal.clone(),
        source,
    })?;
    // DuckDB's message carries a stack trace: the first line says what happened.
    let first_line = text.lines().next().unwrap_or_default().to_string();
    tracing::error!(
        "INCIDENT: DuckDB cannot replay {} ({first_line}); moved it to {} ({bytes} bytes, kept) \
         and opened the last checkpoint. Changes after {} may be lost: see `coincast status`",
        wal.display(),
        kept.display(),
        checkpointed_at.map_or("the last checkpoint".into(), |t| t.to_rfc3339())
    );
    let conn = Connection::open(path).map_err(|e| classify_open_error(path, e))?;
    Ok((
        conn,
        Some(SetAsideWal {
            kept,
            bytes,
            error: first_line,
            checkpointed_at,
            last_write,
        }),
    ))
}

/// `coincast.duckdb.wal.20261130T015204Z.unreplayable`, unique within the folder.
fn set_aside_name(wal: &Path) -> PathBuf {
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = wal
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut candidate = wal.with_file_name(format!("{name}.{stamp}.unreplayable"));
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = wal.with_file_name(format!("{name}.{stamp}-{n}.unreplayable"));
    }
    candidate
}
