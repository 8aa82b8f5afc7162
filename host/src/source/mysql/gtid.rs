//! MariaDB global transaction ids: the GTID event that opens each
//! transaction ([`GtidEvent`], parsed by hand: `mysql_common` does not know
//! MariaDB's event types), and the position a reader resumes from
//! ([`GtidState`]: the last transaction of each replication domain, as
//! `@@gtid_binlog_pos` and `@slave_connect_state` write it).

use std::collections::BTreeMap;
use std::fmt;

/// MariaDB's GTID event type.
pub(crate) const GTID_EVENT: u8 = 162;

/// Flags of a GTID event (`flags2`).
mod flag {
    /// A transaction of its own with no `XID` or `COMMIT` after it: DDL,
    /// or a statement on a non-transactional engine.
    pub(super) const STANDALONE: u8 = 1;
    /// The event carries a group commit id.
    pub(super) const GROUP_COMMIT_ID: u8 = 2;
    /// The first part of an XA transaction, prepared (`XA PREPARE`).
    pub(super) const PREPARED_XA: u8 = 64;
    /// The end of an XA transaction (`XA COMMIT` or `XA ROLLBACK`).
    pub(super) const COMPLETED_XA: u8 = 128;
}

/// One transaction's id: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gtid {
    /// The replication domain.
    pub domain: u32,
    /// The server that first wrote the transaction.
    pub server: u32,
    /// Its number within the domain.
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl std::str::FromStr for Gtid {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is no GTID (want DOMAIN-SERVER-SEQUENCE, as `0-1-42`)");
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().ok_or_else(bad);
        Ok(Self {
            domain: next()?.parse().map_err(|_| bad())?,
            server: next()?.parse().map_err(|_| bad())?,
            seq: next()?.parse().map_err(|_| bad())?,
        })
    }
}

/// A GTID event, as it opens a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GtidEvent {
    pub(crate) gtid: Gtid,
    /// A transaction with no `XID` or `COMMIT` after it (DDL).
    pub(crate) standalone: bool,
    /// `XA PREPARE`: its writes follow, and are committed (or not) by a
    /// later transaction that completes it.
    pub(crate) prepared_xa: bool,
    /// `XA COMMIT` or `XA ROLLBACK` of a prepared transaction.
    pub(crate) completed_xa: bool,
}

impl GtidEvent {
    /// Parses the body of a GTID event (checksum already removed) sent by
    /// server `server`: sequence (u64), domain (u32), flags (u8), then
    /// fields the flags announce.
    pub(crate) fn parse(body: &[u8], server: u32) -> Result<Self, String> {
        if body.len() < 13 {
            return Err(format!(
                "a GTID event of {} bytes (at least 13 expected)",
                body.len()
            ));
        }
        let seq = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
        let domain = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
        let flags = body[12];
        if flags & flag::GROUP_COMMIT_ID != 0 && body.len() < 21 {
            return Err("a GTID event that announces a group commit id and lacks it".into());
        }
        Ok(Self {
            gtid: Gtid {
                domain,
                server,
                seq,
            },
            standalone: flags & flag::STANDALONE != 0,
            prepared_xa: flags & flag::PREPARED_XA != 0,
            completed_xa: flags & flag::COMPLETED_XA != 0,
        })
    }
}

/// Where a reader is: the last transaction read of each domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidState {
    last: BTreeMap<u32, Gtid>,
}

impl GtidState {
    /// Notes `gtid` as read.
    pub fn advance(&mut self, gtid: Gtid) {
        self.last.insert(gtid.domain, gtid);
    }

    /// Whether no transaction is known.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// The last transaction of `domain`.
    pub fn of(&self, domain: u32) -> Option<Gtid> {
        self.last.get(&domain).copied()
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for gtid in self.last.values() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for GtidState {
    type Err = String;

    /// `0-1-42,1-2-7`, as `@@gtid_binlog_pos` prints it; empty is none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut state = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid: Gtid = part.parse()?;
            if state.of(gtid.domain).is_some() {
                return Err(format!("`{s}` names domain {} twice", gtid.domain));
            }
            state.advance(gtid);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gtid_event_is_read_as_mariadb_writes_it() {
        // Sequence 3, domain 0, flags 0x0c (transactional, allow parallel),
        // as a local `mariadbd` 10.11 wrote it.
        let body = [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 0];
        let event = GtidEvent::parse(&body, 1).unwrap();
        assert_eq!(event.gtid.to_string(), "0-1-3");
        assert!(!event.standalone && !event.prepared_xa && !event.completed_xa);
        let ddl = [9, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1 | 32];
        let event = GtidEvent::parse(&ddl, 7).unwrap();
        assert_eq!(event.gtid.to_string(), "2-7-9");
        assert!(event.standalone);
        let err = GtidEvent::parse(&body[..5], 1).unwrap_err();
        assert!(err.contains("5 bytes"), "{err}");
    }

    #[test]
    fn the_state_keeps_the_last_transaction_of_each_domain() {
        let mut state: GtidState = "0-1-42, 1-2-7".parse().unwrap();
        state.advance("0-3-43".parse().unwrap());
        assert_eq!(state.to_string(), "0-3-43,1-2-7");
        assert_eq!("".parse::<GtidState>().unwrap(), GtidState::default());
        let err = "0-1-x".parse::<GtidState>().unwrap_err();
        assert!(err.contains("`0-1-x`"), "{err}");
        let err = "0-1-1,0-1-2".parse::<GtidState>().unwrap_err();
        assert!(err.contains("domain 0 twice"), "{err}");
    }
}
