//! Merge: an idempotent upsert of a gated batch into `market_data` (sql/merge/market_data.sql),
//! which also records in `feature_backlog` the earliest hour whose features are now out of date.
//! Only the quality gate calls this.

use duckdb::{params, Connection};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("merging batch {batch_id}: {source}")]
    Sql {
        batch_id: i64,
        source: duckdb::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeStats {
    /// Hours of the batch that were new or changed something.
    pub changed_hours: u64,
    /// Hours of the batch with a price (the ones considered).
    pub batch_hours: u64,
}

pub fn merge_batch(conn: &Connection, batch_id: i64) -> Result<MergeStats, MergeError> {
    let run = || -> Result<MergeStats, duckdb::Error> {
        crate::ingest::batch::set_batch_variable(conn, batch_id)?;
        let batch_hours: i64 = conn.query_row(
            "SELECT count(*) FROM staged_rows WHERE batch_id = ? AND price IS NOT NULL",
            params![batch_id],
            |r| r.get(0),
        )?;
        let before: i64 = conn.query_row(
            "SELECT count(*) FROM market_data WHERE batch_id = ?",
            params![batch_id],
            |r| r.get(0),
        )?;
        conn.execute_batch(include_str!("../sql/merge/market_data.sql"))?;
        let after: i64 = conn.query_row(
            "SELECT count(*) FROM market_data WHERE batch_id = ?",
            params![batch_id],
            |r| r.get(0),
        )?;
        Ok(MergeStats {
            changed_hours: (after - before).max(0) as u64,
            batch_hours: batch_hours as u64,
        })
    };
    run().map_err(|source| MergeError::Sql { batch_id, source })
}
