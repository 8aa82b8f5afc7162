//! The flat layout a commit crosses into a rule's sandbox in (see the
//! `commit` record of `wit/rules.wit`): all names and text in one string,
//! everything else in lists of plain numbers (64-bit ones as little-endian
//! bytes), so lowering costs one copy per list instead of one guest
//! allocation per string and one typed store per field.

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

/// How many distinct table and column names one commit's layout shares
/// spans for; past that, names are written out at each use.
const MAX_NAMES: usize = 64;

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
        column_names: Vec::with_capacity(n * 8 * 8),
        column_kinds: Vec::with_capacity(n * 8),
        column_values: Vec::with_capacity(n * 8 * 8),
        write_tables: Vec::with_capacity(n * 8),
        write_ops: Vec::with_capacity(n),
        write_keys: Vec::with_capacity(n * 8),
        write_befores: Vec::with_capacity(n * 8),
        write_afters: Vec::with_capacity(n * 8),
    };
    let mut names = Names::default();
    for w in writes {
        let table = names.span(&mut out, &w.table);
        push(&mut out.write_tables, table);
        out.write_ops.push(match w.op {
            Op::Insert => 0,
            Op::Update => 1,
            Op::Delete => 2,
        });
        let key = row(&mut out, &mut names, &w.key);
        push(&mut out.write_keys, key);
        let before = w
            .before
            .as_ref()
            .map_or(ABSENT, |r| row(&mut out, &mut names, r));
        push(&mut out.write_befores, before);
        let after = w
            .after
            .as_ref()
            .map_or(ABSENT, |r| row(&mut out, &mut names, r));
        push(&mut out.write_afters, after);
    }
    out
}

/// Appends a 64-bit number to one of the byte lists, little-endian.
fn push(list: &mut Vec<u8>, n: u64) {
    list.extend_from_slice(&n.to_le_bytes());
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

/// The names already laid out in a commit's text, so that each distinct
/// table or column name is written once and every use of it points at the
/// same span: a rule can then tell columns apart by span, and compare a
/// name once per call instead of once per column (the Python SDK does; its
/// string slicing would otherwise be most of its cost). The layout stays
/// valid without it, since a name's span only ever points at its text.
#[derive(Default)]
struct Names<'a> {
    seen: Vec<(&'a str, u64)>,
    /// Where the next search starts: after the last name found, since rows
    /// of one table repeat their columns in the same order, so the next
    /// name is usually the next one seen.
    next: usize,
}

impl<'a> Names<'a> {
    /// The span of `name`, laying it out if it is new.
    fn span(&mut self, out: &mut wit::Commit, name: &'a str) -> u64 {
        let n = self.seen.len();
        for k in 0..n {
            let mut i = self.next + k;
            if i >= n {
                i -= n;
            }
            let (seen, span) = self.seen[i];
            if seen == name {
                self.next = i + 1;
                return span;
            }
        }
        let span = text(out, name);
        if n < MAX_NAMES {
            self.seen.push((name, span));
            self.next = n + 1;
        }
        span
    }
}

/// Appends a row's columns and returns their packed run.
fn row<'a>(out: &mut wit::Commit, names: &mut Names<'a>, row: &'a [(String, Value)]) -> u64 {
    let start = out.column_kinds.len();
    for (name, value) in row {
        let name = names.span(out, name);
        let (kind, bits) = match value {
            Value::Null => (NULL, 0),
            Value::Boolean(b) => (BOOLEAN, u64::from(*b)),
            Value::Integer(i) => (INTEGER, *i as u64),
            Value::Float(x) => (FLOAT, x.to_bits()),
            Value::Text(s) => (TEXT, text(out, s)),
        };
        push(&mut out.column_names, name);
        out.column_kinds.push(kind);
        push(&mut out.column_values, bits);
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
        assert_eq!(numbers(&flat.write_tables), [6]);
        assert_eq!(flat.write_ops, [1]);
        assert_eq!(numbers(&flat.write_keys), [1]);
        assert_eq!(numbers(&flat.write_befores), [ABSENT]);
        assert_eq!(numbers(&flat.write_afters), [(1 << 32) | 1]);
        assert_eq!(numbers(&flat.column_names), [(6 << 32) | 2, (8 << 32) | 4]);
        assert_eq!(flat.column_kinds, [INTEGER, TEXT]);
        assert_eq!(numbers(&flat.column_values), [-3i64 as u64, (12 << 32) | 3]);
    }

    #[test]
    fn each_distinct_name_is_laid_out_once_and_values_every_time() {
        let update = |id: i64| Write {
            table: "kinder".into(),
            op: Op::Update,
            key: vec![("id".into(), Value::Integer(id))],
            before: Some(vec![
                ("id".into(), Value::Integer(id)),
                ("name".into(), Value::Text("Mia".into())),
            ]),
            after: Some(vec![
                ("id".into(), Value::Integer(id)),
                ("name".into(), Value::Text("Mia".into())),
            ]),
        };
        let commit = Commit {
            txn: "t".into(),
            source: None,
            writes: vec![update(1), update(2)],
        };
        let flat = flatten(&commit, |_| true);
        assert_eq!(flat.text, "kinderidnameMiaMiaMiaMia");
        let (id, name) = ((6 << 32) | 2, (8 << 32) | 4);
        assert_eq!(
            numbers(&flat.column_names),
            [id, id, name, id, name, id, id, name, id, name]
        );
        assert_eq!(numbers(&flat.write_tables), [6, 6]);
    }

    /// A byte list read back as its 64-bit numbers.
    fn numbers(bytes: &[u8]) -> Vec<u64> {
        assert_eq!(bytes.len() % 8, 0, "a whole number of 8-byte numbers");
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}
