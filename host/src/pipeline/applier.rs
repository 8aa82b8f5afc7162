//! The applier task: applies the pending work to Redis, retrying with
//! backoff until it succeeds or Redis refuses a target for good.

use std::sync::Arc;

use super::backoff::Backoff;
use super::failures::ApplyFailure;
use super::handle::Shared;
use crate::sink::{self, Applied};

/// Runs until the task is aborted.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new(shared.config.retry_min, shared.config.retry_max);
    loop {
        let Some((mut targets, seq)) = shared.take_pending() else {
            // `notify_one` leaves a permit when nobody waits, so work added
            // between the check above and this wait is not missed.
            shared.wake.notified().await;
            continue;
        };
        // Commits are applied in order: this batch starts after the last
        // one applied.
        let first = *shared.applied.borrow() + 1;
        let mut applied = Applied::default();
        let result = shared.store.apply(&mut targets, &mut applied).await;
        shared.stats.applied(&applied);
        if !applied.unapplied.is_empty() {
            // Recorded before the batch is marked applied, so that a source
            // that sees it applied also sees its failure.
            shared.stats.failed_commits(seq + 1 - first);
            shared
                .failures
                .lock()
                .expect("failures lock")
                .record(ApplyFailure {
                    first,
                    last: seq,
                    unapplied: applied.unapplied,
                });
        }
        match result {
            Ok(()) => {
                backoff.reset();
                shared.applied.send_replace(seq);
            }
            Err(error) => {
                shared.stats.failed_and_retrying();
                let delay = backoff.next_delay();
                tracing::warn!(
                    %error,
                    remaining = targets.len(),
                    retry_in_ms = delay.as_millis() as u64,
                    "applying invalidations failed; they stay pending and will be retried"
                );
                // Back into the pending work, where they merge with what
                // arrived meanwhile and count against the bound.
                shared.add_pending(targets, seq, false);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Prunes tag indexes every `every`, forever.
pub(crate) async fn janitor(shared: Arc<Shared>, every: std::time::Duration) {
    let sink::Store::Redis(redis) = shared.store.clone() else {
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
