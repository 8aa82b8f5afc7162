//! The applier task: owns the pending work, merges what the evaluator
//! sends into it, and applies it to the store, retrying with backoff until
//! it succeeds or Redis refuses a target for good.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::PipelineConfig;
use super::failures::ApplyFailure;
use super::message::Evaluated;
use super::pending::Pending;
use super::progress::Progress;
use crate::connection::Backoff;
use crate::rules::RuleSet;
use crate::sink::{self, Applied, Store};
use crate::targets::TargetSet;

/// The applier's state, all of it its own.
pub(crate) struct Applier {
    pending: Pending,
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
    ) -> Self {
        Self {
            pending: Pending::default(),
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
            let Some((mut targets, seq)) = self.pending.take(self.progress.applied()) else {
                match self.inbox.recv().await {
                    Some(evaluated) => self.merge(evaluated),
                    None => return,
                }
                continue;
            };
            self.progress.stats.set_pending(0);
            match self.apply(&mut targets, seq).await {
                Ok(()) => {
                    backoff.reset();
                    self.progress.applied.send_replace(seq);
                }
                Err(error) => {
                    self.progress.stats.failed_and_retrying();
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        %error,
                        remaining = targets.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "applying invalidations failed; they stay pending and will be retried"
                    );
                    // Back into the pending work, where they merge with what
                    // arrived meanwhile and count against the bound.
                    self.add(targets, seq, false);
                    self.wait(delay).await;
                }
            }
        }
    }

    /// Applies one batch of targets, the commits up to `seq`, and records
    /// what Redis refused for good.
    async fn apply(
        &self,
        targets: &mut TargetSet,
        seq: u64,
    ) -> Result<(), crate::connection::RedisError> {
        // Commits are applied in order: this batch starts after the last
        // one applied.
        let first = self.progress.applied() + 1;
        let mut applied = Applied::default();
        let result = self.store.apply(targets, &mut applied).await;
        self.progress.stats.applied(&applied);
        if !applied.unapplied.is_empty() {
            // Recorded before the batch is marked applied, so that a source
            // that sees it applied also sees its failure.
            self.progress.stats.failed_commits(seq + 1 - first);
            self.progress.failed(ApplyFailure {
                first,
                last: seq,
                unapplied: applied.unapplied,
            });
        }
        result
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
        } = evaluated;
        self.rules = Some(rules);
        self.add(targets, seq, collapse);
    }

    /// Adds targets as named to the pending work, as stored: under the
    /// configured key prefix. It is applied here, where both the
    /// evaluator's targets and the fallback that may replace them enter.
    fn add(&mut self, targets: TargetSet, seq: u64, collapse: bool) {
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
        let targets = targets.prefixed(prefix);
        if self.pending.add(targets, seq, max, fallback) {
            self.progress.stats.collapsed();
        }
        self.progress.stats.set_pending(self.pending.len());
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
        match sink::tags::prune(&redis).await {
            Ok(removed) => tracing::debug!(removed, "pruned expired members from tag indexes"),
            Err(error) => tracing::warn!(%error, "pruning tag indexes failed; will try again"),
        }
    }
}
