//! The serving publication: what a writer puts out so that replicas (`coincast serve --role
//! replica`) serve `/predict` and the pages without the writer's database.
//!
//! At `publish.url` (`file:///dir`, a shared volume, or `s3://bucket/prefix`, through
//! `lake::Bucket`):
//! - `blobs/sha256/<hex>`: the files, named by content: the serving database (`serving.sql`: the
//!   registry, each coin's recent series, live accuracy, ACI levels, PSI, the pages' recent
//!   history) and the served models' artifact files;
//! - `versions/<version>.json`: each publication's manifest, written after its blobs;
//! - `manifest.json`: the newest manifest, written last, so that a replica never reads a
//!   publication whose files are not all there;
//! - `predictions/<instance>@<segment>.parquet`: replicas' served forecasts, taken in by the
//!   writer under the `predictions` contract (`segments.rs`).
//!
//! Invariants:
//! - one writer publishes, one publication at a time; versions only grow;
//! - a manifest names only blobs already written, and every blob is checked against its sha256
//!   before a replica uses it;
//! - a replica refuses a manifest of a newer `format_version` and keeps what it serves;
//! - this module knows the store, the registry and the bucket, never the runtime or HTTP.

mod manifest;
mod replica;
mod segments;
mod writer;

pub use manifest::{Manifest, ModelFiles, FORMAT_VERSION};
pub use replica::{Fetched, Follower};
pub use segments::{BucketSink, Intake};
pub use writer::{Published, ServingWriter};

use std::path::PathBuf;

/// Hours of history a forecast reads before its origin: the scales' 720-hour window, the LSTM's
/// 168-hour lookback and a day to spare. A replica's series starts at the publication's first
/// hour, so it forecasts only from origins this far after it.
pub const HISTORY_HOURS: i64 = 31 * 24;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Bucket(Box<crate::lake::LakeError>),
    #[error("the serving database: {0}")]
    Database(#[from] duckdb::Error),
    #[error("the model registry: {0}")]
    Registry(#[from] crate::model::ModelError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "publication {version} at {url} has format_version {format_version}; this coincast reads up to {supported}: upgrade this server (it keeps serving what it has)"
    )]
    NewerFormat {
        url: String,
        version: u64,
        format_version: u32,
        supported: u32,
    },
    #[error("{url}: not a serving manifest: {message}")]
    Malformed { url: String, message: String },
}

impl From<crate::lake::LakeError> for PublishError {
    fn from(e: crate::lake::LakeError) -> Self {
        PublishError::Bucket(Box::new(e))
    }
}

impl crate::failure::Classify for PublishError {
    fn failure(&self) -> crate::failure::Failure {
        match self {
            PublishError::Bucket(e) => e.failure(),
            _ => crate::failure::Failure::Internal,
        }
    }
}

fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}
