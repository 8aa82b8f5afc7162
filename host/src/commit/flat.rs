//! The flat layout a commit crosses into a rule's sandbox in (see the
//! `commit` record of `wit/rules.wit`): all names and text in one string,
//! all columns in one list, so lowering costs a handful of copies instead of
//! one guest allocation per string.

use super::{Commit, Op, Value, Write};
use crate::bindings::types as wit;

/// Lays out the writes of `commit` that `keep` accepts.
pub(crate) fn flatten(commit: &Commit, keep: impl Fn(&Write) -> bool) -> wit::Commit {
    let mut out = Flat {
        text: String::new(),
        columns: Vec::new(),
    };
    let writes = commit
        .writes
        .iter()
        .filter(|w| keep(w))
        .map(|w| wit::Write {
            table: out.span(&w.table),
            op: match w.op {
                Op::Insert => wit::Op::Insert,
                Op::Update => wit::Op::Update,
                Op::Delete => wit::Op::Delete,
            },
            key: out.row(&w.key),
            before: w.before.as_ref().map(|r| out.row(r)),
            after: w.after.as_ref().map(|r| out.row(r)),
        })
        .collect();
    wit::Commit {
        txn: commit.txn.clone(),
        source: commit.source.clone(),
        text: out.text,
        columns: out.columns,
        writes,
    }
}

struct Flat {
    text: String,
    columns: Vec<wit::Column>,
}

impl Flat {
    fn span(&mut self, s: &str) -> wit::Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        wit::Span {
            start,
            len: s.len() as u32,
        }
    }

    fn row(&mut self, row: &[(String, Value)]) -> wit::Row {
        let start = self.columns.len() as u32;
        for (name, value) in row {
            let name = self.span(name);
            let value = match value {
                Value::Null => wit::Value::Null,
                Value::Boolean(b) => wit::Value::Boolean(*b),
                Value::Integer(i) => wit::Value::Integer(*i),
                Value::Float(x) => wit::Value::Float(*x),
                Value::Text(s) => wit::Value::Text(self.span(s)),
            };
            self.columns.push(wit::Column { name, value });
        }
        wit::Row {
            start,
            len: row.len() as u32,
        }
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
                    key: vec![("id".into(), Value::Integer(3))],
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
        assert_eq!(
            flat.columns[1].value,
            wit::Value::Text(wit::Span { start: 12, len: 3 })
        );
    }
}
