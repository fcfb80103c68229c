//! Schema migrations: `sql/schema/NNNN_name.sql`, applied in order, each in its own transaction,
//! recorded with a checksum in `schema_migrations`.

use std::path::Path;

use duckdb::{params, Connection, OptionalExt};
use sha2::{Digest, Sha256};

use super::StoreError;

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
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

pub(super) fn apply(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             name VARCHAR NOT NULL,
             checksum VARCHAR NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );",
    )?;
    let newest: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    if let Some(found) = newest {
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                known: SCHEMA_VERSION,
            });
        }
    }
    for m in MIGRATIONS {
        let expected = checksum(m.sql);
        let applied: Option<String> = conn
            .query_row(
                "SELECT checksum FROM schema_migrations WHERE version = ?",
                params![m.version],
                |r| r.get(0),
            )
            .optional()?;
        match applied {
            Some(found) if found == expected => continue,
            Some(found) => {
                return Err(StoreError::MigrationChanged {
                    version: m.version,
                    name: m.name.to_string(),
                    found,
                    expected,
                })
            }
            None => {}
        }
        super::in_transaction(conn, || -> Result<(), duckdb::Error> {
            conn.execute_batch(m.sql)?;
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
                params![m.version, m.name, expected],
            )?;
            Ok(())
        })
        .map_err(|source| StoreError::Migration {
            version: m.version,
            name: m.name.to_string(),
            source,
        })?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}
