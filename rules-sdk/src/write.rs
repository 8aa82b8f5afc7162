//! Reading a [`Write`]: columns from the new or old row image, what changed,
//! typed getters that fail with a [`RuleError`] naming the column; and
//! [`Commit`] helpers to pick writes by table.

use crate::{Column, Commit, Op, RuleError, Value, Values, Write};

/// The value of `name` in `row`, if the row has that column.
fn find<'a>(row: &'a [Column], name: &str) -> Option<&'a Value> {
    row.iter().find(|c| c.name == name).map(|c| &c.value)
}

impl Write {
    /// The column's current value: from the row after the write, else from
    /// the row before it (deletes), else from the primary key. `None` when
    /// no image has the column.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.new(column)
            .or_else(|| self.old(column))
            .or_else(|| find(&self.key, column))
    }

    /// The column's value after the write, if the write has that image and
    /// the image has that column.
    pub fn new(&self, column: &str) -> Option<&Value> {
        self.after.as_deref().and_then(|row| find(row, column))
    }

    /// The column's value before the write, if the write has that image and
    /// the image has that column.
    pub fn old(&self, column: &str) -> Option<&Value> {
        self.before.as_deref().and_then(|row| find(row, column))
    }

    /// Whether the write changed the column. Inserts and deletes change every
    /// column. So does an update without a `before` image (change-data
    /// capture often omits it), or one where neither image has the column:
    /// when in doubt, a rule should invalidate.
    pub fn changed(&self, column: &str) -> bool {
        match (self.op, &self.before, &self.after) {
            (Op::Update, Some(_), Some(_)) => match (self.old(column), self.new(column)) {
                (None, None) => true,
                (old, new) => old != new,
            },
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
    pub fn each(&self, column: &str) -> Result<Values<'_>, RuleError> {
        let (new, old) = (self.new(column), self.old(column));
        if new.is_none() && old.is_none() {
            return match find(&self.key, column) {
                Some(v) => Ok(Values::new(Some(v), None)),
                None => Err(self.missing(column)),
            };
        }
        Ok(Values::new(new, old))
    }

    /// The column's current value (see [`get`](Self::get)), or a
    /// missing-column error naming it.
    pub fn value(&self, column: &str) -> Result<&Value, RuleError> {
        self.get(column).ok_or_else(|| self.missing(column))
    }

    /// The column's current value as text; `None` when it is null.
    pub fn text(&self, column: &str) -> Result<Option<&str>, RuleError> {
        self.typed(column, Value::as_text)
    }

    /// The column's current value as an integer; `None` when it is null.
    pub fn integer(&self, column: &str) -> Result<Option<i64>, RuleError> {
        self.typed(column, Value::as_integer)
    }

    /// The column's current value as a number; `None` when it is null.
    pub fn float(&self, column: &str) -> Result<Option<f64>, RuleError> {
        self.typed(column, Value::as_float)
    }

    /// The column's current value as a boolean; `None` when it is null.
    pub fn boolean(&self, column: &str) -> Result<Option<bool>, RuleError> {
        self.typed(column, Value::as_boolean)
    }

    fn typed<'a, T>(
        &'a self,
        column: &str,
        read: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, RuleError> {
        let value = self.value(column)?;
        if value.is_null() {
            return Ok(None);
        }
        read(value)
            .map(Some)
            .ok_or_else(|| RuleError::wrong_type(&self.table, column))
    }

    fn missing(&self, column: &str) -> RuleError {
        RuleError::missing_column(&self.table, column)
    }
}

impl Commit {
    /// The writes to `table`, in commit order.
    pub fn writes_to<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a Write> + 'a {
        self.writes.iter().filter(move |w| w.table == table)
    }
}
