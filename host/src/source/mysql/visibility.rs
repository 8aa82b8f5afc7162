//! [`Visibility`]: a transaction is handed over only once other sessions
//! can see it.
//!
//! MariaDB writes a transaction to the binary log, and its dump threads
//! may send it, before InnoDB commits it: in the moment between, or for as
//! long as semi-synchronous replication waits for a replica with
//! `rpl_semi_sync_master_wait_point = AFTER_SYNC`. Invalidating in that
//! gap lets a reader miss, take a lease, read the old row and store it for
//! good. A consistent snapshot tells where the visible log ends:
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` sets
//! `Binlog_snapshot_file` and `Binlog_snapshot_position` to the point of
//! the log that the snapshot sees everything before and nothing after.
//! A transaction that ends at or before it is visible.
//!
//! MySQL's dump thread, too, sends a transaction once it is synced to the
//! log, before the storage engines commit it (group commit's flush, sync
//! and commit stages). There `@@GLOBAL.gtid_executed` tells: a
//! transaction's GTID joins it only after the commit stage has committed
//! it in the engines, so a transaction whose GTID is in it is visible.
//! (From MySQL's documentation and source; not run here, where MySQL
//! could not be installed.)
//!
//! The check runs on a connection of its own, once per transaction that
//! the last look does not cover (so a burst read together is usually
//! covered by one), and again (1 ms, doubling to 50 ms) while a
//! transaction is not visible; later ones wait behind it, in order.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use super::decode::LogPos;
use super::flavour::{Flavour, TxnId};
use super::gtid_set::GtidSet;
use super::{MysqlError, connect};

/// The longest pause between two checks of one transaction.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Where the visible log ends, as last seen, and the connection that
/// looks.
pub(crate) struct Visibility {
    flavour: Flavour,
    opts: Opts,
    url: String,
    conn: Option<Conn>,
    seen: Option<Seen>,
}

/// What the last look saw: where the visible log ends (MariaDB), or the
/// transactions committed (MySQL).
enum Seen {
    Upto(LogPos),
    Executed(GtidSet),
}

impl Seen {
    /// Whether transaction `txn`, which ends at `end`, is visible.
    fn covers(&self, txn: &TxnId, end: &LogPos) -> bool {
        match (self, txn) {
            (Self::Upto(seen), _) => seen >= end,
            (Self::Executed(set), TxnId::Set(gtid)) => set.contains(gtid),
            // A MariaDB id against MySQL's set: never (cannot happen).
            (Self::Executed(_), TxnId::Domain(_)) => false,
        }
    }
}

impl Visibility {
    pub(crate) fn new(flavour: Flavour, opts: Opts, url: String) -> Self {
        Self {
            flavour,
            opts,
            url,
            conn: None,
            seen: None,
        }
    }

    /// Waits until transaction `txn`, which ends at `end` in the log, is
    /// visible to other sessions; `checks` counts the looks taken. An
    /// error (the server unreachable) leaves the transaction unhanded, to
    /// be read again.
    pub(crate) async fn wait(
        &mut self,
        txn: &TxnId,
        end: &LogPos,
        mut checks: impl FnMut(),
    ) -> Result<(), MysqlError> {
        let mut pause = Duration::from_millis(1);
        loop {
            if self.seen.as_ref().is_some_and(|seen| seen.covers(txn, end)) {
                return Ok(());
            }
            checks();
            let seen = self.look().await?;
            let covered = seen.covers(txn, end);
            self.seen = Some(seen);
            if covered {
                return Ok(());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// What is visible now, in the flavour's terms.
    async fn look(&mut self) -> Result<Seen, MysqlError> {
        let flavour = self.flavour;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(connect(&self.opts, &self.url).await?),
        };
        let result = match flavour {
            Flavour::Mariadb => read_snapshot(conn).await.map(Seen::Upto),
            Flavour::Mysql => read_executed(conn).await.map(Seen::Executed),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

async fn read_snapshot(conn: &mut Conn) -> Result<LogPos, MysqlError> {
    let start = "START TRANSACTION WITH CONSISTENT SNAPSHOT";
    conn.query_drop(start)
        .await
        .map_err(MysqlError::of_statement(start))?;
    let show = "SHOW STATUS LIKE 'binlog_snapshot_%'";
    let rows: Vec<(String, String)> = conn
        .query(show)
        .await
        .map_err(MysqlError::of_statement(show))?;
    conn.query_drop("COMMIT")
        .await
        .map_err(MysqlError::of_statement("COMMIT"))?;
    let value = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let file = value("Binlog_snapshot_file");
    let pos = value("Binlog_snapshot_position").and_then(|p| p.parse().ok());
    match (file, pos) {
        (Some(file), Some(pos)) => Ok(LogPos { file, pos }),
        _ => Err(MysqlError::Statement {
            statement: show.to_owned(),
            error: mysql_async::Error::Other(
                "no Binlog_snapshot_file and Binlog_snapshot_position (MariaDB sets them)".into(),
            ),
        }),
    }
}

/// MySQL's committed transactions: `@@GLOBAL.gtid_executed`.
async fn read_executed(conn: &mut Conn) -> Result<GtidSet, MysqlError> {
    let statement = "SELECT @@GLOBAL.gtid_executed";
    let text: Option<String> = conn
        .query_first(statement)
        .await
        .map_err(MysqlError::of_statement(statement))?;
    text.unwrap_or_default()
        .parse()
        .map_err(|reason: String| MysqlError::Statement {
            statement: statement.to_owned(),
            error: mysql_async::Error::Other(reason.into()),
        })
}
