//! [`Row`]: one row image of a write.

use crate::bindings::invalidator::rules::types as raw;
use crate::{Commit, Value};

/// A row image: the columns of a row before or after a write, or of its
/// primary key.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    commit: &'a raw::Commit,
    columns: &'a [raw::Column],
}

impl<'a> Row<'a> {
    pub(crate) fn new(commit: &'a raw::Commit, row: raw::Row) -> Self {
        let (start, len) = (row.start as usize, row.len as usize);
        Self {
            commit,
            columns: commit.columns.get(start..start + len).unwrap_or(&[]),
        }
    }

    /// The value of `column`, if the row has it.
    pub fn get(&self, column: &str) -> Option<Value<'a>> {
        self.columns
            .iter()
            .find(|c| Commit::text(self.commit, c.name) == column)
            .map(|c| Value::from_raw(self.commit, c.value))
    }

    /// Every column: name and value.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, Value<'a>)> + 'a {
        let commit = self.commit;
        self.columns.iter().map(move |c| {
            (
                Commit::text(commit, c.name),
                Value::from_raw(commit, c.value),
            )
        })
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

impl core::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
