//! Invalidator: a cache-invalidation rules engine.
//!
//! Services hand it their committed transactions; it runs each team's
//! invalidation rules, sandboxed WebAssembly components written against the
//! `invalidator:rules` WIT contract, and turns every commit into the exact
//! cache keys, glob patterns and tags to invalidate.
//!
//! The flow of one commit, one module per step, each depending only on
//! the steps beside it:
//!
//! [`source`] (where commits come from: JSON Lines, HTTP, a Redis stream,
//! Postgres's logical replication, the embedding service's transactions;
//! each acknowledges in its own terms once applied) → [`commit`] (what was written) → [`rules`] (the
//! sandboxed rule set) → [`targets`] (what to invalidate, merged) →
//! [`pipeline`] (batching, pending work, retries, probation, statistics;
//! one owner per piece of state) → [`sink`] (applying targets to Redis or
//! memory) → back to the source, which acknowledges.
//!
//! Beside the flow: [`layout`] is the application's cache layout in
//! Redis (tagged values, leases, their Lua scripts), which the sink and
//! the clients share; [`redis`] is the Redis client the sink and the
//! stream source share; [`retry`] the back-off every source and the sink
//! wait with; [`cache`] is the application's side (reads, and writes that
//! register their tags); [`reload`] watches the rules folder; [`http`] is
//! the HTTP plumbing (listener, tokens, errors) that the HTTP source and
//! the operations API ride on; [`serve`] wires sources, pipeline and sink
//! into the long-running service and serves the operations API; [`batch`]
//! is what the one-shot commands (`invalidator run`, `apply`, `diff`) do.
//! [`escape`] makes rule-supplied text safe to show; [`figures`] declares
//! counters once, for the statistics and the metrics endpoint alike.
//!
//! ```no_run
//! use invalidator::rules::{Runtime, RuleSet, SandboxConfig};
//!
//! let runtime = Runtime::new(SandboxConfig::default())?;
//! let rules = RuleSet::load(&runtime, "target/rules".as_ref())?;
//! let commit = invalidator::commit::parse_json(
//!     r#"{"txn":"t-1","writes":[{"table":"user_profiles","op":"update","key":{"id":7},"after":{"id":7}}]}"#,
//! )?;
//! let outcome = rules.evaluate(&commit);
//! println!("{:?}", outcome.targets.keys);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod batch;
// Generated from the WIT contract, whose comments are its documentation.
#[allow(missing_docs)]
mod bindings;
pub mod cache;
pub mod commit;
mod duration;
pub mod escape;
pub mod figures;
pub mod http;
pub mod layout;
pub mod pipeline;
pub mod redis;
pub mod reload;
pub mod retry;
pub mod rules;
pub mod serve;
pub mod sink;
pub mod source;
pub mod targets;
mod text_setting;
