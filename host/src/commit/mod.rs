//! What a transaction wrote: the [`Commit`] handed to the rules, its JSON
//! Lines encoding (the external event format), and the flat layout in which
//! it crosses into a rule's sandbox.

mod each;
mod flat;
mod json;
mod model;

pub use each::for_each_commit;
pub(crate) use flat::{flatten, flatten_writes};
pub use json::{CommitParseError, commit_from_value, parse_json};
pub use model::{Commit, Op, Row, Value, Write};
