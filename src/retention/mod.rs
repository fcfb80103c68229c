//! Retention: the `cleanup` task (after each retrain, or `coincast cleanup [--dry-run]`).
//!
//! Nothing received is lost; it moves:
//! - raw bodies of merged batches older than `retention.raw_body_days` move from the file to the
//!   lake (`lake::move_bodies`, cleared here only once the lake gives them back intact);
//! - models that are neither champion, floor, rollback target, a challenger of the newest
//!   training run nor among the newest `retention.keep_models` lose their artifact and become
//!   `retired` (row, events and lineage stay);
//! - lake snapshots older than `retention.snapshot_days` expire, except the versions kept models
//!   were trained on, pinned ones (`dataset_pins`), and what other writers keep; then old files
//!   are deleted and small ones merged;
//! - with the data on S3, retired models' manifests leave the bucket, and so do blobs that no
//!   model or backup names (after `retention.bucket_grace_hours`); backups stay;
//! - the file is checkpointed, and what each place freed is measured, not assumed (DuckDB reuses
//!   freed blocks but does not shrink its file).
//!
//! A dry run computes the same plan and changes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Duration, Utc};
use duckdb::Connection;
use serde::Serialize;

use crate::config::Settings;
use crate::lake::{self, KeptVersion, LakeCompaction, LakeError, MovedBodies};
use crate::model::registry::{self, ModelRow};
use crate::model::ModelError;
use crate::monitor::predictions::{self, RolledUp};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Boxed: the lake's error is large.
    #[error(transparent)]
    Lake(Box<LakeError>),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot delete the artifact of {model_id} at {path}: {source}")]
    Artifact {
        model_id: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

impl From<LakeError> for RetentionError {
    fn from(e: LakeError) -> Self {
        RetentionError::Lake(Box::new(e))
    }
}

impl crate::failure::Classify for RetentionError {
    fn failure(&self) -> crate::failure::Failure {
        match self {
            RetentionError::Lake(e) => e.failure(),
            RetentionError::Model(e) => e.failure(),
            RetentionError::Store(e) => e.failure(),
            RetentionError::Artifact { .. } | RetentionError::Sql(_) => {
                crate::failure::Failure::Internal
            }
        }
    }
}

/// Whether cleanup acts or only says what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    DryRun,
    Apply,
}

/// A model cleanup keeps, and why (`champion`, `floor`, `rollback target`, `challenger`,
/// `newest 10`).
#[derive(Debug, Clone, Serialize)]
pub struct KeptModel {
    pub model_id: String,
    pub reasons: Vec<String>,
}

/// A model cleanup retires, with its artifact's bytes.
#[derive(Debug, Clone, Serialize)]
pub struct RetiredModel {
    pub model_id: String,
    pub artifact_bytes: u64,
}

/// The live file's size and DuckDB's block counts.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FileSpace {
    pub bytes: u64,
    pub used_blocks: i64,
    pub free_blocks: i64,
}

/// What cleanup did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
    pub mode: Mode,
    /// Bodies moved to the lake; `bodies_left_because` says why none moved (the lake is off).
    pub bodies: MovedBodies,
    pub bodies_left_because: Option<String>,
    pub models_kept: Vec<KeptModel>,
    pub models_retired: Vec<RetiredModel>,
    /// This writer's kept versions (models' training versions and pins).
    pub versions_kept: Vec<KeptVersion>,
    /// Expired snapshots and the lake's files before and after (`None`: the lake is off).
    pub lake: Option<LakeCompaction>,
    /// Retired models' manifests and unnamed blobs removed from the bucket (`None`: no bucket,
    /// or a dry run).
    pub bucket: Option<lake::PrunedBucket>,
    /// Served predictions rolled up into `prediction_daily` (in a dry run: those that would be).
    pub predictions: RolledUp,
    /// Audit events older than `retention.audit_days` deleted (in a dry run: that would be).
    pub audit_events_expired: i64,
    pub file_before: FileSpace,
    pub file_after: FileSpace,
}

/// Runs (or plans, in a dry run) one cleanup on the store's file and its lake.
pub fn cleanup(
    store: &Store,
    settings: &Settings,
    mode: Mode,
) -> Result<CleanupReport, RetentionError> {
    let conn = store.conn();
    let r = &settings.retention;
    let file_before = file_space(store)?;
    let (models_kept, retire) = plan_models(conn, r.keep_models)?;
    let versions_kept = kept_versions(conn, &models_kept)?;
    let lake_on = settings.lake.enabled;
    if lake_on {
        lake::attach(conn, settings)?;
    }
    let bodies_cutoff = cutoff(r.raw_body_days);
    let snapshot_cutoff = cutoff(r.snapshot_days);

    let mut report = CleanupReport {
        mode,
        bodies: MovedBodies::default(),
        bodies_left_because: None,
        models_kept,
        models_retired: Vec::new(),
        versions_kept,
        lake: None,
        bucket: None,
        predictions: RolledUp::default(),
        audit_events_expired: 0,
        file_before,
        file_after: file_before,
    };
    let now = Utc::now();
    if !lake_on {
        report.bodies_left_because =
            Some("the lake is off (lake.enabled = false): raw bodies stay in the file".into());
    }
    match mode {
        Mode::DryRun => {
            report.predictions = predictions::rollable(conn, now, r.prediction_days)?;
            if let Some(cut) = audit_cutoff(r.audit_days) {
                report.audit_events_expired = conn.query_row(
                    include_str!("../../sql/access/expirable_audit.sql"),
                    [cut],
                    |row| row.get(0),
                )?;
            }
            if lake_on {
                report.bodies = lake::bodies_to_move(conn, &bodies_cutoff)?;
                let files = lake::files(conn)?;
                report.lake = Some(LakeCompaction {
                    expired: lake::expirable(conn, &snapshot_cutoff, &report.versions_kept)?,
                    before: files,
                    after: files,
                });
            }
            report.models_retired = retire
                .iter()
                .map(|m| RetiredModel {
                    model_id: m.model_id.clone(),
                    artifact_bytes: dir_bytes(&m.artifact_dir(store.data_dir())),
                })
                .collect();
        }
        Mode::Apply => {
            if lake_on {
                report.bodies = lake::move_bodies(conn, &bodies_cutoff)?;
            }
            report.predictions = predictions::roll_up(conn, now, r.prediction_days)?;
            if let Some(cut) = audit_cutoff(r.audit_days) {
                report.audit_events_expired =
                    conn.execute(include_str!("../../sql/access/expire_audit.sql"), [cut])? as i64;
            }
            report.models_retired = retire_models(conn, store.data_dir(), &retire)?;
            if let Some(bucket) = lake::Bucket::of(settings)? {
                let retired: Vec<String> = report
                    .models_retired
                    .iter()
                    .map(|m| m.model_id.clone())
                    .collect();
                let grace = Duration::hours(i64::from(r.bucket_grace_hours));
                report.bucket = Some(lake::prune(&bucket, &retired, grace)?);
            }
            if lake_on {
                lake::publish_refs(conn, &report.versions_kept)?;
                let expire = lake::expirable(conn, &snapshot_cutoff, &report.versions_kept)?;
                report.lake = Some(lake::expire_and_compact(conn, &expire)?);
            }
            store.checkpoint()?;
            report.file_after = file_space(store)?;
        }
    }
    Ok(report)
}

/// Where audit events expire (None: `audit_days` = 0, kept forever).
fn audit_cutoff(days: u32) -> Option<chrono::DateTime<Utc>> {
    (days > 0).then(|| Utc::now() - Duration::days(i64::from(days)))
}

/// The models to keep (with their reasons) and those to retire, among the registered ones not
/// retired yet.
fn plan_models(
    conn: &Connection,
    keep_newest: u32,
) -> Result<(Vec<KeptModel>, Vec<ModelRow>), RetentionError> {
    let rows: Vec<ModelRow> = registry::list(conn)?
        .into_iter()
        .filter(|m| !m.retired)
        .collect();
    let rollback_target = registry::rollback_target(conn)?.map(|m| m.model_id);
    let newest_run = newest_training_run(conn)?;
    let mut kept = Vec::new();
    let mut retire = Vec::new();
    // `list` is newest first.
    for (rank, m) in rows.into_iter().enumerate() {
        let mut reasons = Vec::new();
        if m.alias.as_deref() == Some("champion") {
            reasons.push("champion".to_string());
        }
        if m.floor {
            reasons.push("floor".to_string());
        }
        if rollback_target.as_deref() == Some(m.model_id.as_str()) {
            reasons.push("rollback target".to_string());
        }
        if m.alias.as_deref() == Some("challenger") && registered_by(conn, &m)? == newest_run {
            reasons.push("challenger".to_string());
        }
        if rank < keep_newest as usize {
            reasons.push(format!("newest {keep_newest}"));
        }
        if reasons.is_empty() {
            retire.push(m);
        } else {
            kept.push(KeptModel {
                model_id: m.model_id,
                reasons,
            });
        }
    }
    Ok((kept, retire))
}

fn newest_training_run(conn: &Connection) -> Result<Option<i64>, duckdb::Error> {
    conn.query_row("SELECT max(run_id) FROM model_versions", [], |r| r.get(0))
}

fn registered_by(conn: &Connection, m: &ModelRow) -> Result<Option<i64>, duckdb::Error> {
    conn.query_row(
        "SELECT run_id FROM model_versions WHERE model_id = ?",
        [&m.model_id],
        |r| r.get(0),
    )
}

/// The dataset versions this writer keeps: every kept model's training version and the pins.
fn kept_versions(
    conn: &Connection,
    models: &[KeptModel],
) -> Result<Vec<KeptVersion>, RetentionError> {
    let mut kept: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for m in models {
        if let Some(v) = registry::get(conn, &m.model_id)?.lake_version {
            kept.entry(v)
                .or_default()
                .push(format!("model {}", m.model_id));
        }
    }
    for pin in pins(conn)? {
        kept.entry(pin.version)
            .or_default()
            .push(format!("pinned: {}", pin.note));
    }
    Ok(kept
        .into_iter()
        .map(|(version, reasons)| KeptVersion {
            version,
            reason: reasons.join("; "),
        })
        .collect())
}

/// Deletes each model's artifact folder, then marks it retired: a stop in between leaves a
/// registered model without its artifact, which the next cleanup retires.
fn retire_models(
    conn: &Connection,
    data_dir: &Path,
    models: &[ModelRow],
) -> Result<Vec<RetiredModel>, RetentionError> {
    let mut retired = Vec::new();
    for m in models {
        let dir = m.artifact_dir(data_dir);
        let artifact_bytes = dir_bytes(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RetentionError::Artifact {
                    model_id: m.model_id.clone(),
                    path: dir,
                    source,
                })
            }
        }
        registry::retire(conn, &m.model_id, "cleanup: not kept")?;
        retired.push(RetiredModel {
            model_id: m.model_id.clone(),
            artifact_bytes,
        });
    }
    Ok(retired)
}

/// A version kept from expiry by hand.
#[derive(Debug, Clone, Serialize)]
pub struct Pin {
    pub version: i64,
    pub pinned_at: String,
    pub note: String,
}

pub fn pins(conn: &Connection) -> Result<Vec<Pin>, duckdb::Error> {
    let mut stmt = conn.prepare(
        "SELECT version, CAST(pinned_at AS VARCHAR), note FROM dataset_pins ORDER BY version",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Pin {
            version: r.get(0)?,
            pinned_at: r.get(1)?,
            note: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Pins `version` (which must exist in the lake) with a note; pinning again replaces the note.
pub fn pin(conn: &Connection, version: i64, note: &str) -> Result<(), RetentionError> {
    lake::show(conn, version)?;
    conn.execute(
        "INSERT OR REPLACE INTO dataset_pins VALUES (?, now(), ?)",
        duckdb::params![version, note],
    )?;
    Ok(())
}

/// Unpins `version`; false when it was not pinned.
pub fn unpin(conn: &Connection, version: i64) -> Result<bool, RetentionError> {
    Ok(conn.execute("DELETE FROM dataset_pins WHERE version = ?", [version])? > 0)
}

/// `days` before now, as RFC 3339.
fn cutoff(days: u32) -> String {
    (Utc::now() - Duration::days(i64::from(days))).to_rfc3339()
}

fn file_space(store: &Store) -> Result<FileSpace, RetentionError> {
    let (used_blocks, free_blocks) = store.conn().query_row(
        "SELECT used_blocks, free_blocks FROM pragma_database_size() WHERE database_name = current_database()",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(FileSpace {
        bytes: std::fs::metadata(store.path()).map_or(0, |m| m.len()),
        used_blocks,
        free_blocks,
    })
}

/// The bytes of the files under `dir` (0 when it is gone).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The report in words, one line per place: what moved, retired, expired and freed (or would,
/// in a dry run).
pub fn describe(r: &CleanupReport) -> String {
    let (verb, retire_verb, expire_verb) = match r.mode {
        Mode::DryRun => ("would move", "would retire", "would expire"),
        Mode::Apply => ("moved", "retired", "expired"),
    };
    let mut out = String::new();
    match &r.bodies_left_because {
        Some(why) => out.push_str(&format!("raw bodies: none moved: {why}\n")),
        None => out.push_str(&format!(
            "raw bodies: {verb} {} batch(es), {} bytes, from the file to the lake\n",
            r.bodies.batches, r.bodies.bytes
        )),
    }
    let retired_bytes: u64 = r.models_retired.iter().map(|m| m.artifact_bytes).sum();
    out.push_str(&format!(
        "models: {retire_verb} {} ({} artifact bytes), kept {}\n",
        r.models_retired.len(),
        retired_bytes,
        r.models_kept.len()
    ));
    for m in &r.models_retired {
        out.push_str(&format!("  {retire_verb} {}\n", m.model_id));
    }
    for m in &r.models_kept {
        out.push_str(&format!(
            "  kept {} ({})\n",
            m.model_id,
            m.reasons.join(", ")
        ));
    }
    out.push_str(&format!(
        "audit trail: {} {} event(s) older than retention.audit_days\n",
        match r.mode {
            Mode::DryRun => "would delete",
            Mode::Apply => "deleted",
        },
        r.audit_events_expired
    ));
    match &r.lake {
        None => out.push_str("lake: off\n"),
        Some(l) => {
            out.push_str(&format!(
                "lake: {expire_verb} {} snapshot(s); files {} -> {}, bytes {} -> {}\n",
                l.expired.len(),
                l.before.files,
                l.after.files,
                l.before.bytes,
                l.after.bytes
            ));
            for k in &r.versions_kept {
                out.push_str(&format!("  kept version {} ({})\n", k.version, k.reason));
            }
        }
    }
    out.push_str(&format!(
        "predictions: {} {} raw row(s) of target days before {} into prediction_daily\n",
        match r.mode {
            Mode::DryRun => "would roll up",
            Mode::Apply => "rolled up",
        },
        r.predictions.rows,
        chrono::DateTime::from_timestamp(r.predictions.before, 0)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    ));
    if let Some(b) = &r.bucket {
        out.push_str(&format!(
            "bucket: removed {} retired model manifest(s) and {} blob(s) no model or backup names ({} bytes)\n",
            b.manifests, b.blobs, b.bytes
        ));
    }
    if r.mode == Mode::Apply {
        out.push_str(&format!(
            "file: {} -> {} bytes; used blocks {} -> {}, free blocks {} -> {} (DuckDB reuses free \
             blocks; the file does not shrink)\n",
            r.file_before.bytes,
            r.file_after.bytes,
            r.file_before.used_blocks,
            r.file_after.used_blocks,
            r.file_before.free_blocks,
            r.file_after.free_blocks
        ));
    }
    out
}
