//! [`RecentLatency`]: how long one rule version's calls took lately (the
//! last 30 to 60 seconds), read as percentiles by `/v1/rules` and
//! `/metrics`. A version's whole life would hide a rule that just became
//! slow behind hours of fast calls. HdrHistogram does the counting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Calls are counted in two halves of this length: the current one and
/// the one before, so a reading covers between one and two of them.
const HALF: Duration = Duration::from_secs(30);

/// Significant figures kept: values read back are within 1%, which tells
/// a 1 ms rule from a 1.1 ms one, in a few kilobytes per histogram.
const SIGNIFICANT_FIGURES: u8 = 2;

/// The longest call tracked, in microseconds (the unit counted); longer
/// ones count as this long. Time limits are far shorter.
const LONGEST_MICROS: u64 = 600_000_000;

/// Latencies of the recent calls.
#[derive(Debug)]
pub struct RecentLatency {
    halves: Mutex<Halves>,
}

#[derive(Debug)]
struct Halves {
    current: Histogram<u64>,
    previous: Histogram<u64>,
    /// When `current` began.
    since: Instant,
}

impl Default for RecentLatency {
    fn default() -> Self {
        Self::starting(Instant::now())
    }
}

fn empty() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LONGEST_MICROS, SIGNIFICANT_FIGURES)
        .expect("the bounds and precision are valid")
}

impl Halves {
    /// Moves on to the half `now` falls in.
    fn turn(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < HALF {
            return;
        }
        if elapsed < HALF * 2 {
            std::mem::swap(&mut self.previous, &mut self.current);
            self.since += HALF;
        } else {
            // Idle for a whole window: nothing recent is left.
            self.previous.reset();
            self.since = now;
        }
        self.current.reset();
    }
}

impl RecentLatency {
    fn starting(now: Instant) -> Self {
        Self {
            halves: Mutex::new(Halves {
                current: empty(),
                previous: empty(),
                since: now,
            }),
        }
    }

    /// Records one call.
    pub(crate) fn record(&self, took: Duration) {
        self.record_at(took, Instant::now());
    }

    fn record_at(&self, took: Duration, now: Instant) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let mut halves = self.lock();
        halves.turn(now);
        halves.current.saturating_record(micros);
    }

    /// The duration under which fraction `q` (0 to 1) of the recent calls
    /// fall; `None` when there were none.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        self.quantile_at(q, Instant::now())
    }

    fn quantile_at(&self, q: f64, now: Instant) -> Option<Duration> {
        let mut halves = self.lock();
        halves.turn(now);
        let mut both = halves.previous.clone();
        both.add(&halves.current)
            .expect("histograms of the same precision add up");
        (!both.is_empty()).then(|| Duration::from_micros(both.value_at_quantile(q.clamp(0.0, 1.0))))
    }

    /// A panic while recording leaves only counts behind: still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Halves> {
        self.halves.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(d: Option<Duration>, micros: u64) -> bool {
        let got = d.expect("recorded").as_nanos() as f64 / 1000.0;
        (got - micros as f64).abs() <= micros as f64 * 0.01
    }

    #[test]
    fn percentiles_of_the_recent_calls() {
        let t0 = Instant::now();
        let l = RecentLatency::starting(t0);
        assert_eq!(l.quantile_at(0.5, t0), None);
        for us in 1..=1000u64 {
            l.record_at(Duration::from_micros(us), t0);
        }
        assert!(close(l.quantile_at(0.5, t0), 500));
        assert!(close(l.quantile_at(0.99, t0), 990));
    }

    #[test]
    fn slow_calls_of_long_ago_are_forgotten() {
        let t0 = Instant::now();
        let l = RecentLatency::starting(t0);
        for _ in 0..1000 {
            l.record_at(Duration::from_millis(50), t0);
        }
        // Half a window later the slow calls still count...
        let t1 = t0 + HALF + Duration::from_secs(1);
        l.record_at(Duration::from_micros(100), t1);
        assert!(close(l.quantile_at(0.5, t1), 50_000));
        // ...a window later they are gone, and only the fast one is left.
        let t2 = t1 + HALF;
        l.record_at(Duration::from_micros(100), t2);
        assert!(close(l.quantile_at(0.99, t2), 100));
        // After a long silence nothing is left at all.
        assert_eq!(l.quantile_at(0.5, t2 + HALF * 3), None);
    }
}
