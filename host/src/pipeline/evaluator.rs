//! The evaluator thread: runs queued commits through the rules in batches
//! and sends their targets on to the applier. It owns the rule set in
//! service, the shadow rules and the probation of new versions: swaps and
//! shadows reach it as messages, in the order of the work around them.
//!
//! Rules are CPU work, so they run on a thread of their own rather than on
//! the async runtime, where they would hold up Redis I/O.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use super::explain::{Cause, Origin};
use super::message::{Evaluated, Queued, ToEvaluator, Work};
use super::probation::Probation;
use super::progress::Progress;
use super::{PipelineConfig, shadow};
use crate::commit::Commit;
use crate::rules::{Activity, Outcome, RuleSet};
use crate::targets::TargetSet;

/// Each rule's part of an activity, as the origin of its targets.
fn origins_of(activity: Activity) -> impl Iterator<Item = (Arc<Origin>, TargetSet)> {
    let Activity {
        txn, source, rules, ..
    } = activity;
    rules.into_iter().map(move |part| {
        let origin = Origin {
            txn: Some(txn.clone()),
            source: source.clone(),
            rule: Some(part.rule),
            version: Some(part.version),
            cause: Cause::Rule,
            failed: part.failed,
        };
        (Arc::new(origin), part.targets)
    })
}

/// The rules in service, published for readers: written only here.
pub(crate) struct Published {
    pub(crate) rules: watch::Sender<Arc<RuleSet>>,
    pub(crate) shadows: watch::Sender<Option<Arc<RuleSet>>>,
}

/// The evaluator's state, all of it its own.
pub(crate) struct Evaluator {
    rules: Arc<RuleSet>,
    shadows: Option<Arc<RuleSet>>,
    probation: Probation,
    config: PipelineConfig,
    progress: Arc<Progress>,
    published: Published,
    applier: mpsc::UnboundedSender<Evaluated>,
}

/// A batch taken from the queue, and the message that ended it early.
struct Batch {
    work: Vec<Queued>,
    control: Option<ToEvaluator>,
}

impl Evaluator {
    pub(crate) fn new(
        rules: Arc<RuleSet>,
        config: PipelineConfig,
        progress: Arc<Progress>,
        published: Published,
        applier: mpsc::UnboundedSender<Evaluated>,
    ) -> Self {
        Self {
            rules,
            shadows: None,
            probation: Probation::default(),
            config,
            progress,
            published,
            applier,
        }
    }

    /// Runs until every sender is gone and the queue is drained.
    pub(crate) fn run(mut self, queue: Receiver<ToEvaluator>) {
        while let Some(batch) = self.next_batch(&queue) {
            if !batch.work.is_empty() {
                self.evaluate(batch.work);
            }
            if let Some(control) = batch.control {
                self.control(control);
            }
        }
    }

    /// Waits for work, then takes whatever queued up meanwhile, up to the
    /// batch bound: batches grow with the load, and an idle pipeline waits
    /// for nothing unless a linger is configured. A swap or a change of
    /// shadows ends the batch, so that it applies from the next commit on.
    /// `None` once the queue is closed and drained.
    fn next_batch(&self, queue: &Receiver<ToEvaluator>) -> Option<Batch> {
        let mut batch = Batch {
            work: Vec::new(),
            control: None,
        };
        match queue.recv().ok()? {
            ToEvaluator::Work(first) => batch.work.push(first),
            control => {
                batch.control = Some(control);
                return Some(batch);
            }
        }
        let max_batch = self.config.max_batch.max(1);
        let deadline = Instant::now() + self.config.linger;
        while batch.work.len() < max_batch {
            let next = match queue.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    match queue.recv_timeout(deadline - now) {
                        Ok(next) => next,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match next {
                ToEvaluator::Work(work) => batch.work.push(work),
                control => {
                    batch.control = Some(control);
                    break;
                }
            }
        }
        Some(batch)
    }

    /// Evaluates one batch with one version of the rules and sends its
    /// targets to the applier.
    fn evaluate(&mut self, batch: Vec<Queued>) {
        let seq = batch.last().map_or(0, |q| q.seq);
        let handed = batch.len();
        // Targets asked for by hand skip the rules and join the batch's.
        let mut manual = TargetSet::new();
        let mut commits = Vec::with_capacity(batch.len());
        let mut answered: Vec<(Commit, oneshot::Sender<Outcome>)> = Vec::new();
        for queued in batch {
            match queued.work {
                Work::Commit(commit) => commits.push(commit),
                Work::Answered(commit, reply) => answered.push((commit, reply)),
                Work::Targets(targets) => manual.merge(targets),
            }
        }
        let rules = self.rules.clone();
        let backlog = self.progress.stats.queued() as usize;
        if backlog > self.config.max_pending {
            // More commits are waiting than the bound allows targets: do not
            // spend time on rules whose targets would collapse anyway.
            tracing::warn!(
                backlog,
                "commit backlog exceeds the pending bound: applying the rules' fallback targets"
            );
            for (_, reply) in answered {
                let _ = reply.send(Outcome {
                    targets: rules.fallback(),
                    failures: Vec::new(),
                });
            }
            self.progress.stats.evaluated(handed, 0);
            self.send(rules.fallback(), seq, true, Vec::new());
            // The fallback covers what the rules could ask for, not what
            // an operator asked for by hand: that is added as it is.
            if !manual.is_empty() {
                let origins = self.manual_origin(&manual);
                self.send(manual, seq, false, origins);
            }
            return;
        }
        // What each rule decided is always collected: the applier counts
        // per rule the keys its targets removed, the explain log and the
        // feed say where targets came from, and a watcher sees it.
        let watched = self.progress.feed.receiver_count() > 0;
        let mut trace = Vec::new();
        let mut outcome = if commits.is_empty() {
            Outcome::default()
        } else {
            rules.evaluate_batch_traced(&commits, Some(&mut trace))
        };
        // A commit whose own outcome is wanted is evaluated alone, so that
        // its answer is exactly its own targets.
        for (commit, reply) in answered {
            let own = rules.evaluate_traced(&commit, Some(&mut trace));
            outcome.targets.merge(own.targets.clone());
            outcome.failures.extend(own.failures.iter().cloned());
            let _ = reply.send(own);
            commits.push(commit);
        }
        let mut origins = self.manual_origin(&manual);
        for activity in trace {
            if watched {
                // No watcher left is no error.
                let _ = self.progress.feed.send(Arc::new(activity.clone()));
            }
            origins.extend(origins_of(activity));
        }
        if let Some(shadows) = &self.shadows {
            shadow::compare(&self.progress.stats, &rules, shadows, &commits);
        }
        self.judge(&commits, &outcome);
        self.progress
            .stats
            .evaluated(handed, outcome.failures.len());
        let mut targets = outcome.targets;
        targets.merge(manual);
        self.send(targets, seq, false, origins);
    }

    /// The origin of targets asked for by hand, if there are any.
    fn manual_origin(&self, manual: &TargetSet) -> Vec<(Arc<Origin>, TargetSet)> {
        if manual.is_empty() {
            return Vec::new();
        }
        vec![(Arc::new(Origin::of(Cause::Manual)), manual.clone())]
    }

    /// Counts the batch against the versions on probation, and rolls back
    /// one that failed too often.
    fn judge(&mut self, commits: &[Commit], outcome: &Outcome) {
        let Some(policy) = &self.config.rollback else {
            return;
        };
        if let Some(restored) =
            self.probation
                .judge(policy, &self.rules, commits, &outcome.failures)
        {
            self.put_in_service(restored);
            self.progress.stats.rolled_back();
        }
    }

    /// Acts on a swap or a change of shadows.
    fn control(&mut self, control: ToEvaluator) {
        match control {
            ToEvaluator::Work(_) => unreachable!("work is batched, not a control message"),
            ToEvaluator::Swap { rules, reply } => {
                self.progress.stats.swapped();
                let next = self.probation.promote(&self.rules, rules);
                let previous = self.put_in_service(next);
                let _ = reply.send(previous);
            }
            ToEvaluator::Shadows(shadows) => {
                self.shadows = shadows.filter(|s| !s.rules().is_empty());
                self.published.shadows.send_replace(self.shadows.clone());
            }
            ToEvaluator::RollBack { name, reply } => {
                let answer = match self.probation.roll_back(&self.rules, &name) {
                    Ok((set, restored)) => {
                        self.progress.stats.rolled_back();
                        self.put_in_service(set);
                        Ok(restored)
                    }
                    Err(why) => Err(why),
                };
                let _ = reply.send(answer);
            }
        }
    }

    /// Puts `rules` in service and publishes them; returns the set they
    /// replace.
    fn put_in_service(&mut self, rules: Arc<RuleSet>) -> Arc<RuleSet> {
        self.published.rules.send_replace(rules.clone());
        let window = self.config.rollback.as_ref().map(|p| p.window);
        self.progress.set_rule_states(self.probation.states(window));
        std::mem::replace(&mut self.rules, rules)
    }

    fn send(
        &self,
        targets: TargetSet,
        seq: u64,
        collapse: bool,
        origins: Vec<(Arc<Origin>, TargetSet)>,
    ) {
        let evaluated = Evaluated {
            targets,
            seq,
            collapse,
            rules: self.rules.clone(),
            origins,
        };
        // The applier is gone only once the handle is dropped, when there
        // is nobody left to apply for.
        let _ = self.applier.send(evaluated);
    }
}
