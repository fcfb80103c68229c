//! The last hour of request counters, sampled in-process from the Prometheus registry every
//! 15 s (`pages::monitoring` starts the sampler and draws it), so the monitoring page needs no
//! Prometheus: rates and latency quantiles between samples, interpolated like
//! `histogram_quantile`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::runtime::Metrics;

pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);
const KEEP: usize = 240;
const LATENCY_BUCKETS: usize = 10;

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t: f64,
    pub requests: f64,
    pub errors: f64,
    pub predictions: f64,
    /// Cumulative request-latency bucket counts (all routes), upper bounds in `bounds`.
    pub buckets: [f64; LATENCY_BUCKETS],
}

/// The last hour of samples.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// Takes a sample from the registry.
    pub fn sample(&self, metrics: &Metrics) {
        let mut s = Sample {
            t: chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
            requests: 0.0,
            errors: 0.0,
            predictions: 0.0,
            buckets: [0.0; LATENCY_BUCKETS],
        };
        for family in metrics.registry.gather() {
            match family.name() {
                "api_requests_total" => {
                    for m in family.get_metric() {
                        let v = m.get_counter().get_value();
                        s.requests += v;
                        if m.get_label()
                            .iter()
                            .any(|l| l.name() == "status" && l.value() == "error")
                        {
                            s.errors += v;
                        }
                    }
                }
                "model_predictions_total" => {
                    s.predictions += family
                        .get_metric()
                        .iter()
                        .map(|m| m.get_counter().get_value())
                        .sum::<f64>();
                }
                "api_request_latency_seconds" => {
                    for m in family.get_metric() {
                        let h = m.get_histogram();
                        for (i, b) in h.get_bucket().iter().take(LATENCY_BUCKETS - 1).enumerate() {
                            s.buckets[i] += b.cumulative_count() as f64;
                        }
                        s.buckets[LATENCY_BUCKETS - 1] += h.get_sample_count() as f64;
                    }
                }
                _ => {}
            }
        }
        if let Ok(mut q) = self.samples.lock() {
            q.push_back(s);
            while q.len() > KEEP {
                q.pop_front();
            }
        }
    }

    fn snapshot(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The rates between each two consecutive samples, oldest first.
    pub fn series(&self) -> Vec<Rates> {
        self.snapshot()
            .windows(2)
            .map(|w| rates_between(&w[0], &w[1]))
            .collect()
    }

    /// Rates over the last `window` seconds, when the history reaches that far back (or
    /// nearly).
    pub fn rates(&self, window: f64) -> Option<Rates> {
        let s = self.snapshot();
        let last = s.last()?;
        let first = s.iter().find(|x| last.t - x.t <= window)?;
        (last.t - first.t >= window * 0.5).then(|| rates_between(first, last))
    }
}

/// Upper bounds of the request-latency buckets (the contract's), +Inf last.
const BOUNDS: [f64; LATENCY_BUCKETS] = [
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];

/// A quantile from bucket increments, interpolated within the bucket like `histogram_quantile`.
fn quantile(q: f64, delta: &[f64; LATENCY_BUCKETS]) -> f64 {
    let total = delta[LATENCY_BUCKETS - 1];
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut prev_count = 0.0;
    let mut prev_bound = 0.0;
    for (i, &c) in delta.iter().enumerate() {
        if c >= rank {
            let bound = BOUNDS[i];
            if !bound.is_finite() {
                return prev_bound;
            }
            let in_bucket = c - prev_count;
            return if in_bucket <= 0.0 {
                bound
            } else {
                prev_bound + (bound - prev_bound) * (rank - prev_count) / in_bucket
            };
        }
        prev_count = c;
        prev_bound = BOUNDS[i];
    }
    prev_bound
}

/// Rates between two samples.
#[derive(Debug, Clone, Serialize)]
pub struct Rates {
    pub t: f64,
    pub request_rate: f64,
    pub error_rate: f64,
    pub prediction_rate: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

fn rates_between(a: &Sample, b: &Sample) -> Rates {
    let dt = (b.t - a.t).max(1e-3);
    let mut delta = [0.0; LATENCY_BUCKETS];
    for (i, d) in delta.iter_mut().enumerate() {
        *d = b.buckets[i] - a.buckets[i];
    }
    Rates {
        t: b.t,
        request_rate: (b.requests - a.requests) / dt,
        error_rate: (b.errors - a.errors) / dt,
        prediction_rate: (b.predictions - a.predictions) / dt,
        p50: quantile(0.5, &delta),
        p95: quantile(0.95, &delta),
        p99: quantile(0.99, &delta),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        // 100 requests: 50 under 10 ms, 50 between 10 and 50 ms.
        let delta = [
            50.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0,
        ];
        assert!((quantile(0.5, &delta) - 0.01).abs() < 1e-12);
        assert!((quantile(0.75, &delta) - 0.03).abs() < 1e-12);
        assert!(quantile(0.5, &[0.0; LATENCY_BUCKETS]).is_nan());
    }
}
