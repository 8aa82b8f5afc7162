//! [`Write`]: one row written by the transaction: columns from the new or
//! old row image, what changed, and typed getters that fail with a
//! [`RuleError`] naming the column.

use crate::bindings::invalidator::rules::types as raw;
use crate::columns::{self, ABSENT};
use crate::{Op, Row, RuleError, Value, Values};

/// One row written by a transaction, borrowed from its [`Commit`](crate::Commit).
#[derive(Clone, Copy)]
pub struct Write<'a> {
    commit: &'a raw::Commit,
    /// The write's index in the commit's `write-*` lists.
    index: usize,
}

impl<'a> Write<'a> {
    pub(crate) fn wrap(commit: &'a raw::Commit, index: usize) -> Self {
        Self { commit, index }
    }

    /// The table written.
    pub fn table(&self) -> &'a str {
        self.run(&self.commit.write_tables)
            .map_or("", |t| columns::text(self.commit, t))
    }

    /// Insert, update or delete. An op code the SDK does not know reads as an
    /// update: that errs toward invalidating.
    pub fn op(&self) -> Op {
        match self.commit.write_ops.get(self.index).copied() {
            Some(columns::INSERT) => Op::Insert,
            Some(columns::DELETE) => Op::Delete,
            _ => Op::Update,
        }
    }

    /// The primary-key columns.
    pub fn key(&self) -> Row<'a> {
        Row::new(self.commit, self.run(&self.commit.write_keys).unwrap_or(0))
    }

    /// The row before the write, if the source sent it.
    pub fn before(&self) -> Option<Row<'a>> {
        self.run(&self.commit.write_befores)
            .map(|r| Row::new(self.commit, r))
    }

    /// The row after the write; `None` for deletes.
    pub fn after(&self) -> Option<Row<'a>> {
        self.run(&self.commit.write_afters)
            .map(|r| Row::new(self.commit, r))
    }

    /// This write's entry of a `write-*` list of packed spans or runs,
    /// unless absent.
    fn run(&self, list: &[u8]) -> Option<u64> {
        columns::number(list, self.index).filter(|&r| r != ABSENT)
    }

    /// The column's current value: from the row after the write, else from
    /// the row before it (deletes), else from the primary key. `None` when
    /// no image has the column.
    pub fn get(&self, column: &str) -> Option<Value<'a>> {
        self.new_value(column)
            .or_else(|| self.old_value(column))
            .or_else(|| self.key().get(column))
    }

    /// The column's value after the write, if the write has that image and
    /// the image has that column.
    pub fn new_value(&self, column: &str) -> Option<Value<'a>> {
        self.after().and_then(|row| row.get(column))
    }

    /// The column's value before the write, if the write has that image and
    /// the image has that column.
    pub fn old_value(&self, column: &str) -> Option<Value<'a>> {
        self.before().and_then(|row| row.get(column))
    }

    /// Whether the write changed the column. Inserts and deletes change every
    /// column. So does an update without a `before` image (change-data
    /// capture often omits it), or one where neither image has the column:
    /// when in doubt, a rule should invalidate.
    pub fn changed(&self, column: &str) -> bool {
        match (self.op(), self.before(), self.after()) {
            (Op::Update, Some(_), Some(_)) => {
                match (self.old_value(column), self.new_value(column)) {
                    (None, None) => true,
                    (old, new) => old != new,
                }
            }
            _ => true,
        }
    }

    /// Whether the write changed any of `columns`.
    pub fn changed_any(&self, columns: &[&str]) -> bool {
        columns.iter().any(|c| self.changed(c))
    }

    /// The distinct non-null values of the column around this write: the new
    /// one, and the old one when it differs. Falls back to the primary key
    /// when neither image has the column. Fails when no image has it at all.
    pub fn each(&self, column: &str) -> Result<Values<'a>, RuleError> {
        let (new, old) = (self.new_value(column), self.old_value(column));
        if new.is_none() && old.is_none() {
            return match self.key().get(column) {
                Some(v) => Ok(Values::new(Some(v), None)),
                None => Err(self.missing(column)),
            };
        }
        Ok(Values::new(new, old))
    }

    /// The column's current value (see [`get`](Self::get)), or a
    /// missing-column error naming it.
    pub fn value(&self, column: &str) -> Result<Value<'a>, RuleError> {
        self.get(column).ok_or_else(|| self.missing(column))
    }

    /// The column's current value as text; `None` when it is null.
    pub fn text(&self, column: &str) -> Result<Option<&'a str>, RuleError> {
        self.typed(column, |v| v.as_text())
    }

    /// The column's current value as an integer; `None` when it is null.
    pub fn integer(&self, column: &str) -> Result<Option<i64>, RuleError> {
        self.typed(column, |v| v.as_integer())
    }

    /// The column's current value as a number; `None` when it is null.
    pub fn float(&self, column: &str) -> Result<Option<f64>, RuleError> {
        self.typed(column, |v| v.as_float())
    }

    /// The column's current value as a boolean; `None` when it is null.
    pub fn boolean(&self, column: &str) -> Result<Option<bool>, RuleError> {
        self.typed(column, |v| v.as_boolean())
    }

    fn typed<T>(
        &self,
        column: &str,
        read: impl FnOnce(Value<'a>) -> Option<T>,
    ) -> Result<Option<T>, RuleError> {
        let value = self.value(column)?;
        if value.is_null() {
            return Ok(None);
        }
        read(value)
            .map(Some)
            .ok_or_else(|| RuleError::wrong_type(self.table(), column))
    }

    fn missing(&self, column: &str) -> RuleError {
        RuleError::missing_column(self.table(), column)
    }
}

impl core::fmt::Debug for Write<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Write")
            .field("table", &self.table())
            .field("op", &self.op())
            .field("key", &self.key())
            .field("before", &self.before())
            .field("after", &self.after())
            .finish()
    }
}
