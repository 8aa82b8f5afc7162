//! [`RuleMetrics`]: what one loaded rule version has done: calls, failures
//! and how long its calls took. Shared by every clone of the
//! [`LoadedRule`](super::LoadedRule), so a version kept across reloads
//! keeps its figures, and a new version starts from zero.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::histogram::Histogram;

/// Counters of one rule version.
#[derive(Debug, Default)]
pub struct RuleMetrics {
    calls: AtomicU64,
    failures: AtomicU64,
    empty_targets: AtomicU64,
    latency: Histogram,
}

impl RuleMetrics {
    pub(crate) fn record(&self, took: Duration, failed: bool) {
        self.calls.fetch_add(1, Relaxed);
        if failed {
            self.failures.fetch_add(1, Relaxed);
        }
        self.latency.record(took);
    }

    pub(crate) fn empty_targets_dropped(&self, n: usize) {
        self.empty_targets.fetch_add(n as u64, Relaxed);
    }

    /// Empty keys, patterns and tags the rule returned, dropped unsent.
    pub fn empty_targets(&self) -> u64 {
        self.empty_targets.load(Relaxed)
    }

    /// Calls made: one per batch of commits, and one per commit when a
    /// batch is re-run commit by commit after a failure.
    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    /// Calls that failed (trapped, timed out, ran out of memory, or
    /// returned an error).
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// How long calls took, sandbox set-up included.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }
}
