//! [`HttpConfig`]: the `[http]` section, as the HTTP source takes it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::text_setting as text;

/// `[http]`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, such as `127.0.0.1:8080` (port 0 picks a free
    /// one). Absent: no HTTP API. Default absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub listen: Option<String>,
    /// Bearer token the mutating endpoints and cache reads require.
    /// Required to listen on an address other than loopback, and there at
    /// least 16 bytes long; never blank. Default absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub token: Option<String>,
    /// A second token that may read the cache (`GET /v1/cache/KEY`) and
    /// nothing else. Default absent: reading takes `token`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub read_token: Option<String>,
    /// Largest request body accepted, in bytes. Default 1 MiB.
    pub body_limit_bytes: usize,
    /// How long `?wait=true` waits for the invalidations to be applied
    /// before answering 504. Default `30s`.
    #[serde(with = "crate::duration::required")]
    pub wait_timeout: Duration,
    /// How long a client may take to send a request's head, and how long
    /// a kept-alive connection may sit idle: past it, the connection is
    /// closed. Default `10s`.
    #[serde(with = "crate::duration::required")]
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body once its head
    /// is in: past it, the answer is 408. Default `30s`.
    #[serde(with = "crate::duration::required")]
    pub body_timeout: Duration,
    /// Most connections open at once; more wait to be accepted. Default
    /// 1024.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            read_token: None,
            body_limit_bytes: 1 << 20,
            wait_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}
