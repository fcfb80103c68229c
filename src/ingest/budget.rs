//! The plan's monthly call budget and the fetch cadence that keeps the configured coins inside it.
//!
//! Every call is a `raw_batches` row (a success or a failed attempt), so the month's usage is
//! counted in the database. The cadence is the smallest interval of whole hours at which one
//! range call per coin, every interval, stays within 90 % of the budget over a 31-day month (the
//! rest is kept for retries and backfills): Demo's 10,000 calls fit 13 coins hourly, 20 coins
//! every 2 hours. A run fetches only the coins that are due; once the month's budget is spent,
//! none until the month ends.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use duckdb::{params, Connection};
use serde::Serialize;

use crate::config::{CoinGeckoSettings, Plan};

/// Cadences a fetch can take, in hours (divisors of a day, so fetches keep their hour).
const CADENCES: [u32; 8] = [1, 2, 3, 4, 6, 8, 12, 24];
/// Share of the budget that scheduled fetches may plan for.
const PLANNED_SHARE: f64 = 0.9;
/// Usage from which the overview and the log warn.
pub const WARN_SHARE: f64 = 0.8;

/// The plan's calls per month (CoinGecko's pricing page: Demo 10,000, Basic 100,000); None for
/// keyless public use, which is rate-limited per IP but has no monthly quota.
pub fn monthly_budget(s: &CoinGeckoSettings) -> Option<u32> {
    match (s.monthly_call_budget, s.plan) {
        (0, Plan::Public) => None,
        (0, Plan::Demo) => Some(10_000),
        (0, Plan::Pro) => Some(100_000),
        (n, _) => Some(n),
    }
}

/// Days of hourly history the plan serves (Demo and public: 1 year; paid Basic: 2 years), unless
/// `backfill_days` says otherwise.
pub fn backfill_days(s: &CoinGeckoSettings) -> u32 {
    match (s.backfill_days, s.plan) {
        (0, Plan::Public | Plan::Demo) => 365,
        (0, Plan::Pro) => 730,
        (n, _) => n,
    }
}

/// Hours between two fetches of a coin: the configured one, or the smallest that fits.
pub fn cadence_hours(s: &CoinGeckoSettings, coins: usize) -> u32 {
    if s.fetch_every_hours > 0 {
        return s.fetch_every_hours;
    }
    let Some(budget) = monthly_budget(s) else {
        return 1;
    };
    let allowed = f64::from(budget) * PLANNED_SHARE;
    CADENCES
        .into_iter()
        .find(|&every| calls_per_month(coins, every) <= allowed)
        .unwrap_or(24)
}

/// Range calls a month (31 days) for `coins` fetched every `every` hours.
pub fn calls_per_month(coins: usize, every: u32) -> f64 {
    coins as f64 * (24.0 / f64::from(every.max(1))).ceil() * 31.0
}

/// The start of the UTC month of `now`.
fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// The month's use of the plan, as the overview shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub calls_this_month: i64,
    pub budget: Option<u32>,
    /// calls / budget (0 without a budget).
    pub share: f64,
    pub cadence_hours: u32,
    pub coins: usize,
    /// What the cadence plans for a month.
    pub planned_calls: f64,
}

impl Usage {
    pub fn exhausted(&self) -> bool {
        self.budget
            .is_some_and(|b| self.calls_this_month >= i64::from(b))
    }

    pub fn warning(&self) -> Option<String> {
        let budget = self.budget?;
        (self.share >= WARN_SHARE).then(|| {
            format!(
                "{} of the plan's {budget} CoinGecko calls this month are used ({:.0}%){}",
                self.calls_this_month,
                100.0 * self.share,
                if self.exhausted() {
                    ": fetching is paused until the month ends"
                } else {
                    ""
                }
            )
        })
    }
}

pub fn usage(
    conn: &Connection,
    s: &CoinGeckoSettings,
    coins: usize,
    now: DateTime<Utc>,
) -> Result<Usage, duckdb::Error> {
    let calls: i64 = conn.query_row(
        "SELECT count(*) FROM raw_batches WHERE source = 'coingecko' AND fetched_at >= ?",
        params![month_start(now)],
        |r| r.get(0),
    )?;
    let budget = monthly_budget(s);
    let cadence = cadence_hours(s, coins);
    Ok(Usage {
        calls_this_month: calls,
        budget,
        share: budget.map_or(0.0, |b| calls as f64 / f64::from(b.max(1))),
        cadence_hours: cadence,
        coins,
        planned_calls: calls_per_month(coins, cadence),
    })
}

/// Whether a coin is due: its last successful fetch is at least `cadence` hours old (a fetch
/// that came a few minutes early, with the schedule, still counts as due).
pub fn is_due(
    conn: &Connection,
    coin: &str,
    cadence: u32,
    now: DateTime<Utc>,
) -> Result<bool, duckdb::Error> {
    if cadence <= 1 {
        return Ok(true);
    }
    let last: Option<DateTime<Utc>> = conn.query_row(
        "SELECT max(fetched_at) FROM raw_batches
         WHERE source = 'coingecko' AND coin_id = ? AND state <> 'failed'",
        params![coin],
        |r| r.get(0),
    )?;
    Ok(last.is_none_or(|t| now - t >= chrono::Duration::minutes(i64::from(cadence) * 60 - 10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(plan: Plan) -> CoinGeckoSettings {
        let mut s = crate::config::Settings::load_with_env(None, Vec::new())
            .expect("defaults")
            .coingecko;
        s.plan = plan;
        s
    }

    #[test]
    fn the_cadence_keeps_the_coins_within_the_plan() {
        let demo = settings(Plan::Demo);
        assert_eq!(monthly_budget(&demo), Some(10_000));
        // 13 coins hourly: 13 * 24 * 31 = 9,672 > 9,000 planned; every 2 h: 4,836.
        assert_eq!(cadence_hours(&demo, 12), 1);
        assert_eq!(cadence_hours(&demo, 13), 2);
        assert_eq!(cadence_hours(&demo, 20), 2);
        assert!(calls_per_month(20, 2) <= 9_000.0);
        assert_eq!(cadence_hours(&settings(Plan::Public), 500), 1);
        let mut fixed = demo.clone();
        fixed.fetch_every_hours = 6;
        assert_eq!(cadence_hours(&fixed, 1), 6);
        assert_eq!(backfill_days(&demo), 365);
        assert_eq!(backfill_days(&settings(Plan::Pro)), 730);
    }
}
