//! [`CommitBuilder`] and [`row!`](crate::row): commits built in code, for a
//! rule's native tests.

use alloc::string::String;
use alloc::vec::Vec;

use crate::bindings::invalidator::rules::types as raw;
use crate::columns::{self, ABSENT, pack};
use crate::{Commit, Op, Value};

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
                column_names: Vec::new(),
                column_kinds: Vec::new(),
                column_values: Vec::new(),
                write_tables: Vec::new(),
                write_ops: Vec::new(),
                write_keys: Vec::new(),
                write_befores: Vec::new(),
                write_afters: Vec::new(),
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
        let table = self.packed(table);
        let key = self.row(key);
        let before = before.map_or(ABSENT, |r| self.row(r));
        let after = after.map_or(ABSENT, |r| self.row(r));
        let c = &mut self.commit;
        columns::push(&mut c.write_tables, table);
        c.write_ops.push(match op {
            Op::Insert => columns::INSERT,
            Op::Update => columns::UPDATE,
            Op::Delete => columns::DELETE,
        });
        columns::push(&mut c.write_keys, key);
        columns::push(&mut c.write_befores, before);
        columns::push(&mut c.write_afters, after);
        self
    }

    /// The commit.
    pub fn finish(self) -> Commit {
        Commit(self.commit)
    }

    fn packed(&mut self, s: &str) -> u64 {
        let start = self.commit.text.len();
        self.commit.text.push_str(s);
        pack(start, s.len())
    }

    /// Appends a row's columns and returns their packed run.
    fn row(&mut self, row: &[(&str, Value<'_>)]) -> u64 {
        let start = self.commit.column_kinds.len();
        for (name, value) in row {
            let name = self.packed(name);
            let (kind, bits) = match *value {
                Value::Null => (columns::NULL, 0),
                Value::Boolean(b) => (columns::BOOLEAN, u64::from(b)),
                Value::Integer(i) => (columns::INTEGER, i as u64),
                Value::Float(x) => (columns::FLOAT, x.to_bits()),
                Value::Text(s) => (columns::TEXT, self.packed(s)),
            };
            columns::push(&mut self.commit.column_names, name);
            self.commit.column_kinds.push(kind);
            columns::push(&mut self.commit.column_values, bits);
        }
        pack(start, row.len())
    }
}
