//! [`PipelineCounters`]: what the pipeline has done, as counters anyone can read,
//! declared once with [`figures!`](crate::figures!).

use std::sync::atomic::Ordering::Relaxed;

use crate::sink::Applied;

crate::figures! {
    /// Live counters of one pipeline. Read them with [`PipelineCounters::snapshot`].
    pub live PipelineCounters;
    /// The counters at one moment.
    pub struct PipelineStats {
        /// Commits handed over.
        Counter commits,
        /// Commits run through the rules.
        Counter evaluated,
        /// Batches those commits were evaluated in.
        Counter batches,
        /// Rule calls that failed, all rules together (their fallback was
        /// applied instead); by rule and why in `rule_failures`.
        Counter failed_rule_calls,
        /// Exact keys applied.
        Counter keys,
        /// Patterns applied.
        Counter patterns,
        /// Tags applied.
        Counter tags,
        /// Keys that existed and were deleted.
        Counter deleted,
        /// Keyspace sweeps for patterns.
        Counter sweeps,
        /// Retries after a Redis error.
        Counter retries,
        /// Redis errors: failed attempts (retried), and targets refused for
        /// good (not retried).
        Counter errors,
        /// Targets Redis refused with an error no retry can fix (`NOPERM`,
        /// `WRONGTYPE`, a script error): logged with the target and given up.
        Counter unapplied,
        /// Commits of the batches that had such a target: reported to their
        /// source (an HTTP error, a dead-lettered stream entry).
        Counter failed_commits,
        /// Batches whose deletes fewer replicas acknowledged than asked
        /// (`--redis-replicas`): left unconfirmed and applied again.
        Counter unreplicated,
        /// Times the invalidations of the replay window were applied again
        /// on a new primary after a failover.
        Counter replays,
        /// Targets applied again by those replays.
        Counter replayed_targets,
        /// Times the pending work outgrew its bound and collapsed into the
        /// rules' fallback targets.
        Counter collapses,
        /// Times the rule set in service was replaced.
        Counter swaps,
        /// New rule versions rolled back for failing too often.
        Counter rollbacks,
        /// Commits a shadow rule was run on (once per shadow rule).
        Counter shadowed,
        /// Of those, the commits where the shadow's targets differed from
        /// the live rule's.
        Counter shadow_differences,
        /// Entries added to the invalidation feed (`serve --feed`).
        Counter feed_entries,
        /// Entries the feed could not add (Redis refused or was away);
        /// their keys stay invalidated.
        Counter feed_failures,
        /// Entries dropped because the feed's queue was full.
        Counter feed_dropped,
        /// Commits handed over and not yet evaluated.
        Gauge queued,
        /// Targets evaluated and not yet applied.
        Gauge pending,
    }
}

impl PipelineCounters {
    pub(crate) fn handed_over(&self) {
        self.commits.fetch_add(1, Relaxed);
        self.queued.fetch_add(1, Relaxed);
    }

    pub(crate) fn evaluated(&self, commits: usize, failures: usize) {
        self.evaluated.fetch_add(commits as u64, Relaxed);
        self.queued.fetch_sub(commits as u64, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        self.failed_rule_calls.fetch_add(failures as u64, Relaxed);
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

    pub(crate) fn unreplicated(&self) {
        self.unreplicated.fetch_add(1, Relaxed);
    }

    pub(crate) fn replayed(&self, targets: usize) {
        self.replays.fetch_add(1, Relaxed);
        self.replayed_targets.fetch_add(targets as u64, Relaxed);
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

    pub(crate) fn fed(&self) {
        self.feed_entries.fetch_add(1, Relaxed);
    }

    pub(crate) fn feed_failed(&self) {
        self.feed_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn feed_dropped(&self) {
        self.feed_dropped.fetch_add(1, Relaxed);
    }

    pub(crate) fn collapsed(&self) {
        self.collapses.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_pending(&self, targets: usize) {
        self.pending.store(targets as u64, Relaxed);
    }

    /// Queued commits that will never be evaluated: the pipeline stopped.
    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Relaxed)
    }
}
