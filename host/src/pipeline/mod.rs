//! The pipeline: commits in, invalidations applied to Redis, in the
//! background.
//!
//! [`Invalidator`] is the handle a service embeds. Handing it a commit only
//! queues it (the writer never waits on the cache). Behind it, each piece
//! of state has one owner, and the others send it messages ([`message`]):
//! - one thread, the [`evaluator`], owns the rule set in service, the
//!   shadows ([`shadow`]) and the probation of new versions
//!   ([`probation`]); it evaluates the queued commits in batches and sends
//!   their targets on;
//! - one task, the [`applier`], owns the pending work ([`pending`]) and
//!   applies it to the store, retrying with backoff until it
//!   succeeds or Redis refuses a target for good ([`failures`]); it
//!   keeps what it applied lately ([`replay`]) and applies it again on a
//!   new primary after a failover.
//!
//! What happened is reported in [`progress`]: the counters ([`PipelineCounters`]),
//! the last commit applied, the refusals, and the [`explain`] log of
//! applied targets with where each came from ([`origins`]), and the keys
//! removed by rule and by tag ([`removals`]); that is all they share. The
//! [`feed`] tells whoever listens, through a Redis stream, what each
//! applied batch removed.

mod applier;
mod config;
mod counters;
mod evaluator;
mod explain;
mod failures;
mod feed;
mod invalidator;
mod message;
mod origins;
mod pending;
mod probation;
mod progress;
mod removals;
mod replay;
mod shadow;

pub use config::{DEFAULT_EXPLAIN_CAPACITY, PipelineConfig, RollbackPolicy};
pub use counters::{PipelineCounters, PipelineStats};
pub use explain::{Cause, ExplainLog, ExplainedTarget, Invalidation, Origin};
pub use failures::ApplyFailure;
pub use feed::{DEFAULT_FEED_KEYS, DEFAULT_FEED_MAXLEN, FeedConfig};
pub use invalidator::{FlushError, Invalidator};
pub use probation::{KEPT_ROLLBACKS, RolledBack, RuleStates};
pub use removals::{MAX_NAMES, OTHERS, RemovalCounts, Removals};

/// What the rules decided for one commit: the answer of
/// [`Invalidator::after_commit_answered`].
pub use crate::rules::Outcome;
