//! [`RuleCounters`]: what one loaded rule version has done: calls, failures
//! by kind, and how long its recent calls took. Shared by every clone of the
//! [`LoadedRule`](super::LoadedRule), so a version kept across reloads
//! keeps its figures, and a new version starts from zero.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::FailureKind;
use super::latency::RecentLatency;

/// Counters of one rule version.
#[derive(Debug, Default)]
pub struct RuleCounters {
    calls: AtomicU64,
    /// Failures by kind, in the order of [`FailureKind::ALL`].
    by_kind: [AtomicU64; FailureKind::ALL.len()],
    empty_targets: AtomicU64,
    peak_memory: AtomicU64,
    latency: RecentLatency,
}

impl RuleCounters {
    pub(crate) fn record(&self, took: Duration, failed: Option<FailureKind>) {
        self.calls.fetch_add(1, Relaxed);
        if let Some(kind) = failed {
            let i = FailureKind::ALL
                .iter()
                .position(|k| *k == kind)
                .expect("every kind is listed");
            self.by_kind[i].fetch_add(1, Relaxed);
        }
        self.latency.record(took);
    }

    pub(crate) fn memory_used(&self, bytes: usize) {
        self.peak_memory.fetch_max(bytes as u64, Relaxed);
    }

    /// The most linear memory one instance of this version has used, in
    /// bytes, over its calls (and its `describe()` at load): what to hold
    /// against the sandbox's memory limit.
    pub fn peak_memory(&self) -> u64 {
        self.peak_memory.load(Relaxed)
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
        self.by_kind.iter().map(|n| n.load(Relaxed)).sum()
    }

    /// Failed calls of one kind.
    pub fn failures_of(&self, kind: FailureKind) -> u64 {
        let i = FailureKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is listed");
        self.by_kind[i].load(Relaxed)
    }

    /// How long the recent calls took, sandbox set-up included.
    pub fn latency(&self) -> &RecentLatency {
        &self.latency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_kind() {
        let m = RuleCounters::default();
        m.record(Duration::from_millis(1), None);
        m.record(Duration::from_millis(1), Some(FailureKind::Trap));
        m.record(Duration::from_millis(1), Some(FailureKind::TimeLimit));
        m.record(Duration::from_millis(1), Some(FailureKind::Trap));
        assert_eq!((m.calls(), m.failures()), (4, 3));
        let by_kind: Vec<u64> = FailureKind::ALL.iter().map(|&k| m.failures_of(k)).collect();
        assert_eq!(by_kind, [1, 0, 2, 0, 0, 0]);
    }
}
