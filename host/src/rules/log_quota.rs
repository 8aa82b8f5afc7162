//! [`LogQuota`]: how many log lines one rule version may write a minute,
//! across all its calls.
//!
//! The budget of lines per call bounds one call, not a rule called a
//! thousand times a second: 100 lines a call of 4 KiB each is 400 MB of
//! logs a second. So a version also has a budget per minute; past it,
//! lines are dropped and counted, and once the minute is over one line
//! says how many went.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The window the budget is counted over.
const MINUTE: Duration = Duration::from_secs(60);

/// The log lines one rule version may still write this minute.
#[derive(Debug)]
pub(crate) struct LogQuota {
    per_minute: u32,
    window: Mutex<Window>,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u32,
    dropped: u64,
}

impl LogQuota {
    /// A budget of `per_minute` lines a minute.
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            window: Mutex::new(Window {
                started: Instant::now(),
                used: 0,
                dropped: 0,
            }),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether rule `rule` may write one more line now; a line refused is
    /// counted. The first line asked for after a minute in which lines
    /// were dropped is preceded by one saying how many.
    pub(crate) fn take(&self, rule: &str) -> bool {
        self.take_at(rule, Instant::now())
    }

    fn take_at(&self, rule: &str, now: Instant) -> bool {
        let mut window = self.window.lock().expect("log quota lock");
        if now.saturating_duration_since(window.started) >= MINUTE {
            if window.dropped > 0 {
                tracing::warn!(
                    target: "rule",
                    rule,
                    dropped = window.dropped,
                    "dropped {} log lines in a minute over the budget of {} lines a minute \
                     (sandbox.max_log_lines_per_minute)",
                    window.dropped,
                    self.per_minute
                );
            }
            *window = Window {
                started: now,
                used: 0,
                dropped: 0,
            };
        }
        if window.used < self.per_minute {
            window.used += 1;
            return true;
        }
        window.dropped += 1;
        self.dropped.fetch_add(1, Relaxed);
        false
    }

    /// Lines dropped over the budget per minute since the version loaded.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_gets_its_budget_and_the_next_starts_afresh() {
        let quota = LogQuota::new(3);
        let start = Instant::now();
        let taken = (0..5).filter(|_| quota.take_at("r", start)).count();
        assert_eq!(taken, 3);
        assert_eq!(quota.dropped(), 2);
        let later = start + Duration::from_secs(30);
        assert!(!quota.take_at("r", later), "still the same minute");
        let next = start + Duration::from_secs(61);
        assert!(quota.take_at("r", next), "a new minute");
        assert_eq!(quota.dropped(), 3);
    }
}
