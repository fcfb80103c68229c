//! `coincast status`: what the database holds (coins, hours, gaps, batches, the last run), and
//! the store's open incidents.

use std::fmt;

use duckdb::Connection;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct CoinStatus {
    pub coin_id: String,
    pub vs_currency: String,
    pub hours: i64,
    pub first_hour: String,
    pub last_hour: String,
    pub gaps: i64,
    pub missing_hours: i64,
    pub feature_rows: i64,
}

#[derive(Debug, Serialize)]
pub struct ProblemBatch {
    pub batch_id: i64,
    pub coin_id: String,
    pub source: String,
    pub state: String,
    pub fetched_at: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub run_id: i64,
    pub trigger: String,
    pub state: String,
    pub started_at: String,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub database: String,
    pub schema_version: i64,
    pub coins: Vec<CoinStatus>,
    pub batches_by_state: Vec<(String, i64)>,
    pub problem_batches: Vec<ProblemBatch>,
    pub last_run: Option<LastRun>,
    /// Repairs at start-up that may have lost data, until a successful ingest or replay.
    pub open_incidents: Vec<crate::store::Incident>,
    /// What DuckDB may use here (from `[store]`, else the process's or container's limits).
    pub engine: Engine,
}

#[derive(Debug, Serialize)]
pub struct Engine {
    pub threads: i64,
    pub memory_limit: String,
    pub temp_directory: String,
}

pub fn report(conn: &Connection, database: &str) -> Result<StatusReport, duckdb::Error> {
    let mut stmt = conn.prepare(include_str!("../sql/reports/status_coins.sql"))?;
    let coins = stmt
        .query_map([], |r| {
            Ok(CoinStatus {
                coin_id: r.get(0)?,
                vs_currency: r.get(1)?,
                hours: r.get(2)?,
                first_hour: r.get(3)?,
                last_hour: r.get(4)?,
                gaps: r.get(5)?,
                missing_hours: r.get(6)?,
                feature_rows: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt =
        conn.prepare("SELECT state, count(*) FROM raw_batches GROUP BY state ORDER BY state")?;
    let batches_by_state = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare(include_str!("../sql/reports/status_batches.sql"))?;
    let problem_batches = stmt
        .query_map([], |r| {
            Ok(ProblemBatch {
                batch_id: r.get(0)?,
                coin_id: r.get(1)?,
                source: r.get(2)?,
                state: r.get(3)?,
                fetched_at: r.get(4)?,
                reason: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT run_id, trigger, state, strftime(started_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S'), error
         FROM pipeline_runs ORDER BY run_id DESC LIMIT 1",
    )?;
    let last_run = stmt
        .query_map([], |r| {
            Ok(LastRun {
                run_id: r.get(0)?,
                trigger: r.get(1)?,
                state: r.get(2)?,
                started_at: r.get(3)?,
                error: r.get(4)?,
            })
        })?
        .next()
        .transpose()?;
    let schema_version = conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
        r.get(0)
    })?;
    Ok(StatusReport {
        database: database.to_string(),
        schema_version,
        coins,
        batches_by_state,
        problem_batches,
        last_run,
        open_incidents: crate::store::open_incidents(conn)?,
        engine: conn.query_row(include_str!("../sql/reports/status_engine.sql"), [], |r| {
            Ok(Engine {
                threads: r.get(0)?,
                memory_limit: r.get(1)?,
                temp_directory: r.get(2)?,
            })
        })?,
    })
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "database  {} (schema {})",
            self.database, self.schema_version
        )?;
        writeln!(
            f,
            "engine    DuckDB: {} thread(s), memory limit {}, spills to {}",
            self.engine.threads, self.engine.memory_limit, self.engine.temp_directory
        )?;
        for i in &self.open_incidents {
            writeln!(f, "INCIDENT  {}", i.summary())?;
            writeln!(
                f,
                "          the next successful `coincast run` (or `serve`'s ingest) fetches every coin again from its newest kept hour; re-run `coincast replay` for replayed data. See README, \"Incidents\"."
            )?;
        }
        if self.coins.is_empty() {
            writeln!(
                f,
                "no market data yet: run `coincast run` or `coincast replay <dir>`"
            )?;
        } else {
            writeln!(
                f,
                "\n{:<14} {:>4} {:>8} {:<17} {:<17} {:>5} {:>8} {:>9}",
                "coin",
                "vs",
                "hours",
                "first hour (UTC)",
                "last hour (UTC)",
                "gaps",
                "missing",
                "features"
            )?;
            for c in &self.coins {
                writeln!(
                    f,
                    "{:<14} {:>4} {:>8} {:<17} {:<17} {:>5} {:>8} {:>9}",
                    c.coin_id,
                    c.vs_currency,
                    c.hours,
                    c.first_hour,
                    c.last_hour,
                    c.gaps,
                    c.missing_hours,
                    c.feature_rows
                )?;
            }
        }
        let states: Vec<String> = self
            .batches_by_state
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        writeln!(
            f,
            "\nbatches   {}",
            if states.is_empty() {
                "none".into()
            } else {
                states.join(", ")
            }
        )?;
        for b in &self.problem_batches {
            writeln!(
                f,
                "  batch {:>5} {:<12} {:<11} {} {}",
                b.batch_id, b.coin_id, b.state, b.fetched_at, b.reason
            )?;
        }
        match &self.last_run {
            Some(r) => writeln!(
                f,
                "last run  #{} ({}) {} at {}{}",
                r.run_id,
                r.trigger,
                r.state,
                r.started_at,
                r.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            None => writeln!(f, "last run  none"),
        }
    }
}
