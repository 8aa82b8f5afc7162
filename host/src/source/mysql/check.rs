//! What the server must be for its binary log to be read, checked at
//! start: a binary log (`log_bin`), in rows (`binlog_format=ROW`), with
//! whole before images (`binlog_row_image=FULL`) and column names and keys
//! (`binlog_row_metadata=FULL`), on MySQL transaction ids
//! (`gtid_mode=ON`, which a resume needs), and a user allowed to read it.
//! Each
//! problem comes with the statement that fixes it, as `invalidator mysql
//! check` prints them for an administrator ([`check`]).

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::MysqlError;
use super::flavour::Flavour;

/// The settings read, and what each must be.
const SETTINGS: [(&str, &str); 3] = [
    ("binlog_format", "ROW"),
    ("binlog_row_image", "FULL"),
    ("binlog_row_metadata", "FULL"),
];

/// Something the server must change, and the SQL (or `--` comment) that
/// changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub what: String,
    /// What fixes it: SQL, or a `--` comment for what SQL cannot do.
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: `{}`", self.what, self.fix.trim_start_matches("-- "))
    }
}

/// What the server at `url` must change for its binary log to be read;
/// empty when nothing: what `invalidator mysql check` prints.
pub async fn check(url: &str) -> Result<Vec<Problem>, MysqlError> {
    let opts = mysql_async::Opts::from_url(url).map_err(|error| MysqlError::Url {
        url: super::redact(url),
        error,
    })?;
    let mut conn = super::connect(&opts, url).await?;
    let version: String = super::query_one(&mut conn, "SELECT VERSION()").await?;
    let Some(flavour) = Flavour::of(&version) else {
        let _ = conn.disconnect().await;
        return Err(MysqlError::Unsupported {
            url: super::redact(url),
            version,
        });
    };
    let found = problems(&mut conn, flavour).await;
    let _ = conn.disconnect().await;
    found
}

/// The problems of the server behind `conn`, each with its fix; empty
/// when it can be read from.
pub(crate) async fn problems(
    conn: &mut Conn,
    flavour: Flavour,
) -> Result<Vec<Problem>, MysqlError> {
    let mut problems = Vec::new();
    let statement = "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata";
    let row: Option<(String, String, String, String)> = conn
        .query_first(statement)
        .await
        .map_err(MysqlError::of_statement(statement))?;
    let (log_bin, format, image, metadata) = row.unwrap_or_default();
    if log_bin != "1" && !log_bin.eq_ignore_ascii_case("ON") {
        problems.push(Problem {
            what: "the binary log is off (`log_bin`)".to_owned(),
            fix: "-- in my.cnf, [mysqld] log-bin = binlog, then restart the server".to_owned(),
        });
    }
    for ((name, wanted), value) in SETTINGS.iter().zip([format, image, metadata]) {
        if !value.eq_ignore_ascii_case(wanted) {
            problems.push(Problem {
                what: format!(
                    "`{name}` is {value}, not {wanted} (keep it across restarts with \
                     `{name} = {wanted}` in my.cnf)"
                ),
                fix: format!("SET GLOBAL {name} = '{wanted}';"),
            });
        }
    }
    if flavour == Flavour::Mysql {
        let statement = "SELECT @@GLOBAL.gtid_mode";
        let mode: Option<String> = conn
            .query_first(statement)
            .await
            .map_err(MysqlError::of_statement(statement))?;
        let mode = mode.unwrap_or_default();
        if !mode.eq_ignore_ascii_case("ON") {
            problems.push(Problem {
                what: format!(
                    "`gtid_mode` is {mode}, not ON: a reader resumes by GTID (keep it across \
                     restarts with `gtid_mode = ON` and `enforce_gtid_consistency = ON` in \
                     my.cnf)"
                ),
                fix: gtid_mode_steps(&mode),
            });
        }
    }
    let grants = "SHOW GRANTS FOR CURRENT_USER()";
    let granted: Vec<String> = conn
        .query(grants)
        .await
        .map_err(MysqlError::of_statement(grants))?;
    let missing = missing_grants(&granted, flavour);
    let database = "SELECT DATABASE()";
    let database: Option<String> = conn
        .query_first::<Option<String>, _>(database)
        .await
        .map_err(MysqlError::of_statement(database))?
        .flatten();
    let blind = !sees_tables(&granted, database.as_deref());
    if missing.is_none() && !blind {
        return Ok(problems);
    }
    let user = "SELECT CURRENT_USER()";
    let current: Option<String> = conn
        .query_first(user)
        .await
        .map_err(MysqlError::of_statement(user))?;
    let current = quoted_user(&current.unwrap_or_default());
    if let Some(missing) = missing {
        problems.push(Problem {
            what: format!("the user may not read the binary log (it lacks {missing})"),
            fix: format!("GRANT {} ON *.* TO {current};", flavour.grants()),
        });
    }
    if blind {
        let on = database.map_or_else(|| "*.*".to_owned(), |db| format!("`{db}`.*"));
        problems.push(Problem {
            what: format!(
                "the user cannot see the foreign keys of {on}: the rows a key's ON DELETE or \
                 ON UPDATE action changes are not in the binary log, and are invalidated only \
                 when the key is known (REFERENCES lets it see them, and read nothing)"
            ),
            fix: format!("GRANT REFERENCES ON {on} TO {current};"),
        });
    }
    Ok(problems)
}

/// What the grants lack of `REPLICATION SLAVE` and MariaDB's
/// `BINLOG MONITOR` (or its older name, MySQL's `REPLICATION CLIENT`), if
/// anything, named as `flavour` names them.
fn missing_grants(granted: &[String], flavour: Flavour) -> Option<&'static str> {
    let all = granted.iter().any(|g| {
        g.to_ascii_uppercase()
            .contains("GRANT ALL PRIVILEGES ON *.*")
    });
    if all {
        return None;
    }
    let global: String = granted
        .iter()
        .filter(|g| g.contains(" ON *.* "))
        .map(|g| g.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(" ");
    let slave = global.contains("REPLICATION SLAVE") || global.contains("REPLICATION REPLICA");
    let monitor = global.contains("BINLOG MONITOR") || global.contains("REPLICATION CLIENT");
    let mysql = flavour == Flavour::Mysql;
    match (slave, monitor) {
        (true, true) => None,
        (false, true) => Some("REPLICATION SLAVE"),
        (true, false) if mysql => Some("REPLICATION CLIENT"),
        (true, false) => Some("BINLOG MONITOR"),
        (false, false) if mysql => Some("REPLICATION SLAVE and REPLICATION CLIENT"),
        (false, false) => Some("REPLICATION SLAVE and BINLOG MONITOR"),
    }
}

/// Whether the grants let the user see the tables (and so the foreign
/// keys) of `database` in `information_schema`, or of every database when
/// the URL names none: any table privilege on them, at the database or
/// global level.
fn sees_tables(granted: &[String], database: Option<&str>) -> bool {
    let scopes: Vec<String> = std::iter::once(" ON *.* ".to_owned())
        .chain(database.map(|db| format!(" ON `{}`.* ", db.replace('`', "``"))))
        .collect();
    granted.iter().any(|grant| {
        let upper = grant.to_ascii_uppercase();
        let Some(on) = scopes
            .iter()
            .find_map(|scope| grant.find(scope.as_str()).map(|at| (at, scope)))
        else {
            return false;
        };
        let privileges = upper
            .get("GRANT ".len()..on.0)
            .unwrap_or_default()
            .to_owned();
        privileges.split(',').map(str::trim).any(|p| {
            matches!(
                p,
                "ALL PRIVILEGES" | "ALL" | "SELECT" | "REFERENCES" | "INSERT" | "UPDATE" | "DELETE"
            )
        })
    })
}

/// MySQL's way to `gtid_mode=ON` from `mode`: one step at a time, as
/// MySQL requires, with consistency enforced first.
fn gtid_mode_steps(mode: &str) -> String {
    let steps = ["OFF", "OFF_PERMISSIVE", "ON_PERMISSIVE", "ON"];
    let at = steps
        .iter()
        .position(|s| s.eq_ignore_ascii_case(mode))
        .unwrap_or(0);
    let mut sql = vec!["SET GLOBAL enforce_gtid_consistency = ON;".to_owned()];
    sql.extend(
        steps[at + 1..]
            .iter()
            .map(|s| format!("SET GLOBAL gtid_mode = {s};")),
    );
    sql.join(" ")
}

/// `user@host` as `CURRENT_USER()` prints it, quoted for a `GRANT`.
fn quoted_user(current: &str) -> String {
    let (user, host) = current.rsplit_once('@').unwrap_or((current, "%"));
    format!("'{user}'@'{host}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_grants_are_named() {
        let named = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let grants = |g: &[&str]| missing_grants(&named(g), Flavour::Mariadb);
        assert_eq!(
            grants(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]),
            None
        );
        assert_eq!(
            grants(&["GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `inv`@`%`"]),
            None
        );
        assert_eq!(
            grants(&["GRANT REPLICATION SLAVE ON *.* TO `inv`@`%`"]),
            Some("BINLOG MONITOR")
        );
        assert_eq!(
            grants(&[
                "GRANT USAGE ON *.* TO `inv`@`%`",
                "GRANT ALL PRIVILEGES ON `shop`.* TO `inv`@`%`"
            ]),
            Some("REPLICATION SLAVE and BINLOG MONITOR")
        );
        assert_eq!(quoted_user("inv@%"), "'inv'@'%'");
        // MySQL has no BINLOG MONITOR: REPLICATION CLIENT serves, and is
        // what a MySQL user is told to lack.
        assert_eq!(
            grants(&["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `inv`@`%`"]),
            None
        );
        assert_eq!(
            missing_grants(
                &named(&["GRANT REPLICATION SLAVE ON *.* TO `inv`@`%`"]),
                Flavour::Mysql
            ),
            Some("REPLICATION CLIENT")
        );
    }

    #[test]
    fn the_foreign_keys_are_seen_with_any_table_privilege() {
        let sees = |g: &[&str], db: Option<&str>| {
            sees_tables(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>(), db)
        };
        let replication = "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `inv`@`%`";
        assert!(!sees(&[replication], Some("app")));
        assert!(sees(
            &[replication, "GRANT REFERENCES ON `app`.* TO `inv`@`%`"],
            Some("app")
        ));
        assert!(!sees(
            &[replication, "GRANT REFERENCES ON `shop`.* TO `inv`@`%`"],
            Some("app")
        ));
        // With no database in the URL, only a global grant shows them all.
        assert!(!sees(
            &[replication, "GRANT REFERENCES ON `app`.* TO `inv`@`%`"],
            None
        ));
        assert!(sees(
            &["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"],
            None
        ));
        assert!(sees(
            &["GRANT SELECT, REPLICATION SLAVE ON *.* TO `inv`@`%`"],
            None
        ));
    }

    #[test]
    fn gtid_mode_is_raised_one_step_at_a_time() {
        assert_eq!(
            gtid_mode_steps("OFF"),
            "SET GLOBAL enforce_gtid_consistency = ON; SET GLOBAL gtid_mode = OFF_PERMISSIVE; \
             SET GLOBAL gtid_mode = ON_PERMISSIVE; SET GLOBAL gtid_mode = ON;"
        );
        assert_eq!(
            gtid_mode_steps("ON_PERMISSIVE"),
            "SET GLOBAL enforce_gtid_consistency = ON; SET GLOBAL gtid_mode = ON;"
        );
    }
}
