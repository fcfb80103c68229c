//! Start-up recovery. Only one process can hold the file read-write, so whatever is still
//! `running` when it opens was left by a process that died: it becomes `interrupted`, with the
//! recovery time as `finished_at`. A set-aside WAL becomes an incident. Each step commits with
//! the rest or not at all, and the file is checkpointed after a repair.

use std::path::Path;

use duckdb::Connection;
use serde::Serialize;

use super::incident::{self, Incident};
use super::wal::SetAsideWal;
use super::StoreError;

/// Why a row found `running` at start-up is now `interrupted`.
pub const INTERRUPTED_AT_STARTUP: &str =
    "interrupted: the process running it ended before it finished (found at start-up)";

/// What opening repaired.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    pub interrupted_runs: Vec<i64>,
    pub interrupted_tasks: usize,
    pub interrupted_experiments: Vec<i64>,
    pub incident: Option<Incident>,
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        self.interrupted_runs.is_empty()
            && self.interrupted_tasks == 0
            && self.interrupted_experiments.is_empty()
            && self.incident.is_none()
    }
}

/// Backup and restore work files of a process that died (`.backup-*`, `.restore-*`). Only
/// the process holding the database makes them, and this one holds it now.
fn remove_work_folders(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(".backup-") || name.starts_with(".restore-")) {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => tracing::warn!("removed {name}, left by an interrupted backup or restore"),
            Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
        }
    }
}

pub(super) fn run(
    conn: &Connection,
    data_dir: &Path,
    set_aside: Option<SetAsideWal>,
) -> Result<Recovery, StoreError> {
    let mut recovery = super::in_transaction(conn, || -> Result<Recovery, StoreError> {
        let ids = |sql: &str| -> Result<Vec<i64>, StoreError> {
            let mut stmt = conn.prepare(sql)?;
            let ids = stmt
                .query_map([INTERRUPTED_AT_STARTUP], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        };
        let interrupted_runs = ids(
            "UPDATE pipeline_runs SET state = 'interrupted', finished_at = now(), error = ?
             WHERE state = 'running' RETURNING run_id",
        )?;
        let interrupted_tasks = conn.execute(
            "UPDATE task_runs SET state = 'interrupted', finished_at = now(), error = ?
             WHERE state = 'running'",
            [INTERRUPTED_AT_STARTUP],
        )?;
        let interrupted_experiments = ids(
            "UPDATE experiments SET state = 'interrupted', finished_at = now(), error = ?
             WHERE state = 'running' RETURNING run_id",
        )?;
        Ok(Recovery {
            interrupted_runs,
            interrupted_tasks,
            interrupted_experiments,
            incident: None,
        })
    })?;
    remove_work_folders(data_dir);
    if let Some(wal) = &set_aside {
        recovery.incident = Some(incident::record_wal(conn, data_dir, wal)?);
    }
    let interrupted = recovery.interrupted_tasks > 0
        || !recovery.interrupted_runs.is_empty()
        || !recovery.interrupted_experiments.is_empty();
    if interrupted {
        tracing::warn!(
            runs = ?recovery.interrupted_runs,
            tasks = recovery.interrupted_tasks,
            experiments = ?recovery.interrupted_experiments,
            "start-up recovery: work left running by a process that ended is marked interrupted"
        );
    }
    if !recovery.is_empty() {
        super::checkpoint(conn)?;
    }
    Ok(recovery)
}
