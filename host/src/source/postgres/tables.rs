//! [`RuleTables`]: which tables the loaded rules read, and so which tables
//! the publication names. Publishing only those keeps us out of the way of
//! every other table: Postgres refuses `UPDATE` and `DELETE` on a published
//! table that has no replica identity, so a publication `FOR ALL TABLES`
//! would break the writes of any table without a primary key.

use std::collections::BTreeSet;
use std::fmt;

use crate::rules::RuleSet;

/// A table as Postgres names it: schema and name. Rules name a table of
/// `public` plainly (`kinder`) and any other as `schema.table`, as the
/// source names the tables of the commits it reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    /// The schema (`public` for a plain name).
    pub schema: String,
    /// The table's name within it.
    pub table: String,
}

impl TableName {
    /// The table a rule names `name`.
    pub fn from_rule(name: &str) -> Self {
        match name.split_once('.') {
            Some((schema, table)) => Self::new(schema, table),
            None => Self::new("public", name),
        }
    }

    /// `schema.table`.
    pub fn new(schema: &str, table: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            table: table.to_owned(),
        }
    }

    /// The table as an SQL name, each part quoted where it must be:
    /// `public.kinder`, `"Sales"."Order"`.
    pub fn sql(&self) -> String {
        format!("{}.{}", sql_ident(&self.schema), sql_ident(&self.table))
    }
}

impl fmt::Display for TableName {
    /// The name as rules write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.schema == "public" {
            write!(f, "{}", self.table)
        } else {
            write!(f, "{}.{}", self.schema, self.table)
        }
    }
}

/// `name` as an SQL identifier: bare when Postgres would read it back
/// unchanged, else double-quoted with its quotes doubled.
pub fn sql_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_reserved(name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The reserved words a table or role is most likely to be called; quoting
/// any other word is harmless, so the list need not be complete.
fn is_reserved(word: &str) -> bool {
    matches!(
        word,
        "all"
            | "and"
            | "check"
            | "column"
            | "default"
            | "from"
            | "group"
            | "order"
            | "select"
            | "table"
            | "to"
            | "user"
            | "where"
    )
}

/// `value` as an SQL string literal.
pub fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// What the rules in service (shadows included) read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTables {
    /// Some rule subscribes to every table (it names none): only a
    /// publication `FOR ALL TABLES` gives it what it asks for. The names
    /// are those rules'.
    All(Vec<String>),
    /// The union of the tables the rules name.
    Some(BTreeSet<TableName>),
}

impl RuleTables {
    /// What the rules in service read together with their shadows: a
    /// shadow runs on the same commits, so its tables are streamed too.
    pub fn of(rules: &RuleSet, shadows: Option<&RuleSet>) -> Self {
        let mut all = Vec::new();
        let mut some = BTreeSet::new();
        for set in std::iter::once(rules).chain(shadows) {
            for rule in set.rules() {
                let tables = &rule.info().tables;
                if tables.is_empty() {
                    all.push(rule.name().to_owned());
                }
                some.extend(tables.iter().map(|t| TableName::from_rule(t)));
            }
        }
        if all.is_empty() {
            Self::Some(some)
        } else {
            Self::All(all)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_map_to_schema_and_table() {
        assert_eq!(
            TableName::from_rule("kinder"),
            TableName::new("public", "kinder")
        );
        assert_eq!(
            TableName::from_rule("sales.orders"),
            TableName::new("sales", "orders")
        );
        assert_eq!(
            TableName::from_rule("sales.orders").to_string(),
            "sales.orders"
        );
        assert_eq!(TableName::from_rule("kinder").to_string(), "kinder");
    }

    #[test]
    fn names_are_quoted_only_where_postgres_needs_it() {
        assert_eq!(TableName::new("public", "kinder").sql(), "public.kinder");
        assert_eq!(
            TableName::new("Sales", "my \"order\"").sql(),
            "\"Sales\".\"my \"\"order\"\"\""
        );
        assert_eq!(sql_ident("user"), "\"user\"");
        assert_eq!(sql_ident("2fa"), "\"2fa\"");
        assert_eq!(sql_literal("it's"), "'it''s'");
    }
}
