//! The flat layout a commit crosses into a rule's sandbox in (see the
//! `commit` record of `wit/rules.wit`): all names and text in one string,
//! everything else in lists of plain numbers, so lowering costs one copy per
//! list instead of one guest allocation per string and one typed store per
//! field.

use super::{Commit, Op, Value, Write};
use crate::bindings::types as wit;

/// Kind codes of `column-kinds`, as the WIT defines them.
const NULL: u8 = 0;
const BOOLEAN: u8 = 1;
const INTEGER: u8 = 2;
const FLOAT: u8 = 3;
const TEXT: u8 = 4;

/// An absent row image in `write-befores` and `write-afters`.
const ABSENT: u64 = u64::MAX;

/// Lays out the writes of `commit` that `keep` accepts.
pub(crate) fn flatten(commit: &Commit, keep: impl Fn(&Write) -> bool) -> wit::Commit {
    flatten_writes(
        commit.txn.clone(),
        commit.source.clone(),
        commit.writes.len(),
        commit.writes.iter().filter(|w| keep(w)),
    )
}

/// Lays out `writes` as one commit named `txn`: how a batch of commits
/// crosses into a rule's sandbox in one call. `hint` is roughly how many
/// writes there are.
pub(crate) fn flatten_writes<'a>(
    txn: String,
    source: Option<String>,
    hint: usize,
    writes: impl Iterator<Item = &'a Write>,
) -> wit::Commit {
    // Rough sizes, so that the buffers rarely grow more than once or twice;
    // an exact first pass costs more than it saves.
    let n = hint;
    let mut out = wit::Commit {
        txn,
        source,
        text: String::with_capacity(n * 96),
        column_names: Vec::with_capacity(n * 8),
        column_kinds: Vec::with_capacity(n * 8),
        column_values: Vec::with_capacity(n * 8),
        write_tables: Vec::with_capacity(n),
        write_ops: Vec::with_capacity(n),
        write_keys: Vec::with_capacity(n),
        write_befores: Vec::with_capacity(n),
        write_afters: Vec::with_capacity(n),
    };
    for w in writes {
        let table = text(&mut out, &w.table);
        out.write_tables.push(table);
        out.write_ops.push(match w.op {
            Op::Insert => 0,
            Op::Update => 1,
            Op::Delete => 2,
        });
        let key = row(&mut out, &w.key);
        out.write_keys.push(key);
        let before = w.before.as_ref().map_or(ABSENT, |r| row(&mut out, r));
        out.write_befores.push(before);
        let after = w.after.as_ref().map_or(ABSENT, |r| row(&mut out, r));
        out.write_afters.push(after);
    }
    out
}

/// Packs a span or a run: `start << 32 | len`.
fn pack(start: usize, len: usize) -> u64 {
    ((start as u64) << 32) | len as u64
}

/// Appends `s` to the text and returns its packed span.
fn text(out: &mut wit::Commit, s: &str) -> u64 {
    let start = out.text.len();
    out.text.push_str(s);
    pack(start, s.len())
}

/// Appends a row's columns and returns their packed run.
fn row(out: &mut wit::Commit, row: &[(String, Value)]) -> u64 {
    let start = out.column_names.len();
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
    pack(start, row.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_names_and_text_in_one_string_and_the_rest_as_numbers() {
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
        assert_eq!(flat.write_tables, [6]);
        assert_eq!(flat.write_ops, [1]);
        assert_eq!(flat.write_keys, [1]);
        assert_eq!(flat.write_befores, [ABSENT]);
        assert_eq!(flat.write_afters, [(1 << 32) | 1]);
        assert_eq!(flat.column_names, [(6 << 32) | 2, (8 << 32) | 4]);
        assert_eq!(flat.column_kinds, [INTEGER, TEXT]);
        assert_eq!(flat.column_values, [-3i64 as u64, (12 << 32) | 3]);
    }
}
