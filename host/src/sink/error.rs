//! [`SinkError`]: what can go wrong talking to Redis.

impl SinkError {
    /// Whether Redis refused the command for what a key holds (`WRONGTYPE`):
    /// retrying cannot help, because someone else wrote a value of another
    /// type where we expect ours.
    pub fn is_wrong_type(&self) -> bool {
        matches!(self, SinkError::Redis { source, .. } if source.code() == Some("WRONGTYPE"))
    }
}

/// An error from the sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The Redis address could not be understood.
    #[error("invalid redis url `{url}`: {reason}")]
    Url {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis refused a command, or could not be reached in time.
    #[error("redis at `{endpoint}`: {source}")]
    Redis {
        /// The endpoint, as configured, without any password.
        endpoint: String,
        /// What the client reported.
        #[source]
        source: redis::RedisError,
    },
    /// A request that cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// Redis answered something this client did not expect.
    #[error("redis at `{endpoint}` answered unexpectedly: {reason}")]
    Protocol {
        /// The endpoint, as configured, without any password.
        endpoint: String,
        /// What was unexpected.
        reason: String,
    },
}
