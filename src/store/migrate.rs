//! Schema migrations: `sql/schema/NNNN_name.sql`, recorded with a checksum in `schema_migrations`.
//!
//! A migration never runs on the live file: a new file gets every migration in one transaction
//! before it is linked into place, and an existing file is migrated on a checkpointed copy that
//! replaces it (`super::file`). So no WAL the live file could replay ever holds a schema change.

use std::path::Path;

use duckdb::{params, Connection, OptionalExt};
use sha2::{Digest, Sha256};

use super::{file, StoreError};
use crate::crashpoint::{self, CrashPoint};

/// A migration file compiled into the binary.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Append only: an applied migration never changes.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../sql/schema/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_features",
        sql: include_str!("../../sql/schema/0002_features.sql"),
    },
    Migration {
        version: 3,
        name: "0003_models",
        sql: include_str!("../../sql/schema/0003_models.sql"),
    },
    Migration {
        version: 4,
        name: "0004_monitoring",
        sql: include_str!("../../sql/schema/0004_monitoring.sql"),
    },
    Migration {
        version: 5,
        name: "0005_crash_safety",
        sql: include_str!("../../sql/schema/0005_crash_safety.sql"),
    },
    Migration {
        version: 6,
        name: "0006_forecasters",
        sql: include_str!("../../sql/schema/0006_forecasters.sql"),
    },
    Migration {
        version: 7,
        name: "0007_volatility_and_aci",
        sql: include_str!("../../sql/schema/0007_volatility_and_aci.sql"),
    },
    Migration {
        version: 8,
        name: "0008_failure_kinds",
        sql: include_str!("../../sql/schema/0008_failure_kinds.sql"),
    },
    Migration {
        version: 9,
        name: "0009_dataset_versions",
        sql: include_str!("../../sql/schema/0009_dataset_versions.sql"),
    },
    Migration {
        version: 10,
        name: "0010_retention",
        sql: include_str!("../../sql/schema/0010_retention.sql"),
    },
    Migration {
        version: 11,
        name: "0011_predictions_contract",
        sql: include_str!("../../sql/schema/0011_predictions_contract.sql"),
    },
    Migration {
        version: 12,
        name: "0012_audit_log",
        sql: include_str!("../../sql/schema/0012_audit_log.sql"),
    },
    Migration {
        version: 13,
        name: "0013_coverage_per_recipe",
        sql: include_str!("../../sql/schema/0013_coverage_per_recipe.sql"),
    },
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    checksum VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);";

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Gives a new, empty file the whole schema in one transaction.
pub(super) fn create_schema(conn: &Connection) -> Result<(), StoreError> {
    apply_pending(conn, 0)
}

/// Returns a connection to an up-to-date file: `conn` itself when nothing is pending, else a
/// connection to the migrated copy that replaced the file.
pub(super) fn bring_up_to_date(conn: Connection, path: &Path) -> Result<Connection, StoreError> {
    let applied = applied_version(&conn, path)?;
    if applied == SCHEMA_VERSION {
        return Ok(conn);
    }
    tracing::warn!(
        from = applied,
        to = SCHEMA_VERSION,
        "migrating {} on a copy",
        path.display()
    );
    file::migrate_on_copy(conn, path, |work| apply_pending(work, applied))
}

/// The newest applied migration (0 for a file without a schema), after checking that every
/// applied one is the one this binary knows.
fn applied_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM duckdb_tables() WHERE table_name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM duckdb_tables()", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
            });
        }
        return Ok(0);
    }
    let newest: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    if newest > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: newest,
            known: SCHEMA_VERSION,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version <= newest) {
        let expected = checksum(m.sql);
        let found: Option<String> = conn
            .query_row(
                "SELECT checksum FROM schema_migrations WHERE version = ?",
                params![m.version],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(found) = found.filter(|f| *f != expected) {
            return Err(StoreError::MigrationChanged {
                version: m.version,
                name: m.name.to_string(),
                found,
                expected,
            });
        }
    }
    Ok(newest)
}

/// Applies every migration after `applied` in one transaction (on a file nobody else sees).
fn apply_pending(conn: &Connection, applied: i64) -> Result<(), StoreError> {
    let pending: Vec<&Migration> = MIGRATIONS.iter().filter(|m| m.version > applied).collect();
    let Some(first) = pending.first() else {
        return Ok(());
    };
    super::in_transaction(conn, || -> Result<(), StoreError> {
        conn.execute_batch(MIGRATIONS_TABLE)?;
        for m in &pending {
            let failed = |source| StoreError::Migration {
                version: m.version,
                name: m.name.to_string(),
                source,
            };
            conn.execute_batch(m.sql).map_err(failed)?;
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
                params![m.version, m.name, checksum(m.sql)],
            )
            .map_err(failed)?;
        }
        Ok(())
    })?;
    crashpoint::hit(CrashPoint::AfterMigrationCommit);
    tracing::info!(
        from = first.version,
        to = SCHEMA_VERSION,
        "applied {} migration(s)",
        pending.len()
    );
    Ok(())
}
