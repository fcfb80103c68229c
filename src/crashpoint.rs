//! Named crash points, a test-only switch: with `COINCAST_CRASH_AT=<point>` the process aborts at
//! that point (no destructor, no checkpoint, as a power cut or `kill -9` would leave it), so the
//! crash tests can check what the next start finds. Unset, `hit` is one load of a cached value.

use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const ENV: &str = "COINCAST_CRASH_AT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Schema changes committed on the working copy, before its checkpoint and rename.
    AfterMigrationCommit,
    /// A `raw_batches` row inserted, before its staged rows (same transaction).
    AfterBatchInsert,
    /// Staged points appended, before the hourly rows are built (same transaction).
    MidStaging,
    /// A batch merged and committed, before the features are built.
    AfterMergeCommit,
    /// Weights written, before the model card (in the artifact's temporary folder).
    MidArtifactWrite,
    /// A model registered and committed, before the checkpoint.
    AfterRegistryCommit,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 6] = [
        CrashPoint::AfterMigrationCommit,
        CrashPoint::AfterBatchInsert,
        CrashPoint::MidStaging,
        CrashPoint::AfterMergeCommit,
        CrashPoint::MidArtifactWrite,
        CrashPoint::AfterRegistryCommit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterMigrationCommit => "after_migration_commit",
            CrashPoint::AfterBatchInsert => "after_batch_insert",
            CrashPoint::MidStaging => "mid_staging",
            CrashPoint::AfterMergeCommit => "after_merge_commit",
            CrashPoint::MidArtifactWrite => "mid_artifact_write",
            CrashPoint::AfterRegistryCommit => "after_registry_commit",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == text)
    }
}

fn armed() -> Option<CrashPoint> {
    static ARMED: OnceLock<Option<CrashPoint>> = OnceLock::new();
    *ARMED.get_or_init(|| {
        let text = std::env::var(ENV).ok()?;
        let point = CrashPoint::parse(text.trim());
        if point.is_none() {
            eprintln!(
                "warning: {ENV}={text} names no crash point (known: {})",
                CrashPoint::ALL.map(CrashPoint::name).join(", ")
            );
        }
        point
    })
}

/// Aborts the process if `point` is the armed crash point.
pub fn hit(point: CrashPoint) {
    if armed() == Some(point) {
        eprintln!("{ENV}: aborting at {}", point.name());
        std::process::abort();
    }
}
