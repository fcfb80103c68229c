//! Model artifacts on disk: `<data_dir>/models/<model_id>/`, registered in `model_versions` as
//! the relative path `models/<model_id>`, so a copied or mounted data folder finds them.
//!
//! An artifact is written into `models/.<model_id>.partial/` and renamed into place when
//! complete; it is registered after that. A crash therefore leaves at worst a folder that no
//! registry row names: such orphans are listed (pipeline page) and removed after a grace period.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use duckdb::Connection;
use serde::Serialize;

use super::ModelError;
use crate::crashpoint::{self, CrashPoint};

/// The folder of the data dir that holds model artifacts.
pub const MODELS_DIR: &str = "models";

/// The path stored in `model_versions.artifact_path`.
pub fn registered_path(model_id: &str) -> String {
    format!("{MODELS_DIR}/{model_id}")
}

/// Where a registered path points: relative paths are relative to the data folder (absolute
/// ones, from installs older than schema 5 that could not be rewritten, are taken as they are).
pub fn resolve(data_dir: &Path, stored: &str) -> PathBuf {
    let path = Path::new(stored);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        data_dir.join(path)
    }
}

fn artifact_error(path: &Path, e: impl ToString) -> ModelError {
    ModelError::Artifact {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes an artifact through `write` into a temporary folder and renames it to
/// `<data_dir>/models/<model_id>` once complete (files and folder fsynced).
pub fn write_atomically(
    data_dir: &Path,
    model_id: &str,
    write: impl FnOnce(&Path, &dyn Fn()) -> Result<(), ModelError>,
) -> Result<PathBuf, ModelError> {
    let models = data_dir.join(MODELS_DIR);
    let partial = models.join(format!(".{model_id}.partial"));
    let dest = models.join(model_id);
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial).map_err(|e| artifact_error(&partial, e))?;
    write(&partial, &|| crashpoint::hit(CrashPoint::MidArtifactWrite))?;
    for entry in fs::read_dir(&partial).map_err(|e| artifact_error(&partial, e))? {
        let path = entry.map_err(|e| artifact_error(&partial, e))?.path();
        fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| artifact_error(&path, e))?;
    }
    fs::rename(&partial, &dest).map_err(|e| artifact_error(&dest, e))?;
    fs::File::open(&models)
        .and_then(|d| d.sync_all())
        .map_err(|e| artifact_error(&models, e))?;
    Ok(dest)
}

/// A folder under `models/` that no registry row names.
#[derive(Debug, Clone, Serialize)]
pub struct OrphanArtifact {
    pub name: String,
    pub bytes: u64,
    pub age_hours: f64,
    /// Hours until it is removed (0: at the next sweep).
    pub removed_in_hours: f64,
}

/// Artifact folders outside the registry, oldest first.
pub fn orphans(
    conn: &Connection,
    data_dir: &Path,
    grace_hours: f64,
) -> Result<Vec<OrphanArtifact>, ModelError> {
    Ok(orphans_among(
        &registered_names(conn)?,
        data_dir,
        grace_hours,
    ))
}

/// Folders under `<data_dir>/models` whose names are not in `registered`, oldest first.
pub fn orphans_among(
    registered: &HashSet<String>,
    data_dir: &Path,
    grace_hours: f64,
) -> Vec<OrphanArtifact> {
    let models = data_dir.join(MODELS_DIR);
    let Ok(entries) = fs::read_dir(&models) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_dir() || registered.contains(&name) {
            continue;
        }
        let age_hours = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .map_or(0.0, |d| d.as_secs_f64() / 3600.0);
        out.push(OrphanArtifact {
            name,
            bytes: folder_bytes(&path),
            age_hours,
            removed_in_hours: (grace_hours - age_hours).max(0.0),
        });
    }
    out.sort_by(|a, b| b.age_hours.total_cmp(&a.age_hours));
    out
}

/// Removes orphans older than the grace period; returns their names.
pub fn sweep(
    conn: &Connection,
    data_dir: &Path,
    grace_hours: f64,
) -> Result<Vec<String>, ModelError> {
    let mut removed = Vec::new();
    for o in orphans(conn, data_dir, grace_hours)? {
        if o.removed_in_hours > 0.0 {
            continue;
        }
        let path = data_dir.join(MODELS_DIR).join(&o.name);
        match fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::warn!(
                    "removed {} ({} bytes, {:.1} h old): an artifact no registered model names",
                    path.display(),
                    o.bytes,
                    o.age_hours
                );
                removed.push(o.name);
            }
            Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
        }
    }
    Ok(removed)
}

/// Folder names the registry uses: every model id, and the last part of every stored path.
pub fn registered_names(conn: &Connection) -> Result<HashSet<String>, duckdb::Error> {
    let mut stmt = conn.prepare("SELECT model_id, artifact_path FROM model_versions")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = HashSet::new();
    for (id, path) in rows {
        if let Some(last) = Path::new(&path).file_name() {
            names.insert(last.to_string_lossy().into_owned());
        }
        names.insert(id);
    }
    Ok(names)
}

fn folder_bytes(path: &Path) -> u64 {
    fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
