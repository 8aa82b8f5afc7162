//! [`RedisError`]: what can go wrong talking to Redis.

impl RedisError {
    /// Whether no retry can fix this error: Redis answered, and the answer
    /// is about the command or its key, not about the moment. `NOPERM`
    /// (the ACL forbids it), `WRONGTYPE`, `ERR` (a script error, an unknown
    /// command, a syntax error), `EXECABORT`, `NOSCRIPT` and `CROSSSLOT`
    /// are permanent.
    ///
    /// Everything else is transient and retried: the connection, timeouts,
    /// `LOADING`, `BUSY`, `OOM`, `READONLY`, `TRYAGAIN`, `CLUSTERDOWN`,
    /// `MASTERDOWN`, redirections, authentication (an operator can fix the
    /// password on the server while we wait), and codes we do not know:
    /// retrying an error that turns out permanent only delays, while giving
    /// up on a transient one would leave a stale key.
    pub fn is_permanent(&self) -> bool {
        match self {
            RedisError::Url { .. } | RedisError::Protocol { .. } => false,
            RedisError::Redis { source, .. } => {
                let permanent = matches!(
                    source.code(),
                    Some("NOPERM" | "WRONGTYPE" | "ERR" | "EXECABORT" | "NOSCRIPT" | "CROSSSLOT")
                );
                // The one `ERR` about the moment: the server is full of
                // clients, and will not be for ever.
                permanent && !source.to_string().contains("max number of clients")
            }
        }
    }

    /// The error code Redis answered with, if it answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            RedisError::Redis { source, .. } => source.code(),
            _ => None,
        }
    }
}

/// An error from the sink.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
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
    /// Redis answered something this client did not expect.
    #[error("redis at `{endpoint}` answered unexpectedly: {reason}")]
    Protocol {
        /// The endpoint, as configured, without any password.
        endpoint: String,
        /// What was unexpected.
        reason: String,
    },
}
