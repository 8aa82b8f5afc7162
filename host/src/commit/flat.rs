//! The flat layout a commit crosses into a rule's sandbox in (see the
//! `commit` record of `wit/rules.wit`): all names and text in one string,
//! and the columns in three lists of plain numbers, so lowering costs a few
//! copies instead of one guest allocation per string and one typed store per
//! field.

use super::{Commit, Op, Value, Write};
use crate::bindings::types as wit;

/// Kind codes of `column-kinds`, as the WIT defines them.
const NULL: u8 = 0;
const BOOLEAN: u8 = 1;
const INTEGER: u8 = 2;
const FLOAT: u8 = 3;
const TEXT: u8 = 4;

/// Lays out the writes of `commit` that `keep` accepts.
pub(crate) fn flatten(commit: &Commit, keep: impl Fn(&Write) -> bool) -> wit::Commit {
    // Rough sizes, so that the buffers rarely grow more than once or twice;
    // an exact first pass costs more than it saves.
    let n = commit.writes.len();
    let mut out = wit::Commit {
        txn: commit.txn.clone(),
        source: commit.source.clone(),
        text: String::with_capacity(n * 96),
        column_names: Vec::with_capacity(n * 8),
        column_kinds: Vec::with_capacity(n * 8),
        column_values: Vec::with_capacity(n * 8),
        writes: Vec::with_capacity(n),
    };
    for w in commit.writes.iter().filter(|w| keep(w)) {
        let start = out.text.len();
        out.text.push_str(&w.table);
        let write = wit::Write {
            table: wit::Span {
                start: start as u32,
                len: w.table.len() as u32,
            },
            op: match w.op {
                Op::Insert => wit::Op::Insert,
                Op::Update => wit::Op::Update,
                Op::Delete => wit::Op::Delete,
            },
            key: row(&mut out, &w.key),
            before: w.before.as_ref().map(|r| row(&mut out, r)),
            after: w.after.as_ref().map(|r| row(&mut out, r)),
        };
        out.writes.push(write);
    }
    out
}

/// Appends `s` to the text and returns its packed span.
fn text(out: &mut wit::Commit, s: &str) -> u64 {
    let start = out.text.len() as u64;
    out.text.push_str(s);
    (start << 32) | s.len() as u64
}

fn row(out: &mut wit::Commit, row: &[(String, Value)]) -> wit::Row {
    let start = out.column_names.len() as u32;
    for (name, value) in row {
        let name = text(out, name);
        let (kind, bits) = match value {
            Value::Null => (NULL, 0),
            Value::Boolean(b) => (BOOLEAN, u64::from(*b)),
            Value::Integer(i) => (INTEGER, *i as u64),
            Value::Float(x) => (FLOAT, x.to_bits()),
            Value::Text(s) => (TEXT, text(out, s)),
        };
        out.column_names.push(name);
        out.column_kinds.push(kind);
        out.column_values.push(bits);
    }
    wit::Row {
        start,
        len: row.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_names_and_text_in_one_string() {
        let commit = Commit {
            txn: "t".into(),
            source: None,
            writes: vec![
                Write {
                    table: "kinder".into(),
                    op: Op::Update,
                    key: vec![("id".into(), Value::Integer(-3))],
                    before: None,
                    after: Some(vec![("name".into(), Value::Text("Mia".into()))]),
                },
                Write {
                    table: "geld".into(),
                    op: Op::Delete,
                    key: vec![("id".into(), Value::Integer(4))],
                    before: None,
                    after: None,
                },
            ],
        };
        let flat = flatten(&commit, |w| w.table == "kinder");
        assert_eq!(flat.text, "kinderidnameMia");
        assert_eq!(flat.writes.len(), 1);
        let w = &flat.writes[0];
        assert_eq!((w.table.start, w.table.len), (0, 6));
        assert_eq!((w.key.start, w.key.len), (0, 1));
        let after = w.after.unwrap();
        assert_eq!((after.start, after.len), (1, 1));
        assert_eq!(flat.column_names, [(6 << 32) | 2, (8 << 32) | 4]);
        assert_eq!(flat.column_kinds, [INTEGER, TEXT]);
        assert_eq!(flat.column_values, [-3i64 as u64, (12 << 32) | 3]);
    }
}
