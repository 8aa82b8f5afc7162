//! [`PostgresConfig`]: the `[postgres]` section of the configuration, with
//! its documented defaults, and how its address is turned into the two
//! connections the source opens (one replication, one plain) and into
//! text safe to log.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[postgres]`: reading commits from Postgres's logical replication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// The database, as a URL (`postgres://user:password@host:5432/db`) or
    /// libpq's `key=value` text. Absent: no Postgres source. Default absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The publication naming the tables streamed. Default `invalidator`.
    pub publication: String,
    /// The replication slot: where Postgres keeps this source's position.
    /// Default `invalidator`.
    pub slot: String,
    /// Create the publication (for the rules' tables) and the slot
    /// (`pgoutput`) when they are missing, and make the publication follow
    /// the rules' tables as they are swapped; `false` changes nothing and
    /// refuses to start when something is missing. Default `true`.
    pub create: bool,
    /// Refuse to start while a table the rules read lacks `REPLICA IDENTITY
    /// FULL` (its updates carry no `before` image), instead of warning.
    /// Default `false`.
    pub require_full_identity: bool,
    /// How often the applied position is confirmed to Postgres (and, when
    /// idle, the server's keepalive position). Default `1s`.
    #[serde(with = "crate::duration::required")]
    pub confirm_every: Duration,
    /// How often the slot's retained WAL is read for the statistics.
    /// Default `5s`.
    #[serde(with = "crate::duration::required")]
    pub stats_every: Duration,
    /// Transactions read and not yet applied, at most: reading pauses at
    /// this bound until the pipeline catches up. Default 10000.
    pub max_in_flight: usize,
    /// At start, other replication slots that nobody streams from and that
    /// hold more than this many bytes of WAL are named in a warning.
    /// Default 1 GiB.
    pub warn_retained: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: None,
            publication: "invalidator".to_owned(),
            slot: "invalidator".to_owned(),
            create: true,
            require_full_identity: false,
            confirm_every: Duration::from_secs(1),
            stats_every: Duration::from_secs(5),
            max_in_flight: 10_000,
            warn_retained: 1 << 30,
        }
    }
}

impl PostgresConfig {
    /// What cannot work, naming the setting; `None` when usable.
    pub fn problem(&self) -> Option<PostgresProblem> {
        let url = self.url.as_deref()?;
        if url.trim().is_empty() {
            return Some(PostgresProblem::EmptyUrl);
        }
        for (name, value) in [("publication", &self.publication), ("slot", &self.slot)] {
            if value.is_empty() {
                return Some(PostgresProblem::EmptyName { name });
            }
        }
        // Slot names are restricted by Postgres itself; saying so here beats
        // its error after a connection.
        if !self
            .slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Some(PostgresProblem::BadSlot {
                slot: self.slot.clone(),
            });
        }
        if self.max_in_flight == 0 {
            return Some(PostgresProblem::NoInFlight);
        }
        if self.confirm_every.is_zero() || self.stats_every.is_zero() {
            return Some(PostgresProblem::NoInterval);
        }
        None
    }
}

/// Why a `[postgres]` section cannot work; each names its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostgresProblem {
    /// `url` is blank.
    #[error("`postgres.url` is empty: give a database address, or none")]
    EmptyUrl,
    /// `publication` or `slot` is empty.
    #[error("`postgres.{name}` is empty")]
    EmptyName {
        /// Which.
        name: &'static str,
    },
    /// A slot name Postgres would refuse.
    #[error("`postgres.slot` `{slot}` is not a slot name: use lower-case letters, digits and `_`")]
    BadSlot {
        /// The name given.
        slot: String,
    },
    /// `max_in_flight` is 0.
    #[error("`postgres.max_in_flight` is 0: give at least 1")]
    NoInFlight,
    /// An interval of zero.
    #[error("`postgres.confirm_every` and `postgres.stats_every` must be above 0")]
    NoInterval,
}

/// `url` with the parameter that makes libpq open a logical replication
/// connection.
pub(crate) fn replication_url(url: &str) -> String {
    if is_url(url) {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}replication=database")
    } else {
        format!("{url} replication=database")
    }
}

/// Whether `address` is a URL rather than libpq's `key=value` text.
fn is_url(address: &str) -> bool {
    address.starts_with("postgres://") || address.starts_with("postgresql://")
}

/// `address` with its password hidden, for logs and printed
/// configuration.
pub fn redact(address: &str) -> String {
    if is_url(address) {
        // postgres://user:password@host → postgres://user:***@host
        let (scheme, rest) = address.split_once("://").expect("a URL has a scheme");
        if let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}");
        }
        address.to_owned()
    } else {
        address
            .split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replication_parameter_is_added_to_either_form() {
        assert_eq!(
            replication_url("postgres://u@h/db"),
            "postgres://u@h/db?replication=database"
        );
        assert_eq!(
            replication_url("postgres://u@h/db?sslmode=disable"),
            "postgres://u@h/db?sslmode=disable&replication=database"
        );
        assert_eq!(
            replication_url("host=h dbname=db"),
            "host=h dbname=db replication=database"
        );
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(redact("postgres://app@db/shop"), "postgres://app@db/shop");
        assert_eq!(
            redact("host=db password=s3cret dbname=shop"),
            "host=db password=*** dbname=shop"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let config = |f: fn(&mut PostgresConfig)| {
            let mut c = PostgresConfig {
                url: Some("postgres://h/db".into()),
                ..PostgresConfig::default()
            };
            f(&mut c);
            c.problem().map(|p| p.to_string())
        };
        assert_eq!(config(|_| {}), None);
        assert!(
            config(|c| c.slot = "My-Slot".into())
                .unwrap()
                .contains("My-Slot")
        );
        assert!(
            config(|c| c.max_in_flight = 0)
                .unwrap()
                .contains("max_in_flight")
        );
        assert_eq!(
            PostgresConfig::default().problem(),
            None,
            "no url, no source"
        );
    }
}
