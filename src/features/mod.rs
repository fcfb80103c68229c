//! Features: `sql/features/hourly.sql` computes every feature of design.md with window functions.
//!
//! `features` is a table. A merge records in `feature_backlog` the earliest changed hour per coin;
//! [`build_backlog`] rewrites only the hours from there on, reading three 512-hour blocks of history
//! before them (the longest lookback is the 8-week seasonality's, 1,177 hours).
//!
//! Invariants:
//! - a feature at hour t is computed from rows with ts <= t only (no lookahead);
//! - an incremental rebuild writes exactly, bit for bit, what a full one would: every value is
//!   arithmetic over lags in a fixed order, and the EMA's running sums run over whole aligned
//!   blocks (the SQL file says why a windowed aggregate elsewhere would break this).

use duckdb::Connection;

const HOURLY_SQL: &str = include_str!("../../sql/features/hourly.sql");

/// The scope of a full build: every hour of every coin.
const ALL_COINS: &str =
    "SELECT DISTINCT coin_id, vs_currency, CAST(0 AS BIGINT) AS from_h FROM market_data";

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("feature build failed: {0}")]
    Sql(#[from] duckdb::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuildStats {
    pub coins: u64,
    pub rows_written: u64,
}

/// Rebuilds the hours listed in `feature_backlog` and empties it.
pub fn build_backlog(conn: &Connection) -> Result<BuildStats, FeatureError> {
    build(
        conn,
        "SELECT coin_id, vs_currency, CAST(epoch(from_ts) AS BIGINT) // 3600 AS from_h FROM feature_backlog",
    )
}

/// Rebuilds every hour of every coin.
pub fn rebuild_all(conn: &Connection) -> Result<BuildStats, FeatureError> {
    build(conn, ALL_COINS)
}

/// Computes every feature of every coin and keeps none: the compute-only cost that `make bench`
/// sets beside pandas' (each column is reduced by max() so that none is pruned). Returns the rows.
pub fn compute_all(conn: &Connection) -> Result<u64, FeatureError> {
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE feature_scope AS {ALL_COINS};"
    ))?;
    let rows: i64 = conn.query_row(
        &format!(
            "SELECT count(*), max(COLUMNS(* EXCLUDE (coin_id, vs_currency))) FROM ({HOURLY_SQL})"
        ),
        [],
        |r| r.get(0),
    )?;
    Ok(rows as u64)
}

/// Rewrites the hours in `scope_query`'s scope and drains the backlog entries that scope covers.
fn build(conn: &Connection, scope_query: &str) -> Result<BuildStats, FeatureError> {
    crate::store::in_transaction(conn, || -> Result<BuildStats, FeatureError> {
        conn.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE feature_scope AS {scope_query};"
        ))?;
        let coins: i64 =
            conn.query_row("SELECT count(*) FROM temp.feature_scope", [], |r| r.get(0))?;
        if coins == 0 {
            return Ok(BuildStats::default());
        }
        conn.execute_batch(
            "DELETE FROM features f USING temp.feature_scope s
             WHERE f.coin_id = s.coin_id AND f.vs_currency = s.vs_currency
               AND f.ts >= to_timestamp(s.from_h * 3600);",
        )?;
        let rows = conn.execute(&format!("INSERT INTO features BY NAME {HOURLY_SQL}"), [])?;
        // Only what this build covered: a merge that raced in later keeps its entry.
        conn.execute_batch(
            "DELETE FROM feature_backlog b USING temp.feature_scope s
             WHERE b.coin_id = s.coin_id AND b.vs_currency = s.vs_currency
               AND CAST(epoch(b.from_ts) AS BIGINT) // 3600 >= s.from_h;",
        )?;
        Ok(BuildStats {
            coins: coins as u64,
            rows_written: rows as u64,
        })
    })
}
