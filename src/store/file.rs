//! The database file's life cycle on disk: created and migrated beside the live name, fsynced,
//! and only then put in place, so a crash at any moment leaves either the old complete file or
//! the new complete file, plus debris that the next open removes.
//!
//! Names, all in the data folder:
//! - `coincast.duckdb.creating-<pid>` / `.migrating-<pid>` (and their `.wal`): work in progress,
//!   removed by the next open (which holds the open lock, so nobody else is working on them);
//! - `coincast.duckdb.pre-migration`: the file as it was before a migration, a hard link kept
//!   until the migrated file has opened.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use duckdb::Connection;

use super::{classify_open_error, migrate, StoreError, DATABASE_FILE};

const CREATING: &str = "creating-";
const MIGRATING: &str = "migrating-";
const KEPT: &str = "pre-migration";
const OPEN_LOCK: &str = ".coincast-open.lock";

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::File {
        action,
        path,
        source,
    }
}

/// An exclusive lock on `<data_dir>/.coincast-open.lock`, held while a process creates,
/// repairs or migrates the database (not while it uses it: DuckDB's own lock does that).
pub(super) struct OpenLock {
    _file: File,
}

impl OpenLock {
    pub fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(OPEN_LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::DataDir {
                path: data_dir.to_path_buf(),
                source,
            })?;
        file.lock().map_err(io_error("cannot lock", &path))?;
        Ok(Self { _file: file })
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DATABASE_FILE.to_string());
    path.with_file_name(format!("{name}.{suffix}"))
}

/// DuckDB's write-ahead log of a database file.
pub(super) fn wal_path(path: &Path) -> PathBuf {
    sibling(path, "wal")
}

pub(super) fn kept_path(path: &Path) -> PathBuf {
    sibling(path, KEPT)
}

fn work_path(path: &Path, kind: &str) -> PathBuf {
    sibling(path, &format!("{kind}{}", std::process::id()))
}

/// Removes work files of a create or migration that a crash interrupted.
pub(super) fn remove_leftovers(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entries = fs::read_dir(dir).map_err(io_error("cannot list", dir))?;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&format!("{name}.")) else {
            continue;
        };
        if rest.starts_with(CREATING) || rest.starts_with(MIGRATING) {
            tracing::warn!("removing {file_name}, left by an interrupted create or migration");
            fs::remove_file(entry.path()).map_err(io_error("cannot remove", &entry.path()))?;
        }
    }
    Ok(())
}

/// Creates the database with the final schema in one transaction, checkpointed, and links it into
/// place only when complete. Another process that created it meanwhile wins (the link fails).
pub(super) fn create(path: &Path) -> Result<(), StoreError> {
    let work = work_path(path, CREATING);
    {
        let conn = Connection::open(&work).map_err(|e| classify_open_error(&work, e))?;
        migrate::create_schema(&conn)?;
        super::checkpoint(&conn)?;
    }
    finish_work_file(&work)?;
    match fs::hard_link(&work, path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error("cannot link the new database to", path)(e)),
    }
    fs::remove_file(&work).map_err(io_error("cannot remove", &work))?;
    sync_dir(path)?;
    tracing::info!("created {}", path.display());
    Ok(())
}

/// Migrates a checkpointed copy of the file with `migrate`, then renames it into place, keeping
/// the old file (hard link) until the caller has opened the new one; returns that connection.
pub(super) fn migrate_on_copy(
    conn: Connection,
    path: &Path,
    migrate: impl FnOnce(&Connection) -> Result<(), StoreError>,
) -> Result<Connection, StoreError> {
    super::checkpoint(&conn)?;
    let wal = wal_path(path);
    if fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        // The copy would miss what the WAL holds: refuse rather than lose it.
        return Err(io_error("the checkpoint left changes in", &wal)(
            std::io::Error::other("cannot migrate a copy that would miss them"),
        ));
    }
    let work = work_path(path, MIGRATING);
    // Copied while DuckDB's lock is still held, so no other process writes meanwhile.
    fs::copy(path, &work).map_err(io_error("cannot copy the database to", &work))?;
    drop(conn);
    let migrated = (|| {
        {
            let copy = Connection::open(&work).map_err(|e| classify_open_error(&work, e))?;
            migrate(&copy)?;
            super::checkpoint(&copy)?;
        }
        finish_work_file(&work)
    })();
    if let Err(e) = migrated {
        let _ = fs::remove_file(&work);
        let _ = fs::remove_file(wal_path(&work));
        return Err(e);
    }
    let kept = kept_path(path);
    match fs::remove_file(&kept) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("cannot remove", &kept)(e)),
    }
    fs::hard_link(path, &kept).map_err(io_error("cannot keep the old database as", &kept))?;
    fs::rename(&work, path).map_err(io_error("cannot put the migrated database at", path))?;
    sync_dir(path)?;
    Connection::open(path).map_err(|e| classify_open_error(path, e))
}

/// A closed work file must have no WAL (its last checkpoint wrote everything), and is fsynced.
fn finish_work_file(work: &Path) -> Result<(), StoreError> {
    let wal = wal_path(work);
    if wal.exists() {
        // Nothing may be left to replay in a file that is about to become the database.
        fs::remove_file(&wal).map_err(io_error("cannot remove", &wal))?;
        return Err(io_error("a checkpointed work file still had a WAL", work)(
            std::io::Error::other("checkpoint incomplete"),
        ));
    }
    File::open(work)
        .and_then(|f| f.sync_all())
        .map_err(io_error("cannot fsync", work))
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("cannot fsync the folder", dir))
}

/// The migrated file opened: the old one is no longer needed.
pub(super) fn drop_kept(path: &Path) {
    let kept = kept_path(path);
    if kept.exists() {
        if let Err(e) = fs::remove_file(&kept) {
            tracing::warn!("cannot remove {}: {e}", kept.display());
        }
    }
}

/// The file does not open: if a pre-migration copy is kept, puts it back. True if it did.
pub(super) fn restore_kept(path: &Path) -> Result<bool, StoreError> {
    let kept = kept_path(path);
    if !kept.exists() {
        return Ok(false);
    }
    fs::rename(&kept, path).map_err(io_error("cannot restore", &kept))?;
    sync_dir(path)?;
    Ok(true)
}

/// The file is missing but a pre-migration copy is kept: put it back.
pub(super) fn restore_kept_if_missing(path: &Path) -> Result<(), StoreError> {
    if !path.exists() && restore_kept(path)? {
        tracing::warn!("{} was missing; restored the kept copy", path.display());
    }
    Ok(())
}
