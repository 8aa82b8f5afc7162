//! [`Commit`]: a committed transaction as a rule sees it.

use crate::bindings::invalidator::rules::types as raw;
use crate::{CommitBuilder, Write, columns};

/// A committed transaction: its id, its source, and the rows it wrote.
///
/// A rule only sees the writes to the tables it subscribes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit(pub(crate) raw::Commit);

impl Commit {
    /// Starts building a commit of transaction `txn`, for tests.
    pub fn build(txn: &str) -> CommitBuilder {
        CommitBuilder::new(txn)
    }

    #[doc(hidden)]
    pub fn from_raw(raw: raw::Commit) -> Self {
        Self(raw)
    }

    /// The transaction id.
    pub fn txn(&self) -> &str {
        &self.0.txn
    }

    /// The application or stream the commit came from, if known.
    pub fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }

    /// Every write, in commit order.
    pub fn writes(&self) -> impl ExactSizeIterator<Item = Write<'_>> + '_ {
        (0..columns::count(&self.0.write_tables)).map(|i| Write::wrap(&self.0, i))
    }

    /// The writes to `table`, in commit order.
    pub fn writes_to<'a>(&'a self, table: &'a str) -> impl Iterator<Item = Write<'a>> + 'a {
        self.writes().filter(move |w| w.table() == table)
    }
}
