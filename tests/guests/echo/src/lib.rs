//! Echoes each commit back: one key `c|<txn>|<source>` for the commit and
//! one key per write, `w|<index>|<table>|<op>|<key>|<before>|<after>`,
//! where every text is length-prefixed (`<len>:<text>`) and every value
//! typed (`N`, `B0`/`B1`, `I<n>`, `F<bits in hex>`, `T<len>:<text>`), so
//! the encoding is unambiguous and exact. The property tests encode the
//! commit they hand over the same way and compare.
#![no_std]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write as _;

use invalidator_rules::prelude::*;

/// The echo rule.
pub struct Echo;

fn text(out: &mut String, s: &str) {
    let _ = write!(out, "{}:{s}", s.len());
}

fn row(out: &mut String, row: Option<Row<'_>>) {
    let Some(row) = row else {
        out.push('-');
        return;
    };
    let _ = write!(out, "[{}", row.len());
    for (column, value) in row.iter() {
        out.push(';');
        text(out, column);
        out.push('=');
        match value {
            Value::Null => out.push('N'),
            Value::Boolean(b) => out.push_str(if b { "B1" } else { "B0" }),
            Value::Integer(n) => {
                let _ = write!(out, "I{n}");
            }
            Value::Float(f) => {
                let _ = write!(out, "F{:x}", f.to_bits());
            }
            Value::Text(s) => {
                out.push('T');
                text(out, s);
            }
        }
    }
    out.push(']');
}

impl Rule for Echo {
    fn describe() -> RuleInfo {
        RuleInfo::new("echo", "1.0.0").fallback([Target::pattern("*")])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        let mut head = String::from("c|");
        text(&mut head, commit.txn());
        head.push('|');
        match commit.source() {
            Some(source) => text(&mut head, source),
            None => head.push('-'),
        }
        out.key(head);
        for (i, w) in commit.writes().enumerate() {
            let mut key = String::new();
            let op = match w.op() {
                Op::Insert => "insert",
                Op::Update => "update",
                Op::Delete => "delete",
            };
            let _ = write!(key, "w|{i:06}|");
            text(&mut key, w.table());
            let _ = write!(key, "|{op}|");
            row(&mut key, Some(w.key()));
            key.push('|');
            row(&mut key, w.before());
            key.push('|');
            row(&mut key, w.after());
            out.key(key);
        }
        Ok(())
    }
}

export_rule!(Echo);
