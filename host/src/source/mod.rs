//! Sources: where commits come from. A source only produces commits and
//! hands them to the [`pipeline`](crate::pipeline); nothing downstream
//! knows where they came from.
//!
//! For services that embed the host, the source is their own code:
//! [`Transaction`], a guard that records a transaction's writes and hands
//! them over only when it commits.

mod transaction;

pub use transaction::{IntoRow, Transaction};
