//! A publication's manifest: its format, version and files, each named by sha256.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::PublishError;
use crate::lake::Blob;

/// The layout this coincast writes and reads. A change a reader of the previous format would
/// misread raises it; replicas refuse a newer one (a rolling upgrade starts with the replicas).
pub const FORMAT_VERSION: u32 = 1;

/// The newest publication, named last.
pub const NEWEST: &str = "manifest.json";

/// Where each version's manifest is kept.
pub const VERSIONS_DIR: &str = "versions";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub version: u64,
    pub published_at: DateTime<Utc>,
    /// The writer's `serve.instance`.
    pub writer: String,
    /// The first hour (since the epoch) of each coin's series in the database.
    pub series_from_hour: i64,
    /// The serving database (a DuckDB file with the writer's schema), zstd-compressed.
    pub database: Blob,
    /// Its size once decompressed.
    pub database_bytes: u64,
    /// The served models' artifact files.
    pub models: Vec<ModelFiles>,
}

/// A model's artifact folder: each file by its path inside the folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFiles {
    pub model_id: String,
    pub files: Vec<(String, Blob)>,
}

impl Manifest {
    /// Every file it names.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.database).chain(
            self.models
                .iter()
                .flat_map(|m| m.files.iter().map(|(_, b)| b)),
        )
    }

    /// The bytes of every file it names.
    pub fn bytes(&self) -> u64 {
        self.blobs().map(|b| b.bytes).sum()
    }

    /// The object name of version `version`'s manifest.
    pub fn version_name(version: u64) -> String {
        format!("{VERSIONS_DIR}/{version:012}.json")
    }

    /// Reads a manifest: a newer `format_version` is refused by name before any other field is
    /// read (a newer layout may have changed them).
    pub fn parse(body: &[u8], url: &str) -> Result<Self, PublishError> {
        let malformed = |message: String| PublishError::Malformed {
            url: url.to_string(),
            message,
        };
        #[derive(Deserialize)]
        struct Head {
            format_version: u32,
            version: u64,
        }
        let head: Head = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
        if head.format_version > FORMAT_VERSION {
            return Err(PublishError::NewerFormat {
                url: url.to_string(),
                version: head.version,
                format_version: head.format_version,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let blob = |c: char| Blob {
            sha256: c.to_string().repeat(64),
            bytes: 10,
        };
        Manifest {
            format_version: FORMAT_VERSION,
            version: 7,
            published_at: Utc::now(),
            writer: "w:8000".into(),
            series_from_hour: 480_000,
            database: blob('a'),
            database_bytes: 100,
            models: vec![ModelFiles {
                model_id: "m1".into(),
                files: vec![("model.json".into(), blob('b'))],
            }],
        }
    }

    #[test]
    fn a_manifest_round_trips_and_counts_its_files() {
        let m = manifest();
        let text = serde_json::to_vec(&m).expect("json");
        assert_eq!(Manifest::parse(&text, "file:///p").expect("parse"), m);
        assert_eq!(m.bytes(), 20);
        assert_eq!(Manifest::version_name(7), "versions/000000000007.json");
    }

    #[test]
    fn a_newer_format_is_refused_by_name_whatever_its_other_fields() {
        let text = br#"{"format_version": 2, "version": 9, "layout": "something new"}"#;
        let err = Manifest::parse(text, "s3://b/p").expect_err("newer");
        assert!(matches!(
            err,
            PublishError::NewerFormat {
                version: 9,
                format_version: 2,
                ..
            }
        ));
        let message = err.to_string();
        assert!(
            message.contains("format_version 2") && message.contains("up to 1"),
            "{message}"
        );
        let broken = Manifest::parse(b"{\"format_version\": 1}", "s3://b/p").expect_err("broken");
        assert!(matches!(broken, PublishError::Malformed { .. }), "{broken}");
    }
}
