//! Invalidator: a cache-invalidation rules engine.
//!
//! Services hand it their committed transactions; it runs each team's
//! invalidation rules, sandboxed WebAssembly components written against the
//! `invalidator:rules` WIT contract, and turns every commit into the exact
//! cache keys, glob patterns and tags to invalidate.
//!
//! The flow of one commit, one module per step:
//! [`source`] (where commits come from: the transaction guard) →
//! [`commit`] (what was written) → [`rules`] (the sandboxed rule set) →
//! [`targets`] (what to invalidate, merged) → [`pipeline`] (batching,
//! pending work, retries, statistics) → [`sink`] (Redis, single node or
//! cluster). [`cache`] is the application's side: reads, and writes that
//! register their tags. [`dry_run`], [`apply`] and [`diff`] wire the steps
//! together for the `invalidator run`, `apply` and `diff` commands.
//! [`escape`] makes rule-supplied text safe to show.
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

pub mod apply;
mod bindings;
pub mod cache;
pub mod commit;
pub mod diff;
pub mod dry_run;
pub mod escape;
pub mod histogram;
pub mod pipeline;
pub mod reload;
pub mod rules;
pub mod serve;
pub mod sink;
pub mod source;
pub mod targets;
