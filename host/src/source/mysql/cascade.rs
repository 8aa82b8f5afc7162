//! [`Cascades`]: the rows a foreign key's `ON DELETE` or `ON UPDATE`
//! action changes, which the binary log does not carry.
//!
//! InnoDB applies `CASCADE`, `SET NULL` and `SET DEFAULT` inside the
//! engine, and neither MariaDB nor MySQL 8 writes the child rows it
//! changes to the log: a replica's InnoDB redoes them. A reader of the log
//! sees the parent's row and nothing else, so every cached child would
//! stay. (Postgres's log has them as ordinary rows.) So the source reads
//! the foreign keys with such actions (`information_schema`, which shows a
//! user only the tables it holds a privilege on: hence the `REFERENCES`
//! grant `check` asks for) and, for each parent row deleted or whose
//! referenced columns change, adds a write of the child table with what is
//! known: the foreign-key columns' old (and new) values, and no key. A
//! rule that can name the children from those columns does; one that
//! needs more fails, and its fallback applies. Children of children
//! follow, as far as their columns are known.

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::MysqlError;
use crate::commit::{Op, Row, Value, Write};

/// A foreign key's action on its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `CASCADE`: children deleted, or their columns set to the parent's
    /// new values.
    Cascade,
    /// `SET NULL`: the children's columns set to `NULL`.
    SetNull,
    /// `SET DEFAULT`: the children's columns set to their defaults
    /// (unknown here).
    SetDefault,
    /// `RESTRICT` or `NO ACTION`: the children are never changed.
    Nothing,
}

impl Action {
    fn of(rule: &str) -> Self {
        match rule.to_ascii_uppercase().as_str() {
            "CASCADE" => Self::Cascade,
            "SET NULL" => Self::SetNull,
            "SET DEFAULT" => Self::SetDefault,
            _ => Self::Nothing,
        }
    }
}

/// One foreign key, seen from its parent table.
#[derive(Debug, Clone)]
struct Link {
    /// The child table, named as rules see it.
    child: String,
    /// (child column, parent column) pairs.
    columns: Vec<(String, String)>,
    on_delete: Action,
    on_update: Action,
}

/// The foreign keys whose actions change other tables, by parent table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cascades {
    by_parent: HashMap<String, Vec<Link>>,
}

/// How deep a chain of cascades is followed: deeper is unusual, and a
/// cycle of `ON UPDATE CASCADE` keys must end.
const MAX_DEPTH: usize = 16;

/// Each foreign-key column of a key whose delete or update action is not
/// `RESTRICT`/`NO ACTION`, in key order.
const QUERY: &str = "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, \
     k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, \
     r.DELETE_RULE, r.UPDATE_RULE \
     FROM information_schema.KEY_COLUMN_USAGE k \
     JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
       ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
      AND r.TABLE_NAME = k.TABLE_NAME \
     WHERE k.REFERENCED_TABLE_NAME IS NOT NULL \
       AND (r.DELETE_RULE <> 'RESTRICT' AND r.DELETE_RULE <> 'NO ACTION' \
         OR r.UPDATE_RULE <> 'RESTRICT' AND r.UPDATE_RULE <> 'NO ACTION') \
     ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION";

/// One row of [`QUERY`].
type KeyColumn = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

impl Cascades {
    /// The foreign keys the user behind `conn` can see; `database` is the
    /// URL's, whose tables go by their plain names.
    pub(crate) async fn load(conn: &mut Conn, database: &str) -> Result<Self, MysqlError> {
        let rows: Vec<KeyColumn> = conn
            .query(QUERY)
            .await
            .map_err(MysqlError::of_statement(QUERY))?;
        Ok(Self::from_rows(rows, database))
    }

    fn from_rows(rows: Vec<KeyColumn>, database: &str) -> Self {
        let name = |db: &str, table: &str| {
            if db == database {
                table.to_owned()
            } else {
                format!("{db}.{table}")
            }
        };
        let mut by_parent: HashMap<String, Vec<Link>> = HashMap::new();
        // Keyed by (child, constraint): a key of several columns is one
        // link.
        let mut seen: HashMap<(String, String), (String, usize)> = HashMap::new();
        for (db, table, constraint, column, parent_db, parent, parent_column, delete, update) in
            rows
        {
            let child = name(&db, &table);
            let parent = name(&parent_db, &parent);
            let id = (child.clone(), constraint);
            if let Some((p, i)) = seen.get(&id) {
                by_parent.get_mut(p).expect("seen")[*i]
                    .columns
                    .push((column, parent_column));
                continue;
            }
            let links = by_parent.entry(parent.clone()).or_default();
            links.push(Link {
                child,
                columns: vec![(column, parent_column)],
                on_delete: Action::of(&delete),
                on_update: Action::of(&update),
            });
            seen.insert(id, (parent, links.len() - 1));
        }
        Self { by_parent }
    }

    /// How many foreign keys with actions are known.
    pub(crate) fn len(&self) -> usize {
        self.by_parent.values().map(Vec::len).sum()
    }

    /// The writes `write`'s foreign-key actions make to other tables, and
    /// theirs in turn.
    pub(crate) fn follow(&self, write: &Write) -> Vec<Write> {
        let mut out = Vec::new();
        if !self.by_parent.is_empty() {
            self.follow_into(write, 0, &mut out);
        }
        out
    }

    fn follow_into(&self, write: &Write, depth: usize, out: &mut Vec<Write>) {
        if depth >= MAX_DEPTH {
            return;
        }
        let Some(links) = self.by_parent.get(&write.table) else {
            return;
        };
        for link in links {
            let Some(child) = link.apply(write) else {
                continue;
            };
            self.follow_into(&child, depth + 1, out);
            out.push(child);
        }
    }
}

impl Link {
    /// The write this key's action makes of `parent`'s write, if any.
    fn apply(&self, parent: &Write) -> Option<Write> {
        let old = |row: &Option<Row>| -> Row {
            self.columns
                .iter()
                .filter_map(|(child, p)| Some((child.clone(), value(row.as_ref()?, p)?.clone())))
                .collect()
        };
        match parent.op {
            Op::Insert => None,
            Op::Delete => {
                let before = old(&parent.before);
                let after = match self.on_delete {
                    Action::Nothing => return None,
                    Action::Cascade => None,
                    Action::SetNull => Some(self.nulls()),
                    Action::SetDefault => Some(Row::new()),
                };
                Some(self.write(before, after))
            }
            Op::Update => {
                if self.on_update == Action::Nothing || !self.changes(parent) {
                    return None;
                }
                let after = match self.on_update {
                    Action::Cascade => old(&parent.after),
                    Action::SetNull => self.nulls(),
                    _ => Row::new(),
                };
                Some(self.write(old(&parent.before), Some(after)))
            }
        }
    }

    /// A write of the child table: an update when `after` is some, else a
    /// delete; its key unknown.
    fn write(&self, before: Row, after: Option<Row>) -> Write {
        Write {
            table: self.child.clone(),
            op: if after.is_some() {
                Op::Update
            } else {
                Op::Delete
            },
            key: Row::new(),
            before: Some(before),
            after,
        }
    }

    fn nulls(&self) -> Row {
        self.columns
            .iter()
            .map(|(child, _)| (child.clone(), Value::Null))
            .collect()
    }

    /// Whether `parent`'s update changes (or may change: an image lacks
    /// it) a column this key references.
    fn changes(&self, parent: &Write) -> bool {
        let (Some(before), Some(after)) = (&parent.before, &parent.after) else {
            return true;
        };
        self.columns
            .iter()
            .any(|(_, p)| match (value(before, p), value(after, p)) {
                (Some(a), Some(b)) => a != b,
                _ => true,
            })
    }
}

fn value<'r>(row: &'r Row, column: &str) -> Option<&'r Value> {
    row.iter().find(|(n, _)| n == column).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        child: &str,
        constraint: &str,
        column: &str,
        parent: &str,
        parent_column: &str,
        delete: &str,
        update: &str,
    ) -> KeyColumn {
        let (db, table) = child.split_once('.').unwrap();
        let (pdb, ptable) = parent.split_once('.').unwrap();
        (
            db.into(),
            table.into(),
            constraint.into(),
            column.into(),
            pdb.into(),
            ptable.into(),
            parent_column.into(),
            delete.into(),
            update.into(),
        )
    }

    fn row(pairs: &[(&str, i64)]) -> Row {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), Value::Integer(*v)))
            .collect()
    }

    fn cascades() -> Cascades {
        Cascades::from_rows(
            vec![
                key(
                    "app.turnus",
                    "t_fk",
                    "kita_id",
                    "app.kita",
                    "id",
                    "CASCADE",
                    "RESTRICT",
                ),
                key(
                    "app.kinder",
                    "k_fk",
                    "turnus_id",
                    "app.turnus",
                    "id",
                    "CASCADE",
                    "CASCADE",
                ),
                key(
                    "app.notes",
                    "n_fk",
                    "turnus_id",
                    "app.turnus",
                    "id",
                    "SET NULL",
                    "SET NULL",
                ),
                key(
                    "other.log",
                    "l_fk",
                    "kita_id",
                    "app.kita",
                    "id",
                    "SET DEFAULT",
                    "NO ACTION",
                ),
            ],
            "app",
        )
    }

    #[test]
    fn a_deleted_parent_deletes_its_children_and_theirs() {
        let c = cascades();
        assert_eq!(c.len(), 4);
        let delete = Write {
            table: "kita".into(),
            op: Op::Delete,
            key: row(&[("id", 7)]),
            before: Some(row(&[("id", 7), ("name", 1)])),
            after: None,
        };
        let writes = c.follow(&delete);
        let shown: Vec<(&str, Op, Option<&Row>, Option<&Row>)> = writes
            .iter()
            .map(|w| (w.table.as_str(), w.op, w.before.as_ref(), w.after.as_ref()))
            .collect();
        let kita = row(&[("kita_id", 7)]);
        let unknown = Row::new();
        let nulls = vec![("turnus_id".to_owned(), Value::Null)];
        assert_eq!(
            shown,
            [
                // The turnus rows' children: their own ids are not known.
                ("kinder", Op::Delete, Some(&unknown), None),
                ("notes", Op::Update, Some(&unknown), Some(&nulls)),
                ("turnus", Op::Delete, Some(&kita), None),
                ("other.log", Op::Update, Some(&kita), Some(&unknown)),
            ]
        );
        assert!(writes.iter().all(|w| w.key.is_empty()));
    }

    #[test]
    fn an_update_cascades_only_when_a_referenced_column_changes() {
        let c = cascades();
        let update = |from: i64, to: i64| Write {
            table: "turnus".into(),
            op: Op::Update,
            key: row(&[("id", from)]),
            before: Some(row(&[("id", from), ("size", 1)])),
            after: Some(row(&[("id", to), ("size", 2)])),
        };
        assert!(c.follow(&update(3, 3)).is_empty());
        let writes = c.follow(&update(3, 4));
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes[0].table, "kinder");
        assert_eq!(writes[0].before, Some(row(&[("turnus_id", 3)])));
        assert_eq!(writes[0].after, Some(row(&[("turnus_id", 4)])));
        assert_eq!(writes[1].table, "notes");
        assert_eq!(
            writes[1].after,
            Some(vec![("turnus_id".to_owned(), Value::Null)])
        );
        // `kita`'s key restricts updates: nothing follows.
        let kita = Write {
            table: "kita".into(),
            ..update(3, 4)
        };
        assert!(c.follow(&kita).is_empty());
        // Inserts change no child.
        let insert = Write {
            op: Op::Insert,
            before: None,
            ..update(3, 4)
        };
        assert!(c.follow(&insert).is_empty());
    }

    #[test]
    fn a_cycle_of_cascading_keys_ends() {
        let c = Cascades::from_rows(
            vec![
                key("app.a", "ab", "b_id", "app.b", "id", "CASCADE", "CASCADE"),
                key("app.b", "ba", "a_id", "app.a", "id", "CASCADE", "CASCADE"),
            ],
            "app",
        );
        let delete = Write {
            table: "a".into(),
            op: Op::Delete,
            key: row(&[("id", 1)]),
            before: Some(row(&[("id", 1)])),
            after: None,
        };
        assert_eq!(c.follow(&delete).len(), MAX_DEPTH);
    }

    #[test]
    fn a_key_of_several_columns_is_one_link() {
        let c = Cascades::from_rows(
            vec![
                key(
                    "app.line",
                    "l_fk",
                    "bill_shop",
                    "app.bill",
                    "shop",
                    "CASCADE",
                    "RESTRICT",
                ),
                key(
                    "app.line", "l_fk", "bill_no", "app.bill", "no", "CASCADE", "RESTRICT",
                ),
            ],
            "app",
        );
        assert_eq!(c.len(), 1);
        let delete = Write {
            table: "bill".into(),
            op: Op::Delete,
            key: row(&[("shop", 1), ("no", 9)]),
            before: Some(row(&[("shop", 1), ("no", 9)])),
            after: None,
        };
        let writes = c.follow(&delete);
        assert_eq!(
            writes[0].before,
            Some(row(&[("bill_shop", 1), ("bill_no", 9)]))
        );
    }
}
