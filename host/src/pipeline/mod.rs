//! The pipeline: commits in, invalidations applied to Redis, in the
//! background.
//!
//! [`Invalidator`] is the handle a service embeds. Handing it a commit only
//! queues it (the writer never waits on the cache). Behind it, one thread
//! evaluates the queued commits in batches ([`evaluator`]) and merges their
//! targets into the pending work ([`pending`]), and one task applies the
//! pending work to Redis ([`applier`]), retrying with backoff
//! ([`backoff`]) until it succeeds, or Redis refuses a target for good
//! ([`failures`]). What happened is counted in [`Stats`].

mod applier;
mod backoff;
mod config;
mod evaluator;
mod failures;
mod handle;
mod pending;
mod probation;
mod shadow;
mod stats;

pub(crate) use backoff::Backoff;
pub use config::{PipelineConfig, RollbackPolicy};
pub use failures::ApplyFailure;
pub use handle::{FlushError, Invalidator};
pub use stats::{Stats, StatsSnapshot};
