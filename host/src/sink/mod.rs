//! The sink: applies [`TargetSet`](crate::targets::TargetSet)s to Redis, a
//! single node or a cluster.
//!
//! A sink only knows targets; it never sees rules or commits. It owns how
//! targets meet the store: the Redis layout of a tag ([`tags`]), how each
//! kind of target is deleted ([`apply`]), Redis's own glob matching
//! ([`glob`]), the one-pass pattern sweep ([`sweep`]), and leases
//! ([`lease`]: filling a key only if no invalidation touched it since the
//! miss); and an
//! in-process store ([`MemoryStore`]) for running with no Redis. [`Store`]
//! is either. It talks to Redis through [`crate::connection`].
//!
//! Every operation here is idempotent (deleting a deleted key is a no-op), so
//! a caller that sees an error simply tries the remaining targets again.

pub mod apply;
pub mod glob;
pub mod lease;
mod memory;
mod store;
pub mod sweep;
pub mod tags;

pub use apply::{Applied, Unapplied, apply};
pub use memory::{LeaseAnswer, MemoryStore};
pub use store::Store;
