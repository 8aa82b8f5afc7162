//! [`MysqlError`]: why the MySQL source could not start or lost its
//! stream, naming the server (its password hidden), the statement or the
//! setting concerned, and how to fix what an administrator must fix.

/// Why the MySQL source failed.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    /// No `mysql.url` was given.
    #[error("no `mysql.url` given")]
    NoUrl,
    /// The URL could not be read.
    #[error("`mysql.url` `{url}` cannot be used: {error}")]
    Url {
        /// The URL, its password hidden.
        url: String,
        /// Why.
        error: mysql_async::UrlError,
    },
    /// The server could not be reached or refused the login.
    #[error("cannot connect to MySQL at `{url}`: {error}")]
    Connect {
        /// The URL, its password hidden.
        url: String,
        /// Why.
        error: mysql_async::Error,
    },
    /// A statement failed.
    #[error("MySQL refused `{statement}`: {error}")]
    Statement {
        /// The statement.
        statement: String,
        /// Why.
        error: mysql_async::Error,
    },
    /// A server too old to read (MySQL before 8.0, MariaDB before 10.5).
    #[error(
        "the server at `{url}` is `{version}`: the binary log is read from MariaDB 10.5 and \
         later, and MySQL 8.0 and later"
    )]
    Unsupported {
        /// The URL, its password hidden.
        url: String,
        /// What `SELECT VERSION()` answered.
        version: String,
    },
    /// The server's binary log cannot serve a reader; each problem with
    /// the statement that fixes it.
    #[error(
        "the server at `{url}` cannot be read from:\n{}\n(`invalidator mysql check` prints \
         the SQL for an administrator)",
        .problems.iter().map(|p| format!("- {p}")).collect::<Vec<_>>().join("\n")
    )]
    Unfit {
        /// The URL, its password hidden.
        url: String,
        /// What is wrong, each with its fix.
        problems: Vec<String>,
    },
    /// The binary log stream failed (the connection dropped, another
    /// reader took this server id, the server shut down).
    #[error("the binary log stream failed: {0}")]
    Stream(mysql_async::Error),
    /// The logs the position needs are purged: what was written since is
    /// unknown.
    #[error(
        "the binary log from position {position} is no longer on the server ({message}): what \
         was written since cannot be read. Restart with `--mysql-resync` (`mysql.resync`) to \
         invalidate the rules' fallback targets and read from the server's current position"
    )]
    Purged {
        /// The position asked for.
        position: String,
        /// The server's words.
        message: String,
    },
    /// Another process reads the log (it holds the lease): this one
    /// stands by.
    #[error("standing by: `{holder}` reads the binary log (it holds the lease in Redis)")]
    Standby {
        /// The process that holds the lease.
        holder: String,
    },
    /// The lease ran out while reading (Redis unreachable for too long,
    /// or this process paused): another may read now, so this one stops.
    #[error("the lease in Redis was lost while reading; standing by")]
    LeaseLost,
    /// The lease could not be taken (Redis unreachable).
    #[error("the lease in Redis cannot be taken: {0}")]
    Lease(crate::redis::RedisError),
    /// The server ended the stream (it shut down, or restarted).
    #[error("the server ended the binary log stream (shut down or restarted)")]
    Ended,
    /// Nothing came, not even a heartbeat, for three heartbeats.
    #[error(
        "the server sent nothing, not even a heartbeat, for {silent_ms} ms; dropping the \
         stream to open it again"
    )]
    Silent {
        /// How long.
        silent_ms: u64,
    },
    /// The position stored in Redis could not be read or is not a GTID
    /// position.
    #[error("the stored position at `{key}`: {reason}")]
    Position {
        /// The Redis key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl MysqlError {
    /// Turns a failure of `statement` into a [`MysqlError::Statement`]
    /// naming it: for `map_err`.
    pub(crate) fn of_statement(statement: &str) -> impl FnOnce(mysql_async::Error) -> Self + '_ {
        move |error| Self::Statement {
            statement: statement.to_owned(),
            error,
        }
    }
}
