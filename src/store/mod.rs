//! The DuckDB file: the only module that opens it.
//!
//! Opening applies the migrations in `sql/schema/` in order (each recorded in `schema_migrations`),
//! refuses a file written by a newer schema, and turns DuckDB's raw lock error into a message that
//! says another coincast process holds the file. Every connection runs in UTC.

mod migrate;

use std::path::{Path, PathBuf};

use duckdb::Connection;

pub use migrate::{MIGRATIONS, SCHEMA_VERSION};

/// File name of the database inside the data folder.
pub const DATABASE_FILE: &str = "coincast.duckdb";

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
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
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

/// An open database: one read-write connection, the schema up to date.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/coincast.duckdb` and migrates it.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Self::open_file(&data_dir.join(DATABASE_FILE))
    }

    /// Opens a database file at an explicit path.
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(|e| classify_open_error(path, e))?;
        conn.execute_batch("SET TimeZone = 'UTC';")?;
        migrate::apply(&conn, path)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the WAL into the main file, so that readers of the file alone see every row.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("CHECKPOINT;")?;
        Ok(())
    }
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
