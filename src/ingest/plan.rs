//! Which time ranges to request for a coin.
//!
//! CoinGecko's `/market_chart/range` answers with hourly points only for ranges of 2-90 days:
//! shorter ranges ending near now come back 5-minutely, longer ones daily. So a range is widened
//! to at least [`MIN_SPAN`], and a long one is split into equal chunks of at most `max_chunk_days`.
//! Overlaps are harmless: the merge is idempotent.

use chrono::{DateTime, Duration, Utc};

/// The shortest range that CoinGecko answers hourly.
pub const MIN_SPAN: Duration = Duration::days(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Where a coin's fetch starts: the last stored hour (refetched, so a revised last point is
/// picked up), or `backfill_days` before `now` for a coin with no data.
pub fn start_for(
    last_stored_hour: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    backfill_days: u32,
) -> DateTime<Utc> {
    last_stored_hour.unwrap_or(now - Duration::days(i64::from(backfill_days)))
}

/// The windows that cover [start, end], each between MIN_SPAN and `max_chunk_days` long
/// (`max_chunk_days` >= 4, so that equal chunks of a range longer than one chunk exceed MIN_SPAN).
pub fn windows(start: DateTime<Utc>, end: DateTime<Utc>, max_chunk_days: u32) -> Vec<FetchWindow> {
    let max_chunk = Duration::days(i64::from(max_chunk_days.max(4)));
    let start = start.min(end - MIN_SPAN);
    let span = end - start;
    let chunk_secs = max_chunk.num_seconds();
    let chunks = (span.num_seconds() + chunk_secs - 1) / chunk_secs;
    let chunks = chunks.max(1);
    // Rounded up, so that no window but the last exceeds the chunk; the last is the shortest.
    let step = (span.num_seconds() + chunks - 1) / chunks;
    (0..chunks)
        .map(|i| FetchWindow {
            from: start + Duration::seconds(step * i),
            to: if i + 1 == chunks {
                end
            } else {
                start + Duration::seconds(step * (i + 1))
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("date")
            .with_timezone(&Utc)
    }

    #[test]
    fn short_range_is_widened_to_two_days() {
        let end = t("2024-01-10T12:00:00Z");
        let w = windows(end - Duration::hours(3), end, 90);
        assert_eq!(
            w,
            vec![FetchWindow {
                from: end - MIN_SPAN,
                to: end
            }]
        );
    }

    #[test]
    fn exactly_ninety_days_is_one_chunk_and_ninety_one_is_two() {
        let end = t("2024-06-01T00:00:00Z");
        assert_eq!(windows(end - Duration::days(90), end, 90).len(), 1);
        let two = windows(end - Duration::days(91), end, 90);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].to, two[1].from);
        assert_eq!(two[1].to, end);
    }

    #[test]
    fn start_prefers_the_stored_hour() {
        let now = t("2024-06-01T00:00:00Z");
        assert_eq!(start_for(None, now, 30), now - Duration::days(30));
        let last = t("2024-05-31T20:00:00Z");
        assert_eq!(start_for(Some(last), now, 30), last);
    }

    proptest! {
        #[test]
        fn windows_cover_the_range_contiguously(span_h in 0i64..(3 * 365 * 24), chunk in 4u32..=90) {
            let end = t("2024-06-01T00:00:00Z");
            let start = end - Duration::hours(span_h);
            let w = windows(start, end, chunk);
            prop_assert!(!w.is_empty());
            prop_assert!(w[0].from <= start);
            prop_assert_eq!(w.last().map(|x| x.to), Some(end));
            for pair in w.windows(2) {
                prop_assert_eq!(pair[0].to, pair[1].from);
            }
            for x in &w {
                let len = x.to - x.from;
                prop_assert!(len >= MIN_SPAN, "window shorter than 2 days: {:?}", len);
                prop_assert!(len <= Duration::days(i64::from(chunk)), "window longer than the chunk: {:?}", len);
            }
        }
    }
}
