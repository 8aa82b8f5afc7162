//! [`PostgresError`]: why the Postgres source could not start or lost its
//! connection, naming the database (its password hidden), the statement or
//! the setting concerned.
//!
//! Each message carries the server's own words once: pg_walstream's
//! error is kept as the cause's text ([`reason`]), without its label of
//! how it would retry ("Transient connection error: "), which is the
//! source's business and was wrong for, say, a database that does not
//! exist.

use pg_walstream::ReplicationError;

/// Why the Postgres source failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The database could not be reached or refused the login.
    #[error("cannot connect to Postgres at `{address}`: {}", reason(.error))]
    Connect {
        /// The address, its password hidden.
        address: String,
        /// Why.
        error: ReplicationError,
    },
    /// A catalog query or a setup statement failed.
    #[error("Postgres refused `{statement}`: {}", reason(.error))]
    Statement {
        /// The statement.
        statement: String,
        /// Why.
        error: ReplicationError,
    },
    /// The replication stream failed (the connection dropped, the slot is
    /// in use by another process, the server shut down).
    #[error("the replication stream failed: {}", reason(.0))]
    Stream(ReplicationError),
    /// The session was dropped on purpose: the server stopped streaming
    /// while the connection looked open (its walsender ended, the network
    /// dropped without a word).
    #[error(
        "the server no longer streams from slot `{slot}` though the connection looked open \
         (its walsender ended: wal_sender_timeout, or a dropped network); dropping the session"
    )]
    Silent {
        /// The slot.
        slot: String,
    },
    /// The session was dropped on purpose: what was read could not be
    /// checked for visibility, and is read again.
    #[error(
        "the transactions read could not be checked for visibility; dropping the session to \
         read them again"
    )]
    Unchecked,
    /// No `postgres.url` was given.
    #[error("no `postgres.url` given")]
    NoUrl,
    /// A thread of its own could not get a runtime.
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
    /// The server does not write a logical log.
    #[error(
        "database `{database}` has wal_level = {wal_level}: logical replication needs \
         `wal_level = logical` in postgresql.conf (and a restart)"
    )]
    WalLevel {
        /// The database.
        database: String,
        /// Its `wal_level`.
        wal_level: String,
    },
    /// The role may not stream the log.
    #[error(
        "role `{role}` may not stream the log of database `{database}`: it needs the \
         REPLICATION attribute. {CHECK}"
    )]
    NoReplication {
        /// The role.
        role: String,
        /// The database.
        database: String,
    },
    /// Tables without full identity, which the configuration requires.
    #[error(
        "the rules' tables without REPLICA IDENTITY FULL: {tables}; and \
         `postgres.require_full_identity` is true. Run `ALTER TABLE ... REPLICA IDENTITY FULL` \
         on each"
    )]
    IdentityRequired {
        /// The tables, comma-separated.
        tables: String,
    },
    /// The publication is missing and may not be created.
    #[error(
        "publication `{name}` does not exist in database `{database}`, and `postgres.create` \
         is false: create it with `{sql}`. {CHECK}"
    )]
    NoPublication {
        /// The publication.
        name: String,
        /// The database.
        database: String,
        /// The statement that creates it.
        sql: String,
    },
    /// The publication could not be created.
    #[error("cannot create publication `{name}` as role `{role}`: {cause}. {CHECK}")]
    PublicationNotCreated {
        /// The publication.
        name: String,
        /// The role.
        role: String,
        /// The server's words.
        cause: String,
    },
    /// The publication lacks tables, and the role cannot add them.
    #[error(
        "publication `{name}` lacks the rules' tables {tables} and role `{role}` cannot add \
         them: {cause}. {CHECK}"
    )]
    PublicationNotExtended {
        /// The publication.
        name: String,
        /// The tables missing, comma-separated.
        tables: String,
        /// The role.
        role: String,
        /// The server's words.
        cause: String,
    },
    /// The publication lacks tables, and may not be changed.
    #[error(
        "publication `{name}` lacks the rules' tables {tables}, and `postgres.create` is false: \
         run `{sql}`"
    )]
    PublicationLacksTables {
        /// The publication.
        name: String,
        /// The tables missing, comma-separated.
        tables: String,
        /// The statement that adds them.
        sql: String,
    },
    /// No slot of that name, to drop.
    #[error("there is no replication slot `{name}`; `invalidator postgres slots` lists them")]
    NoSuchSlot {
        /// The slot.
        name: String,
    },
    /// The slot to drop is in use.
    #[error("replication slot `{name}` is in use by a running process; stop it first")]
    SlotInUse {
        /// The slot.
        name: String,
    },
    /// The slot exists for another plugin or database.
    #[error(
        "replication slot `{name}` exists but is not ours to use: it decodes with `{plugin}` \
         for database `{on}`, and this source needs `pgoutput` for `{database}`; name another \
         slot (`postgres.slot`)"
    )]
    SlotNotOurs {
        /// The slot.
        name: String,
        /// Its output plugin.
        plugin: String,
        /// Its database.
        on: String,
        /// Ours.
        database: String,
    },
    /// The slot is missing and may not be created.
    #[error(
        "replication slot `{name}` does not exist, and `postgres.create` is false: create it \
         with `{sql}`"
    )]
    NoSlot {
        /// The slot.
        name: String,
        /// The statement that creates it.
        sql: String,
    },
    /// A name that cannot be quoted as an SQL literal.
    #[error("`{value}`: {reason}")]
    Literal {
        /// The name.
        value: String,
        /// Why.
        reason: String,
    },
}

/// What every refusal a role could fix ends with.
pub(crate) const CHECK: &str = "`invalidator postgres check --postgres URL --rules DIR` prints \
     the SQL that sets the database up for this role";

impl From<ReplicationError> for PostgresError {
    fn from(error: ReplicationError) -> Self {
        Self::Stream(error)
    }
}

impl PostgresError {
    /// Whether retrying cannot help: a refusal, as opposed to an outage.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            Self::Connect { .. }
                | Self::Statement { .. }
                | Self::Stream(_)
                | Self::Silent { .. }
                | Self::Unchecked
                | Self::Runtime(_)
        )
    }

    /// The server's (or the connection's) own words, without what was
    /// being done.
    pub fn cause(&self) -> String {
        match self {
            Self::Connect { error, .. } | Self::Statement { error, .. } | Self::Stream(error) => {
                reason(error)
            }
            other => other.to_string(),
        }
    }
}

/// `error`'s text without pg_walstream's label, trimmed of the newline
/// libpq ends its messages with.
pub(crate) fn reason(error: &ReplicationError) -> String {
    let text = error.to_string();
    let text = match text.split_once(": ") {
        Some((label, rest)) if label.ends_with(" error") || label == "Authentication failed" => {
            rest.to_owned()
        }
        _ => text,
    };
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_said_once_without_the_retry_label() {
        let e = PostgresError::Connect {
            address: "postgres://u@h/nope".into(),
            error: ReplicationError::TransientConnection(
                "connection to server failed: FATAL:  database \"nope\" does not exist\n".into(),
            ),
        };
        let text = e.to_string();
        assert_eq!(
            text,
            "cannot connect to Postgres at `postgres://u@h/nope`: connection to server failed: \
             FATAL:  database \"nope\" does not exist"
        );
        assert!(!text.to_lowercase().contains("transient"), "{text}");
        assert!(
            std::error::Error::source(&e).is_none(),
            "anyhow would print the cause a second time"
        );
    }
}
