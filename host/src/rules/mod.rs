//! The rule set: loading rule components, and running each commit through
//! every subscribed rule, each in a sandbox of its own.
//!
//! - [`SandboxConfig`]: the per-call limits (time, memory) and their defaults.
//! - [`Runtime`]: the shared Wasm engine that compiles components and
//!   ticks the clock that time limits are checked on.
//! - `time_limit`: a call's limit, counted in the CPU time it uses.
//! - [`LoadedRule`]: one compiled, pre-instantiated, validated rule, with
//!   the language its producers sections name (`language`).
//! - [`RuleSet`]: the immutable set of rules a commit is evaluated against.
//! - [`Activity`]: what the rules decided for a commit, rule by rule, for
//!   the console's feed.
//! - [`CompileCache`]: compiled components on disk, by content hash and
//!   engine version, each checked with a MAC before it is trusted.

mod activity;
mod compile_cache;
mod config;
mod counters;
mod error;
mod language;
mod latency;
mod loaded;
mod log_quota;
mod runtime;
mod sandbox;
mod set;
mod time_limit;
mod validate;

pub use crate::bindings::types::{Level, RuleError as GuestError, RuleInfo};
pub use activity::{Activity, RuleActivity};
pub use compile_cache::{
    CacheError, CompileCache, check_outside as check_compile_cache_outside,
    default_dir as default_compile_cache_dir,
};
pub use config::SandboxConfig;
pub use counters::RuleCounters;
pub use error::{FailureKind, LoadError, RuleFailure};
pub use latency::RecentLatency;
pub use loaded::{LoadedRule, content_hash};
pub use runtime::Runtime;
pub use set::{Outcome, RuleSet};
