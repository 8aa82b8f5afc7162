//! The applier task: owns the pending work, merges what the evaluator
//! sends into it, and applies it to the store, retrying with backoff until
//! it succeeds or Redis refuses a target for good.
//!
//! A sweep (the patterns' one pass over the keyspace) can take long on a
//! large keyspace. While it runs, the keys and tags of the work that
//! arrives are applied at once, so that a commit that needs no sweep is
//! not held up by one that does; its commits are marked applied after the
//! sweep, in order, and its patterns wait for the next sweep.
//!
//! After a failover, what was applied over the replay window is applied
//! again on the new primary, with the first batch there ([`ReplayLog`]). The
//! applier looks for a new primary before each batch, at most once per
//! [`LOOK_EVERY`], and as often while idle with something to replay.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::PipelineConfig;
use super::explain::{Cause, Origin};
use super::failures::ApplyFailure;
use super::feed::{DEFAULT_FEED_KEYS, FeedEntry, FeedSender};
use super::message::Evaluated;
use super::origins::Origins;
use super::pending::Pending;
use super::progress::Progress;
use super::replay::ReplayLog;
use crate::redis::{PrimaryChange, RedisError};
use crate::retry::Backoff;
use crate::rules::RuleSet;
use crate::sink::{Applied, Removed, Store};
use crate::targets::TargetSet;

/// How often the applier asks who the primaries are, busy or idle.
pub(crate) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What applying removed since the last mark: the keys, and how many in
/// all.
#[derive(Debug, Default)]
struct RemovedSince {
    removed: Removed,
    count: u64,
}

impl RemovedSince {
    /// Nothing yet, listing up to `limit` keys.
    fn new(limit: usize) -> Self {
        Self {
            removed: Removed::new(limit),
            ..Self::default()
        }
    }

    /// What was removed since the last take, leaving nothing.
    fn take(&mut self) -> Self {
        let limit = self.removed.limit;
        std::mem::replace(self, Self::new(limit))
    }
}

/// The applier's state, all of it its own.
pub(crate) struct Applier {
    pending: Pending,
    /// What was applied over the replay window.
    replay: ReplayLog,
    /// Where the pending targets came from, for the explain log and the
    /// feed.
    origins: Origins,
    /// What applying removed since the last commits were marked applied,
    /// listed while the feed is on.
    removed: RemovedSince,
    /// The invalidation feed, when there is one.
    feed: Option<FeedSender>,
    /// When the primaries were last looked at.
    looked: Instant,
    /// Since when replicas have fallen short, while they do.
    unreplicated_since: Option<Instant>,
    /// The rule set of the latest batch, whose fallback stands in for the
    /// pending work when it outgrows its bound.
    rules: Option<Arc<RuleSet>>,
    store: Store,
    config: PipelineConfig,
    progress: Arc<Progress>,
    inbox: mpsc::UnboundedReceiver<Evaluated>,
}

impl Applier {
    pub(crate) fn new(
        store: Store,
        config: PipelineConfig,
        progress: Arc<Progress>,
        inbox: mpsc::UnboundedReceiver<Evaluated>,
        feed: Option<FeedSender>,
    ) -> Self {
        let window = store.replay_window();
        // Origins wait for their commits up to the explain log's capacity,
        // or without the log, as many as it would keep by default.
        let capacity = match progress.explain.capacity() {
            0 => crate::pipeline::DEFAULT_EXPLAIN_CAPACITY,
            n => n,
        };
        let limit = if feed.is_some() {
            config.feed.max_keys
        } else {
            DEFAULT_FEED_KEYS
        };
        Self {
            pending: Pending::default(),
            replay: ReplayLog::new(window, config.max_pending),
            origins: Origins::new(capacity),
            removed: RemovedSince::new(limit),
            feed,
            looked: Instant::now(),
            unreplicated_since: None,
            rules: None,
            store,
            config,
            progress,
            inbox,
        }
    }

    /// Runs until the evaluator is gone and everything it sent is applied
    /// (or until the task is aborted).
    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.retry_min, self.config.retry_max);
        loop {
            // Everything that arrived meanwhile joins this batch.
            while let Ok(evaluated) = self.inbox.try_recv() {
                self.merge(evaluated);
            }
            self.follow_primary().await;
            let Some((mut targets, seq)) = self.pending.take(self.progress.applied()) else {
                if !self.idle().await {
                    return;
                }
                continue;
            };
            self.progress.stats.set_pending(0);
            let batch = self.replay.enabled().then(|| targets.clone());
            let (size, started) = (targets.len(), Instant::now());
            let (result, deleted) = self.apply(&mut targets, seq).await;
            tracing::debug!(
                targets = size,
                seq,
                deleted,
                took_ms = started.elapsed().as_millis() as u64,
                error = result.as_ref().err().map(tracing::field::display),
                "an attempt to apply a batch ended"
            );
            match result {
                Ok(()) => {
                    backoff.reset();
                    self.progress.set_last_error(None);
                    self.replicated();
                    if let Some(batch) = batch {
                        self.remember(batch);
                    }
                    // Before the mark: whoever sees the commit applied can
                    // ask explain about it.
                    self.trace(seq);
                    self.progress.applied.send_replace(seq);
                }
                Err(error) => {
                    self.progress.stats.failed_and_retrying();
                    self.progress.set_last_error(Some(error.to_string()));
                    let delay = backoff.next_delay();
                    if let RedisError::Unreplicated { .. } = error {
                        self.unreplicated(&error);
                    } else {
                        tracing::warn!(
                            %error,
                            remaining = targets.len(),
                            retry_in_ms = delay.as_millis() as u64,
                            "applying invalidations failed; they stay pending and will be retried"
                        );
                    }
                    // Back into the pending work, where they merge with what
                    // arrived meanwhile and count against the bound.
                    self.put(targets, seq, false);
                    self.wait(delay).await;
                    // A failed batch is the likeliest sign of a failover.
                    self.looked = Instant::now() - LOOK_EVERY;
                }
            }
        }
    }

    /// Waits for work while nothing is pending, looking for a new primary
    /// every [`LOOK_EVERY`] while something could need replaying. False
    /// once the evaluator is gone.
    async fn idle(&mut self) -> bool {
        loop {
            let watch = !self.replay.is_empty();
            tokio::select! {
                evaluated = self.inbox.recv() => match evaluated {
                    Some(evaluated) => {
                        self.merge(evaluated);
                        return true;
                    }
                    None => return false,
                },
                () = tokio::time::sleep(LOOK_EVERY), if watch => {
                    self.follow_primary().await;
                    if self.pending.len() > 0 {
                        return true;
                    }
                }
            }
        }
    }

    /// Looks, at most once per [`LOOK_EVERY`] (or at once when the handle
    /// noticed a new primary by itself), whether the primary changed; if
    /// it did, puts the replay log into the pending work.
    async fn follow_primary(&mut self) {
        if !self.replay.enabled() {
            return;
        }
        let mut change = self.store.take_primary_change();
        if change.is_none() && self.looked.elapsed() >= LOOK_EVERY {
            self.looked = Instant::now();
            if let Err(error) = self.store.check_primaries().await {
                // The batch that follows meets the same trouble, and
                // retries it; nothing to add here.
                tracing::debug!(%error, "could not look at the primaries");
            }
            change = self.store.take_primary_change();
        }
        if let Some(change) = change {
            self.replay_on(change);
        }
    }

    /// Puts everything in the replay window back into the pending work,
    /// so that the next batch, the first on the new primary, applies it
    /// with whatever else is pending: nothing is confirmed before it is.
    /// (Applying it on its own first would hold up the pending work
    /// behind it, and with replicas asked for, a new primary that has
    /// none yet could never vouch for it; the pending work is what the
    /// sources wait on.)
    fn replay_on(&mut self, change: PrimaryChange) {
        let targets = self.replay.targets();
        let total = targets.len();
        self.progress.stats.replayed(total);
        let replay = Arc::new(Origin::of(Cause::Replay));
        self.origins.add(0, replay, targets.clone());
        tracing::warn!(
            old = %change.old,
            new = %change.new,
            targets = total,
            "the redis primary changed: applying again the invalidations of the replay window"
        );
        self.put(targets, 0, false);
    }

    /// Keeps an applied batch for the replay window.
    fn remember(&mut self, batch: TargetSet) {
        let rules = &self.rules;
        let fallback = || match rules {
            Some(rules) => rules.fallback().prefixed(&self.config.key_prefix),
            None => [crate::targets::Target::Pattern("*".to_owned())]
                .into_iter()
                .collect(),
        };
        self.replay.record(batch, fallback);
    }

    /// Replicas fell short: counted every time, logged once per outage,
    /// and reported to readiness until they catch up.
    fn unreplicated(&mut self, error: &RedisError) {
        self.progress.stats.unreplicated();
        self.progress.set_unreplicated(Some(error.to_string()));
        if self.unreplicated_since.is_none() {
            self.unreplicated_since = Some(Instant::now());
            tracing::warn!(%error,
                "replicas did not acknowledge the deletes: the batch stays unconfirmed and is \
                 applied again until they do (logged once until they catch up)");
        }
    }

    /// Replicas acknowledge (again).
    fn replicated(&mut self) {
        if let Some(since) = self.unreplicated_since.take() {
            self.progress.set_unreplicated(None);
            tracing::info!(
                after_ms = since.elapsed().as_millis() as u64,
                "replicas acknowledge the deletes again"
            );
        }
    }

    /// Applies one batch of targets, the commits up to `seq`, and records
    /// what Redis refused for good: keys and tags first, then the sweep.
    /// Also says how many keys existed and were removed (for the debug log
    /// of each attempt).
    async fn apply(
        &mut self,
        targets: &mut TargetSet,
        seq: u64,
    ) -> (Result<(), crate::redis::RedisError>, u64) {
        // Commits are applied in order: this batch starts after the last
        // one applied.
        let first = self.progress.applied() + 1;
        let mut applied = self.new_applied();
        let patterns = std::mem::take(&mut targets.patterns);
        let mut result = self.store.apply(targets, &mut applied).await;
        targets.patterns = patterns;
        if result.is_ok() && !targets.patterns.is_empty() {
            result = self.sweep(targets, &mut applied, seq).await;
        }
        let deleted = applied.deleted;
        self.record(applied, first, seq);
        (result, deleted)
    }

    /// A record of what applying does, counting the keys removed per rule
    /// of the origins waiting: with explain, it lists the keys each tag
    /// listed; with the feed, the keys actually removed.
    fn new_applied(&self) -> Applied {
        let applied = if self.progress.explain.enabled() {
            Applied::listing()
        } else {
            Applied::default()
        };
        let applied = applied.owned_by(Arc::new(self.origins.owners()));
        // Which keys existed costs a reply per key: only the feed pays it
        // (explain names targets, whether their keys existed or not).
        if self.feed.is_some() {
            applied.removing(self.removed.removed.limit)
        } else {
            applied
        }
    }

    /// Counts what was applied, puts each applied target into the explain
    /// log with its origins, and records what Redis refused for good
    /// against the commits `first` to `last`.
    fn record(&mut self, mut applied: Applied, first: u64, last: u64) {
        self.progress.stats.applied(&applied);
        self.progress.removals.tags(&applied.by_tag);
        self.progress.removals.rules(&applied.by_owner);
        if let Some(removed) = applied.removed.take() {
            let since = &mut self.removed;
            since.removed.absorb(removed);
            since.count += applied.deleted;
        }
        if let Some(listed) = applied.tag_members.take() {
            self.origins.listed(listed);
        }
        for unapplied in &applied.unapplied {
            self.origins.given_up(&unapplied.target);
        }
        if !applied.unapplied.is_empty() {
            // Recorded before the commits are marked applied, so that a
            // source that sees them applied also sees the failure.
            self.progress
                .stats
                .failed_commits(last + 1 - first.min(last));
            self.progress.failed(ApplyFailure {
                first: first.min(last),
                last,
                unapplied: applied.unapplied,
            });
        }
    }

    /// Now that the commits up to `seq` are applied: tells the feed, and
    /// puts what they named into the explain log.
    fn trace(&mut self, seq: u64) {
        let (named, members) = self.origins.applied(seq);
        let since = self.removed.take();
        let now = SystemTime::now();
        if let Some(feed) = &self.feed
            && (!named.is_empty() || since.count > 0)
        {
            let mut targets = TargetSet::new();
            for (_, t) in &named {
                targets.merge(t.clone());
            }
            feed.send(FeedEntry {
                at: now,
                origins: named.iter().map(|(o, _)| o.clone()).collect(),
                targets,
                removed: since.removed,
                removed_count: since.count,
            });
        }
        if self.progress.explain.enabled() {
            self.progress.explain.record(named, members, now);
        }
    }

    /// Sweeps `targets`' patterns (the commits up to `seq`), applying
    /// meanwhile the keys and tags of the work that arrives. What the
    /// sweep leaves undone stays in `targets`.
    async fn sweep(
        &mut self,
        targets: &mut TargetSet,
        applied: &mut Applied,
        seq: u64,
    ) -> Result<(), crate::redis::RedisError> {
        let store = self.store.clone();
        let mut patterns = std::mem::take(targets);
        let mut swept = self.new_applied();
        // A task of its own, not a future polled here: while the keys and
        // tags below are applied, a future of this task would not be
        // polled, and one that holds a lock those keys wait on (the
        // handle's one connection attempt at a time) would hold it for
        // ever.
        let mut sweep = AbortOnDrop(tokio::spawn(async move {
            let result = store.apply(&mut patterns, &mut swept).await;
            (patterns, swept, result)
        }));
        let mut open = true;
        loop {
            tokio::select! {
                joined = &mut sweep.0 => {
                    let (left, swept, result) = match joined {
                        Ok(done) => done,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        // Cancelled: only the runtime shutting down does
                        // that, and this task goes with it.
                        Err(_) => return std::future::pending().await,
                    };
                    *targets = left;
                    applied.absorb(swept);
                    return result;
                }
                evaluated = self.inbox.recv(), if open => match evaluated {
                    Some(evaluated) => {
                        self.merge(evaluated);
                        self.apply_keys_and_tags(seq).await;
                    }
                    None => open = false,
                },
            }
        }
    }

    /// Applies the keys and tags waiting, of the commits after `sweeping`
    /// (whose sweep runs). Their commits stay pending, to be marked applied
    /// once the work before them is; on an error the keys and tags go back,
    /// to be retried with the rest.
    async fn apply_keys_and_tags(&mut self, sweeping: u64) {
        let mut now = self.pending.take_keys_and_tags();
        if now.is_empty() {
            return;
        }
        let mut applied = self.new_applied();
        let batch = self.replay.enabled().then(|| now.clone());
        let result = self.store.apply(&mut now, &mut applied).await;
        self.record(applied, sweeping + 1, self.pending.seq());
        if let (Ok(()), Some(batch)) = (&result, batch) {
            self.remember(batch);
        }
        if let Err(error) = result {
            tracing::warn!(%error, remaining = now.len(),
                "applying invalidations beside a sweep failed; they stay pending");
            self.put(now, 0, false);
        }
        self.progress.stats.set_pending(self.pending.len());
    }

    /// Waits out a retry delay, still taking in what the evaluator sends,
    /// so that the bound on pending work holds while Redis is down.
    async fn wait(&mut self, delay: Duration) {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return,
                evaluated = self.inbox.recv() => match evaluated {
                    Some(evaluated) => self.merge(evaluated),
                    // Nothing more will come: just wait out the delay.
                    None => return sleep.await,
                },
            }
        }
    }

    fn merge(&mut self, evaluated: Evaluated) {
        let Evaluated {
            targets,
            seq,
            collapse,
            rules,
            origins,
        } = evaluated;
        self.rules = Some(rules);
        for (origin, named) in origins {
            let stored = named.prefixed(&self.config.key_prefix);
            self.origins.add(seq, origin, stored);
        }
        self.add(targets, seq, collapse);
    }

    /// Adds targets as named to the pending work, as stored: under the
    /// configured key prefix. It is applied here, where both the
    /// evaluator's targets and the fallback that may replace them enter.
    fn add(&mut self, targets: TargetSet, seq: u64, collapse: bool) {
        let targets = targets.prefixed(&self.config.key_prefix);
        self.put(targets, seq, collapse);
    }

    /// Puts targets already as stored (prefixed) into the pending work:
    /// new ones from [`add`](Self::add), or ones taken out and not applied.
    fn put(&mut self, targets: TargetSet, seq: u64, collapse: bool) {
        let max = if collapse { 0 } else { self.config.max_pending };
        let rules = &self.rules;
        let prefix = self.config.key_prefix.as_str();
        let fallback = || match rules {
            Some(rules) => rules.fallback().prefixed(prefix),
            // Only targets from the evaluator get here, and each came
            // with its rules; were none known, everything stands in.
            None => [crate::targets::Target::Pattern("*".to_owned())]
                .into_iter()
                .collect(),
        };
        if self.pending.add(targets, seq, max, fallback) {
            self.progress.stats.collapsed();
            // What the origins named is gone from the pending work: what
            // replaced it is the fallback, which no commit named.
            self.origins.clear();
            let origin = Arc::new(Origin::of(Cause::Fallback));
            self.origins.add(seq, origin, fallback());
        }
        self.progress.stats.set_pending(self.pending.len());
    }
}

/// A task that ends with its handle: the sweep ends with the applier
/// that waits for it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Prunes tag indexes every `every`, forever.
pub(crate) async fn janitor(store: Store, every: Duration) {
    let Store::Redis(redis) = store else {
        return;
    };
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await; // the first tick is immediate
    loop {
        interval.tick().await;
        match crate::layout::tags::prune(&redis).await {
            Ok(removed) => tracing::debug!(removed, "pruned expired members from tag indexes"),
            Err(error) => tracing::warn!(%error, "pruning tag indexes failed; will try again"),
        }
    }
}
