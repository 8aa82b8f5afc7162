//! Hot reload: the rule files of a folder, kept in service as they change
//! on disk.
//!
//! - [`RuleFolder`]: the rules of a folder by file, and a refresh that
//!   loads what changed, validates it, and builds the next rule set; a file
//!   that fails keeps its running version.
//! - [`fixture`]: the `NAME.test.jsonl` files a rule may ship with, whose
//!   expected targets a new version must reproduce.
//! - [`Reloader`]: watches the folder and puts each new rule set in
//!   service through a callback (for example
//!   [`Invalidator::swap_rules`](crate::pipeline::Invalidator::swap_rules)).

pub mod fixture;
mod folder;
mod watcher;

pub use folder::{Refresh, RuleFolder};
pub use watcher::{Reloader, WatchError};
