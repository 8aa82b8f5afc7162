//! [`Setup`]: what the database must have for the Postgres source, worked
//! out from what was read of it ([`Facts`]) and what the rules read
//! ([`RuleTables`]), with no I/O of its own.
//!
//! Two users: `serve`, which creates or follows the publication itself
//! when its role may; and `invalidator postgres check`, which prints the
//! SQL an administrator runs for it ([`Setup::script`]). Both decide the
//! same way, so that what `check` prints is what `serve` then finds.
//!
//! The rules of the game:
//! - the publication names the rules' tables, never more: a published
//!   table without a replica identity has its `UPDATE`s and `DELETE`s
//!   refused by Postgres, whoever writes them;
//! - a table without a primary key or replica identity is never
//!   published, and is named with the statement that fixes it;
//! - `FOR ALL TABLES` only when a rule asks for every table, and then the
//!   tables whose writes it would refuse are named.

use std::collections::BTreeSet;

use super::tables::{RuleTables, TableName, sql_ident, sql_literal};

/// How the old row of an update or delete is written to the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// `REPLICA IDENTITY FULL`: every column.
    Full,
    /// The primary key (the default) or a chosen unique index: only those
    /// columns.
    Key,
    /// None (no primary key, or `REPLICA IDENTITY NOTHING`): Postgres
    /// refuses the table's updates and deletes once it is published.
    Nothing,
}

/// A table that exists, and its replica identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    /// Its name.
    pub name: TableName,
    /// How its old rows are identified.
    pub identity: Identity,
}

/// The role the source connects as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleFacts {
    /// Its name.
    pub name: String,
    /// Whether it is a superuser.
    pub superuser: bool,
    /// Whether it has the `REPLICATION` attribute (needed to stream and
    /// to create a slot).
    pub replication: bool,
    /// Whether it may create in the database (needed to create a
    /// publication).
    pub create: bool,
}

/// The publication, as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicationFacts {
    /// Created `FOR ALL TABLES`.
    pub all_tables: bool,
    /// Its owner (only the owner may change its tables).
    pub owner: String,
    /// The tables it names now.
    pub tables: BTreeSet<TableName>,
}

/// The slot, as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotFacts {
    /// Its output plugin.
    pub plugin: String,
    /// Its database.
    pub database: String,
}

/// What was read of the database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// The database's name.
    pub database: String,
    /// `wal_level`.
    pub wal_level: String,
    /// The role connected.
    pub role: RoleFacts,
    /// The publication, when it exists.
    pub publication: Option<PublicationFacts>,
    /// The slot, when it exists.
    pub slot: Option<SlotFacts>,
    /// The tables that exist among those the rules read (every user table
    /// when a rule reads them all).
    pub tables: Vec<TableFacts>,
}

/// What the database should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The tables to publish; `None` for every table.
    pub publish: Option<BTreeSet<TableName>>,
    /// Rules that read every table (why `publish` is `None`).
    pub all_tables_for: Vec<String>,
    /// Tables the rules read that are not in the database.
    pub absent: Vec<TableName>,
    /// Tables without a primary key or replica identity: never published
    /// (or, with every table published, the ones whose writes Postgres
    /// refuses).
    pub no_identity: Vec<TableName>,
    /// Published tables whose identity is not `FULL`: their updates and
    /// deletes carry only the key of the old row.
    pub not_full: Vec<TableName>,
}

impl Setup {
    /// What `facts` call for, for rules reading `wanted`.
    pub fn new(wanted: &RuleTables, facts: &Facts) -> Self {
        let lacking = |identity: Identity| -> Vec<TableName> {
            facts
                .tables
                .iter()
                .filter(|t| t.identity == identity)
                .map(|t| t.name.clone())
                .collect()
        };
        let no_identity = lacking(Identity::Nothing);
        match wanted {
            RuleTables::All(rules) => Self {
                publish: None,
                all_tables_for: rules.clone(),
                absent: Vec::new(),
                not_full: lacking(Identity::Key),
                no_identity,
            },
            RuleTables::Some(wanted) => {
                let existing: BTreeSet<&TableName> = facts.tables.iter().map(|t| &t.name).collect();
                Self {
                    publish: Some(
                        facts
                            .tables
                            .iter()
                            .filter(|t| t.identity != Identity::Nothing)
                            .map(|t| t.name.clone())
                            .collect(),
                    ),
                    all_tables_for: Vec::new(),
                    absent: wanted
                        .iter()
                        .filter(|t| !existing.contains(t))
                        .cloned()
                        .collect(),
                    not_full: lacking(Identity::Key),
                    no_identity,
                }
            }
        }
    }

    /// The tables the rules read that the publication lacks; empty when it
    /// publishes every table. `None` when it does not exist.
    pub fn unpublished(&self, publication: Option<&PublicationFacts>) -> Option<Vec<TableName>> {
        let publication = publication?;
        if publication.all_tables {
            return Some(Vec::new());
        }
        Some(match &self.publish {
            Some(tables) => tables
                .iter()
                .filter(|t| !publication.tables.contains(t))
                .cloned()
                .collect(),
            None => Vec::new(),
        })
    }

    /// The statement that creates publication `name` as it should be.
    pub fn create_publication(&self, name: &str) -> String {
        match &self.publish {
            None => format!("CREATE PUBLICATION {} FOR ALL TABLES", sql_ident(name)),
            Some(tables) if tables.is_empty() => {
                format!("CREATE PUBLICATION {}", sql_ident(name))
            }
            Some(tables) => format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                sql_ident(name),
                list(tables)
            ),
        }
    }

    /// The statement that makes existing publication `name` (not `FOR ALL
    /// TABLES`) name exactly the rules' tables; `None` when it already
    /// does, or when every table is wanted.
    pub fn follow_publication(&self, name: &str, now: &PublicationFacts) -> Option<String> {
        let tables = self.publish.as_ref()?;
        if now.all_tables || &now.tables == tables {
            return None;
        }
        Some(if tables.is_empty() {
            // `SET TABLE` needs at least one table.
            format!(
                "ALTER PUBLICATION {} DROP TABLE {}",
                sql_ident(name),
                list(&now.tables)
            )
        } else {
            format!(
                "ALTER PUBLICATION {} SET TABLE {}",
                sql_ident(name),
                list(tables)
            )
        })
    }

    /// The SQL an administrator runs, as a superuser, so that `serve` can
    /// start as `facts.role` with publication `publication` and slot
    /// `slot`: statements, and what is not SQL as `--` comments, so that
    /// the whole can be piped to `psql`. The flag says whether any
    /// statement is needed.
    pub fn script(&self, facts: &Facts, publication: &str, slot: &str) -> (String, bool) {
        let mut out = Script::default();
        let role = &facts.role;
        out.comment(format!(
            "invalidator postgres check: database {}, role {}, publication {}, slot {}",
            sql_literal(&facts.database),
            sql_literal(&role.name),
            sql_literal(publication),
            sql_literal(slot)
        ));
        match &self.publish {
            Some(tables) => out.comment(format!(
                "the rules read: {}",
                if tables.is_empty() && self.absent.is_empty() {
                    "(no table)".to_owned()
                } else {
                    tables
                        .iter()
                        .chain(&self.absent)
                        .chain(&self.no_identity)
                        .map(ToString::to_string)
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )),
            None => out.comment(format!(
                "rules {} read every table: the publication is FOR ALL TABLES",
                self.all_tables_for.join(", ")
            )),
        }
        if facts.wal_level != "logical" {
            out.comment(format!(
                "wal_level is `{}`: logical replication needs `logical`, and Postgres must be \
                 restarted after this statement",
                facts.wal_level
            ));
            out.statement("ALTER SYSTEM SET wal_level = logical".to_owned());
        }
        if !role.superuser && !role.replication {
            out.comment("the role streams the log and creates its slot: it needs REPLICATION");
            out.statement(format!(
                "ALTER ROLE {} WITH REPLICATION",
                sql_ident(&role.name)
            ));
        }
        let quoted = sql_ident(publication);
        match &facts.publication {
            None => {
                if self.publish.is_none() {
                    out.comment("only a superuser may create or own a FOR ALL TABLES publication");
                }
                out.statement(self.create_publication(publication));
                if !role.superuser && self.publish.is_some() {
                    out.comment("owned by the role, so that serve can follow the rules' tables");
                    out.statement(format!(
                        "ALTER PUBLICATION {quoted} OWNER TO {}",
                        sql_ident(&role.name)
                    ));
                }
            }
            Some(now) => {
                if now.all_tables && self.publish.is_some() {
                    out.comment(format!(
                        "publication {} is FOR ALL TABLES: Postgres refuses updates and deletes \
                         on every table without a replica identity. Made anew for the rules' \
                         tables (run while serve is stopped):",
                        sql_literal(publication)
                    ));
                    out.statement(format!("DROP PUBLICATION {quoted}"));
                    out.statement(self.create_publication(publication));
                    if !role.superuser {
                        out.statement(format!(
                            "ALTER PUBLICATION {quoted} OWNER TO {}",
                            sql_ident(&role.name)
                        ));
                    }
                } else {
                    let missing = self.unpublished(Some(now)).unwrap_or_default();
                    if !missing.is_empty() {
                        out.statement(format!(
                            "ALTER PUBLICATION {quoted} ADD TABLE {}",
                            list(&missing)
                        ));
                    }
                    if !role.superuser && now.owner != role.name && self.publish.is_some() {
                        out.comment(
                            "owned by the role, so that serve can follow the rules' tables",
                        );
                        out.statement(format!(
                            "ALTER PUBLICATION {quoted} OWNER TO {}",
                            sql_ident(&role.name)
                        ));
                    }
                }
            }
        }
        for table in &self.no_identity {
            out.comment(format!(
                "table {} has no primary key or replica identity: it is not published, since \
                 Postgres would then refuse its updates and deletes. Give it a primary key, or:",
                sql_literal(&table.to_string())
            ));
            out.statement(format!("ALTER TABLE {} REPLICA IDENTITY FULL", table.sql()));
        }
        if !self.not_full.is_empty() {
            out.comment(
                "without REPLICA IDENTITY FULL an update or delete carries only the old row's \
                 key: a delete makes a rule that reads other columns fall back, and a row that \
                 moves leaves its old place stale",
            );
            for table in &self.not_full {
                out.statement(format!("ALTER TABLE {} REPLICA IDENTITY FULL", table.sql()));
            }
        }
        for table in &self.absent {
            out.comment(format!(
                "table {} is read by a rule but is not in database {}",
                sql_literal(&table.to_string()),
                sql_literal(&facts.database)
            ));
        }
        match &facts.slot {
            None => out.comment(format!(
                "the replication slot {} is created by serve at its first start",
                sql_literal(slot)
            )),
            Some(s) if s.plugin != "pgoutput" || s.database != facts.database => {
                out.comment(format!(
                    "replication slot {} decodes with `{}` for database `{}`: name another \
                     slot (postgres.slot)",
                    sql_literal(slot),
                    s.plugin,
                    s.database
                ))
            }
            Some(_) => {}
        }
        if !out.statements {
            out.comment("nothing to do: serve can start");
        }
        (out.text, out.statements)
    }
}

/// Names as an SQL list.
fn list<'a>(tables: impl IntoIterator<Item = &'a TableName>) -> String {
    tables
        .into_iter()
        .map(TableName::sql)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lines of SQL being written.
#[derive(Default)]
struct Script {
    text: String,
    statements: bool,
}

impl Script {
    fn comment(&mut self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            self.text.push_str("-- ");
            self.text.push_str(line);
            self.text.push('\n');
        }
    }

    fn statement(&mut self, sql: String) {
        self.text.push_str(&sql);
        self.text.push_str(";\n");
        self.statements = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, identity: Identity) -> TableFacts {
        TableFacts {
            name: TableName::from_rule(name),
            identity,
        }
    }

    fn wanted(names: &[&str]) -> RuleTables {
        RuleTables::Some(names.iter().map(|n| TableName::from_rule(n)).collect())
    }

    fn facts(tables: Vec<TableFacts>) -> Facts {
        Facts {
            database: "app".into(),
            wal_level: "logical".into(),
            role: RoleFacts {
                name: "app".into(),
                ..RoleFacts::default()
            },
            tables,
            ..Facts::default()
        }
    }

    #[test]
    fn only_the_rules_tables_with_an_identity_are_published() {
        let f = facts(vec![
            table("kinder", Identity::Full),
            table("geld", Identity::Key),
            table("legacy", Identity::Nothing),
        ]);
        let setup = Setup::new(&wanted(&["kinder", "geld", "legacy", "notizen"]), &f);
        assert_eq!(
            setup.create_publication("invalidator"),
            "CREATE PUBLICATION invalidator FOR TABLE public.geld, public.kinder"
        );
        assert_eq!(setup.no_identity, [TableName::from_rule("legacy")]);
        assert_eq!(setup.not_full, [TableName::from_rule("geld")]);
        assert_eq!(setup.absent, [TableName::from_rule("notizen")]);
    }

    #[test]
    fn a_rule_reading_every_table_asks_for_all_and_names_the_tables_it_would_break() {
        let f = facts(vec![
            table("kinder", Identity::Full),
            table("legacy", Identity::Nothing),
        ]);
        let setup = Setup::new(&RuleTables::All(vec!["audit".into()]), &f);
        assert_eq!(
            setup.create_publication("p"),
            "CREATE PUBLICATION p FOR ALL TABLES"
        );
        assert_eq!(setup.no_identity, [TableName::from_rule("legacy")]);
    }

    #[test]
    fn the_publication_follows_the_rules_tables() {
        let setup = Setup::new(
            &wanted(&["kinder", "geld"]),
            &facts(vec![
                table("kinder", Identity::Full),
                table("geld", Identity::Full),
            ]),
        );
        let now = PublicationFacts {
            tables: [TableName::from_rule("kinder")].into(),
            ..PublicationFacts::default()
        };
        assert_eq!(
            setup.follow_publication("p", &now).as_deref(),
            Some("ALTER PUBLICATION p SET TABLE public.geld, public.kinder")
        );
        let same = PublicationFacts {
            tables: setup.publish.clone().unwrap(),
            ..PublicationFacts::default()
        };
        assert_eq!(setup.follow_publication("p", &same), None);
    }

    #[test]
    fn the_script_is_sql_with_comments_and_says_whether_anything_is_needed() {
        let f = facts(vec![
            table("kinder", Identity::Key),
            table("legacy", Identity::Nothing),
        ]);
        let setup = Setup::new(&wanted(&["kinder", "legacy"]), &f);
        let (text, needed) = setup.script(&f, "invalidator", "invalidator");
        assert!(needed);
        for line in text.lines() {
            assert!(
                line.starts_with("-- ") || line.ends_with(';'),
                "neither a comment nor a statement: {line}"
            );
        }
        for expected in [
            "ALTER ROLE app WITH REPLICATION;",
            "CREATE PUBLICATION invalidator FOR TABLE public.kinder;",
            "ALTER PUBLICATION invalidator OWNER TO app;",
            "ALTER TABLE public.legacy REPLICA IDENTITY FULL;",
            "ALTER TABLE public.kinder REPLICA IDENTITY FULL;",
        ] {
            assert!(
                text.contains(expected),
                "`{expected}` missing from:\n{text}"
            );
        }

        let ready = Facts {
            role: RoleFacts {
                name: "app".into(),
                replication: true,
                ..RoleFacts::default()
            },
            publication: Some(PublicationFacts {
                owner: "app".into(),
                tables: [TableName::from_rule("kinder")].into(),
                ..PublicationFacts::default()
            }),
            ..facts(vec![table("kinder", Identity::Full)])
        };
        let setup = Setup::new(&wanted(&["kinder"]), &ready);
        let (text, needed) = setup.script(&ready, "invalidator", "invalidator");
        assert!(!needed, "{text}");
        assert!(text.contains("nothing to do"), "{text}");
    }
}
