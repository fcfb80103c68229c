//! Online backup and restore.
//!
//! A backup is a tar archive: `BACKUP.json` (the manifest), `coincast.duckdb` (a consistent copy
//! made inside the process that owns the file: `COPY FROM DATABASE` reads one transaction's
//! snapshot while other connections keep writing) and `models/<id>/` of every registered model
//! (artifacts never change once registered). The copy's artifact paths are rewritten to
//! `models/<id>`, so a restore works in any data folder.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use duckdb::{params, Connection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, DATABASE_FILE, SCHEMA_VERSION};

/// The manifest's name inside the archive.
pub const BACKUP_MANIFEST: &str = "BACKUP.json";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a coincast backup: {1}")]
    NotABackup(PathBuf, String),
    #[error(
        "{0} already holds a database; restore into an empty data folder, or pass --force to \
         replace it (the current file is kept beside it)"
    )]
    NotEmpty(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

impl crate::failure::Classify for BackupError {
    fn failure(&self) -> crate::failure::Failure {
        match self {
            BackupError::NotABackup(..) | BackupError::NotEmpty(_) => {
                crate::failure::Failure::Usage
            }
            BackupError::Store(e) => e.failure(),
            BackupError::Io { .. } | BackupError::Sql(_) => crate::failure::Failure::Internal,
        }
    }
}

pub(super) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io {
        action,
        path,
        source,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupManifest {
    pub created_at: String,
    pub coincast_version: String,
    pub schema_version: i64,
    pub database_bytes: u64,
    pub database_sha256: String,
    pub champion: Option<String>,
    pub models: Vec<String>,
}

/// A consistent copy of the open database at `dest` (which must not exist), through `conn`.
pub fn snapshot_to(conn: &Connection, dest: &Path) -> Result<(), BackupError> {
    let source: String = conn.query_row("SELECT current_database()", [], |r| r.get(0))?;
    let dest_sql = dest.display().to_string().replace('\'', "''");
    // Attached names are the instance's, not the connection's: a backup on the API's connection
    // and the worker's publication of the SQL copy may copy at once, each under a name of its own.
    static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let alias = format!(
        "coincast_copy_{}",
        COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    conn.execute_batch(&format!(
        "ATTACH '{dest_sql}' AS {alias};
         COPY FROM DATABASE \"{}\" TO {alias};
         DETACH {alias};",
        source.replace('"', "\"\"")
    ))?;
    Ok(())
}

/// Writes a backup archive of the database behind `conn` and its models to `dest` (through a
/// temporary file beside it, renamed when complete).
pub fn write_backup(
    conn: &Connection,
    data_dir: &Path,
    dest: &Path,
) -> Result<BackupManifest, BackupError> {
    let work = data_dir.join(format!(
        ".backup-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(io("cannot create", &work))?;
    let result = write_backup_in(conn, data_dir, &work, dest);
    let _ = fs::remove_dir_all(&work);
    result
}

fn write_backup_in(
    conn: &Connection,
    data_dir: &Path,
    work: &Path,
    dest: &Path,
) -> Result<BackupManifest, BackupError> {
    let db = work.join(DATABASE_FILE);
    snapshot_to(conn, &db)?;
    // Portable paths, and the model list, from the copy itself (what it registers is what ships).
    let (models, champion) = {
        let copy = Connection::open(&db)?;
        copy.execute_batch(
            "UPDATE model_versions SET artifact_path = 'models/' || model_id
             WHERE artifact_path <> 'models/' || model_id;
             CHECKPOINT;",
        )?;
        let mut stmt =
            copy.prepare("SELECT model_id, alias FROM model_versions ORDER BY model_id")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let champion = rows
            .iter()
            .find(|(_, a)| a.as_deref() == Some("champion"))
            .map(|(id, _)| id.clone());
        (
            rows.into_iter().map(|(id, _)| id).collect::<Vec<_>>(),
            champion,
        )
    };
    let sources = model_sources(conn, data_dir, &models)?;
    let (database_bytes, database_sha256) = hash_file(&db)?;
    let manifest = BackupManifest {
        created_at: Utc::now().to_rfc3339(),
        coincast_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: SCHEMA_VERSION,
        database_bytes,
        database_sha256,
        champion,
        models,
    };
    let out = PartialFile::create(dest)?;
    let partial = out.partial.clone();
    let mut tar = tar::Builder::new(out);
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(Utc::now().timestamp().max(0) as u64);
    header.set_cksum();
    let append = |r: std::io::Result<()>| r.map_err(io("cannot write", &partial));
    append(tar.append_data(&mut header, BACKUP_MANIFEST, json.as_slice()))?;
    append(tar.append_path_with_name(&db, DATABASE_FILE))?;
    for (id, dir) in &sources {
        append(tar.append_dir_all(format!("models/{id}"), dir))?;
    }
    tar.into_inner()
        .map_err(io("cannot write", &partial))?
        .commit()?;
    Ok(manifest)
}

/// Each model's artifact folder, as the live registry has it.
fn model_sources(
    conn: &Connection,
    data_dir: &Path,
    models: &[String],
) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let mut out = Vec::new();
    for id in models {
        let stored: String = conn.query_row(
            "SELECT artifact_path FROM model_versions WHERE model_id = ?",
            params![id],
            |r| r.get(0),
        )?;
        let path = Path::new(&stored);
        let dir = if path.is_absolute() {
            path.to_path_buf()
        } else {
            data_dir.join(path)
        };
        if dir.is_dir() {
            out.push((id.clone(), dir));
        } else {
            tracing::warn!(
                "backup: the artifact of {id} is missing at {}",
                dir.display()
            );
        }
    }
    Ok(out)
}

/// `<dest>.partial`: where a backup is written before it is renamed to `dest`.
fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    dest.with_file_name(format!("{name}.partial"))
}

fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = File::open(path).map_err(io("cannot read", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io("cannot read", path))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Whether restoring may replace what the data folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Refuse,
    /// Keep the current file beside it (`coincast.duckdb.before-restore-<time>`) and replace it.
    SetAside,
}

/// Restores an archive into `data_dir`: unpacked beside it, checked against its manifest, opened
/// (and migrated if it is older), then moved into place.
pub fn restore(
    archive: &Path,
    data_dir: &Path,
    existing: Existing,
) -> Result<BackupManifest, BackupError> {
    fs::create_dir_all(data_dir).map_err(io("cannot create", data_dir))?;
    let target = data_dir.join(DATABASE_FILE);
    if target.exists() {
        if existing == Existing::Refuse {
            return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
        }
        // Fails with "in use by another process" while a server holds it.
        drop(Store::open(data_dir)?);
    }
    let staging = data_dir.join(format!(".restore-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let result = restore_via(archive, &staging, data_dir, &target);
    let _ = fs::remove_dir_all(&staging);
    result
}

fn restore_via(
    archive: &Path,
    staging: &Path,
    data_dir: &Path,
    target: &Path,
) -> Result<BackupManifest, BackupError> {
    let file = File::open(archive).map_err(io("cannot read", archive))?;
    // `unpack` refuses entries that would land outside `staging` (absolute paths, `..`).
    tar::Archive::new(file)
        .unpack(staging)
        .map_err(|e| BackupError::NotABackup(archive.to_path_buf(), e.to_string()))?;
    let manifest: BackupManifest = fs::read(staging.join(BACKUP_MANIFEST))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| {
            BackupError::NotABackup(archive.to_path_buf(), format!("{BACKUP_MANIFEST}: {e}"))
        })?;
    let db = staging.join(DATABASE_FILE);
    let (bytes, sha) = hash_file(&db)?;
    if sha != manifest.database_sha256 || bytes != manifest.database_bytes {
        return Err(BackupError::NotABackup(
            archive.to_path_buf(),
            "the database does not match the manifest's checksum (damaged archive)".into(),
        ));
    }
    // Opening migrates an older backup and proves the file is whole.
    drop(Store::open(staging)?);
    if target.exists() {
        let aside = target.with_file_name(format!(
            "{DATABASE_FILE}.before-restore-{}",
            Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        fs::rename(target, &aside).map_err(io("cannot set aside", target))?;
        tracing::warn!(
            "restore: the previous database is kept at {}",
            aside.display()
        );
    }
    let models = data_dir.join("models");
    fs::create_dir_all(&models).map_err(io("cannot create", &models))?;
    for id in &manifest.models {
        let from = staging.join("models").join(id);
        let to = models.join(id);
        if from.is_dir() && !to.exists() {
            fs::rename(&from, &to).map_err(io("cannot move the model to", &to))?;
        }
    }
    fs::rename(&db, target).map_err(io("cannot put the restored database at", target))?;
    File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot fsync the folder", data_dir))?;
    Ok(manifest)
}

/// A file written at `<dest>.partial` and renamed to `dest` by `commit` (fsynced first), so no
/// reader ever finds half an archive under the final name. Dropped uncommitted, it is removed.
pub struct PartialFile {
    file: Option<File>,
    partial: PathBuf,
    dest: PathBuf,
}

impl PartialFile {
    pub fn create(dest: &Path) -> Result<Self, BackupError> {
        let partial = partial_path(dest);
        let file = File::create(&partial).map_err(io("cannot create", &partial))?;
        Ok(Self {
            file: Some(file),
            partial,
            dest: dest.to_path_buf(),
        })
    }

    pub fn commit(mut self) -> Result<(), BackupError> {
        if let Some(mut file) = self.file.take() {
            file.flush().map_err(io("cannot write", &self.partial))?;
            file.sync_all().map_err(io("cannot fsync", &self.partial))?;
        }
        fs::rename(&self.partial, &self.dest).map_err(io("cannot rename the backup to", &self.dest))
    }
}

impl Write for PartialFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.partial);
        }
    }
}
