//! The published read-only copy: while `coincast serve` holds the live file (no other process can
//! open it), SQL users read `<data_dir>/published/coincast.duckdb` and one Parquet file per table
//! under `<data_dir>/published/parquet/`.
//!
//! A copy is consistent (the backup's `COPY FROM DATABASE`, one transaction), written beside the
//! published one and renamed over it, so a reader sees the old copy or the new one, never half a
//! file; a reader that has the old one open keeps reading it. The Parquet files go to a folder of
//! their own version, and `parquet` is a symbolic link swapped in one rename; the two newest
//! versions are kept so that a reader in the middle of the previous one is not cut off.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use duckdb::Connection;
use serde::{Deserialize, Serialize};

use super::backup::{io, snapshot_to, BackupError};
use super::DATABASE_FILE;

/// The folder of the published copy, inside the data folder.
pub const PUBLISHED_DIR: &str = "published";
/// The link to the newest Parquet version, inside `PUBLISHED_DIR`.
const PARQUET_LINK: &str = "parquet";
/// Parquet versions kept (the newest and the one before).
const KEEP_VERSIONS: usize = 2;

/// What a publication wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publication {
    /// `YYYYMMDDTHHMMSSmmmZ`, also the Parquet folder's suffix.
    pub version: String,
    pub database: PathBuf,
    pub parquet: PathBuf,
    pub tables: Vec<PublishedTable>,
    pub database_bytes: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedTable {
    pub name: String,
    pub rows: i64,
}

/// Publishes a consistent copy of the database behind `conn` (the live one) and its tables as
/// Parquet, replacing the previous publication atomically.
pub fn publish(conn: &Connection, data_dir: &Path) -> Result<Publication, BackupError> {
    let started = Instant::now();
    let dir = data_dir.join(PUBLISHED_DIR);
    fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
    let version = Utc::now().format("%Y%m%dT%H%M%S%3fZ").to_string();
    let partial_db = dir.join(format!(".{DATABASE_FILE}.{version}.partial"));
    let partial_parquet = dir.join(format!(".parquet-{version}.partial"));
    let result = (|| {
        snapshot_to(conn, &partial_db)?;
        let tables = export_parquet(&partial_db, &partial_parquet)?;
        fsync(&partial_db)?;
        let database = published_database(data_dir);
        fs::rename(&partial_db, &database).map_err(io("cannot publish", &database))?;
        let parquet_dir = dir.join(format!("parquet-{version}"));
        fs::rename(&partial_parquet, &parquet_dir).map_err(io("cannot publish", &parquet_dir))?;
        swap_link(&dir, &format!("parquet-{version}"))?;
        prune_versions(&dir);
        let database_bytes = fs::metadata(&database).map(|m| m.len()).unwrap_or(0);
        Ok(Publication {
            version: version.clone(),
            database,
            parquet: dir.join(PARQUET_LINK),
            tables,
            database_bytes,
            seconds: started.elapsed().as_secs_f64(),
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial_db);
        let _ = fs::remove_dir_all(&partial_parquet);
    }
    result
}

/// The published database of a data folder.
pub fn published_database(data_dir: &Path) -> PathBuf {
    data_dir.join(PUBLISHED_DIR).join(DATABASE_FILE)
}

/// The version of the newest publication in `data_dir` (from its Parquet link), if any.
pub fn published_version(data_dir: &Path) -> Option<String> {
    let target = fs::read_link(data_dir.join(PUBLISHED_DIR).join(PARQUET_LINK)).ok()?;
    let name = target.to_string_lossy();
    name.strip_prefix("parquet-").map(str::to_string)
}

/// One Parquet file per table of the copy (read from the copy, not the live file).
fn export_parquet(db: &Path, out: &Path) -> Result<Vec<PublishedTable>, BackupError> {
    fs::create_dir_all(out).map_err(io("cannot create", out))?;
    let copy = Connection::open(db)?;
    let mut stmt = copy.prepare(include_str!("../../sql/reports/published_tables.sql"))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let rows = copy.query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))?;
        let file = out.join(format!("{name}.parquet"));
        copy.execute_batch(&format!(
            "COPY {quoted} TO '{}' (FORMAT parquet, COMPRESSION zstd);",
            file.display().to_string().replace('\'', "''")
        ))?;
        tables.push(PublishedTable { name, rows });
    }
    Ok(tables)
}

/// Points `parquet` at `target` in one rename (a new link beside it, renamed over it).
fn swap_link(dir: &Path, target: &str) -> Result<(), BackupError> {
    let link = dir.join(PARQUET_LINK);
    let next = dir.join(format!(".{PARQUET_LINK}.next"));
    let _ = fs::remove_file(&next);
    std::os::unix::fs::symlink(target, &next).map_err(io("cannot link", &next))?;
    fs::rename(&next, &link).map_err(io("cannot publish", &link))
}

/// Removes Parquet versions older than the newest `KEEP_VERSIONS`, and what a crashed
/// publication left (a `.partial` over an hour old: a publication in progress is younger).
fn prune_versions(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut versions: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("parquet-") {
            versions.push(entry.path());
        } else if name.ends_with(".partial") && older_than_an_hour(&entry) {
            let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
        }
    }
    versions.sort();
    let stale = versions.len().saturating_sub(KEEP_VERSIONS);
    for old in versions.into_iter().take(stale) {
        let _ = fs::remove_dir_all(old);
    }
}

fn older_than_an_hour(entry: &fs::DirEntry) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > 3600)
}

fn fsync(path: &Path) -> Result<(), BackupError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", path))
}
