//! The JSON event format: one commit per line.
//!
//! ```text
//! {"txn":"t-1","source":"app","writes":[{"table":"customers","op":"update",
//!   "key":{"id":"C1"},"before":{"id":"C1","payment_method":"card"},
//!   "after":{"id":"C1","payment_method":"cash"}}]}
//! ```
//! `before` is absent on insert and `after` on delete; `source` is optional;
//! column values are JSON scalars. Unknown fields are rejected rather than
//! ignored, so that a misspelt `befor` cannot silently change what a rule
//! sees.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::{Commit, Op, Row, Value, Write};

/// Why a line is not a valid commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitParseError {
    /// Not JSON, or not the commit's shape (a missing or unknown field, a
    /// value that is no scalar); serde's words, with the line and column.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A write whose row images do not fit its operation, or whose table
    /// has no name.
    #[error("write {n} (table `{table}`): {problem}")]
    Write {
        /// The write's place in the commit, from 1.
        n: usize,
        /// Its table.
        table: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Parses one JSON commit.
pub fn parse_json(line: &str) -> Result<Commit, CommitParseError> {
    let wire: WireCommit = serde_json::from_str(line)?;
    wire.into_commit()
}

/// Parses one commit already read as JSON. Prefer [`parse_json`] on the
/// text: once read as a `serde_json::Value`, an integer beyond 64 bits has
/// become a float, and is taken as one rather than refused.
pub fn commit_from_value(value: serde_json::Value) -> Result<Commit, CommitParseError> {
    // Rows are read from text (see `RowVisitor`).
    parse_json(&value.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCommit {
    txn: String,
    #[serde(default)]
    source: Option<String>,
    writes: Vec<WireWrite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireWrite {
    table: String,
    op: WireOp,
    key: WireRow,
    #[serde(default)]
    before: Option<WireRow>,
    #[serde(default)]
    after: Option<WireRow>,
}

/// The operation, read as a plain string rather than as a serde enum:
/// serde_json words a wrong type differently for an enum read from text
/// ("expected value") than from a `Value` ("invalid type"), and a commit
/// sent over HTTP must be refused with the same words as one on a line.
#[derive(Clone, Copy)]
enum WireOp {
    Insert,
    Update,
    Delete,
}

impl<'de> Deserialize<'de> for WireOp {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(OpVisitor)
    }
}

struct OpVisitor;

impl Visitor<'_> for OpVisitor {
    type Value = WireOp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of `insert`, `update`, `delete`")
    }

    fn visit_str<E: de::Error>(self, op: &str) -> Result<WireOp, E> {
        match op {
            "insert" => Ok(WireOp::Insert),
            "update" => Ok(WireOp::Update),
            "delete" => Ok(WireOp::Delete),
            other => Err(E::unknown_variant(other, &["insert", "update", "delete"])),
        }
    }
}

impl WireCommit {
    fn into_commit(self) -> Result<Commit, CommitParseError> {
        let writes = self
            .writes
            .into_iter()
            .enumerate()
            .map(|(i, w)| w.into_write(i + 1))
            .collect::<Result<_, _>>()?;
        Ok(Commit {
            txn: self.txn,
            source: self.source,
            writes,
        })
    }
}

impl WireWrite {
    /// Checks that the row images fit the operation; `n` counts from 1.
    fn into_write(self, n: usize) -> Result<Write, CommitParseError> {
        let fail = |problem: &'static str| {
            Err(CommitParseError::Write {
                n,
                table: self.table.clone(),
                problem,
            })
        };
        let op = match self.op {
            WireOp::Insert if self.after.is_none() => return fail("an insert needs `after`"),
            WireOp::Insert if self.before.is_some() => {
                return fail("an insert cannot have `before`");
            }
            WireOp::Update if self.after.is_none() => return fail("an update needs `after`"),
            WireOp::Delete if self.after.is_some() => return fail("a delete cannot have `after`"),
            WireOp::Insert => Op::Insert,
            WireOp::Update => Op::Update,
            WireOp::Delete => Op::Delete,
        };
        if self.table.is_empty() {
            return fail("the table name is empty");
        }
        Ok(Write {
            table: self.table,
            op,
            key: self.key.0,
            before: self.before.map(|r| r.0),
            after: self.after.map(|r| r.0),
        })
    }
}

/// A row: a JSON object of column name to scalar.
struct WireRow(Row);

impl<'de> Deserialize<'de> for WireRow {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RowVisitor)
    }
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = WireRow;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of column names to scalar values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireRow, A::Error> {
        let mut row = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(name) = map.next_key::<String>()? {
            // Read as text, so that an integer beyond 64 bits is seen as
            // one: parsed as a value it would already be a float.
            let raw: Box<serde_json::value::RawValue> = map.next_value()?;
            let value = scalar_text(&name, raw.get()).map_err(de::Error::custom)?;
            row.push((name, value));
        }
        Ok(WireRow(row))
    }
}

/// Converts a column value's JSON text into a column value. An integer
/// literal (no fraction, no exponent) must fit in 64 signed bits: beyond,
/// it would become a float that names another row.
fn scalar_text(column: &str, text: &str) -> Result<Value, String> {
    let number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    if number && !text.contains(['.', 'e', 'E']) {
        return text.parse::<i64>().map(Value::Integer).map_err(|_| {
            format!("column `{column}`: integer `{text}` does not fit in 64 signed bits")
        });
    }
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("column `{column}`: {e}"))?;
    scalar(column, json)
}

/// Converts a JSON value into a column value, refusing what the contract
/// cannot carry rather than guessing.
fn scalar(column: &str, json: serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Boolean(b),
        J::String(s) => Value::Text(s),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Integer(i)
            } else if n.is_u64() {
                return Err(format!(
                    "column `{column}`: integer `{n}` does not fit in 64 signed bits"
                ));
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::Array(_) | J::Object(_) => {
            return Err(format!(
                "column `{column}`: values must be JSON scalars (null, boolean, number, string)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let c = parse_json(r#"{"txn":"t-1","source":"app","writes":[{"table":"customers","op":"update","key":{"id":"C1"},"before":{"id":"C1","payment_method":"card"},"after":{"id":"C1","payment_method":"cash","score":700,"rate":1.5,"vip":true,"note":null}}]}"#).unwrap();
        assert_eq!(c.txn, "t-1");
        assert_eq!(c.source.as_deref(), Some("app"));
        let w = &c.writes[0];
        assert_eq!(w.op, Op::Update);
        assert_eq!(w.key[0].1, Value::Text("C1".into()));
        let after = w.after.as_ref().unwrap();
        let values: Vec<_> = after.iter().map(|c| c.1.clone()).collect();
        assert_eq!(
            values,
            [
                Value::Text("C1".into()),
                Value::Text("cash".into()),
                Value::Integer(700),
                Value::Float(1.5),
                Value::Boolean(true),
                Value::Null
            ]
        );
    }

    #[test]
    fn rejects_nested_values_naming_the_column() {
        let err = parse_json(
            r#"{"txn":"t","writes":[{"table":"a","op":"insert","key":{"id":1},"after":{"tags":[1]}}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("column `tags`"), "{err}");
    }

    #[test]
    fn rejects_an_insert_without_after() {
        let err =
            parse_json(r#"{"txn":"t","writes":[{"table":"a","op":"insert","key":{"id":1}}]}"#)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "write 1 (table `a`): an insert needs `after`"
        );
    }

    #[test]
    fn rejects_unknown_fields_and_ops() {
        let err = parse_json(r#"{"txn":"t","writes":[{"table":"a","op":"upsert","key":{}}]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("upsert"), "{err}");
        let err = parse_json(
            r#"{"txn":"t","writes":[{"table":"a","op":"update","key":{},"befor":{},"after":{}}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("befor"), "{err}");
    }

    #[test]
    fn a_wrong_type_of_op_is_worded_alike_from_text_and_from_a_value() {
        // Found by `arbitrary_json_never_panics`: the text form said
        // "expected value", the value form "invalid type: null".
        for op in ["null", "1", "[]", "{}", "true"] {
            let line = format!(r#"{{"writes":[{{"op":{op}}}]}}"#);
            let text = parse_json(&line).unwrap_err().to_string();
            let value = commit_from_value(serde_json::from_str(&line).unwrap())
                .unwrap_err()
                .to_string();
            assert!(
                text.starts_with(&value),
                "{op}: text {text:?}, value {value:?}"
            );
            assert!(
                value.contains("one of `insert`, `update`, `delete`"),
                "{value}"
            );
        }
    }

    #[test]
    fn rejects_integers_beyond_i64() {
        for n in [
            "18446744073709551615",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "123456789012345678901234567890",
        ] {
            let line = format!(
                r#"{{"txn":"t","writes":[{{"table":"a","op":"delete","key":{{"id":{n}}}}}]}}"#
            );
            let err = parse_json(&line).unwrap_err();
            assert!(
                err.to_string().contains("does not fit in 64 signed bits"),
                "{n}: {err}"
            );
            assert!(err.to_string().contains(n), "{n}: {err}");
        }
        for (n, value) in [
            ("9223372036854775807", Value::Integer(i64::MAX)),
            ("-9223372036854775808", Value::Integer(i64::MIN)),
            ("1.5e19", Value::Float(1.5e19)),
            ("-0.5", Value::Float(-0.5)),
        ] {
            let line = format!(
                r#"{{"txn":"t","writes":[{{"table":"a","op":"delete","key":{{"id":{n}}}}}]}}"#
            );
            let commit = parse_json(&line).unwrap();
            assert_eq!(commit.writes[0].key, [("id".to_owned(), value)], "{n}");
        }
    }
}
