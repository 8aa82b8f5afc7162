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
//! The check runs on a connection of its own, once per transaction that
//! ends beyond the last point seen (so a burst read together is usually
//! covered by one), and again (1 ms, doubling to 50 ms) while a
//! transaction is not visible; later ones wait behind it, in order.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use super::decode::LogPos;
use super::{MysqlError, connect};

/// The longest pause between two checks of one transaction.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Where the visible log ends, as last seen, and the connection that
/// looks.
pub(crate) struct Visibility {
    opts: Opts,
    url: String,
    conn: Option<Conn>,
    seen: Option<LogPos>,
}

impl Visibility {
    pub(crate) fn new(opts: Opts, url: String) -> Self {
        Self {
            opts,
            url,
            conn: None,
            seen: None,
        }
    }

    /// Waits until everything in the log up to `end` is visible to new
    /// snapshots; `checks` counts the snapshots taken. An error (the
    /// server unreachable) leaves the transaction unhanded, to be read
    /// again.
    pub(crate) async fn wait(
        &mut self,
        end: &LogPos,
        mut checks: impl FnMut(),
    ) -> Result<(), MysqlError> {
        let mut pause = Duration::from_millis(1);
        loop {
            if self.seen.as_ref().is_some_and(|seen| seen >= end) {
                return Ok(());
            }
            checks();
            let seen = self.snapshot().await?;
            if &seen >= end {
                self.seen = Some(seen);
                return Ok(());
            }
            self.seen = Some(seen);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Where a new consistent snapshot's view of the log ends.
    async fn snapshot(&mut self) -> Result<LogPos, MysqlError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(connect(&self.opts, &self.url).await?),
        };
        let result = read_snapshot(conn).await;
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
