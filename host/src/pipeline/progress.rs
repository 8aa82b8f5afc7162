//! [`Progress`]: what the pipeline reports, the only state its parts
//! share: the counters, the mark of the last applied commit, the record of
//! refused targets, the feed of what the rules decided, and the explain
//! log. Each is written by one part (the applier owns the mark, the record
//! and the explain log) and read by the handle.

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use super::PipelineCounters;
use super::explain::ExplainLog;
use super::failures::{ApplyFailure, Failures};
use super::probation::RuleStates;
use super::removals::Removals;
use crate::rules::Activity;

/// The pipeline's reports.
pub(crate) struct Progress {
    pub(crate) stats: PipelineCounters,
    /// The sequence number of the last commit whose invalidations are
    /// applied; [`Invalidator::flush`](super::Invalidator::flush) waits on
    /// it.
    pub(crate) applied: watch::Sender<u64>,
    /// Batches Redis refused targets of for good.
    failures: Mutex<Failures>,
    /// Why the last batch is unconfirmed, while replicas fall short.
    unreplicated: Mutex<Option<String>>,
    /// Why the last attempt to apply a batch failed, until one succeeds.
    last_error: Mutex<Option<String>>,
    /// What the rules decided, batch by batch, for whoever watches (the
    /// console's feed); the evaluator sends it only while someone does.
    pub(crate) feed: broadcast::Sender<Arc<Activity>>,
    /// Probation, swap times and rollbacks, as the evaluator last
    /// published them.
    rule_states: Mutex<RuleStates>,
    /// The applied targets and where they came from, for explain; the
    /// applier writes it.
    pub(crate) explain: ExplainLog,
    /// Keys removed by rule and by tag; the applier counts them.
    pub(crate) removals: Removals,
}

/// Activities kept for a watcher that falls behind, before it skips.
const FEED_BACKLOG: usize = 1024;

impl Progress {
    /// Reports with an explain log of `explain_capacity` (0: none).
    pub(crate) fn new(explain_capacity: usize) -> Self {
        Self {
            stats: PipelineCounters::default(),
            applied: watch::channel(0).0,
            failures: Mutex::new(Failures::default()),
            unreplicated: Mutex::new(None),
            last_error: Mutex::new(None),
            feed: broadcast::channel(FEED_BACKLOG).0,
            rule_states: Mutex::new(RuleStates::default()),
            explain: ExplainLog::new(explain_capacity),
            removals: Removals::default(),
        }
    }

    /// Records a batch Redis refused targets of.
    pub(crate) fn failed(&self, failure: ApplyFailure) {
        self.failures.lock().expect("failures lock").record(failure);
    }

    /// The failure of the batch that applied commit `seq`, if it had one.
    pub(crate) fn failure(&self, seq: u64) -> Option<Arc<ApplyFailure>> {
        self.failures.lock().expect("failures lock").of(seq)
    }

    /// Notes that replicas fall short, and why (`None`: they caught up).
    pub(crate) fn set_unreplicated(&self, why: Option<String>) {
        *self.unreplicated.lock().expect("unreplicated lock") = why;
    }

    /// Why invalidations are not confirmed, while replicas fall short.
    pub(crate) fn unreplicated(&self) -> Option<String> {
        self.unreplicated.lock().expect("unreplicated lock").clone()
    }

    /// Notes why applying failed (`None`: a batch was applied).
    pub(crate) fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().expect("last error lock") = error;
    }

    /// Why the last attempt to apply failed, while none has succeeded
    /// since.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("last error lock").clone()
    }

    /// Publishes the rules' states.
    pub(crate) fn set_rule_states(&self, states: RuleStates) {
        *self.rule_states.lock().expect("rule states lock") = states;
    }

    /// The rules' states as last published.
    pub(crate) fn rule_states(&self) -> RuleStates {
        self.rule_states.lock().expect("rule states lock").clone()
    }

    /// The last commit applied.
    pub(crate) fn applied(&self) -> u64 {
        *self.applied.borrow()
    }
}
