//! The lake's part of retention: raw bodies moved out of the live file into `lake.raw_bodies`
//! (and back, to check a batch again), the versions each writer keeps, snapshot expiry,
//! compaction and the deletion of files no kept snapshot needs.
//!
//! DuckDB writes one attached database per transaction, so moving a body is two commits: the
//! lake's copy first, then, only for the bodies that read back with their recorded sha256, the
//! file's body cleared. A stop between the two leaves the body in both places, never in neither.

use duckdb::{params, Connection, OptionalExt};
use serde::Serialize;

use super::version::writer_id;
use super::LakeError;

/// A version a writer keeps from expiry, and why (`model X`, `pinned: note`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptVersion {
    pub version: i64,
    pub reason: String,
}

/// Files the lake's catalog names, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LakeFiles {
    pub files: i64,
    pub bytes: i64,
}

/// What expiry, cleanup of old files and compaction did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LakeCompaction {
    pub expired: Vec<i64>,
    pub before: LakeFiles,
    pub after: LakeFiles,
}

/// Merged batches' bodies moved to the lake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MovedBodies {
    pub batches: i64,
    pub bytes: i64,
}

/// The snapshots that expiry would remove: older than `cutoff` (RFC 3339), and none that any
/// writer keeps (`keep` is this writer's list, the lake's `coincast_refs` the others'), nor the
/// newest snapshot or any writer's newest version.
pub fn expirable(
    conn: &Connection,
    cutoff: &str,
    keep: &[KeptVersion],
) -> Result<Vec<i64>, LakeError> {
    let writer = writer_id(conn)?;
    stage_refs(conn, keep)?;
    let mut stmt = conn.prepare(include_str!("../../sql/lake/expirable.sql"))?;
    let rows = stmt.query_map(params![writer, cutoff], |r| r.get(0))?;
    let versions = rows.collect::<Result<Vec<i64>, _>>()?;
    conn.execute_batch("DROP TABLE IF EXISTS cleanup_refs")?;
    Ok(versions)
}

/// This writer's kept versions as a temporary table, for `expirable.sql`.
fn stage_refs(conn: &Connection, keep: &[KeptVersion]) -> Result<(), LakeError> {
    conn.execute_batch(
        "CREATE OR REPLACE TEMP TABLE cleanup_refs (version BIGINT, reason VARCHAR)",
    )?;
    let mut insert = conn.prepare("INSERT INTO cleanup_refs VALUES (?, ?)")?;
    for k in keep {
        insert.execute(params![k.version, k.reason])?;
    }
    Ok(())
}

/// Replaces this writer's rows in `lake.coincast_refs` with `keep`, so that another writer's
/// cleanup keeps them too.
pub fn publish_refs(conn: &Connection, keep: &[KeptVersion]) -> Result<(), LakeError> {
    let writer = writer_id(conn)?;
    crate::store::in_transaction(conn, || -> Result<(), LakeError> {
        conn.execute(
            "DELETE FROM lake.coincast_refs WHERE writer_id = ?",
            params![writer],
        )?;
        let mut insert = conn.prepare("INSERT INTO lake.coincast_refs VALUES (?, ?, ?)")?;
        for k in keep {
            insert.execute(params![writer, k.version, k.reason])?;
        }
        conn.execute(
            "CALL lake.set_commit_message('coincast-retention', 'kept versions')",
            [],
        )?;
        Ok(())
    })
}

/// Expires `versions`, rewrites files with deleted rows, merges small adjacent files and deletes
/// the files no remaining snapshot needs; the catalog's files and bytes before and after.
pub fn expire_and_compact(
    conn: &Connection,
    versions: &[i64],
) -> Result<LakeCompaction, LakeError> {
    let before = files(conn)?;
    if !versions.is_empty() {
        let list = versions
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        conn.execute_batch(&format!(
            "CALL ducklake_expire_snapshots('lake', versions => [{list}]);"
        ))?;
    }
    // Files with deleted rows are never merged: those mostly deleted (a version replaces the
    // newest hours, so the files of an hourly version mostly are) are rewritten first, at
    // DuckLake's default threshold; rewriting a large file for a few deleted rows would double
    // it. The files a rewrite replaces stay while a kept snapshot older than it reads them (a
    // writer's newest version until its next one): the next cleanup deletes them.
    conn.execute_batch(
        "CALL ducklake_rewrite_data_files('lake');
         CALL ducklake_merge_adjacent_files('lake');
         CALL ducklake_cleanup_old_files('lake', cleanup_all => true);",
    )?;
    Ok(LakeCompaction {
        expired: versions.to_vec(),
        before,
        after: files(conn)?,
    })
}

/// The files the catalog names now.
pub fn files(conn: &Connection) -> Result<LakeFiles, LakeError> {
    Ok(
        conn.query_row(include_str!("../../sql/lake/data_files.sql"), [], |r| {
            Ok(LakeFiles {
                files: r.get(0)?,
                bytes: r.get(1)?,
            })
        })?,
    )
}

/// The bodies `move_bodies` would move: merged batches fetched before `cutoff` whose body is
/// still in the file.
pub fn bodies_to_move(conn: &Connection, cutoff: &str) -> Result<MovedBodies, LakeError> {
    Ok(conn.query_row(
        "SELECT count(*), coalesce(sum(body_bytes), 0)::BIGINT FROM raw_batches
         WHERE state = 'merged' AND body IS NOT NULL AND fetched_at < CAST(? AS TIMESTAMPTZ)",
        params![cutoff],
        |r| {
            Ok(MovedBodies {
                batches: r.get(0)?,
                bytes: r.get(1)?,
            })
        },
    )?)
}

/// Copies the bodies of merged batches fetched before `cutoff` to `lake.raw_bodies` (one lake
/// commit), then clears in the file only those the lake gives back with their recorded sha256.
pub fn move_bodies(conn: &Connection, cutoff: &str) -> Result<MovedBodies, LakeError> {
    let writer = writer_id(conn)?;
    crate::store::in_transaction(conn, || -> Result<(), LakeError> {
        conn.execute(
            include_str!("../../sql/lake/archive_bodies.sql"),
            params![writer, cutoff],
        )?;
        conn.execute(
            "CALL lake.set_commit_message('coincast-retention', 'raw bodies moved from the file')",
            [],
        )?;
        Ok(())
    })?;
    let verified: Vec<i64> = {
        let mut stmt = conn.prepare(include_str!("../../sql/lake/archived_bodies.sql"))?;
        let rows = stmt.query_map(params![writer, cutoff], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    crate::store::in_transaction(conn, || -> Result<MovedBodies, LakeError> {
        let mut moved = MovedBodies::default();
        let mut clear = conn.prepare(
            "UPDATE raw_batches SET body = NULL, body_archived = 'lake'
             WHERE batch_id = ? AND body IS NOT NULL RETURNING body_bytes",
        )?;
        for id in &verified {
            let bytes: Option<i64> = clear.query_row(params![id], |r| r.get(0)).optional()?;
            if let Some(b) = bytes {
                moved.batches += 1;
                moved.bytes += b;
            }
        }
        Ok(moved)
    })
}

/// Brings batch `batch_id`'s body back from the lake into the file, if cleanup moved it; false
/// when it was not moved. An archived body that the lake does not give back with its recorded
/// sha256 is an error, naming the batch.
pub fn restore_body(conn: &Connection, batch_id: i64) -> Result<bool, LakeError> {
    let archived: bool = conn.query_row(
        "SELECT count(*) > 0 FROM raw_batches
         WHERE batch_id = ? AND body IS NULL AND body_archived = 'lake'",
        params![batch_id],
        |r| r.get(0),
    )?;
    if !archived {
        return Ok(false);
    }
    let writer = writer_id(conn)?;
    let restored = conn.execute(
        include_str!("../../sql/lake/restore_bodies.sql"),
        params![writer, batch_id],
    )?;
    if restored == 0 {
        return Err(LakeError::MissingBody { batch_id });
    }
    Ok(true)
}
