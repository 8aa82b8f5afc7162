//! [`emptied`]: the tables a DDL statement empties or replaces whole, with
//! no row events in the binary log.
//!
//! - `TRUNCATE [TABLE] t` deletes every row.
//! - `DROP TABLE [IF EXISTS] t, u` deletes them (and a table created again
//!   under the name starts empty).
//! - `RENAME TABLE t TO old, t_new TO t` and `ALTER TABLE t RENAME TO u`
//!   put other rows under a name: the swap that ETL jobs and online schema
//!   tools (gh-ost, pt-online-schema-change) end with.
//!
//! For each, the source hands rules a delete with nothing known, as the
//! Postgres source gives a `TRUNCATE`, so their fallbacks invalidate what
//! was cached of the table. A temporary table is the session's own, never
//! cached by others: its statements name nothing.

/// One token of a statement: a word, a backquoted name, or a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Mark(char),
}

impl Token {
    fn is_word(&self, word: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn name_part(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            Token::Mark(_) => None,
        }
    }
}

/// The statement's tokens, comments left out; `None` for an unterminated
/// backquote or comment.
fn tokens(statement: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = statement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    let c = chars.next()?;
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '`' => {
                let mut name = String::new();
                loop {
                    match chars.next()? {
                        // A doubled backquote is one inside the name.
                        '`' if chars.peek() == Some(&'`') => {
                            chars.next();
                            name.push('`');
                        }
                        '`' => break,
                        c => name.push(c),
                    }
                }
                out.push(Token::Quoted(name));
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut word = c.to_string();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '$' {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            c => out.push(Token::Mark(c)),
        }
    }
    Some(out)
}

/// Reads `[db.]name` at `at`, moving past it.
fn name(tokens: &[Token], at: &mut usize) -> Option<(Option<String>, String)> {
    let first = tokens.get(*at)?.name_part()?.to_owned();
    *at += 1;
    if tokens.get(*at) == Some(&Token::Mark('.')) {
        let second = tokens.get(*at + 1)?.name_part()?.to_owned();
        *at += 2;
        return Some((Some(first), second));
    }
    Some((None, first))
}

/// The tables `statement` empties or replaces, named as rules see tables
/// (plain for `database`, the URL's); `schema` is the session's database,
/// for a name without one. Empty for any other statement.
pub(crate) fn emptied(statement: &str, schema: &str, database: &str) -> Vec<String> {
    let Some(tokens) = tokens(statement) else {
        return Vec::new();
    };
    let named = names(&tokens).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for (db, table) in named {
        let db = db.unwrap_or_else(|| schema.to_owned());
        let full = if db == database {
            table
        } else {
            format!("{db}.{table}")
        };
        if !out.contains(&full) {
            out.push(full);
        }
    }
    out
}

type Name = (Option<String>, String);

fn names(t: &[Token]) -> Option<Vec<Name>> {
    let first = t.first()?;
    let mut at = 1;
    if first.is_word("TRUNCATE") {
        // `TABLE` is optional, and a table may itself be called `table`.
        if t.get(at)?.is_word("TABLE") && t.get(at + 1).is_some_and(|n| n.name_part().is_some()) {
            at += 1;
        }
        return Some(vec![name(t, &mut at)?]);
    }
    if first.is_word("DROP") {
        if t.get(at)?.is_word("TEMPORARY") {
            return None;
        }
        if !t.get(at)?.is_word("TABLE") {
            return None;
        }
        at += 1;
        if t.get(at).is_some_and(|w| w.is_word("IF")) && t.get(at + 1)?.is_word("EXISTS") {
            at += 2;
        }
        let mut out = vec![name(t, &mut at)?];
        while t.get(at) == Some(&Token::Mark(',')) {
            at += 1;
            out.push(name(t, &mut at)?);
        }
        return Some(out);
    }
    if first.is_word("RENAME") {
        if !t.get(at)?.is_word("TABLE") {
            return None;
        }
        at += 1;
        let mut out = Vec::new();
        loop {
            out.push(name(t, &mut at)?);
            if !t.get(at)?.is_word("TO") {
                return None;
            }
            at += 1;
            out.push(name(t, &mut at)?);
            if t.get(at) != Some(&Token::Mark(',')) {
                return Some(out);
            }
            at += 1;
        }
    }
    if first.is_word("ALTER") {
        while t
            .get(at)
            .is_some_and(|w| w.is_word("ONLINE") || w.is_word("IGNORE"))
        {
            at += 1;
        }
        if !t.get(at)?.is_word("TABLE") {
            return None;
        }
        at += 1;
        let table = name(t, &mut at)?;
        // `RENAME [TO|AS] new`, not `RENAME COLUMN`, `INDEX` or `KEY`.
        let rename = (at..t.len()).find(|&i| {
            t[i].is_word("RENAME")
                && !t
                    .get(i + 1)
                    .is_some_and(|n| n.is_word("COLUMN") || n.is_word("INDEX") || n.is_word("KEY"))
        })?;
        at = rename + 1;
        if t.get(at)
            .is_some_and(|w| w.is_word("TO") || w.is_word("AS"))
        {
            at += 1;
        }
        return Some(vec![table, name(t, &mut at)?]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(statement: &str) -> Vec<String> {
        emptied(statement, "app", "app")
    }

    #[test]
    fn truncate_names_its_table() {
        assert_eq!(e("TRUNCATE inventory"), ["inventory"]);
        assert_eq!(e("  Truncate Table `inventory`;"), ["inventory"]);
        assert_eq!(e("TRUNCATE `app`.inventory"), ["inventory"]);
        assert_eq!(e("TRUNCATE other.t"), ["other.t"]);
        assert_eq!(e("TRUNCATE TABLE `we``ird`"), ["we`ird"]);
        // A table called `table`.
        assert_eq!(e("TRUNCATE table"), ["table"]);
        assert_eq!(emptied("TRUNCATE t", "other", "app"), ["other.t"]);
        assert!(e("TRUNCATED").is_empty());
        assert!(e("TRUNCATE").is_empty());
    }

    #[test]
    fn drop_names_every_table_but_a_temporary_one() {
        assert_eq!(
            e("DROP TABLE IF EXISTS `products`, shop.bills /* generated by server */"),
            ["products", "shop.bills"]
        );
        assert_eq!(e("drop table products"), ["products"]);
        assert!(e("DROP TEMPORARY TABLE IF EXISTS scratch").is_empty());
        assert!(e("DROP INDEX i ON products").is_empty());
        assert!(e("DROP DATABASE app").is_empty());
    }

    #[test]
    fn a_rename_names_both_sides_of_every_pair() {
        assert_eq!(
            e("RENAME TABLE products TO products_old, products_new TO products"),
            ["products", "products_old", "products_new"]
        );
        assert_eq!(
            e("ALTER TABLE `_products_gho` RENAME TO products"),
            ["_products_gho", "products"]
        );
        assert_eq!(e("ALTER ONLINE TABLE a RENAME AS b"), ["a", "b"]);
        assert_eq!(e("ALTER TABLE a ADD COLUMN x int, RENAME b"), ["a", "b"]);
        assert!(e("ALTER TABLE a RENAME COLUMN x TO y").is_empty());
        assert!(e("ALTER TABLE a RENAME INDEX i TO j").is_empty());
        assert!(e("ALTER TABLE a ADD COLUMN x int").is_empty());
    }

    #[test]
    fn other_statements_name_nothing() {
        for statement in [
            "CREATE TABLE t (id int)",
            "UPDATE t SET v = 1",
            "-- DROP TABLE t\nCREATE INDEX i ON t (v)",
            "DROP TABLE `unterminated",
            "",
        ] {
            assert!(e(statement).is_empty(), "{statement}");
        }
    }
}
