//! The evaluator thread: runs queued commits through the rules in batches
//! and adds their targets to the pending work.
//!
//! Rules are CPU work, so they run on a thread of their own rather than on
//! the async runtime, where they would hold up Redis I/O.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Instant;

use super::handle::{Queued, Shared, Work};
use crate::targets::TargetSet;

/// Runs until every sender is gone and the queue is drained.
pub(crate) fn run(shared: Arc<Shared>, queue: Receiver<Queued>) {
    let max_batch = shared.config.max_batch.max(1);
    let linger = shared.config.linger;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + linger;
        // Whatever queued up while the last batch was busy joins this one:
        // batches grow with the load, and an idle pipeline waits for
        // nothing unless a linger is configured.
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    match queue.recv_timeout(deadline - now) {
                        Ok(next) => batch.push(next),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        let seq = batch.last().map_or(0, |q| q.seq);
        let handed = batch.len();
        // Targets asked for by hand skip the rules and join the batch's.
        let mut manual = TargetSet::new();
        let commits: Vec<_> = batch
            .into_iter()
            .filter_map(|q| match q.work {
                Work::Commit(commit) => Some(commit),
                Work::Targets(targets) => {
                    manual.merge(targets);
                    None
                }
            })
            .collect();
        // One version of the rules for the whole batch.
        let rules = shared.rules.load_full();
        let backlog = shared.stats.is_queued() as usize;
        let (mut targets, failures) = if backlog > shared.config.max_pending || commits.is_empty() {
            // More commits are waiting than the bound allows targets: do not
            // spend time on rules whose targets would collapse anyway.
            (TargetSet::new(), 0)
        } else {
            let outcome = rules.evaluate_batch(&commits);
            if let Some(shadows) = shared.shadows.load_full() {
                super::shadow::compare(&shared, &rules, &shadows, &commits);
            }
            if let Some(policy) = &shared.config.rollback {
                let mut probation = shared.probation.lock().expect("probation lock");
                // Only if the set judged is still the one in service: a swap
                // meanwhile has settled the question.
                if Arc::ptr_eq(&rules, &shared.rules.load_full())
                    && let Some(restored) =
                        probation.judge(policy, &rules, &commits, &outcome.failures)
                {
                    shared.rules.store(restored);
                    shared.stats.rolled_back();
                }
            }
            (outcome.targets, outcome.failures.len())
        };
        shared.stats.evaluated(handed, failures);
        if backlog > shared.config.max_pending {
            tracing::warn!(
                backlog,
                "commit backlog exceeds the pending bound: applying the rules' fallback targets"
            );
            shared.add_pending(rules.fallback(), seq, true);
            // The fallback covers what the rules could ask for, not what
            // an operator asked for by hand: that is added as it is.
            if !manual.is_empty() {
                shared.add_pending(manual, seq, false);
            }
        } else {
            targets.merge(manual);
            shared.add_pending(targets, seq, false);
        }
    }
}
