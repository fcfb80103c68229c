//! The DuckDB file: the only module that opens it, and the one that keeps it openable.
//!
//! `Store::open` runs under a short lock on the data folder, so two coincast processes never
//! create or migrate the file at once:
//! 1. leftovers of a crashed create or migration are removed (`file`);
//! 2. a missing file is created with the final schema in one transaction, checkpointed, and only
//!    then linked into place, so no WAL ever holds schema history (`file`, `migrate`);
//! 3. a WAL that DuckDB cannot replay is moved aside with a timestamp, never deleted; the
//!    checkpointed file opens and the loss is recorded as an incident (`wal`, `incident`);
//! 4. pending migrations run on a checkpointed copy that is fsynced and renamed into place; the
//!    old file is kept until the new one opens (`file`, `migrate`);
//! 5. runs, tasks and experiments left `running` by a dead process become `interrupted`
//!    (`recovery`).
//!
//! DuckDB's own lock keeps a second process out while one has the file open; its raw lock error
//! becomes "in use by another process". Every connection runs in UTC.

mod backup;
mod file;
mod incident;
mod migrate;
mod publish;
mod recovery;
mod wal;

use std::path::{Path, PathBuf};

use duckdb::Connection;

pub use backup::{
    restore, snapshot_to, write_backup, BackupError, BackupManifest, Existing, PartialFile,
    BACKUP_MANIFEST,
};
pub use incident::{open_incidents, resolve_incidents, Incident, IncidentKind, MissingHours};
pub use migrate::{MIGRATIONS, SCHEMA_VERSION};
pub use publish::{
    publish, published_database, published_version, Publication, PublishedTable, PUBLISHED_DIR,
};
pub use recovery::Recovery;

/// File name of the database inside the data folder.
pub const DATABASE_FILE: &str = "coincast.duckdb";

/// The database file of the data folder `data_dir`.
pub fn database_file(data_dir: &Path) -> PathBuf {
    data_dir.join(DATABASE_FILE)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database {path} is in use by another process{holder}; DuckDB allows one writer. \
         Stop that process (e.g. `coincast serve`) or wait for it to finish, then retry"
    )]
    Locked { path: PathBuf, holder: String },
    #[error(
        "the database {path} was written by a newer coincast (schema version {found}, this binary \
         knows up to {known}); upgrade coincast to open it"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "there is no coincast database in {dir}: check --data-dir (or COINCAST_DATA_DIR); \
         `coincast run` or `coincast replay` creates one"
    )]
    NoDatabase { dir: PathBuf },
    #[error("{path} is not a coincast database (it has tables but no schema_migrations)")]
    Foreign { path: PathBuf },
    #[error("cannot use the data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{action} {path}: {source}")]
    File {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: duckdb::Error,
    },
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: String,
        source: duckdb::Error,
    },
    #[error("migration {version} ({name}) was applied with different contents (checksum {found}, expected {expected}); the database and this binary disagree on the schema")]
    MigrationChanged {
        version: i64,
        name: String,
        found: String,
        expected: String,
    },
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

impl crate::failure::Classify for StoreError {
    fn failure(&self) -> crate::failure::Failure {
        match self {
            StoreError::Locked { .. } | StoreError::NewerSchema { .. } => {
                crate::failure::Failure::DatabaseBusy
            }
            StoreError::NoDatabase { .. } => crate::failure::Failure::Usage,
            _ => crate::failure::Failure::Internal,
        }
    }
}

/// An open database: one read-write connection, the schema up to date, crash debris repaired.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    data_dir: PathBuf,
    recovery: Recovery,
}

impl Store {
    /// Applies the thread count and memory limit of `settings` to this connection and every one
    /// cloned from it (DuckDB's settings are per database).
    pub fn tune(&self, settings: &crate::config::StoreSettings) -> Result<(), StoreError> {
        let threads = match settings.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        self.conn
            .execute_batch(&format!("SET threads = {threads};"))?;
        // Validated by the settings (digits and a unit), so it quotes safely.
        let limit = settings.memory_limit.trim();
        if !limit.is_empty() {
            self.conn
                .execute_batch(&format!("SET memory_limit = '{limit}';"))?;
        }
        Ok(())
    }

    /// Opens the database of `data_dir` like `open`, but never creates one: for the commands
    /// that only read, so that a mistyped `--data-dir` is an error rather than a new folder.
    pub fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DATABASE_FILE);
        if !path.exists() && !file::kept_path(&path).exists() {
            return Err(StoreError::NoDatabase {
                dir: data_dir.to_path_buf(),
            });
        }
        Self::open(data_dir)
    }

    /// Opens (creating if needed) `<data_dir>/coincast.duckdb`, repairs what a crash left, and
    /// migrates it.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let _open_lock = file::OpenLock::acquire(data_dir)?;
        file::remove_leftovers(&path)?;
        file::restore_kept_if_missing(&path)?;
        if !path.exists() {
            file::create(&path)?;
        }
        let (conn, set_aside) = match wal::open(&path) {
            Err(e) if !matches!(e, StoreError::Locked { .. }) && file::restore_kept(&path)? => {
                tracing::warn!("{e}; went back to the file kept from before the last migration");
                wal::open(&path)?
            }
            other => other?,
        };
        let conn = migrate::bring_up_to_date(conn, &path)?;
        file::drop_kept(&path);
        conn.execute_batch("SET TimeZone = 'UTC';")?;
        let recovery = recovery::run(&conn, data_dir, set_aside)?;
        Ok(Self {
            conn,
            path,
            data_dir: data_dir.to_path_buf(),
            recovery,
        })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What opening repaired: interrupted runs, an incident.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Writes the WAL into the main file, so that readers of the file alone see every row and
    /// a crash has as little WAL as possible to replay.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        checkpoint(&self.conn)
    }
}

/// The memory limit DuckDB is held to for a moment by [`release_cached_pages`].
const RELEASE_TO: &str = "128MB";

/// Gives DuckDB's cached pages back to the system. DuckDB keeps what a query read cached up to
/// its memory limit (80% of the machine unless `store.memory_limit` says otherwise), so a server
/// stays at the size of its largest read: after the publication's full copy, 190 MB more for
/// 2 coins. Lowering the limit for a moment evicts those pages; then the limit is set again,
/// explicitly, to the configured one or to DuckDB's default as this process first found it.
/// Not `RESET memory_limit`: DuckDB 1.5.5 then restores the setting but leaves the buffer pool
/// at the lowered limit (a 1,000-coin publication ran out of memory at 122 MiB). Not the limit
/// read back each time either: DuckDB renders it rounded down, so it would shrink with every
/// release. A query of another connection in that moment may spill to disk.
pub fn release_cached_pages(
    conn: &Connection,
    settings: &crate::config::StoreSettings,
) -> Result<(), StoreError> {
    static DEFAULT_LIMIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let configured = settings.memory_limit.trim();
    let limit = if configured.is_empty() {
        match DEFAULT_LIMIT.get() {
            Some(limit) => limit.clone(),
            None => {
                let found: String =
                    conn.query_row("SELECT memory_limit FROM pragma_database_size()", [], |r| {
                        r.get(0)
                    })?;
                DEFAULT_LIMIT.get_or_init(|| found).clone()
            }
        }
    } else {
        configured.to_string()
    };
    let lowered = conn.execute_batch(&format!("SET memory_limit = '{RELEASE_TO}';"));
    // The validated setting (digits and a unit) or DuckDB's own rendering of a size: no quotes.
    conn.execute_batch(&format!(
        "SET memory_limit = '{}';",
        limit.replace('\'', "")
    ))?;
    Ok(lowered?)
}

/// `CHECKPOINT` on any connection of the store (after a pipeline run, after a registry change).
pub fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CHECKPOINT;")?;
    Ok(())
}

/// Runs `f` in a transaction on `conn`: committed if it returns Ok, rolled back otherwise.
pub fn in_transaction<T, E>(conn: &Connection, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
where
    E: From<duckdb::Error>,
{
    conn.execute_batch("BEGIN TRANSACTION;")?;
    match f() {
        Ok(value) => {
            conn.execute_batch("COMMIT;")?;
            Ok(value)
        }
        Err(err) => {
            // The original error matters more than a failed rollback.
            let _ = conn.execute_batch("ROLLBACK;");
            Err(err)
        }
    }
}

/// DuckDB reports a held lock as an IO error naming the holder: say so plainly.
fn classify_open_error(path: &Path, err: duckdb::Error) -> StoreError {
    let text = err.to_string();
    if text.contains("Could not set lock") || text.contains("Conflicting lock") {
        let holder = text
            .find("(PID ")
            .and_then(|start| {
                let rest = &text[start + 5..];
                rest.find(')').map(|end| format!(" (PID {})", &rest[..end]))
            })
            .unwrap_or_default();
        return StoreError::Locked {
            path: path.to_path_buf(),
            holder,
        };
    }
    StoreError::Open {
        path: path.to_path_buf(),
        source: err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreSettings;

    /// The limit as the setting says and as the buffer pool holds it.
    fn memory_limit(conn: &Connection) -> (String, String) {
        conn.query_row(
            "SELECT current_setting('memory_limit'), (SELECT memory_limit FROM pragma_database_size())",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("memory_limit")
    }

    /// Two copies of the database at once on two connections of one instance (a backup while
    /// the worker publishes the SQL copy) both succeed: attached names are the instance's.
    #[test]
    fn two_copies_at_once_both_succeed() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let out = tempfile::tempdir().expect("out");
        std::thread::scope(|scope| {
            let copies: Vec<_> = (0..2)
                .map(|worker| {
                    let conn = store.conn().try_clone().expect("conn");
                    let out = out.path().to_path_buf();
                    scope.spawn(move || {
                        for i in 0..10 {
                            let dest = out.join(format!("copy-{worker}-{i}.duckdb"));
                            snapshot_to(&conn, &dest).expect("copy");
                        }
                    })
                })
                .collect();
            for copy in copies {
                copy.join().expect("no panic");
            }
        });
    }

    /// Handing the cached pages back leaves the limit as it was, in the setting and in the
    /// buffer pool: DuckDB's default (within the rendering's last digit), or the configured one;
    /// and releasing again changes nothing.
    #[test]
    fn releasing_cached_pages_keeps_the_memory_limit() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let mut settings = StoreSettings {
            threads: 0,
            memory_limit: String::new(),
        };
        let (default, _) = memory_limit(store.conn());
        release_cached_pages(store.conn(), &settings).expect("release");
        let after = memory_limit(store.conn());
        assert_eq!(after.0, after.1, "the setting and the buffer pool agree");
        let gib = |text: &str| -> f64 { text.trim_end_matches(" GiB").parse().unwrap_or(0.0) };
        assert!(
            (gib(&default) - gib(&after.1)).abs() <= 0.1 + 1e-9,
            "{default} -> {}",
            after.1
        );
        for _ in 0..3 {
            release_cached_pages(store.conn(), &settings).expect("again");
            assert_eq!(memory_limit(store.conn()), after, "no shrinking");
        }
        settings.memory_limit = "300MB".into();
        store.tune(&settings).expect("tune");
        let configured = memory_limit(store.conn());
        assert_ne!(configured, after);
        release_cached_pages(store.conn(), &settings).expect("release");
        assert_eq!(memory_limit(store.conn()), configured);
    }
}
