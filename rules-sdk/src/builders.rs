//! Constructors for commits, writes and rows, for rule tests and for hosts
//! that build commits in code.

use crate::{Column, Commit, Op, Row, Value, Write};

/// Builds a [`Row`] from `column => value` pairs; values are anything that
/// converts into a [`Value`] (`&str`, `String`, `i64`, `f64`, `bool`,
/// `Option<_>` for null).
///
/// ```
/// let row = invalidator_rules::row! { "id" => "C1", "income" => 52_000, "note" => None::<&str> };
/// assert_eq!(row.len(), 3);
/// ```
#[macro_export]
macro_rules! row {
    ($($name:expr => $value:expr),* $(,)?) => {
        ::std::vec![$($crate::Column::new($name, $value)),*]
    };
}

impl Column {
    /// A column named `name` holding `value`.
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl Commit {
    /// A commit of transaction `txn` with these writes and no source name.
    pub fn new(txn: impl Into<String>, writes: Vec<Write>) -> Self {
        Self {
            txn: txn.into(),
            source: None,
            writes,
        }
    }
}

impl Write {
    /// An insert of `after` into `table`, whose primary key is `key`.
    pub fn insert(table: impl Into<String>, key: Row, after: Row) -> Self {
        Self {
            table: table.into(),
            op: Op::Insert,
            key,
            before: None,
            after: Some(after),
        }
    }

    /// An update of a row of `table` from `before` (if known) to `after`.
    pub fn update(table: impl Into<String>, key: Row, before: Option<Row>, after: Row) -> Self {
        Self {
            table: table.into(),
            op: Op::Update,
            key,
            before,
            after: Some(after),
        }
    }

    /// A delete of the row `before` (if known) from `table`.
    pub fn delete(table: impl Into<String>, key: Row, before: Option<Row>) -> Self {
        Self {
            table: table.into(),
            op: Op::Delete,
            key,
            before,
            after: None,
        }
    }
}
