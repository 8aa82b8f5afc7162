//! [`Assembler`]: turns the decoded replication stream (Begin, row
//! changes, Commit) into [`Commit`]s, one per Postgres transaction, in the
//! shape rules expect.
//!
//! - Tables are named `schema.table`, or plain `table` in `public`, so
//!   rules written against an application's table names work unchanged.
//! - `key` holds the table's real primary-key columns, as the catalog says
//!   ([`Relation::key`]): with `REPLICA IDENTITY FULL` the stream flags
//!   every column as a key column.
//! - Values are typed by their column's type: `bool` → boolean,
//!   `int2`/`int4`/`int8` → integer, `float4`/`float8` → float, anything
//!   else → text as Postgres prints it; SQL `NULL` → null.
//! - A `before` image that holds only the replica identity (tables without
//!   `REPLICA IDENTITY FULL`) is cut down to those columns: the stream sends
//!   the others as nulls, and a rule must not read them as values.
//! - An unchanged TOASTed column is absent from the new row; it is taken
//!   from `before` when that has it, else left out, so that rules see it as
//!   unchanged rather than as changed to null.
//! - `TRUNCATE` is a delete with an empty key and images: rules cannot name
//!   the rows, so they fall back to their declared fallbacks.
//!
//! Nothing here does I/O: the source feeds it events and the primary keys
//! it read from the catalog.

use std::collections::HashMap;
use std::sync::Arc;

use pg_walstream::{ColumnValue, EventType, Lsn, ReplicaIdentity, RowData};

use crate::commit::{Commit, Op, Row, Value, Write};

/// Type ids of the built-in types mapped to something other than text
/// (`pg_type.oid`; fixed for built-in types).
mod oid {
    pub(super) const BOOL: u32 = 16;
    pub(super) const INT8: u32 = 20;
    pub(super) const INT2: u32 = 21;
    pub(super) const INT4: u32 = 23;
    pub(super) const FLOAT4: u32 = 700;
    pub(super) const FLOAT8: u32 = 701;
}

/// What is known of a published table.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    /// Its name as rules see it.
    pub(crate) table: String,
    /// Each column's type id, by name.
    pub(crate) types: HashMap<Arc<str>, u32>,
    /// The primary-key columns, in key order (from the catalog; else the
    /// replica identity's columns).
    pub(crate) key: Vec<String>,
}

/// Something in the stream that could not be taken as it is; logged with
/// its position by the source, never fatal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Oddity {
    /// Where in the WAL.
    pub(crate) lsn: Lsn,
    /// What was odd, and what was done instead.
    pub(crate) what: String,
}

/// The transaction being read.
struct Open {
    xid: u32,
    writes: Vec<Write>,
}

/// Assembles transactions from the stream's events.
pub(crate) struct Assembler {
    /// `postgres:DBNAME`, each commit's source.
    source: String,
    relations: HashMap<u32, Relation>,
    open: Option<Open>,
    /// What was odd since last taken.
    oddities: Vec<Oddity>,
}

/// The name rules see for `schema.table`.
pub(crate) fn table_name(schema: &str, table: &str) -> String {
    if schema == "public" {
        table.to_owned()
    } else {
        format!("{schema}.{table}")
    }
}

impl Assembler {
    /// An assembler for database `database`.
    pub(crate) fn new(database: &str) -> Self {
        Self {
            source: format!("postgres:{database}"),
            relations: HashMap::new(),
            open: None,
            oddities: Vec::new(),
        }
    }

    /// Records (or replaces) what is known of relation `id`.
    pub(crate) fn relation(&mut self, id: u32, relation: Relation) {
        self.relations.insert(id, relation);
    }

    /// Whether a transaction is being read: its position is not to be
    /// confirmed.
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Forgets the transaction being read: the connection was lost, and
    /// the next one replays it from its start.
    pub(crate) fn reset(&mut self) {
        self.open = None;
    }

    /// The oddities met since the last call.
    pub(crate) fn take_oddities(&mut self) -> Vec<Oddity> {
        std::mem::take(&mut self.oddities)
    }

    /// Takes one event. Returns the transaction it completed, if it was a
    /// commit.
    pub(crate) fn event(&mut self, event: &EventType, lsn: Lsn) -> Option<Commit> {
        match event {
            EventType::Begin { transaction_id, .. } => {
                // A reconnect replays from the confirmed position: a
                // transaction half read before it starts over.
                self.open = Some(Open {
                    xid: *transaction_id,
                    writes: Vec::new(),
                });
            }
            EventType::Commit { .. } => {
                let Some(open) = self.open.take() else {
                    self.odd(lsn, "a commit with no transaction begun; ignored".into());
                    return None;
                };
                return Some(Commit {
                    txn: open.xid.to_string(),
                    source: Some(self.source.clone()),
                    writes: open.writes,
                });
            }
            EventType::Insert {
                relation_oid, data, ..
            } => {
                let write = self.insert(*relation_oid, data, lsn);
                self.push(write, lsn);
            }
            EventType::Update {
                relation_oid,
                old_data,
                new_data,
                replica_identity,
                key_columns,
                ..
            } => {
                let before = old_data.as_ref().map(|old| {
                    self.before(*relation_oid, old, *replica_identity, key_columns, lsn)
                });
                let write = self.update(*relation_oid, before, new_data, lsn);
                self.push(write, lsn);
            }
            EventType::Delete {
                relation_oid,
                old_data,
                replica_identity,
                key_columns,
                ..
            } => {
                let before =
                    self.before(*relation_oid, old_data, *replica_identity, key_columns, lsn);
                let key = self.key_of(*relation_oid, &before);
                let write = Write {
                    table: self.table(*relation_oid),
                    op: Op::Delete,
                    key,
                    before: Some(before),
                    after: None,
                };
                self.push(write, lsn);
            }
            EventType::Truncate { tables, .. } => {
                for full in tables {
                    let table = match full.split_once('.') {
                        Some((schema, table)) => table_name(schema, table),
                        None => full.to_string(),
                    };
                    let write = Write {
                        table,
                        op: Op::Delete,
                        key: Row::new(),
                        before: Some(Row::new()),
                        after: None,
                    };
                    self.push(write, lsn);
                }
            }
            // Sent before the first change of a table, and again when its
            // shape changes: the source reads the catalog and calls
            // `relation`.
            EventType::Relation { .. } | EventType::Type { .. } | EventType::Origin { .. } => {}
            other => {
                let name = format!("{other:?}");
                let name = name.split([' ', '{', '(']).next().unwrap_or_default();
                self.odd(lsn, format!("an unexpected `{name}` message; ignored"));
            }
        }
        None
    }

    /// Adds `write` to the open transaction.
    fn push(&mut self, write: Write, lsn: Lsn) {
        match &mut self.open {
            Some(open) => open.writes.push(write),
            None => {
                let table = write.table.clone();
                self.odd(
                    lsn,
                    format!("a change to `{table}` outside any transaction; ignored"),
                );
            }
        }
    }

    fn insert(&mut self, relation: u32, data: &RowData, lsn: Lsn) -> Write {
        let after = self.row(relation, data, lsn);
        Write {
            table: self.table(relation),
            op: Op::Insert,
            key: self.key_of(relation, &after),
            before: None,
            after: Some(after),
        }
    }

    fn update(&mut self, relation: u32, before: Option<Row>, new: &RowData, lsn: Lsn) -> Write {
        let mut after = self.row(relation, new, lsn);
        // Unchanged TOASTed columns are absent from the new row: the old
        // row's values are theirs.
        if let (Some(before), Some(rel)) = (&before, self.relations.get(&relation)) {
            for (column, value) in before {
                let known = rel.types.contains_key(column.as_str());
                if known && !after.iter().any(|(c, _)| c == column) {
                    after.push((column.clone(), value.clone()));
                }
            }
        }
        Write {
            table: self.table(relation),
            op: Op::Update,
            key: self.key_of(relation, &after),
            before,
            after: Some(after),
        }
    }

    /// The old row as rules should see it: whole under `REPLICA IDENTITY
    /// FULL`, else only its identity columns (the others arrive as nulls
    /// that are not the row's values).
    fn before(
        &mut self,
        relation: u32,
        old: &RowData,
        identity: ReplicaIdentity,
        identity_columns: &[Arc<str>],
        lsn: Lsn,
    ) -> Row {
        let row = self.row(relation, old, lsn);
        if identity == ReplicaIdentity::Full {
            return row;
        }
        row.into_iter()
            .filter(|(c, _)| identity_columns.iter().any(|k| k.as_ref() == c))
            .collect()
    }

    /// The table's name for rules.
    fn table(&self, relation: u32) -> String {
        self.relations
            .get(&relation)
            .map_or_else(|| format!("relation {relation}"), |r| r.table.clone())
    }

    /// The primary-key columns of `row`.
    fn key_of(&self, relation: u32, row: &Row) -> Row {
        let Some(rel) = self.relations.get(&relation) else {
            return Row::new();
        };
        rel.key
            .iter()
            .filter_map(|k| row.iter().find(|(c, _)| c == k).cloned())
            .collect()
    }

    /// `data` with each value typed by its column.
    fn row(&mut self, relation: u32, data: &RowData, lsn: Lsn) -> Row {
        let types = self.relations.get(&relation).map(|r| &r.types);
        let mut row = Row::with_capacity(data.len());
        let mut odd = Vec::new();
        for (column, value) in data.iter() {
            let ty = types.and_then(|t| t.get(column).copied()).unwrap_or(0);
            let value = typed(ty, value).unwrap_or_else(|v| {
                odd.push(format!(
                    "column `{column}` (type {ty}) holds {v:?}; taken as text"
                ));
                v
            });
            row.push((column.to_string(), value));
        }
        for what in odd {
            self.odd(lsn, what);
        }
        row
    }

    fn odd(&mut self, lsn: Lsn, what: String) {
        self.oddities.push(Oddity { lsn, what });
    }
}

/// `value` as the type `ty` says; `Err` with the value as text when it
/// does not read as that type.
fn typed(ty: u32, value: &ColumnValue) -> Result<Value, Value> {
    let bytes = match value {
        ColumnValue::Null => return Ok(Value::Null),
        ColumnValue::Text(bytes) => bytes,
        // Only sent in binary mode, which this source does not ask for.
        ColumnValue::Binary(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            return Err(Value::Text(format!("\\x{hex}")));
        }
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(Value::Text(String::from_utf8_lossy(bytes).into_owned()));
    };
    let parsed = match ty {
        oid::BOOL => match text {
            "t" => Some(Value::Boolean(true)),
            "f" => Some(Value::Boolean(false)),
            _ => None,
        },
        oid::INT2 | oid::INT4 | oid::INT8 => text.parse().ok().map(Value::Integer),
        // Postgres prints `NaN`, `Infinity` and `-Infinity`, which Rust
        // reads too.
        oid::FLOAT4 | oid::FLOAT8 => text.parse().ok().map(Value::Float),
        _ => return Ok(Value::Text(text.to_owned())),
    };
    parsed.ok_or_else(|| Value::Text(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDER: u32 = 100;

    fn assembler() -> Assembler {
        let mut a = Assembler::new("app");
        a.relation(
            KINDER,
            Relation {
                table: "kinder".into(),
                types: [("id", oid::INT4), ("turnus_id", oid::INT8), ("notes", 25)]
                    .into_iter()
                    .map(|(c, t)| (Arc::from(c), t))
                    .collect(),
                key: vec!["id".into()],
            },
        );
        a
    }

    fn row(pairs: &[(&str, Option<&str>)]) -> RowData {
        let mut r = RowData::new();
        for (c, v) in pairs {
            r.push(
                Arc::from(*c),
                v.map_or(ColumnValue::Null, ColumnValue::text),
            );
        }
        r
    }

    fn begin(xid: u32) -> EventType {
        EventType::Begin {
            transaction_id: xid,
            final_lsn: Lsn::new(0),
            commit_timestamp: Default::default(),
        }
    }

    fn commit() -> EventType {
        EventType::Commit {
            commit_timestamp: Default::default(),
            commit_lsn: Lsn::new(0),
            end_lsn: Lsn::new(0),
        }
    }

    fn update(old: Option<RowData>, new: RowData, identity: ReplicaIdentity) -> EventType {
        EventType::Update {
            schema: "public".into(),
            table: "kinder".into(),
            relation_oid: KINDER,
            old_data: old,
            new_data: new,
            replica_identity: identity,
            key_columns: vec!["id".into()],
        }
    }

    fn one(a: &mut Assembler, events: &[EventType]) -> Commit {
        let mut done = None;
        for e in events {
            done = a.event(e, Lsn::new(1)).or(done);
        }
        done.expect("a commit")
    }

    #[test]
    fn values_are_typed_by_their_column() {
        assert_eq!(
            typed(oid::BOOL, &ColumnValue::text("t")),
            Ok(Value::Boolean(true))
        );
        assert_eq!(
            typed(oid::INT2, &ColumnValue::text("-7")),
            Ok(Value::Integer(-7))
        );
        assert_eq!(
            typed(oid::FLOAT8, &ColumnValue::text("2.5")),
            Ok(Value::Float(2.5))
        );
        assert!(matches!(
            typed(oid::FLOAT4, &ColumnValue::text("-Infinity")),
            Ok(Value::Float(f)) if f == f64::NEG_INFINITY
        ));
        assert_eq!(
            typed(1700, &ColumnValue::text("1.10")),
            Ok(Value::Text("1.10".into()))
        );
        assert_eq!(typed(oid::INT4, &ColumnValue::Null), Ok(Value::Null));
        assert_eq!(
            typed(oid::INT4, &ColumnValue::text("x")),
            Err(Value::Text("x".into())),
            "a value that is not of its type is kept as text, and reported"
        );
    }

    #[test]
    fn a_transaction_is_one_commit_keyed_by_the_primary_key() {
        let mut a = assembler();
        let full = row(&[
            ("id", Some("3")),
            ("turnus_id", Some("1")),
            ("notes", Some("n")),
        ]);
        let moved = row(&[
            ("id", Some("3")),
            ("turnus_id", Some("2")),
            ("notes", Some("n")),
        ]);
        let c = one(
            &mut a,
            &[
                begin(42),
                update(Some(full), moved, ReplicaIdentity::Full),
                commit(),
            ],
        );
        assert_eq!(c.txn, "42");
        assert_eq!(c.source.as_deref(), Some("postgres:app"));
        let w = &c.writes[0];
        assert_eq!((w.table.as_str(), w.op), ("kinder", Op::Update));
        assert_eq!(w.key, vec![("id".to_owned(), Value::Integer(3))]);
        let before = w.before.as_ref().unwrap();
        assert!(before.contains(&("turnus_id".into(), Value::Integer(1))));
        assert!(
            w.after
                .as_ref()
                .unwrap()
                .contains(&("turnus_id".into(), Value::Integer(2)))
        );
    }

    #[test]
    fn an_unchanged_toasted_column_is_taken_from_before() {
        let mut a = assembler();
        let old = row(&[
            ("id", Some("3")),
            ("turnus_id", Some("1")),
            ("notes", Some("long")),
        ]);
        let new = row(&[("id", Some("3")), ("turnus_id", Some("1"))]);
        let c = one(
            &mut a,
            &[
                begin(1),
                update(Some(old), new, ReplicaIdentity::Full),
                commit(),
            ],
        );
        let after = c.writes[0].after.as_ref().unwrap();
        assert!(
            after.contains(&("notes".into(), Value::Text("long".into()))),
            "{after:?}"
        );

        let new = row(&[("id", Some("3")), ("turnus_id", Some("1"))]);
        let c = one(
            &mut a,
            &[
                begin(2),
                update(None, new, ReplicaIdentity::Default),
                commit(),
            ],
        );
        let after = c.writes[0].after.as_ref().unwrap();
        assert!(
            !after.iter().any(|(c, _)| c == "notes"),
            "without a before image it is left out, not null: {after:?}"
        );
    }

    #[test]
    fn a_key_only_old_row_keeps_only_its_key() {
        let mut a = assembler();
        let old = row(&[("id", Some("3")), ("turnus_id", None), ("notes", None)]);
        let c = one(
            &mut a,
            &[
                begin(1),
                EventType::Delete {
                    schema: "public".into(),
                    table: "kinder".into(),
                    relation_oid: KINDER,
                    old_data: old,
                    replica_identity: ReplicaIdentity::Default,
                    key_columns: vec!["id".into()],
                },
                commit(),
            ],
        );
        let w = &c.writes[0];
        assert_eq!(w.op, Op::Delete);
        assert_eq!(
            w.before.as_deref(),
            Some(&[("id".to_owned(), Value::Integer(3))][..])
        );
        assert_eq!(w.key, vec![("id".to_owned(), Value::Integer(3))]);
    }

    #[test]
    fn truncate_is_a_delete_with_nothing_known() {
        let mut a = assembler();
        let c = one(
            &mut a,
            &[
                begin(1),
                EventType::Truncate {
                    tables: vec!["public.kinder".into(), "shop.bills".into()],
                    cascade: false,
                    restart_identity: false,
                },
                commit(),
            ],
        );
        let tables: Vec<&str> = c.writes.iter().map(|w| w.table.as_str()).collect();
        assert_eq!(tables, ["kinder", "shop.bills"]);
        assert!(
            c.writes
                .iter()
                .all(|w| w.op == Op::Delete && w.key.is_empty())
        );
    }

    #[test]
    fn a_replayed_begin_starts_the_transaction_over() {
        let mut a = assembler();
        let ins = EventType::Insert {
            schema: "public".into(),
            table: "kinder".into(),
            relation_oid: KINDER,
            data: row(&[("id", Some("1")), ("turnus_id", Some("1"))]),
        };
        assert!(a.event(&begin(7), Lsn::new(1)).is_none());
        a.event(&ins, Lsn::new(2));
        assert!(a.is_open());
        let c = one(&mut a, &[begin(7), ins.clone(), commit()]);
        assert_eq!(c.writes.len(), 1, "the half-read copy is dropped");
        assert!(!a.is_open());
        assert!(a.event(&commit(), Lsn::new(9)).is_none());
        assert_eq!(a.take_oddities().len(), 1, "a stray commit is reported");
    }
}
