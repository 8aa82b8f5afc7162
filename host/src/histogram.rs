//! [`Histogram`]: a lock-free latency histogram, cheap enough to record
//! every rule call and every request, read as percentiles by the HTTP API
//! and the Prometheus endpoint.
//!
//! Buckets grow geometrically (each bound is 1.25 times the one before,
//! from 1 µs to about 2 minutes), so a percentile read from it is at most
//! 25% above the true value, whatever the scale: good enough to tell a 1 ms
//! rule from a 5 ms one, for 84 counters and no lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Number of buckets; the last one also holds everything slower.
const BUCKETS: usize = 84;
/// Upper bound of the first bucket, in nanoseconds.
const FIRST_NS: f64 = 1_000.0;
/// How much each bucket's upper bound grows over the one before.
const GROWTH: f64 = 1.25;

/// Counts of durations, by geometric bucket.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// The upper bound of bucket `i`, in nanoseconds.
fn upper_ns(i: usize) -> f64 {
    FIRST_NS * GROWTH.powi(i as i32)
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, took: Duration) {
        let ns = took.as_nanos().min(u64::MAX as u128) as u64;
        let i = if (ns as f64) <= FIRST_NS {
            0
        } else {
            ((ns as f64 / FIRST_NS).ln() / GROWTH.ln()).ceil() as usize
        };
        self.buckets[i.min(BUCKETS - 1)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The sum of every duration recorded.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns.load(Relaxed))
    }

    /// The duration under which fraction `q` (0 to 1) of the recorded ones
    /// fall, as the upper bound of its bucket; `None` before any record.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // The rank of the wanted duration, counting from 1.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_nanos(upper_ns(i) as u64));
            }
        }
        Some(Duration::from_nanos(upper_ns(BUCKETS - 1) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_bucket_of_the_truth() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).unwrap().as_micros() as f64;
        let p99 = h.quantile(0.99).unwrap().as_micros() as f64;
        assert!((500.0..=500.0 * GROWTH).contains(&p50), "p50 {p50}");
        assert!((990.0..=990.0 * GROWTH).contains(&p99), "p99 {p99}");
        assert_eq!(h.count(), 1000);
        assert_eq!(h.sum(), Duration::from_micros(500_500));
    }

    #[test]
    fn extremes_land_in_the_end_buckets() {
        let h = Histogram::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(100_000));
        assert_eq!(h.quantile(0.0), Some(Duration::from_micros(1)));
        assert!(h.quantile(1.0).unwrap() > Duration::from_secs(60));
    }
}
