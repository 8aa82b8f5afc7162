//! [`Invalidator`]: the handle a service embeds to hand over its commits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

use super::applier::{self, Applier};
use super::evaluator::{Evaluator, Published};
use super::failures::ApplyFailure;
use super::feed;
use super::message::{Queued, ToEvaluator, Work};
use super::progress::Progress;
use super::{PipelineConfig, PipelineStats};
use crate::commit::Commit;
use crate::rules::{Outcome, RuleSet};
use crate::sink::Store;
use crate::targets::TargetSet;

/// Why [`Invalidator::flush_timeout`] returned before everything was
/// applied.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalidations not applied after {waited:?}: {queued} commits not yet evaluated, \
     {pending} targets pending (is the cache store reachable?){}",
    last_error.as_ref().map(|e| format!("; the last attempt failed: {e}")).unwrap_or_default()
)]
pub struct FlushError {
    /// How long it waited.
    pub waited: Duration,
    /// Commits handed over and not yet evaluated.
    pub queued: u64,
    /// Targets evaluated and not yet applied.
    pub pending: u64,
    /// Why the last attempt to apply failed, if it did: what a timeout
    /// is most likely waiting on.
    pub last_error: Option<String>,
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
/// use invalidator::redis::{Redis, RedisConfig};
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
    progress: Arc<Progress>,
    /// Locked while numbering and queueing a commit, so that commits reach
    /// the queue in the order of their numbers.
    queue: Mutex<Option<Sender<ToEvaluator>>>,
    submitted: AtomicU64,
    /// The rule set in service and the shadows, as the evaluator, which
    /// owns them, last published them.
    rules: watch::Receiver<Arc<RuleSet>>,
    shadows: watch::Receiver<Option<Arc<RuleSet>>>,
    store: Store,
    tasks: Vec<AbortHandle>,
}

impl Invalidator {
    /// Starts the pipeline: an evaluator thread, and an applier task (and a
    /// tag-pruning task) on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    ///
    /// The store is any [`Store`]: a [`Redis`] (or an `Arc` of one, shared
    /// with, say, a [`Cache`](crate::cache::Cache)), or an in-process
    /// [`MemoryStore`](crate::sink::MemoryStore).
    pub fn start(rules: Arc<RuleSet>, store: impl Into<Store>, config: PipelineConfig) -> Self {
        let store = store.into();
        // Tag indexes to prune exist only in Redis.
        let prune_every = match store {
            Store::Redis(_) => config.prune_every,
            Store::Memory(_) => None,
        };
        let feeding = config.feed.enabled() && matches!(store, Store::Redis(_));
        if config.feed.enabled() && !feeding {
            tracing::warn!(stream = %config.feed.stream,
                "the invalidation feed needs Redis; with the in-process store it is off");
        }
        let progress = Arc::new(Progress::new(config.explain_capacity));
        let (published_rules, rules_rx) = watch::channel(rules.clone());
        let (published_shadows, shadows_rx) = watch::channel(None);
        let (to_applier, inbox) = tokio::sync::mpsc::unbounded_channel();
        let (tx, rx) = mpsc::channel();
        let evaluator = Evaluator::new(
            rules,
            config.clone(),
            progress.clone(),
            Published {
                rules: published_rules,
                shadows: published_shadows,
            },
            to_applier,
        );
        // Never joined: it ends on its own once the queue is closed and
        // drained, and dropping the handle must not wait for that.
        std::thread::Builder::new()
            .name("invalidator-rules".into())
            .spawn(move || evaluator.run(rx))
            .expect("spawning the rules thread");
        let mut tasks = Vec::new();
        let feed = match &store {
            Store::Redis(redis) if feeding => {
                let (sender, task) =
                    feed::start(redis.clone(), config.feed.clone(), progress.clone());
                tasks.push(task);
                Some(sender)
            }
            _ => None,
        };
        let applier = Applier::new(store.clone(), config, progress.clone(), inbox, feed);
        tasks.push(tokio::spawn(applier.run()).abort_handle());
        if let Some(every) = prune_every {
            tasks.push(tokio::spawn(applier::janitor(store.clone(), every)).abort_handle());
        }
        Self {
            progress,
            queue: Mutex::new(Some(tx)),
            submitted: AtomicU64::new(0),
            rules: rules_rx,
            shadows: shadows_rx,
            store,
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

    /// [`after_commit`](Self::after_commit), and also answers with what
    /// the rules decided for this commit alone (its targets, and the rules
    /// that failed on it) once it is evaluated. The commit is evaluated,
    /// shadowed, judged and counted like any other; the answer comes
    /// before its invalidations are applied. If the pipeline stops first,
    /// the answer never comes (the receiver sees an error).
    pub fn after_commit_answered(&self, commit: Commit) -> (u64, oneshot::Receiver<Outcome>) {
        let (reply, answer) = oneshot::channel();
        (self.hand_over(Work::Answered(commit, reply)), answer)
    }

    /// [`after_commit`](Self::after_commit) for many commits, in order,
    /// taking the queue once. Returns the sequence number of the last (0
    /// for none).
    pub fn after_commits(&self, commits: Vec<Commit>) -> u64 {
        let queue = self.queue.lock().expect("queue lock");
        let mut seq = 0;
        for commit in commits {
            seq = self.submitted.fetch_add(1, Ordering::SeqCst) + 1;
            self.progress.stats.handed_over();
            let sent = queue.as_ref().is_some_and(|tx| {
                tx.send(ToEvaluator::Work(Queued {
                    seq,
                    work: Work::Commit(commit),
                }))
                .is_ok()
            });
            if !sent {
                tracing::error!(seq, "the pipeline has stopped; work not queued");
            }
        }
        seq
    }

    fn hand_over(&self, work: Work) -> u64 {
        let queue = self.queue.lock().expect("queue lock");
        let seq = self.submitted.fetch_add(1, Ordering::SeqCst) + 1;
        self.progress.stats.handed_over();
        match queue.as_ref() {
            Some(tx) if tx.send(ToEvaluator::Work(Queued { seq, work })).is_ok() => {}
            _ => tracing::error!(seq, "the pipeline has stopped; work not queued"),
        }
        seq
    }

    /// Follows the sequence number of the last commit whose invalidations
    /// are applied: everything handed over with a number up to it is done.
    /// A source that must acknowledge its input only once it is applied
    /// (a stream consumer) watches this.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.progress.applied.subscribe()
    }

    /// Waits until the work numbered `seq` (and everything before it) is
    /// applied.
    pub async fn applied_up_to(&self, seq: u64) {
        let mut applied = self.progress.applied.subscribe();
        let _ = applied.wait_for(|&done| done >= seq).await;
    }

    /// Whether Redis refused, for good, targets of the batch that applied
    /// commit `seq`, and which: ask once [`applied`](Self::applied) has
    /// passed `seq`. The most recent 10,000 failed batches are kept.
    pub fn failure(&self, seq: u64) -> Option<Arc<ApplyFailure>> {
        self.progress.failure(seq)
    }

    /// Waits until every commit handed over before this call has its
    /// invalidations applied. With Redis down, that is until it is back.
    pub async fn flush(&self) {
        // The sender lives in `progress`, which outlives this borrow, so the
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
                    last_error: self.progress.last_error(),
                })
            }
        }
    }

    /// The pipeline's counters now.
    pub fn stats(&self) -> PipelineStats {
        self.progress.stats.snapshot()
    }

    /// How many keys each tag removed, and each rule (see
    /// [`Removals`](super::Removals)).
    pub fn removals(&self) -> super::RemovalCounts {
        self.progress.removals.snapshot()
    }

    /// Which versions are on probation (and until when), when each rule's
    /// version came into service, and the rollbacks.
    pub fn rule_states(&self) -> super::RuleStates {
        self.progress.rule_states()
    }

    /// What the rules decide from now on, batch by batch: a receiver of
    /// the feed the console shows. The evaluator sends it only while a
    /// receiver exists; one that falls more than a thousand batches behind
    /// skips ahead (`RecvError::Lagged`).
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::rules::Activity>> {
        self.progress.feed.subscribe()
    }

    /// The recent applied invalidations that removed `key` (as stored,
    /// with the key prefix), newest first, at most `limit`: by the key
    /// itself, by a pattern that matches it, or by a tag whose index
    /// listed it. `None` when explain is off
    /// ([`PipelineConfig::explain_capacity`] 0).
    pub fn explain(&self, key: &str, limit: usize) -> Option<Vec<super::Invalidation>> {
        let log = &self.progress.explain;
        log.enabled().then(|| log.explain(key, limit))
    }

    /// The explain log itself: its capacity and what it holds.
    pub fn explain_log(&self) -> &super::ExplainLog {
        &self.progress.explain
    }

    /// Why applied invalidations are not confirmed, while fewer replicas
    /// acknowledge them than asked; `None` otherwise.
    pub fn unreplicated(&self) -> Option<String> {
        self.progress.unreplicated()
    }

    /// The rule set commits are evaluated against now.
    pub fn rule_set(&self) -> Arc<RuleSet> {
        self.rules.borrow().clone()
    }

    /// Puts `rules` in service and returns the set it replaces. Nothing
    /// stops: the commits handed over before this call are evaluated by
    /// the set they were handed to, and every commit handed over after it
    /// returns by the new one, so every commit is evaluated by exactly one
    /// version. It waits for the evaluator to take the new set, that is
    /// for the commits queued ahead of it to be evaluated.
    ///
    /// Each rule whose version changed is on probation for the
    /// [`RollbackPolicy`](super::RollbackPolicy) window; a version rolled
    /// back before is refused (the current version of that rule stays)
    /// until its file changes.
    pub fn swap_rules(&self, rules: Arc<RuleSet>) -> Arc<RuleSet> {
        let (reply, replaced) = mpsc::sync_channel(1);
        if self.control(ToEvaluator::Swap { rules, reply })
            && let Ok(previous) = replaced.recv()
        {
            return previous;
        }
        tracing::error!("the pipeline has stopped; rules not swapped");
        self.rule_set()
    }

    /// Puts back the version rule `name`'s version in service replaced, as
    /// an operator asks: the current version is refused until its file
    /// changes, as after an automatic rollback. Returns the version
    /// restored, or why it cannot be done. Blocks until the evaluator has
    /// taken it (after the commits queued before).
    pub fn roll_back(&self, name: &str) -> Result<String, String> {
        let (reply, answer) = mpsc::sync_channel(1);
        let name = name.to_owned();
        if !self.control(ToEvaluator::RollBack { name, reply }) {
            return Err("the pipeline has stopped".to_owned());
        }
        answer
            .recv()
            .unwrap_or_else(|_| Err("the pipeline has stopped".to_owned()))
    }

    /// Stops running shadow `name` (until the shadows are set again, as
    /// the rules folder does when it changes). Whether it was running.
    pub fn drop_shadow(&self, name: &str) -> bool {
        let Some(shadows) = self.shadows() else {
            return false;
        };
        let kept: Vec<_> = shadows
            .rules()
            .iter()
            .filter(|r| r.name() != name)
            .cloned()
            .collect();
        if kept.len() == shadows.rules().len() {
            return false;
        }
        let kept = RuleSet::new(kept).ok().map(Arc::new);
        self.set_shadows(kept);
        true
    }

    /// Sets the shadow rules (or none): each runs beside the live rule of
    /// the same name on the same commits, its targets compared and never
    /// applied; see [`PipelineStats::shadow_differences`]. They apply from
    /// the next commit handed over.
    pub fn set_shadows(&self, shadows: Option<Arc<RuleSet>>) {
        if !self.control(ToEvaluator::Shadows(shadows)) {
            tracing::error!("the pipeline has stopped; shadows not set");
        }
    }

    /// Sends the evaluator a control message; false if it has stopped.
    fn control(&self, message: ToEvaluator) -> bool {
        let queue = self.queue.lock().expect("queue lock");
        queue.as_ref().is_some_and(|tx| tx.send(message).is_ok())
    }

    /// The shadow rules running beside the live ones, if any.
    pub fn shadows(&self) -> Option<Arc<RuleSet>> {
        self.shadows.borrow().clone()
    }

    /// The store invalidations are applied to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Applies everything handed over, then stops.
    pub async fn shutdown(self) -> PipelineStats {
        self.flush().await;
        self.stats()
    }
}

impl Drop for Invalidator {
    fn drop(&mut self) {
        // Closing the queue ends the evaluator once it has drained it; it
        // is not waited for.
        self.queue.lock().expect("queue lock").take();
        for task in &self.tasks {
            task.abort();
        }
        let stats = self.progress.stats.snapshot();
        let unapplied = self.progress.applied() < self.submitted.load(Ordering::SeqCst);
        if unapplied {
            tracing::error!(
                pending = stats.pending,
                "invalidator dropped with invalidations not applied; call `shutdown` to drain it"
            );
        }
    }
}
