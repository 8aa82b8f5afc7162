//! The rules SDK: everything a rule author needs to turn committed
//! transactions into cache targets.
//!
//! A rule is a type implementing [`Rule`], exported with [`export_rule!`]:
//!
//! ```
//! use invalidator_rules::{Commit, Rule, RuleError, RuleInfo, Target, Targets};
//!
//! struct Profiles;
//!
//! impl Rule for Profiles {
//!     fn describe() -> RuleInfo {
//!         RuleInfo::new("profiles", "1.0.0")
//!             .tables(["user_profiles"])
//!             .fallback([Target::pattern("user_profile_*")])
//!     }
//!
//!     fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
//!         for write in commit.writes_to("user_profiles") {
//!             for id in write.each("id")? {
//!                 out.key(format!("user_profile_{id}"));
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! invalidator_rules::export_rule!(Profiles);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` on a `cdylib`
//! crate; the result is a component the host loads. The same code runs
//! natively in `cargo test` through [`evaluate`], without any Wasm.
//!
//! Rules are pure: the host gives them no filesystem, network, environment
//! or real clock, so the same commit always gives the same targets.

// The bindings refer to this crate by name so that the `export!` macro they
// generate also works when expanded inside a rule author's crate.
extern crate self as invalidator_rules;

#[doc(hidden)]
pub mod bindings;
mod builders;
mod error;
mod info;
mod log;
mod rule;
mod targets;
mod value;
mod write;

pub use bindings::invalidator::rules::types::{
    Column, ColumnRef, Commit, Level, Op, Row, RuleError, RuleInfo, Target, Value, Write,
};
pub use log::log;
pub use rule::{Rule, evaluate};
pub use targets::Targets;
pub use value::Values;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;
