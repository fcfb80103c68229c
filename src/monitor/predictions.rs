//! The `predictions` contract (README, "Tables"), in one place for one server and for many:
//! - identical forecasts served within one flush are one row with `served_count`;
//! - a row is named by (instance, prediction_id);
//! - rows arrive in segments, each taken once (`take_segment`: a segment taken again adds
//!   nothing), so a writer taking in replicas' segments may retry freely;
//! - raw rows stay at least `retention.prediction_days` after their target hour, then `roll_up`
//!   folds them into `prediction_daily` and deletes them, in one transaction.

use chrono::{DateTime, Utc};
use duckdb::{params, Connection, OptionalExt};

/// One row of `predictions` as a segment brings it: a distinct forecast and how often it was
/// served.
#[derive(Debug, Clone)]
pub struct ServedForecast {
    pub requested_at: DateTime<Utc>,
    pub last_requested_at: DateTime<Utc>,
    pub served_count: u64,
    pub request_id: Option<String>,
    pub coin_id: String,
    pub vs_currency: String,
    pub model_id: String,
    pub model_type: String,
    pub horizon: i64,
    pub as_of: DateTime<Utc>,
    pub current_price: f64,
    pub predicted_price: f64,
    pub lower: f64,
    pub upper: f64,
    pub level: f64,
    pub latency_ms: f64,
    pub drift_ratio: f64,
}

/// A batch of rows from one instance, named so that it is taken once.
#[derive(Debug)]
pub struct Segment<'a> {
    pub segment_id: &'a str,
    pub instance: &'a str,
    pub rows: &'a [ServedForecast],
}

/// What became of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Its rows were added (this many requests).
    Added { requests: u64 },
    /// It was taken before: nothing was added.
    AlreadyTaken,
}

/// The columns a segment fills; the id comes from the sequence, the score columns start NULL.
const COLUMNS: [&str; 20] = [
    "instance",
    "requested_at",
    "last_requested_at",
    "served_count",
    "request_id",
    "segment_id",
    "coin_id",
    "vs_currency",
    "model_id",
    "model_type",
    "horizon",
    "as_of",
    "target_ts",
    "current_price",
    "predicted_price",
    "lower",
    "upper",
    "level",
    "latency_ms",
    "drift_ratio",
];

/// Adds a segment's rows and records it as taken, in one transaction; a segment taken before
/// adds nothing.
pub fn take_segment(conn: &Connection, segment: &Segment) -> Result<Taken, duckdb::Error> {
    let requests: u64 = segment.rows.iter().map(|r| r.served_count).sum();
    // Taken before: the segment's row is there, nothing is added and the empty transaction
    // commits.
    crate::store::in_transaction(conn, || {
        let recorded: Option<String> = conn
            .query_row(
                include_str!("../../sql/monitor/take_segment.sql"),
                params![
                    segment.segment_id,
                    segment.instance,
                    segment.rows.len() as i64,
                    requests as i64
                ],
                |r| r.get(0),
            )
            .optional()?;
        if recorded.is_none() {
            return Ok(Taken::AlreadyTaken);
        }
        let mut appender = conn.appender_with_columns("predictions", &COLUMNS)?;
        for r in segment.rows {
            appender.append_row(params![
                segment.instance,
                r.requested_at,
                r.last_requested_at,
                r.served_count as i64,
                r.request_id,
                segment.segment_id,
                r.coin_id,
                r.vs_currency,
                r.model_id,
                r.model_type,
                r.horizon,
                r.as_of,
                r.as_of + chrono::Duration::hours(r.horizon),
                r.current_price,
                r.predicted_price,
                r.lower,
                r.upper,
                r.level,
                r.latency_ms,
                r.drift_ratio
            ])?;
        }
        appender.flush()?;
        Ok(Taken::Added { requests })
    })
}

/// What a roll-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RolledUp {
    /// Raw rows folded into `prediction_daily` and deleted.
    pub rows: u64,
    /// The UTC day before which rows were rolled up (epoch seconds).
    pub before: i64,
}

/// The start of the first UTC day whose rows are kept (at least `keep_days` days before `now`);
/// the days before it are rolled up.
fn first_kept_day(now: DateTime<Utc>, keep_days: u32) -> i64 {
    (now.timestamp() - i64::from(keep_days) * 86_400).div_euclid(86_400) * 86_400
}

/// What `roll_up` would fold now (a dry run).
pub fn rollable(
    conn: &Connection,
    now: DateTime<Utc>,
    keep_days: u32,
) -> Result<RolledUp, duckdb::Error> {
    let before = first_kept_day(now, keep_days);
    let rows: i64 = conn.query_row(
        "SELECT count(*) FROM predictions WHERE target_ts < to_timestamp(?)",
        [before as f64],
        |r| r.get(0),
    )?;
    Ok(RolledUp {
        rows: rows as u64,
        before,
    })
}

/// Folds the rows whose target hour is on a UTC day that ended `keep_days` days before `now` or
/// earlier into `prediction_daily`, and deletes them (one transaction).
pub fn roll_up(
    conn: &Connection,
    now: DateTime<Utc>,
    keep_days: u32,
) -> Result<RolledUp, duckdb::Error> {
    let before = first_kept_day(now, keep_days);
    let rows = crate::store::in_transaction(conn, || {
        conn.execute(
            include_str!("../../sql/monitor/rollup_predictions.sql"),
            [before as f64],
        )?;
        conn.execute(
            "DELETE FROM predictions WHERE target_ts < to_timestamp(?)",
            [before as f64],
        )
    })?;
    Ok(RolledUp {
        rows: rows as u64,
        before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn forecast(as_of: DateTime<Utc>, horizon: i64, served: u64) -> ServedForecast {
        ServedForecast {
            requested_at: as_of,
            last_requested_at: as_of,
            served_count: served,
            request_id: None,
            coin_id: "bitcoin".into(),
            vs_currency: "usd".into(),
            model_id: "m1".into(),
            model_type: "persistence_ewma".into(),
            horizon,
            as_of,
            current_price: 100.0,
            predicted_price: 101.0,
            lower: 95.0,
            upper: 105.0,
            level: 0.9,
            latency_ms: 0.1,
            drift_ratio: 0.0,
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        (dir, store)
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).expect("count")
    }

    #[test]
    fn a_segment_taken_twice_counts_once_and_ids_are_per_instance() {
        let (_dir, store) = store();
        let conn = store.conn();
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("t")
            .to_utc();
        let rows = [forecast(t, 1, 40), forecast(t, 24, 2)];
        let segment = |id, instance| Segment {
            segment_id: id,
            instance,
            rows: &rows,
        };
        assert_eq!(
            take_segment(conn, &segment("a/1", "a")).expect("take"),
            Taken::Added { requests: 42 }
        );
        assert_eq!(
            take_segment(conn, &segment("a/1", "a")).expect("again"),
            Taken::AlreadyTaken
        );
        take_segment(conn, &segment("b/1", "b")).expect("another instance");
        assert_eq!(count(conn, "SELECT count(*) FROM predictions"), 4);
        assert_eq!(count(conn, "SELECT sum(served_count) FROM predictions"), 84);
        assert_eq!(count(conn, "SELECT count(*) FROM prediction_segments"), 2);
        assert_eq!(
            count(
                conn,
                "SELECT count(DISTINCT (instance, prediction_id)) FROM predictions"
            ),
            4
        );
    }

    #[test]
    fn old_rows_roll_up_into_daily_rows_and_rolling_again_changes_nothing() {
        let (_dir, store) = store();
        let conn = store.conn();
        let now = DateTime::parse_from_rfc3339("2026-03-20T12:00:00Z")
            .expect("now")
            .to_utc();
        let day = |d: i64, h: i64| now - chrono::Duration::days(d) + chrono::Duration::hours(h);
        // Two old days (9 and 8 days back), one forecast served twice in two segments, and
        // rows within the 7 kept days.
        let rows = [
            forecast(day(9, 0), 1, 3),
            forecast(day(9, 0), 2, 1),
            forecast(day(8, 0), 1, 5),
            forecast(day(1, 0), 1, 7),
        ];
        let repeat = [forecast(day(9, 0), 1, 2)];
        for (id, rows) in [("s/1", &rows[..]), ("s/2", &repeat[..])] {
            take_segment(
                conn,
                &Segment {
                    segment_id: id,
                    instance: "s",
                    rows,
                },
            )
            .expect("take");
        }
        conn.execute(
            "UPDATE predictions SET actual_price = 104, error = -3, abs_pct_error = 3 / 104,
                 covered = true, direction_correct = true",
            [],
        )
        .expect("score");
        let rolled = roll_up(conn, now, 7).expect("roll up");
        assert_eq!(
            rolled.rows, 4,
            "the three rows of the old days and the repeat"
        );
        assert_eq!(count(conn, "SELECT count(*) FROM predictions"), 1);
        let daily = |sql: &str| count(conn, &format!("SELECT {sql} FROM prediction_daily"));
        assert_eq!(
            daily("count(*)"),
            3,
            "two horizons on one day, one on the other"
        );
        assert_eq!(
            daily("sum(forecasts)"),
            3,
            "the repeat is the same forecast"
        );
        assert_eq!(daily("sum(requests)"), 11);
        assert_eq!(daily("sum(scored)"), 3);
        assert_eq!(daily("sum(covered)"), 3);
        assert_eq!(
            roll_up(conn, now, 7).expect("again"),
            RolledUp { rows: 0, ..rolled }
        );
        assert_eq!(daily("sum(requests)"), 11);
    }
}
