//! What a transaction wrote: the [`Commit`] handed to the rules, and its
//! JSON Lines encoding (the external event format).
//!
//! These are the WIT contract's own types, so a commit is lowered into each
//! rule's sandbox without any conversion.

mod json;

pub use crate::bindings::types::{Column, Commit, Op, Row, Value, Write};
pub use json::{CommitParseError, parse_json};
