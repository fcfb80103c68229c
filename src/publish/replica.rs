//! The replica's side: reads the newest manifest and fetches the files it names into a folder of
//! its own, `<data_dir>/replica/v<version>/` (the serving database as `coincast.duckdb`, each
//! model's files under `models/<model_id>/`), laid out as a data folder so the snapshot loads
//! from it as from the writer's.

use std::path::{Component, Path, PathBuf};

use super::manifest::{Manifest, NEWEST};
use super::{io_error, PublishError};
use crate::config::Settings;
use crate::lake::Bucket;
use crate::model::artifacts;

/// A publication on this machine.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub manifest: Manifest,
    /// A data folder holding the publication's files.
    pub dir: PathBuf,
}

impl Fetched {
    /// The serving database.
    pub fn database(&self) -> PathBuf {
        self.dir.join(crate::store::DATABASE_FILE)
    }

    fn model_file(&self, model_id: &str, inside: &str) -> PathBuf {
        self.dir
            .join(artifacts::registered_path(model_id))
            .join(inside)
    }
}

/// Follows `publish.url` from a replica.
pub struct Follower {
    bucket: Bucket,
    root: PathBuf,
}

impl Follower {
    /// The follower of `publish.url`; what an earlier run of this replica fetched is removed (a
    /// replica starts from nothing and is ready after one load).
    pub fn of(settings: &Settings) -> Result<Self, PublishError> {
        let url = settings.publish.url().unwrap_or_default();
        let root = settings.data_dir.join("replica");
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(io_error(&root))?;
        }
        std::fs::create_dir_all(&root).map_err(io_error(&root))?;
        Ok(Self {
            bucket: Bucket::at_url(url, &settings.s3)?,
            root,
        })
    }

    pub fn url(&self) -> &str {
        self.bucket.url()
    }

    /// The newest manifest, or `None` when nothing was published yet.
    pub fn newest(&self) -> Result<Option<Manifest>, PublishError> {
        self.bucket
            .get_bytes(NEWEST)?
            .map(|body| Manifest::parse(&body, self.bucket.url()))
            .transpose()
    }

    /// Fetches `manifest`'s files, each checked against its sha256; a model file the previous
    /// publication had already is linked, not fetched again.
    pub fn fetch(
        &self,
        manifest: &Manifest,
        previous: Option<&Fetched>,
    ) -> Result<Fetched, PublishError> {
        let dir = self.root.join(format!("v{}", manifest.version));
        let partial = self.root.join(format!(".v{}.partial", manifest.version));
        for stale in [&dir, &partial] {
            if stale.exists() {
                std::fs::remove_dir_all(stale).map_err(io_error(stale))?;
            }
        }
        let fetched = Fetched {
            manifest: manifest.clone(),
            dir: partial.clone(),
        };
        std::fs::create_dir_all(&partial).map_err(io_error(&partial))?;
        let compressed = fetched.database().with_extension("duckdb.zst");
        self.bucket.download_blob(&manifest.database, &compressed)?;
        decompress(&compressed, &fetched.database())?;
        let _ = std::fs::remove_file(&compressed);
        for model in &manifest.models {
            for (inside, blob) in &model.files {
                if !is_plain_relative(inside) || !is_plain_relative(&model.model_id) {
                    return Err(PublishError::Malformed {
                        url: self.bucket.url().to_string(),
                        message: format!(
                            "{}: `{inside}` is not a path inside the model",
                            model.model_id
                        ),
                    });
                }
                let dest = fetched.model_file(&model.model_id, inside);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(io_error(parent))?;
                }
                let had = previous.filter(|p| {
                    p.manifest.models.iter().any(|m| {
                        m.model_id == model.model_id
                            && m.files.iter().any(|(i, b)| i == inside && b == blob)
                    })
                });
                let linked = had.is_some_and(|p| {
                    std::fs::hard_link(p.model_file(&model.model_id, inside), &dest).is_ok()
                });
                if !linked {
                    self.bucket.download_blob(blob, &dest)?;
                }
            }
        }
        std::fs::rename(&partial, &dir).map_err(io_error(&dir))?;
        Ok(Fetched {
            manifest: manifest.clone(),
            dir,
        })
    }

    /// Removes every fetched publication but `keep` (the one served).
    pub fn remove_others(&self, keep: &Fetched) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path != keep.dir {
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }
}

fn decompress(from: &Path, to: &Path) -> Result<(), PublishError> {
    let input = std::fs::File::open(from).map_err(io_error(from))?;
    let output = std::fs::File::create(to).map_err(io_error(to))?;
    zstd::stream::copy_decode(input, output).map_err(io_error(from))
}

/// A relative path of plain names (no `..`, no root): a manifest cannot place a file outside
/// the publication's folder.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_cannot_place_a_file_outside_its_folder() {
        assert!(is_plain_relative("model.json"));
        assert!(is_plain_relative("weights/net.pt"));
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "./"] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }
}
