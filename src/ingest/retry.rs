//! How long to wait before the next attempt: the server's word on a 429 when it gives one
//! (`Retry-After` in seconds or as an HTTP date, else CoinGecko's `x-ratelimit-reset` date string),
//! otherwise exponential backoff with jitter.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::HeaderMap;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Wait before retry number `retry` (0 = the first retry): "equal jitter", i.e. a uniform
    /// draw from [d/2, d] with d = min(max, base * 2^retry), so waits grow but never synchronise.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(20)))
            .min(self.max);
        let half = exp / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().min(u64::MAX as u128) as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

/// The wait a rate-limited response asks for, if it says.
pub fn server_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(value) = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(when) = httpdate::parse_http_date(value) {
            return Some(until(DateTime::<Utc>::from(when), now));
        }
    }
    let reset = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    parse_reset(reset).map(|when| until(when, now))
}

/// CoinGecko sends `x-ratelimit-reset: 2025-07-25 14:54:00 +0000`; accept RFC 3339 and epoch seconds too.
fn parse_reset(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S %z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    let secs: i64 = value.parse().ok()?;
    DateTime::from_timestamp(secs, 0)
}

fn until(when: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (when - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-07-25T14:53:30Z")
            .expect("date")
            .with_timezone(&Utc)
    }

    #[test]
    fn retry_after_seconds_and_date() {
        assert_eq!(
            server_wait(&headers(&[("retry-after", "7")]), now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            server_wait(
                &headers(&[("retry-after", "Fri, 25 Jul 2025 14:54:00 GMT")]),
                now()
            ),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn coingecko_reset_header() {
        assert_eq!(
            server_wait(
                &headers(&[("x-ratelimit-reset", "2025-07-25 14:54:00 +0000")]),
                now()
            ),
            Some(Duration::from_secs(30))
        );
        // A reset in the past means "now".
        assert_eq!(
            server_wait(
                &headers(&[("x-ratelimit-reset", "2025-07-25 14:00:00 +0000")]),
                now()
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(
            server_wait(&headers(&[("x-ratelimit-reset", "soon")]), now()),
            None
        );
        assert_eq!(server_wait(&HeaderMap::new(), now()), None);
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for retry in 0..10 {
            let cap = (100u64 << retry.min(10)).min(1000);
            let d = b.delay(retry).as_millis() as u64;
            assert!(
                d >= cap / 2 && d <= cap,
                "retry {retry}: {d} not in [{}, {cap}]",
                cap / 2
            );
        }
    }
}
