//! [`Commit`] and its parts, as services build them and sources parse them.

/// A committed transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The transaction id, as the source names it.
    pub txn: String,
    /// The application or stream the commit came from, if known.
    pub source: Option<String>,
    /// Every row the transaction wrote, in order.
    pub writes: Vec<Write>,
}

/// One row written by a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The table written.
    pub table: String,
    /// Insert, update or delete.
    pub op: Op,
    /// The primary-key columns of the row.
    pub key: Row,
    /// The row before the write: absent on insert, and on updates from
    /// sources that do not send it (rules then count every column changed).
    pub before: Option<Row>,
    /// The row after the write: absent on delete.
    pub after: Option<Row>,
}

/// A row image: column names and values.
pub type Row = Vec<(String, Value)>;

/// What a write did to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new row.
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
}

/// A column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// Text.
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Integer(v.into())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
