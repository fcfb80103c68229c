//! Live accuracy: logged predictions scored against the actual price of their target hour.

use chrono::{DateTime, Utc};
use duckdb::{params, Connection};
use serde::Serialize;

/// Accuracy of one coin's served forecasts over a window before the reference time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveAccuracy {
    /// `24h` or `7d`.
    pub window: String,
    pub coin_id: String,
    /// Distinct forecasts scored (model, coin, as_of, horizon).
    pub forecasts: i64,
    /// Mean absolute error, in the quote currency.
    pub mae: f64,
    /// Mean absolute percentage error, as a fraction.
    pub mape: f64,
    /// Share of actuals inside the forecast interval.
    pub coverage: f64,
    /// Share of forecasts that got the sign of the move right.
    pub direction_accuracy: f64,
}

/// Fills in actual price and errors of every prediction whose target hour has arrived.
pub fn score_predictions(conn: &Connection) -> Result<usize, duckdb::Error> {
    conn.execute(include_str!("../../sql/monitor/score_predictions.sql"), [])
}

/// Live accuracy per coin over the last 24 h and 7 d before `now`.
pub fn live_accuracy(
    conn: &Connection,
    now: DateTime<Utc>,
) -> Result<Vec<LiveAccuracy>, duckdb::Error> {
    let mut stmt = conn.prepare(include_str!("../../sql/monitor/live_accuracy.sql"))?;
    let rows = stmt.query_map(params![now.timestamp() as f64], |r| {
        Ok(LiveAccuracy {
            window: r.get(0)?,
            coin_id: r.get(1)?,
            forecasts: r.get(2)?,
            mae: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
            mape: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
            coverage: r.get::<_, Option<f64>>(5)?.unwrap_or(f64::NAN),
            direction_accuracy: r.get::<_, Option<f64>>(6)?.unwrap_or(f64::NAN),
        })
    })?;
    rows.collect()
}
