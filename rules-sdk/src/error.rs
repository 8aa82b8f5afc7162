//! Constructors for [`RuleError`].

use alloc::borrow::ToOwned;
use alloc::string::String;

use crate::{ColumnRef, RuleError};

impl RuleError {
    /// `column` of `table` is in neither row image of a write.
    pub fn missing_column(table: &str, column: &str) -> Self {
        Self::MissingColumn(ColumnRef {
            table: table.to_owned(),
            column: column.to_owned(),
        })
    }

    /// `column` of `table` holds a value of a type the rule cannot use.
    pub fn wrong_type(table: &str, column: &str) -> Self {
        Self::WrongType(ColumnRef {
            table: table.to_owned(),
            column: column.to_owned(),
        })
    }

    /// Any other failure, in the rule's own words.
    pub fn other(message: impl Into<String>) -> Self {
        Self::Other(message.into())
    }
}
