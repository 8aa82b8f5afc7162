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
            RedisError::Url { .. }
            | RedisError::Protocol { .. }
            | RedisError::Unreplicated { .. }
            | RedisError::NotPrimary { .. } => false,
            // A file an operator can fix is still no reason to give up on
            // an invalidation; `serve` refuses to start with one anyway.
            RedisError::TlsFile { .. } => false,
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

    /// Why a TLS certificate did not verify (the server's, or ours as the
    /// server saw it), if that is what went wrong: no retry fixes it.
    pub fn certificate_problem(&self) -> Option<String> {
        match self {
            RedisError::Redis { source, .. } => super::tls::certificate_problem(source),
            _ => None,
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
    /// A TLS file could not be used.
    #[error("redis TLS file `{}`: {reason}", file.display())]
    TlsFile {
        /// The file, as configured.
        file: std::path::PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// Fewer replicas than asked acknowledged the deletes in time.
    #[error(
        "redis at `{endpoint}`: primary {node} had {acked} of {wanted} replicas acknowledge the \
         deletes within {timeout_ms} ms"
    )]
    Unreplicated {
        /// The endpoint, as configured, without any password.
        endpoint: String,
        /// The primary that waited.
        node: String,
        /// Replicas that acknowledged.
        acked: u64,
        /// Replicas asked for (`--redis-replicas`).
        wanted: u32,
        /// How long it waited.
        timeout_ms: u64,
    },
    /// The server reached is no primary (yet): a failover behind a fixed
    /// address, or sentinels that have not switched.
    #[error("redis at `{endpoint}`: {node} is a {role}, not a primary; retrying")]
    NotPrimary {
        /// The endpoint, as configured, without any password.
        endpoint: String,
        /// The server reached.
        node: String,
        /// The role it reported.
        role: String,
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
