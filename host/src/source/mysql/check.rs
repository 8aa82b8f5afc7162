//! What the server must be for its binary log to be read, checked at
//! start: a binary log (`log_bin`), in rows (`binlog_format=ROW`), with
//! whole before images (`binlog_row_image=FULL`) and column names and keys
//! (`binlog_row_metadata=FULL`), and a user allowed to read it. Each
//! problem comes with the statement that fixes it, as [`statements`]
//! prints them for an administrator.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::MysqlError;

/// The settings read, and what each must be.
const SETTINGS: [(&str, &str); 3] = [
    ("binlog_format", "ROW"),
    ("binlog_row_image", "FULL"),
    ("binlog_row_metadata", "FULL"),
];

/// The problems of the server behind `conn`, each with its fix; empty
/// when it can be read from.
pub(crate) async fn problems(conn: &mut Conn) -> Result<Vec<String>, MysqlError> {
    let mut problems = Vec::new();
    let statement = "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata";
    let row: Option<(String, String, String, String)> =
        conn.query_first(statement)
            .await
            .map_err(|error| MysqlError::Statement {
                statement: statement.to_owned(),
                error,
            })?;
    let (log_bin, format, image, metadata) = row.unwrap_or_default();
    if log_bin != "1" && !log_bin.eq_ignore_ascii_case("ON") {
        problems.push(
            "the binary log is off (`log_bin`): start the server with `log-bin` (in my.cnf, \
             `[mysqld]` `log-bin = binlog`) and restart it"
                .to_owned(),
        );
    }
    for ((name, wanted), value) in SETTINGS.iter().zip([format, image, metadata]) {
        if !value.eq_ignore_ascii_case(wanted) {
            problems.push(format!(
                "`{name}` is {value}, not {wanted}: `SET GLOBAL {name} = '{wanted}';` (and \
                 `{name} = {wanted}` in my.cnf, to keep it across restarts)"
            ));
        }
    }
    let grants = "SHOW GRANTS FOR CURRENT_USER()";
    let granted: Vec<String> = conn
        .query(grants)
        .await
        .map_err(|error| MysqlError::Statement {
            statement: grants.to_owned(),
            error,
        })?;
    if let Some(missing) = missing_grants(&granted) {
        let user = "SELECT CURRENT_USER()";
        let current: Option<String> =
            conn.query_first(user)
                .await
                .map_err(|error| MysqlError::Statement {
                    statement: user.to_owned(),
                    error,
                })?;
        let current = quoted_user(&current.unwrap_or_default());
        problems.push(format!(
            "the user may not read the binary log (it lacks {missing}): `GRANT REPLICATION \
             SLAVE, BINLOG MONITOR ON *.* TO {current};`"
        ));
    }
    Ok(problems)
}

/// What the grants lack of `REPLICATION SLAVE` and `BINLOG MONITOR` (or
/// its older name, `REPLICATION CLIENT`), if anything.
fn missing_grants(granted: &[String]) -> Option<&'static str> {
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
    match (slave, monitor) {
        (true, true) => None,
        (false, true) => Some("REPLICATION SLAVE"),
        (true, false) => Some("BINLOG MONITOR"),
        (false, false) => Some("REPLICATION SLAVE and BINLOG MONITOR"),
    }
}

/// `user@host` as `CURRENT_USER()` prints it, quoted for a `GRANT`.
fn quoted_user(current: &str) -> String {
    let (user, host) = current.rsplit_once('@').unwrap_or((current, "%"));
    format!("'{user}'@'{host}'")
}

/// The statements an administrator runs to make a server readable by
/// `user` (`'name'@'host'`): what `invalidator mysql check` prints.
pub fn statements(user: &str) -> String {
    let mut out = String::from(
        "-- The binary log must be on: in my.cnf, [mysqld] log-bin = binlog (needs a restart).\n",
    );
    for (name, wanted) in SETTINGS {
        out.push_str(&format!("SET GLOBAL {name} = '{wanted}';\n"));
    }
    out.push_str("-- Keep them across restarts: in my.cnf, [mysqld]\n");
    for (name, wanted) in SETTINGS {
        out.push_str(&format!("--   {name} = {wanted}\n"));
    }
    out.push_str(&format!(
        "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {user};\n\
         -- MySQL 8: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user};\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_grants_are_named() {
        let grants =
            |g: &[&str]| missing_grants(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>());
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
        assert!(statements("'inv'@'%'").contains("SET GLOBAL binlog_row_metadata = 'FULL';"));
    }
}
