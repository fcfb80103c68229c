//! The lake: dataset versions as DuckLake snapshots, so that the data leaves the machine in a
//! format many engines read (Parquet files in a folder or on S3, a catalog in a DuckDB file, in
//! PostgreSQL or SQLite) and any version can be read again, after later batches revised it.
//!
//! Invariants:
//! - the lake is attached to the store's own DuckDB instance (`attach.rs`): the extensions are
//!   loaded from files (`LOAD '/abs/path'`), never installed at run time, and S3 credentials
//!   come from `AWS_*` variables into an in-memory secret, never into a log or the database;
//! - its tables are created once, when the lake is first attached, never by two writers at once;
//! - a version (`version.rs`) is one DuckLake transaction that replaces each changed coin's
//!   hours from the earliest changed one, and the changed batches, so every (coin, hour) is in
//!   each version exactly once; its metadata (`VersionInfo`: watermarks, coins and ranges, rows,
//!   content hash, feature SQL and rule set hashes, batch ids) is the snapshot's commit info, so
//!   metadata and data commit together, and a rerun after a crash commits nothing twice;
//! - a run that changed nothing commits nothing;
//! - retention (`retention.rs`) never loses a received body: it is cleared from the file only
//!   after the lake gives it back with its recorded sha256; expiry keeps the newest snapshot,
//!   every writer's newest version and every version any writer keeps (`lake.coincast_refs`).

mod attach;
mod bucket;
mod retention;
mod version;

pub use attach::{attach, attach_read_only, Location};
pub use bucket::{
    download_backup, fetch_model, hydrate_coin, prune, upload_backup, upload_models, BackupIndex,
    Blob, Bucket, ModelManifest, PrunedBucket,
};
pub(crate) use bucket::{files_under, BLOBS_DIR};
pub use retention::{
    bodies_to_move, expirable, expire_and_compact, files, move_bodies, publish_refs, restore_body,
    KeptVersion, LakeCompaction, LakeFiles, MovedBodies,
};
pub use version::{
    commit, diff, export, latest, lineage, list, rows_at, show, CoinDiff, CoinLineage, CoinRange,
    Export, TableRows, Version, VersionInfo, Watermarks,
};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("the lake is off (lake.enabled = false)")]
    Disabled,
    #[error(
        "the DuckDB extension `{name}` is not at {path}: `make build` fetches the lake's \
         extensions, or set lake.extension_dir"
    )]
    Extension { name: &'static str, path: PathBuf },
    #[error("loading the DuckDB extension {path}: {source}")]
    Load {
        path: PathBuf,
        source: duckdb::Error,
    },
    #[error(
        "lake.data_path {data_path} is on S3 but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are \
         not both set"
    )]
    NoCredentials { data_path: String },
    #[error(
        "the S3 secret for lake.data_path {data_path} could not be made from \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    S3Secret { data_path: String },
    #[error("attaching the lake (catalog {catalog}, data {data_path}): {source}")]
    Attach {
        catalog: String,
        data_path: String,
        source: duckdb::Error,
    },
    #[error("committing the dataset version failed after {attempts} attempt(s): {source}")]
    Commit {
        attempts: u32,
        source: duckdb::Error,
    },
    #[error("there is no dataset version {0} (`coincast datasets list` lists them)")]
    UnknownVersion(i64),
    #[error(
        "batch {batch_id}'s body was moved to the lake, but the lake has no copy with its \
         recorded sha256"
    )]
    MissingBody { batch_id: i64 },
    #[error("`{0}` is not an s3://bucket/prefix URL")]
    NotS3(String),
    #[error("{action} {key}: {source}")]
    Bucket {
        action: &'static str,
        key: String,
        source: Box<object_store::Error>,
    },
    #[error("{key} is damaged: its sha256 is {got}, not {expected}")]
    Corrupt {
        key: String,
        expected: String,
        got: String,
    },
    #[error("no backup at {0} (`coincast backup` uploads one when lake.data_path is on S3)")]
    NoBackup(String),
    #[error(transparent)]
    Model(Box<crate::model::ModelError>),
    #[error("an object-store call panicked")]
    Panicked,
    #[error("dataset version {version} has unreadable metadata: {message}")]
    Metadata { version: i64, message: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

impl crate::failure::Classify for LakeError {
    fn failure(&self) -> crate::failure::Failure {
        use crate::failure::Failure;
        match self {
            LakeError::Disabled
            | LakeError::Extension { .. }
            | LakeError::NoCredentials { .. }
            | LakeError::S3Secret { .. }
            | LakeError::UnknownVersion(_)
            | LakeError::NotS3(_)
            | LakeError::NoBackup(_) => Failure::Usage,
            LakeError::Model(e) => e.failure(),
            LakeError::Load { .. }
            | LakeError::Attach { .. }
            | LakeError::Commit { .. }
            | LakeError::Metadata { .. }
            | LakeError::MissingBody { .. }
            | LakeError::Corrupt { .. }
            | LakeError::Bucket { .. }
            | LakeError::Panicked
            | LakeError::Io { .. }
            | LakeError::Sql(_) => Failure::Internal,
        }
    }
}

/// The lake's newest dataset version, recorded on a training run's experiment and models: the
/// rows it read from the live file, as long as the last `version` task succeeded (after a failed
/// one it lags until the next run commits). A lake that cannot be reached leaves it unrecorded
/// with a warning: training never fails for the lake.
pub fn record_training(
    conn: &duckdb::Connection,
    settings: &crate::config::Settings,
    run_id: i64,
) -> Option<i64> {
    if !settings.lake.enabled {
        return None;
    }
    let version = attach(conn, settings).and_then(|_| latest(conn));
    match version {
        Ok(Some(v)) => match crate::model::registry::set_lake_version(conn, run_id, v.version) {
            Ok(()) => Some(v.version),
            Err(e) => {
                tracing::warn!("cannot record dataset version {}: {e}", v.version);
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("the lake cannot be read, so no dataset version is recorded: {e}");
            None
        }
    }
}

/// Uploads the registered models the lake's bucket lacks, when the lake is on S3 (after a
/// training). A failure is a warning: the next `version` task uploads them, and fails visibly.
pub fn ship_models(conn: &duckdb::Connection, settings: &crate::config::Settings) {
    let shipped = Bucket::of(settings).and_then(|bucket| match bucket {
        Some(b) => upload_models(conn, &b, &settings.data_dir).map(|n| Some((n, b))),
        None => Ok(None),
    });
    match shipped {
        Ok(Some((n, bucket))) if n > 0 => {
            tracing::info!("uploaded {n} model(s) to {}", bucket.url())
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("models not uploaded yet (the next run tries again): {e}"),
    }
}

/// A SQL string literal: `'` doubled. Paths and connection strings reach SQL only through this.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
