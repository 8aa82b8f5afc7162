//! What the parts of the pipeline send each other: work from the handle to
//! the evaluator, and evaluated targets from the evaluator to the applier.
//! Each piece of state has one owner; these messages are how the others
//! ask it for something.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use tokio::sync::oneshot;

use super::explain::Origin;
use crate::commit::Commit;
use crate::rules::{Outcome, RuleSet};
use crate::targets::TargetSet;

/// A message to the evaluator, in the order it was sent.
pub(crate) enum ToEvaluator {
    /// Work, numbered in the order it was handed over.
    Work(Queued),
    /// Put a rule set in service; the reply is the set it replaced.
    Swap {
        rules: Arc<RuleSet>,
        reply: SyncSender<Arc<RuleSet>>,
    },
    /// Set the shadow rules (or none).
    Shadows(Option<Arc<RuleSet>>),
    /// Put the version a rule replaced back in service, by an operator's
    /// hand; the reply is the version restored, or why not.
    RollBack {
        name: String,
        reply: SyncSender<Result<String, String>>,
    },
}

/// Work waiting for the evaluator, with its place in the order.
pub(crate) struct Queued {
    pub(crate) seq: u64,
    pub(crate) work: Work,
}

/// What was handed over. All of it goes through the one queue so that
/// sequence numbers, and so [`Invalidator::flush`](super::Invalidator::flush),
/// cover it in order.
pub(crate) enum Work {
    /// A commit for the rules.
    Commit(Commit),
    /// A commit for the rules whose own outcome (targets and failures) is
    /// wanted back, as the entity endpoint answers with it.
    Answered(Commit, oneshot::Sender<Outcome>),
    /// Targets asked for by hand, applied as they are.
    Targets(TargetSet),
}

/// Targets of a batch, from the evaluator to the applier.
pub(crate) struct Evaluated {
    pub(crate) targets: TargetSet,
    /// The last commit the targets cover.
    pub(crate) seq: u64,
    /// Replace all pending work by the fallback of `rules` at once: the
    /// backlog outgrew the bound before the rules even ran.
    pub(crate) collapse: bool,
    /// The rule set that evaluated the batch, whose fallback stands in for
    /// pending work that outgrows its bound.
    pub(crate) rules: Arc<RuleSet>,
    /// Where the targets came from, as named (not prefixed), when the
    /// explain log keeps them; empty otherwise.
    pub(crate) origins: Vec<(Arc<Origin>, TargetSet)>,
}
