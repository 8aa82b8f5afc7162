//! [`RedisSettings`]: the `[redis]` section of `serve`'s configuration:
//! where Redis is, and the [`RedisConfig`] to reach it with, its defaults
//! taken from the library's.
//!
//! `redis = "redis://..."` (a URL alone, as before the section existed)
//! still works, in the file and as `INVALIDATOR_REDIS`: the loader reads
//! it as `url` in the section.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::redis::{RedisConfig, TlsFiles};
use crate::text_setting as text;

/// Where Redis is and how to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://`, `rediss://`, `redis+cluster://`, `rediss+cluster://`,
    /// `redis+sentinel://` or `rediss+sentinel://` (see
    /// [`Endpoint`](crate::redis::Endpoint)); absent: the in-process
    /// store. Default absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub url: Option<String>,
    /// Replicas that must acknowledge each batch's deletes before it counts
    /// as applied. Default 0: acknowledged by the primary alone.
    pub replicas: u32,
    /// How long each `WAIT` for them may take. Default `1s`.
    #[serde(with = "crate::duration::required")]
    pub replica_timeout: Duration,
    /// How far back applied invalidations are kept, to apply again on a
    /// new primary after a failover; `0s` keeps none. Default `1m`.
    #[serde(with = "crate::duration::required")]
    pub replay_window: Duration,
    /// PEM file of the certificate authorities to trust instead of the
    /// system's. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of this client's certificate, for mutual TLS. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of that certificate's private key. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        let library = RedisConfig::default();
        Self {
            url: None,
            replicas: library.replicas,
            replica_timeout: library.replica_timeout,
            replay_window: library.replay_window,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl RedisSettings {
    /// The library's configuration these settings make.
    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            tls: TlsFiles {
                ca: self.tls_ca.clone(),
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
            },
            replicas: self.replicas,
            replica_timeout: self.replica_timeout,
            replay_window: self.replay_window,
            ..RedisConfig::default()
        }
    }

    /// Whether TLS files are named.
    pub fn has_tls_files(&self) -> bool {
        self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_key.is_some()
    }
}
