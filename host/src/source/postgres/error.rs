//! [`PostgresError`]: why the Postgres source could not start or lost its
//! connection, naming the database (its password hidden), the statement or
//! the setting concerned.

use pg_walstream::ReplicationError;

/// Why the Postgres source failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The database could not be reached or refused the login.
    #[error("cannot connect to Postgres at `{address}`: {source}")]
    Connect {
        /// The address, its password hidden.
        address: String,
        /// Why.
        source: ReplicationError,
    },
    /// A catalog query or a setup statement failed.
    #[error("Postgres refused `{statement}`: {source}")]
    Statement {
        /// The statement.
        statement: String,
        /// Why.
        source: ReplicationError,
    },
    /// The replication stream failed (the connection dropped, the slot is
    /// in use by another process, the server shut down).
    #[error("the replication stream failed: {0}")]
    Stream(#[from] ReplicationError),
    /// What the database lacks and may not be created, or a table without
    /// the replica identity required.
    #[error("{0}")]
    Refused(String),
}

impl PostgresError {
    /// Whether retrying cannot help: a refusal, as opposed to an outage.
    pub fn is_refusal(&self) -> bool {
        matches!(self, PostgresError::Refused(_))
    }
}
