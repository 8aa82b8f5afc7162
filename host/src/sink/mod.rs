//! The sink: applies [`TargetSet`](crate::targets::TargetSet)s to Redis, a
//! single node or a cluster.
//!
//! A sink only knows targets; it never sees rules or commits. It owns how
//! each kind of target is deleted ([`apply`]), Redis's own glob matching
//! ([`glob`]), the one-pass pattern sweep ([`sweep`]), and an in-process
//! store ([`MemoryStore`]) for running with no Redis. [`Store`] is either.
//! How the application's values, tags and leases are laid out in Redis is
//! not the sink's: it is [`crate::layout`]'s, which the sink and the
//! application's clients share. It talks to Redis through
//! [`crate::redis`].
//!
//! Every operation here is idempotent (deleting a deleted key is a no-op), so
//! a caller that sees an error simply tries the remaining targets again.

pub mod apply;
pub mod glob;
mod memory;
mod owners;
pub(crate) mod removed;
mod store;
pub mod sweep;

pub use apply::{Applied, TagMembers, Unapplied, apply};
pub use memory::{LeaseAnswer, MemoryStore};
pub use owners::Owners;
pub use removed::Removed;
pub use store::Store;
