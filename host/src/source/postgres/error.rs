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
    /// dropped without a word), or what was read could not be checked.
    #[error("{0}")]
    Silent(String),
    /// What the database lacks and may not be created, or a table without
    /// the replica identity required.
    #[error("{0}")]
    Refused(String),
}

impl From<ReplicationError> for PostgresError {
    fn from(error: ReplicationError) -> Self {
        Self::Stream(error)
    }
}

impl PostgresError {
    /// Whether retrying cannot help: a refusal, as opposed to an outage.
    pub fn is_refusal(&self) -> bool {
        matches!(self, PostgresError::Refused(_))
    }

    /// The server's (or the connection's) own words, without what was
    /// being done.
    pub fn cause(&self) -> String {
        match self {
            Self::Connect { error, .. } | Self::Statement { error, .. } | Self::Stream(error) => {
                reason(error)
            }
            Self::Silent(text) | Self::Refused(text) => text.clone(),
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
