//! Features: `sql/features/hourly.sql` computes every feature of design.md with window functions.
//!
//! `features` is a table. A merge records in `feature_backlog` the earliest changed hour per coin;
//! [`build_backlog`] rewrites only the hours from there on, reading 480-960 hours of history before
//! them (the longest lookback, the EMA's). Because every frame ends at the current row and the EMA
//! is truncated at 480 hours, an incremental rebuild writes exactly what a full one would.
//!
//! Invariant: a feature at hour t is computed from rows with ts <= t only (no lookahead).

use duckdb::{params, Connection};

const HOURLY_SQL: &str = include_str!("../../sql/features/hourly.sql");

/// Key columns of the `features` table; every other column is a feature.
pub const KEY_COLUMNS: [&str; 3] = ["coin_id", "vs_currency", "ts"];

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
        true,
    )
}

/// Rebuilds every hour of every coin.
pub fn rebuild_all(conn: &Connection) -> Result<BuildStats, FeatureError> {
    build(
        conn,
        "SELECT DISTINCT coin_id, vs_currency, CAST(0 AS BIGINT) AS from_h FROM market_data",
        true,
    )
}

/// Rebuilds one coin from a given hour on (tests and benchmarks).
pub fn rebuild_from(
    conn: &Connection,
    coin_id: &str,
    vs_currency: &str,
    from: chrono::DateTime<chrono::Utc>,
) -> Result<BuildStats, FeatureError> {
    conn.execute_batch("DROP TABLE IF EXISTS temp.feature_scope_input;")?;
    conn.execute(
        "CREATE TEMP TABLE feature_scope_input AS
         SELECT CAST(? AS VARCHAR) AS coin_id, CAST(? AS VARCHAR) AS vs_currency,
                CAST(? AS BIGINT) // 3600 AS from_h",
        params![coin_id, vs_currency, from.timestamp()],
    )?;
    build(conn, "SELECT * FROM temp.feature_scope_input", false)
}

fn build(
    conn: &Connection,
    scope_query: &str,
    drain_backlog: bool,
) -> Result<BuildStats, FeatureError> {
    conn.execute_batch("BEGIN TRANSACTION;")?;
    let result = (|| -> Result<BuildStats, duckdb::Error> {
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
        if drain_backlog {
            // Only what this build covered: a merge that raced in later keeps its entry.
            conn.execute_batch(
                "DELETE FROM feature_backlog b USING temp.feature_scope s
                 WHERE b.coin_id = s.coin_id AND b.vs_currency = s.vs_currency
                   AND CAST(epoch(b.from_ts) AS BIGINT) // 3600 >= s.from_h;",
            )?;
        }
        Ok(BuildStats {
            coins: coins as u64,
            rows_written: rows as u64,
        })
    })();
    match result {
        Ok(stats) => {
            conn.execute_batch("COMMIT;")?;
            Ok(stats)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK;");
            Err(e.into())
        }
    }
}

/// The feature columns, in table order (everything but the key).
pub fn feature_columns(conn: &Connection) -> Result<Vec<String>, FeatureError> {
    let mut stmt = conn.prepare(
        "SELECT column_name FROM information_schema.columns
         WHERE table_name = 'features' AND table_schema = 'main' ORDER BY ordinal_position",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names
        .into_iter()
        .filter(|n| !KEY_COLUMNS.contains(&n.as_str()))
        .collect())
}
