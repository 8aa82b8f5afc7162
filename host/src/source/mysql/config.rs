//! [`MysqlConfig`]: the `[mysql]` section of the configuration, with its
//! documented defaults: where the server is, who this reader is to it
//! (its `server_id`), and how often it must hear from it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[mysql]`: reading commits from a MariaDB (or MySQL) binary log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlConfig {
    /// The server, as a URL (`mysql://user:password@host:3306/db`); the
    /// database named, if any, is the one whose tables rules see by their
    /// plain names. Absent: no MySQL source. Default absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// This reader's replica id, unique among the server's replicas and
    /// readers: the server ends an older reader with the same id. Default
    /// derived from the host name and the server's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u32>,
    /// How often the server sends a heartbeat while there is nothing to
    /// send; a stream silent for three of these is dropped and opened
    /// again. Default `5s`.
    #[serde(with = "crate::duration::required")]
    pub heartbeat: Duration,
    /// Transactions read and not yet applied, at most: reading pauses at
    /// this bound until the pipeline catches up. Default 10000.
    pub max_in_flight: usize,
    /// Start from the server's current position whatever is stored, after
    /// invalidating the rules' fallback targets: the way out when the
    /// logs the stored position needs are purged. Default `false`.
    pub resync: bool,
    /// How long the reader's lease in Redis lasts without renewal: a
    /// standby `serve` takes over this long after the reader dies.
    /// Default `10s`.
    #[serde(with = "crate::duration::required")]
    pub lease: Duration,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        Self {
            url: None,
            server_id: None,
            heartbeat: Duration::from_secs(5),
            max_in_flight: 10_000,
            resync: false,
            lease: Duration::from_secs(10),
        }
    }
}

impl MysqlConfig {
    /// What cannot work, naming the setting; `None` when usable.
    pub fn problem(&self) -> Option<MysqlProblem> {
        let url = self.url.as_deref()?;
        if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
            return Some(MysqlProblem::BadUrl { url: redact(url) });
        }
        if self.server_id == Some(0) {
            return Some(MysqlProblem::ZeroServerId);
        }
        if self.max_in_flight == 0 {
            return Some(MysqlProblem::NoInFlight);
        }
        if self.heartbeat.is_zero() {
            return Some(MysqlProblem::NoHeartbeat);
        }
        if self.lease < Duration::from_millis(300) {
            return Some(MysqlProblem::ShortLease);
        }
        None
    }

    /// The server id to read as: the configured one, else one derived
    /// from this host's name and the server's address, so that two
    /// processes on two hosts differ and one process keeps its id across
    /// restarts.
    pub fn server_id(&self) -> u32 {
        if let Some(id) = self.server_id {
            return id;
        }
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let seed = format!(
            "{}|{}",
            host.trim(),
            self.url.as_deref().unwrap_or_default()
        );
        // Kept clear of the small ids servers are usually given.
        let hash = crc32fast::hash(seed.as_bytes());
        1_000_000 + hash % 3_000_000_000
    }
}

/// Why a `[mysql]` section cannot work; each names its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MysqlProblem {
    /// `url` is not a `mysql://` URL.
    #[error("`mysql.url` `{url}` is not a `mysql://user:password@host:3306/db` URL")]
    BadUrl {
        /// The URL, password hidden.
        url: String,
    },
    /// `server_id` 0, which the server takes as "do not wait".
    #[error("`mysql.server_id` is 0: give an id no replica of the server uses")]
    ZeroServerId,
    /// `max_in_flight` is 0.
    #[error("`mysql.max_in_flight` is 0: give at least 1")]
    NoInFlight,
    /// A heartbeat of zero.
    #[error("`mysql.heartbeat` must be above 0")]
    NoHeartbeat,
    /// A lease too short to be renewed in time.
    #[error("`mysql.lease` must be at least 300ms")]
    ShortLease,
}

/// `url` with its password hidden, for logs and printed configuration.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_named_and_passwords_hidden() {
        let config = |url: &str, f: fn(&mut MysqlConfig)| {
            let mut c = MysqlConfig {
                url: Some(url.into()),
                ..MysqlConfig::default()
            };
            f(&mut c);
            c.problem().map(|p| p.to_string())
        };
        assert_eq!(config("mysql://u@h:3306/db", |_| {}), None);
        let err = config("postgres://u:pw@h/db", |_| {}).unwrap();
        assert!(err.contains("`postgres://u:***@h/db`"), "{err}");
        assert!(
            config("mysql://h/", |c| c.server_id = Some(0))
                .unwrap()
                .contains("server_id")
        );
        assert!(
            config("mysql://h/", |c| c.max_in_flight = 0)
                .unwrap()
                .contains("max_in_flight")
        );
        assert_eq!(MysqlConfig::default().problem(), None, "no url, no source");
        assert_eq!(
            redact("mysql://app:s3cret@db/shop"),
            "mysql://app:***@db/shop"
        );
    }

    #[test]
    fn the_derived_server_id_is_stable_and_clear_of_small_ids() {
        let c = MysqlConfig {
            url: Some("mysql://h:3306/".into()),
            ..MysqlConfig::default()
        };
        assert_eq!(c.server_id(), c.server_id());
        assert!(c.server_id() >= 1_000_000);
        let given = MysqlConfig {
            server_id: Some(7),
            ..c
        };
        assert_eq!(given.server_id(), 7);
    }
}
