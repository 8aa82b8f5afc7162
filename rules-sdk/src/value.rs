//! [`Value`]: a column value, rendered into cache names with `{}`; and
//! [`Values`], the distinct values a column had around a write.

use core::fmt;

/// A column value, borrowed from the commit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// Text.
    Text(&'a str),
}

impl<'a> Value<'a> {
    /// Whether this is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text, if this is a text value.
    pub fn as_text(&self) -> Option<&'a str> {
        match *self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer value.
    pub fn as_integer(&self) -> Option<i64> {
        match *self {
            Value::Integer(i) => Some(i),
            _ => None,
        }
    }

    /// The number, if this is a float or an integer value.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            Value::Integer(i) => Some(i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean value.
    pub fn as_boolean(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }
}

/// Renders a value the way cache names spell it: text as is, integers in
/// decimal, floats in Rust's shortest round-trip form, booleans as
/// `true`/`false`, and null as `null` (which [`Values`] never yields).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}

impl From<i32> for Value<'_> {
    fn from(i: i32) -> Self {
        Value::Integer(i64::from(i))
    }
}

impl From<f64> for Value<'_> {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The distinct non-null values a column had in a write's row images: the
/// new one and, when it differs, the old one too. This is what a rule builds
/// targets from, so that a row moved from one parent to another invalidates
/// both. Yields nothing when the column is null.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    first: Option<Value<'a>>,
    second: Option<Value<'a>>,
}

impl<'a> Values<'a> {
    pub(crate) fn new(new: Option<Value<'a>>, old: Option<Value<'a>>) -> Self {
        let new = new.filter(|v| !v.is_null());
        let old = old.filter(|v| !v.is_null() && Some(*v) != new);
        match new {
            Some(_) => Self {
                first: new,
                second: old,
            },
            None => Self {
                first: old,
                second: None,
            },
        }
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        let next = self.first.take();
        self.first = self.second.take();
        next
    }
}
