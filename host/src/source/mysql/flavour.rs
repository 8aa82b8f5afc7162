//! The seam between MariaDB and MySQL: which server is read
//! ([`Flavour`]), a transaction's id in its form ([`TxnId`]), and the
//! position in its form ([`Position`]). Everything else (row events,
//! table maps, checksums, XA, the purged-log error) is the same on both.
//!
//! | | MariaDB 10.5+ | MySQL 8.0+ |
//! |---|---|---|
//! | transaction id | `domain-server-seq`, event 162, parsed by hand | `uuid:n` (`uuid:tag:n` on 8.4), event 33/42, `mysql_common`'s |
//! | position | last id per domain, `@@gtid_binlog_pos` | a set, `@@GLOBAL.gtid_executed` |
//! | resume | `@slave_connect_state`, `COM_BINLOG_DUMP` | `COM_BINLOG_DUMP_GTID` with the set |
//! | log end, no position yet | `SHOW MASTER STATUS` | `SHOW BINARY LOG STATUS` (8.2+), else `SHOW MASTER STATUS` |
//! | visible once | a consistent snapshot's `Binlog_snapshot_position` reaches it | it is in `@@GLOBAL.gtid_executed` |
//! | grants | `REPLICATION SLAVE, BINLOG MONITOR` | `REPLICATION SLAVE, REPLICATION CLIENT` |
//!
//! Only MariaDB could be installed where this was built and tested; the
//! MySQL column follows MySQL's documentation and `mysql_async`'s own
//! MySQL paths, and is covered by unit tests only.

use std::fmt;

use super::gtid::{Gtid, GtidState};
use super::gtid_set::{GtidSet, SidGtid};

/// Which server's binary log is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// MariaDB 10.5 or later.
    Mariadb,
    /// MySQL 8.0 or later.
    Mysql,
}

impl Flavour {
    /// The flavour of a server by its `SELECT VERSION()`; `None` for a
    /// server too old to read (MySQL before 8.0, MariaDB before 10.5).
    pub fn of(version: &str) -> Option<Self> {
        let lower = version.to_ascii_lowercase();
        // MariaDB's handshake prefixes its version with `5.5.5-`, which
        // some proxies pass on as `VERSION()`.
        let bare = lower.strip_prefix("5.5.5-").unwrap_or(&lower);
        let mut numbers = bare
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = numbers.next().unwrap_or(0);
        let minor = numbers.next().unwrap_or(0);
        if lower.contains("mariadb") {
            ((major, minor) >= (10, 5)).then_some(Self::Mariadb)
        } else {
            (major >= 8).then_some(Self::Mysql)
        }
    }

    /// The server's position now, as a variable.
    pub(crate) fn position_variable(self) -> &'static str {
        match self {
            Self::Mariadb => "@@gtid_binlog_pos",
            Self::Mysql => "@@GLOBAL.gtid_executed",
        }
    }

    /// The statements that name the end of the log (file and offset),
    /// newest name first: MySQL 8.2 renamed `SHOW MASTER STATUS`, and 8.4
    /// removed the old name.
    pub(crate) fn log_end_statements(self) -> &'static [&'static str] {
        match self {
            Self::Mariadb => &["SHOW MASTER STATUS"],
            Self::Mysql => &["SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"],
        }
    }

    /// The privileges a reader needs, as a `GRANT` names them.
    pub(crate) fn grants(self) -> &'static str {
        match self {
            Self::Mariadb => "REPLICATION SLAVE, BINLOG MONITOR",
            Self::Mysql => "REPLICATION SLAVE, REPLICATION CLIENT",
        }
    }

    /// A position in this flavour's form, from its text (stored, or the
    /// server's variable).
    pub(crate) fn parse_position(self, text: &str) -> Result<Position, String> {
        match self {
            Self::Mariadb => text.parse().map(Position::Domains),
            Self::Mysql => text.parse().map(Position::Set),
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mariadb => "MariaDB",
            Self::Mysql => "MySQL",
        })
    }
}

/// One transaction's id, in its server's form: a commit's `txn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnId {
    /// MariaDB's `domain-server-seq`.
    Domain(Gtid),
    /// MySQL's `uuid:n`.
    Set(SidGtid),
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(gtid) => gtid.fmt(f),
            Self::Set(gtid) => gtid.fmt(f),
        }
    }
}

/// Where a reader is, in its server's form: what is stored in Redis and
/// resumed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// MariaDB: the last transaction of each domain.
    Domains(GtidState),
    /// MySQL: every transaction read.
    Set(GtidSet),
}

impl Position {
    /// Notes `txn` as read.
    pub fn advance(&mut self, txn: &TxnId) {
        match (self, txn) {
            (Self::Domains(state), TxnId::Domain(gtid)) => state.advance(*gtid),
            (Self::Set(set), TxnId::Set(gtid)) => set.add(gtid),
            // One reader reads one server: the forms never mix.
            (position, txn) => {
                tracing::error!(%position, %txn, "a transaction id of another server's form");
            }
        }
    }

    /// Whether no transaction is known.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Domains(state) => state.is_empty(),
            Self::Set(set) => set.is_empty(),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domains(state) => state.fmt(f),
            Self::Set(set) => set.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flavour_follows_the_version() {
        assert_eq!(
            Flavour::of("10.11.19-MariaDB-0+deb12u1-log"),
            Some(Flavour::Mariadb)
        );
        assert_eq!(Flavour::of("11.4.2-MariaDB"), Some(Flavour::Mariadb));
        assert_eq!(Flavour::of("10.4.34-MariaDB"), None);
        assert_eq!(Flavour::of("8.0.36"), Some(Flavour::Mysql));
        assert_eq!(Flavour::of("8.4.0-commercial"), Some(Flavour::Mysql));
        assert_eq!(Flavour::of("9.1.0"), Some(Flavour::Mysql));
        assert_eq!(Flavour::of("5.7.44-log"), None);
        // MariaDB's version as its handshake spells it.
        assert_eq!(Flavour::of("5.5.5-10.11.6-MariaDB"), Some(Flavour::Mariadb));
    }

    #[test]
    fn positions_advance_in_their_own_form() {
        let mut maria = Flavour::Mariadb.parse_position("0-1-41").unwrap();
        maria.advance(&TxnId::Domain("0-1-42".parse().unwrap()));
        assert_eq!(maria.to_string(), "0-1-42");
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut mysql = Flavour::Mysql
            .parse_position(&format!("{uuid}:1-41"))
            .unwrap();
        mysql.advance(&TxnId::Set(SidGtid {
            source: uuid.into(),
            gno: 42,
        }));
        assert_eq!(mysql.to_string(), format!("{uuid}:1-42"));
        assert!(Flavour::Mysql.parse_position("").unwrap().is_empty());
        assert!(Flavour::Mysql.parse_position("0-1-41").is_err());
        assert!(Flavour::Mariadb.parse_position(uuid).is_err());
    }
}
