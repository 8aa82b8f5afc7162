//! [`Row`]: one row image of a write.

use crate::bindings::invalidator::rules::types as raw;
use crate::{Value, columns};

/// A row image: the columns of a row before or after a write, or of its
/// primary key.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    commit: &'a raw::Commit,
    /// The row's columns are the commit's columns `start..end`.
    start: usize,
    end: usize,
}

impl<'a> Row<'a> {
    /// The row a packed run of columns designates.
    pub(crate) fn new(commit: &'a raw::Commit, run: u64) -> Self {
        let count = columns::count(&commit.column_names);
        let (start, len) = columns::unpack(run);
        let start = start.min(count);
        Self {
            commit,
            start,
            end: (start + len).min(count),
        }
    }

    /// The value of `column`, if the row has it.
    pub fn get(&self, column: &str) -> Option<Value<'a>> {
        (self.start..self.end)
            .find(|&i| columns::name_is(self.commit, i, column))
            .map(|i| columns::value(self.commit, i))
    }

    /// Every column: name and value.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, Value<'a>)> + 'a {
        let commit = self.commit;
        (self.start..self.end).map(move |i| (columns::name(commit, i), columns::value(commit, i)))
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl core::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
