//! [`CommitBuilder`] and [`row!`](crate::row): commits built in code, for a
//! rule's native tests.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Commit;
use crate::bindings::invalidator::rules::types as raw;
use crate::{Op, Value};

/// Builds the `(column, value)` pairs of a row; values are anything that
/// converts into a [`Value`] (`&str`, `i64`, `f64`, `bool`, `Option<_>` for
/// null).
///
/// ```
/// let row = invalidator_rules::row! { "id" => "C1", "income" => 52_000, "note" => None::<&str> };
/// assert_eq!(row.len(), 3);
/// ```
#[macro_export]
macro_rules! row {
    ($($name:expr => $value:expr),* $(,)?) => {
        [$(($name, $crate::Value::from($value))),*]
    };
}

/// Builds a [`Commit`] write by write. Start with [`Commit::build`].
#[derive(Debug)]
pub struct CommitBuilder {
    commit: raw::Commit,
}

impl CommitBuilder {
    pub(crate) fn new(txn: &str) -> Self {
        Self {
            commit: raw::Commit {
                txn: txn.into(),
                source: None,
                text: String::new(),
                columns: Vec::new(),
                writes: Vec::new(),
            },
        }
    }

    /// Sets the source name.
    pub fn source(mut self, source: &str) -> Self {
        self.commit.source = Some(source.into());
        self
    }

    /// Adds an insert of `after` into `table`, whose primary key is `key`.
    pub fn insert(
        self,
        table: &str,
        key: &[(&str, Value<'_>)],
        after: &[(&str, Value<'_>)],
    ) -> Self {
        self.write(table, Op::Insert, key, None, Some(after))
    }

    /// Adds an update of a row of `table` from `before` (if known) to `after`.
    pub fn update(
        self,
        table: &str,
        key: &[(&str, Value<'_>)],
        before: Option<&[(&str, Value<'_>)]>,
        after: &[(&str, Value<'_>)],
    ) -> Self {
        self.write(table, Op::Update, key, before, Some(after))
    }

    /// Adds a delete of the row `before` (if known) from `table`.
    pub fn delete(
        self,
        table: &str,
        key: &[(&str, Value<'_>)],
        before: Option<&[(&str, Value<'_>)]>,
    ) -> Self {
        self.write(table, Op::Delete, key, before, None)
    }

    /// Adds any write.
    pub fn write(
        mut self,
        table: &str,
        op: Op,
        key: &[(&str, Value<'_>)],
        before: Option<&[(&str, Value<'_>)]>,
        after: Option<&[(&str, Value<'_>)]>,
    ) -> Self {
        let table = self.span(table);
        let key = self.row(key);
        let before = before.map(|r| self.row(r));
        let after = after.map(|r| self.row(r));
        self.commit.writes.push(raw::Write {
            table,
            op,
            key,
            before,
            after,
        });
        self
    }

    /// The commit.
    pub fn finish(self) -> Commit {
        Commit(self.commit)
    }

    fn span(&mut self, s: &str) -> raw::Span {
        let start = self.commit.text.len() as u32;
        self.commit.text.push_str(s);
        raw::Span {
            start,
            len: s.len() as u32,
        }
    }

    fn row(&mut self, columns: &[(&str, Value<'_>)]) -> raw::Row {
        let start = self.commit.columns.len() as u32;
        for (name, value) in columns {
            let name = self.span(name);
            let value = match *value {
                Value::Null => raw::Value::Null,
                Value::Boolean(b) => raw::Value::Boolean(b),
                Value::Integer(i) => raw::Value::Integer(i),
                Value::Float(x) => raw::Value::Float(x),
                Value::Text(s) => raw::Value::Text(self.span(s)),
            };
            self.commit.columns.push(raw::Column { name, value });
        }
        raw::Row {
            start,
            len: columns.len() as u32,
        }
    }
}
