//! [`Stats`]: what the pipeline has done, as counters anyone can read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::sink::Applied;

/// Live counters of one pipeline. Read them with [`Stats::snapshot`].
#[derive(Debug, Default)]
pub struct Stats {
    commits: AtomicU64,
    evaluated: AtomicU64,
    batches: AtomicU64,
    rule_failures: AtomicU64,
    keys: AtomicU64,
    patterns: AtomicU64,
    tags: AtomicU64,
    deleted: AtomicU64,
    sweeps: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
    unapplied: AtomicU64,
    failed_commits: AtomicU64,
    collapses: AtomicU64,
    swaps: AtomicU64,
    rollbacks: AtomicU64,
    shadowed: AtomicU64,
    shadow_differences: AtomicU64,
    queued: AtomicU64,
    pending: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Commits handed over.
    pub commits: u64,
    /// Commits run through the rules.
    pub evaluated: u64,
    /// Batches those commits were evaluated in.
    pub batches: u64,
    /// Rule calls that failed (their fallback was applied instead).
    pub rule_failures: u64,
    /// Exact keys applied.
    pub keys: u64,
    /// Patterns applied.
    pub patterns: u64,
    /// Tags applied.
    pub tags: u64,
    /// Keys that existed and were deleted.
    pub deleted: u64,
    /// Keyspace sweeps for patterns.
    pub sweeps: u64,
    /// Retries after a Redis error.
    pub retries: u64,
    /// Redis errors: failed attempts (retried), and targets refused for
    /// good (not retried).
    pub errors: u64,
    /// Targets Redis refused with an error no retry can fix (`NOPERM`,
    /// `WRONGTYPE`, a script error): logged with the target and given up.
    pub unapplied: u64,
    /// Commits of the batches that had such a target: reported to their
    /// source (an HTTP error, a dead-lettered stream entry).
    pub failed_commits: u64,
    /// Times the pending work outgrew its bound and collapsed into the
    /// rules' fallback targets.
    pub collapses: u64,
    /// Times the rule set in service was replaced.
    pub swaps: u64,
    /// New rule versions rolled back for failing too often.
    pub rollbacks: u64,
    /// Commits a shadow rule was run on (once per shadow rule).
    pub shadowed: u64,
    /// Of those, the commits where the shadow's targets differed from the
    /// live rule's.
    pub shadow_differences: u64,
    /// Commits handed over and not yet evaluated.
    pub queued: u64,
    /// Targets evaluated and not yet applied.
    pub pending: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            commits: self.commits.load(Relaxed),
            evaluated: self.evaluated.load(Relaxed),
            batches: self.batches.load(Relaxed),
            rule_failures: self.rule_failures.load(Relaxed),
            keys: self.keys.load(Relaxed),
            patterns: self.patterns.load(Relaxed),
            tags: self.tags.load(Relaxed),
            deleted: self.deleted.load(Relaxed),
            sweeps: self.sweeps.load(Relaxed),
            retries: self.retries.load(Relaxed),
            errors: self.errors.load(Relaxed),
            unapplied: self.unapplied.load(Relaxed),
            failed_commits: self.failed_commits.load(Relaxed),
            collapses: self.collapses.load(Relaxed),
            swaps: self.swaps.load(Relaxed),
            rollbacks: self.rollbacks.load(Relaxed),
            shadowed: self.shadowed.load(Relaxed),
            shadow_differences: self.shadow_differences.load(Relaxed),
            queued: self.queued.load(Relaxed),
            pending: self.pending.load(Relaxed),
        }
    }

    pub(crate) fn handed_over(&self) {
        self.commits.fetch_add(1, Relaxed);
        self.queued.fetch_add(1, Relaxed);
    }

    pub(crate) fn evaluated(&self, commits: usize, failures: usize) {
        self.evaluated.fetch_add(commits as u64, Relaxed);
        self.queued.fetch_sub(commits as u64, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        self.rule_failures.fetch_add(failures as u64, Relaxed);
    }

    pub(crate) fn applied(&self, applied: &Applied) {
        self.keys.fetch_add(applied.keys, Relaxed);
        self.patterns.fetch_add(applied.patterns, Relaxed);
        self.tags.fetch_add(applied.tags, Relaxed);
        self.deleted.fetch_add(applied.deleted, Relaxed);
        self.sweeps.fetch_add(applied.sweeps, Relaxed);
        let unapplied = applied.unapplied.len() as u64;
        self.errors.fetch_add(unapplied, Relaxed);
        self.unapplied.fetch_add(unapplied, Relaxed);
    }

    pub(crate) fn failed_commits(&self, commits: u64) {
        self.failed_commits.fetch_add(commits, Relaxed);
    }

    pub(crate) fn failed_and_retrying(&self) {
        self.errors.fetch_add(1, Relaxed);
        self.retries.fetch_add(1, Relaxed);
    }

    pub(crate) fn swapped(&self) {
        self.swaps.fetch_add(1, Relaxed);
    }

    pub(crate) fn rolled_back(&self) {
        self.rollbacks.fetch_add(1, Relaxed);
    }

    pub(crate) fn shadowed(&self, differs: bool) {
        self.shadowed.fetch_add(1, Relaxed);
        if differs {
            self.shadow_differences.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn collapsed(&self) {
        self.collapses.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_pending(&self, targets: usize) {
        self.pending.store(targets as u64, Relaxed);
    }

    /// Queued commits that will never be evaluated: the pipeline stopped.
    pub(crate) fn is_queued(&self) -> u64 {
        self.queued.load(Relaxed)
    }
}
