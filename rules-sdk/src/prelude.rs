//! Everything a rule usually needs, including the `alloc` items a
//! `#![no_std]` crate does not get by default: `use invalidator_rules::prelude::*;`.

pub use crate::{
    Commit, Level, Op, Row, Rule, RuleError, RuleInfo, Target, Targets, Value, Write, export_rule,
    log,
};
pub use alloc::borrow::ToOwned;
pub use alloc::format;
pub use alloc::string::{String, ToString};
pub use alloc::vec;
pub use alloc::vec::Vec;
