//! [`RedisConfig`]: how a [`Redis`](super::Redis) handle reaches and
//! trusts its deployment (timeouts, TLS files), and what it demands of it
//! before an invalidation counts as done (replica acknowledgements, the
//! failover replay window), with the documented defaults.

use std::path::PathBuf;
use std::time::Duration;

/// How to talk to a Redis deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// How long to wait for a connection. Default 1 s.
    pub connect_timeout: Duration,
    /// How long to wait for an answer: a slower Redis counts as failed and
    /// the work is retried. Default 2 s.
    pub response_timeout: Duration,
    /// The certificates of a TLS connection (`rediss://`). Default none:
    /// the system's trusted roots, no client certificate.
    pub tls: TlsFiles,
    /// Replicas that must acknowledge a batch's deletes (`WAIT`) before
    /// the batch counts as applied. Default 0: a batch is applied once
    /// the primary answered, as before; a failover can then lose the
    /// deletes the replica had not received, which only the replay
    /// ([`replay_window`](Self::replay_window)) makes good.
    pub replicas: u32,
    /// How long one `WAIT` for the replicas may take before the batch
    /// counts as unreplicated and is applied again. Default 1 s.
    pub replica_timeout: Duration,
    /// How far back the invalidations applied are kept, to be applied
    /// again on a new primary after a failover. Default 60 s: Sentinel's
    /// default `down-after-milliseconds` (30 s) and a cluster's
    /// `cluster-node-timeout` (15 s) bound how long a failover takes to
    /// start, an election and promotion take a second or two, and the
    /// pipeline's retries reach the new primary within `retry_max` (5 s);
    /// 60 s covers the sum with room for replication lag. Zero keeps
    /// nothing and replays nothing.
    pub replay_window: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            tls: TlsFiles::default(),
            replicas: 0,
            replica_timeout: Duration::from_secs(1),
            replay_window: Duration::from_secs(60),
        }
    }
}

/// PEM files for TLS connections; each absent by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate authorities to trust instead of the system's.
    pub ca: Option<PathBuf>,
    /// This client's certificate, for servers that require one (mutual
    /// TLS); needs [`key`](Self::key).
    pub cert: Option<PathBuf>,
    /// The private key of [`cert`](Self::cert), PKCS#8 or PKCS#1.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether any file is named.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }
}
