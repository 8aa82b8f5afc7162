//! The rules SDK: everything a rule author needs to turn committed
//! transactions into cache targets.
//!
//! A rule is a type implementing [`Rule`], exported with [`export_rule!`]:
//!
//! ```
//! #![no_std]
//! use invalidator_rules::prelude::*;
//!
//! pub struct Profiles;
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
//! export_rule!(Profiles);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` on a `cdylib`
//! crate; the result is a component the host loads. The same code runs
//! natively in `cargo test` through [`evaluate`], without any Wasm; build
//! test commits with [`Commit::build`] and [`row!`].
//!
//! Rules are `#![no_std]` (with `alloc`, through the [`prelude`]): the SDK
//! brings a bump allocator, reset with each call, and a panic handler that
//! traps. The component then imports nothing but the host's `log`, which is
//! both the tightest sandbox and the fastest to start. A rule that needs
//! `std` turns on the SDK's `std` feature instead.
//!
//! Rules are pure: the host gives them no filesystem, network, environment
//! or real clock, so the same commit always gives the same targets.

#![no_std]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;
#[cfg(any(feature = "std", not(target_arch = "wasm32")))]
extern crate std;

// The bindings refer to this crate by name so that the `export!` macro they
// generate also works when expanded inside a rule author's crate.
extern crate self as invalidator_rules;

#[doc(hidden)]
pub mod bindings;
mod build;
mod columns;
mod commit;
mod error;
mod info;
mod log;
mod op;
pub mod prelude;
mod row;
mod rule;
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
mod runtime;
mod targets;
mod value;
mod write;

pub use bindings::invalidator::rules::types::{ColumnRef, Level, RuleError, RuleInfo, Target};
pub use build::CommitBuilder;
pub use commit::Commit;
pub use log::log;
pub use op::Op;
pub use row::Row;
pub use rule::{Rule, evaluate};
pub use targets::Targets;
pub use value::{Value, Values};
pub use write::Write;

#[doc(hidden)]
pub mod __alloc {
    pub use alloc::vec;
}
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;
