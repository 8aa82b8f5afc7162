//! [`Invalidator`]: the handle a service embeds to hand over its commits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

use super::failures::{ApplyFailure, Failures};
use super::pending::Pending;
use super::probation::Probation;
use super::{PipelineConfig, Stats, StatsSnapshot, applier, evaluator};
use crate::commit::Commit;
use crate::rules::RuleSet;
use crate::sink::{Redis, Store};
use crate::targets::TargetSet;

/// Work waiting for the evaluator, with its place in the order.
pub(crate) struct Queued {
    pub(crate) seq: u64,
    pub(crate) work: Work,
}

/// What was handed over: a commit for the rules, or targets asked for by
/// hand. Both go through the one queue so that sequence numbers, and so
/// [`Invalidator::flush`], cover both in order.
pub(crate) enum Work {
    Commit(Commit),
    Targets(TargetSet),
}

/// What the evaluator thread, the applier task and the handle share.
pub(crate) struct Shared {
    /// The rule set in service. Each batch loads it once, so every commit
    /// is evaluated by exactly one version, and a swap takes effect at the
    /// next batch without stopping anything.
    pub(crate) rules: ArcSwap<RuleSet>,
    /// New rule versions on probation, and versions rolled back.
    pub(crate) probation: Mutex<Probation>,
    /// Shadow rules, run beside the live ones and never applied.
    pub(crate) shadows: ArcSwapOption<RuleSet>,
    pub(crate) store: Store,
    pub(crate) config: PipelineConfig,
    pub(crate) stats: Stats,
    pending: Mutex<Pending>,
    /// Wakes the applier when work is added.
    pub(crate) wake: Notify,
    /// The sequence number of the last commit whose invalidations are
    /// applied; [`Invalidator::flush`] waits on it.
    pub(crate) applied: watch::Sender<u64>,
    /// Batches Redis refused targets of for good.
    pub(crate) failures: Mutex<Failures>,
}

impl Shared {
    pub(crate) fn add_pending(&self, targets: TargetSet, seq: u64, collapse: bool) {
        let mut pending = self.pending.lock().expect("pending lock");
        let max = if collapse { 0 } else { self.config.max_pending };
        if pending.add(targets, seq, max, || self.rules.load().fallback()) {
            self.stats.collapsed();
        }
        self.stats.set_pending(pending.len());
        drop(pending);
        self.wake.notify_one();
    }

    pub(crate) fn take_pending(&self) -> Option<(TargetSet, u64)> {
        let applied = *self.applied.borrow();
        let mut pending = self.pending.lock().expect("pending lock");
        let work = pending.take(applied);
        self.stats.set_pending(pending.len());
        work
    }
}

/// Why [`Invalidator::flush_timeout`] returned before everything was
/// applied.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalidations not applied after {waited:?}: {queued} commits not yet evaluated, \
     {pending} targets pending (is the cache store reachable?)"
)]
pub struct FlushError {
    /// How long it waited.
    pub waited: Duration,
    /// Commits handed over and not yet evaluated.
    pub queued: u64,
    /// Targets evaluated and not yet applied.
    pub pending: u64,
}

/// The invalidation pipeline of one service: hand it committed
/// transactions, and it applies their invalidations to Redis behind your
/// back.
///
/// [`after_commit`](Self::after_commit) only queues the commit, so the
/// writer never waits on the rules or on Redis. If Redis is down or slow,
/// the work stays pending (bounded by [`PipelineConfig::max_pending`]) and
/// is retried with backoff until it is applied. Use
/// [`begin`](Self::begin) for a transaction guard that hands over its
/// writes only on commit.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use invalidator::pipeline::{Invalidator, PipelineConfig};
/// use invalidator::rules::{RuleSet, Runtime, SandboxConfig};
/// use invalidator::sink::{Redis, RedisConfig};
///
/// let runtime = Runtime::new(SandboxConfig::default())?;
/// let rules = Arc::new(RuleSet::load(&runtime, "target/rules".as_ref())?);
/// let redis = Redis::open("redis://127.0.0.1:6379", RedisConfig::default())?;
/// let invalidator = Invalidator::start(rules, redis, PipelineConfig::default());
///
/// let mut tx = invalidator.begin("order-17");
/// tx.update("inventory", [("vin", "V9")], [("price", 21_500)], [("price", 19_900)]);
/// tx.commit(); // now, and only now, its invalidations are queued
/// invalidator.flush().await; // wait for them, if you want to
/// # Ok(()) }
/// ```
pub struct Invalidator {
    shared: Arc<Shared>,
    /// Locked while numbering and queueing a commit, so that commits reach
    /// the queue in the order of their numbers.
    queue: Mutex<Option<Sender<Queued>>>,
    submitted: AtomicU64,
    evaluator: Option<JoinHandle<()>>,
    tasks: Vec<AbortHandle>,
}

impl Invalidator {
    /// Starts the pipeline: an evaluator thread, and an applier task (and a
    /// tag-pruning task) on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(rules: Arc<RuleSet>, redis: Redis, config: PipelineConfig) -> Self {
        Self::start_shared(rules, Arc::new(redis), config)
    }

    /// [`start`](Self::start), sharing a [`Redis`] handle with, for
    /// example, a [`Cache`](crate::cache::Cache).
    pub fn start_shared(rules: Arc<RuleSet>, redis: Arc<Redis>, config: PipelineConfig) -> Self {
        Self::start_with(rules, Store::Redis(redis), config)
    }

    /// [`start`](Self::start) on any [`Store`]: Redis, or an in-process
    /// [`MemoryStore`](crate::sink::MemoryStore).
    pub fn start_with(rules: Arc<RuleSet>, store: Store, config: PipelineConfig) -> Self {
        let (applied, _) = watch::channel(0);
        // Tag indexes to prune exist only in Redis.
        let prune_every = match store {
            Store::Redis(_) => config.prune_every,
            Store::Memory(_) => None,
        };
        let shared = Arc::new(Shared {
            rules: ArcSwap::new(rules),
            shadows: ArcSwapOption::empty(),
            probation: Mutex::new(Probation::default()),
            store,
            config,
            stats: Stats::default(),
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            applied,
            failures: Mutex::new(Failures::default()),
        });
        let (tx, rx) = mpsc::channel();
        let evaluator = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("invalidator-rules".into())
                .spawn(move || evaluator::run(shared, rx))
                .expect("spawning the rules thread")
        };
        let mut tasks = vec![tokio::spawn(applier::run(shared.clone())).abort_handle()];
        if let Some(every) = prune_every {
            tasks.push(tokio::spawn(applier::janitor(shared.clone(), every)).abort_handle());
        }
        Self {
            shared,
            queue: Mutex::new(Some(tx)),
            submitted: AtomicU64::new(0),
            evaluator: Some(evaluator),
            tasks,
        }
    }

    /// Hands over a committed transaction. Returns at once; its
    /// invalidations are applied in the background. Call this only once
    /// the transaction is committed: a rolled-back transaction must
    /// invalidate nothing. Returns the commit's sequence number.
    pub fn after_commit(&self, commit: Commit) -> u64 {
        self.hand_over(Work::Commit(commit))
    }

    /// Invalidates `targets` as they are, without asking the rules: an
    /// operator's manual invalidation. Queued behind the commits handed
    /// over before it, and counted as one commit. Returns its sequence
    /// number.
    pub fn invalidate(&self, targets: TargetSet) -> u64 {
        self.hand_over(Work::Targets(targets))
    }

    fn hand_over(&self, work: Work) -> u64 {
        let queue = self.queue.lock().expect("queue lock");
        let seq = self.submitted.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.stats.handed_over();
        match queue.as_ref() {
            Some(tx) if tx.send(Queued { seq, work }).is_ok() => {}
            _ => tracing::error!(seq, "the pipeline has stopped; work not queued"),
        }
        seq
    }

    /// Follows the sequence number of the last commit whose invalidations
    /// are applied: everything handed over with a number up to it is done.
    /// A source that must acknowledge its input only once it is applied
    /// (a stream consumer) watches this.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }

    /// Waits until the work numbered `seq` (and everything before it) is
    /// applied.
    pub async fn applied_up_to(&self, seq: u64) {
        let mut applied = self.shared.applied.subscribe();
        let _ = applied.wait_for(|&done| done >= seq).await;
    }

    /// Whether Redis refused, for good, targets of the batch that applied
    /// commit `seq`, and which: ask once [`applied`](Self::applied) has
    /// passed `seq`. The most recent 10,000 failed batches are kept.
    pub fn failure(&self, seq: u64) -> Option<Arc<ApplyFailure>> {
        self.shared.failures.lock().expect("failures lock").of(seq)
    }

    /// Waits until every commit handed over before this call has its
    /// invalidations applied. With Redis down, that is until it is back.
    pub async fn flush(&self) {
        // The sender lives in `shared`, which outlives this borrow, so the
        // wait ends only when the target is reached.
        self.applied_up_to(self.submitted.load(Ordering::SeqCst))
            .await;
    }

    /// [`flush`](Self::flush), giving up after `timeout`.
    pub async fn flush_timeout(&self, timeout: Duration) -> Result<(), FlushError> {
        match tokio::time::timeout(timeout, self.flush()).await {
            Ok(()) => Ok(()),
            Err(_) => {
                let stats = self.stats();
                Err(FlushError {
                    waited: timeout,
                    queued: stats.queued,
                    pending: stats.pending,
                })
            }
        }
    }

    /// The pipeline's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The rule set commits are evaluated against now.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.shared.rules.load_full()
    }

    /// Puts `rules` in service and returns the set it replaces. Nothing
    /// stops: a batch being evaluated finishes on the set it started with,
    /// and the next batch uses the new one, so every commit is evaluated
    /// by exactly one version.
    ///
    /// Each rule whose version changed is on probation for the
    /// [`RollbackPolicy`] window; a version rolled back before is refused
    /// (the current version of that rule stays) until its file changes.
    pub fn swap_rules(&self, rules: Arc<RuleSet>) -> Arc<RuleSet> {
        self.shared.stats.swapped();
        // Under the probation lock, so that a rollback and a swap never
        // interleave.
        let mut probation = self.shared.probation.lock().expect("probation lock");
        let current = self.shared.rules.load_full();
        let next = probation.promote(&current, rules);
        self.shared.rules.swap(next)
    }

    /// Sets the shadow rules (or none): each runs beside the live rule of
    /// the same name on the same commits, its targets compared and never
    /// applied; see [`StatsSnapshot::shadow_differences`].
    pub fn set_shadows(&self, shadows: Option<Arc<RuleSet>>) {
        let shadows = shadows.filter(|s| !s.rules().is_empty());
        self.shared.shadows.store(shadows);
    }

    /// The shadow rules running beside the live ones, if any.
    pub fn shadows(&self) -> Option<Arc<RuleSet>> {
        self.shared.shadows.load_full()
    }

    /// The store invalidations are applied to.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Applies everything handed over, then stops.
    pub async fn shutdown(self) -> StatsSnapshot {
        self.flush().await;
        self.stats()
    }
}

impl Drop for Invalidator {
    fn drop(&mut self) {
        // Closing the queue ends the evaluator once it has drained it.
        self.queue.lock().expect("queue lock").take();
        if let Some(evaluator) = self.evaluator.take() {
            let _ = evaluator.join();
        }
        for task in &self.tasks {
            task.abort();
        }
        let stats = self.shared.stats.snapshot();
        let unapplied = *self.shared.applied.borrow() < self.submitted.load(Ordering::SeqCst);
        if unapplied {
            tracing::error!(
                pending = stats.pending,
                "invalidator dropped with invalidations not applied; call `shutdown` to drain it"
            );
        }
    }
}
