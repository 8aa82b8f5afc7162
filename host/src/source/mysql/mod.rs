//! The MySQL source: commits read from a MariaDB or MySQL server's binary
//! log, as a replica reads it, so that every write is seen with no change
//! to the application. Where the two servers differ (transaction ids,
//! positions, how a stream resumes, the visibility check) is one seam,
//! [`flavour`].
//!
//! - One transaction (one GTID) becomes one commit ([`decode`]); `txn` is
//!   its GTID, `source` is `mysql:SERVER_ID`.
//! - The position is the GTID state (MariaDB: the last transaction of each
//!   replication domain; MySQL: the set of transactions read). It is
//!   written to Redis
//!   (`inv:mysql:<server_id>:gtid`, the server's `server_id`) only once a
//!   transaction's invalidations are applied, and a start resumes from
//!   it: at least once, and invalidations are idempotent. Without a stored
//!   position (the first start, or the in-process store), reading starts
//!   at the server's current position.
//! - The server must log rows with whole images and full metadata
//!   ([`check`]); a start refuses, naming the statements that fix it.
//! - A lost stream (the server restarting, unreachable, a reader with the
//!   same server id) is retried with back-off, logged once per outage, and
//!   resumed from the last transaction read (what was read is in the
//!   pipeline's hands). A stream silent for three heartbeats is dropped
//!   and opened again.
//! - An XA transaction's rows are held from its `XA PREPARE` to its
//!   `XA COMMIT` (dropped at `XA ROLLBACK`), and the stored position stays
//!   before the first held meanwhile.
//! - A transaction is handed over only once other sessions can see it
//!   ([`visibility`]): the log can hold it before InnoDB commits it.
//! - Every event's CRC32 is checked (`mysql_common` strips it unchecked);
//!   a bad one is counted as an oddity and logged.
//!
//! Tested with MariaDB 10.11. MySQL could not be installed where this was
//! built: its side of the seam is covered by unit tests only.

mod cascade;
mod check;
mod config;
mod ddl;
mod decode;
mod error;
mod flavour;
mod gtid;
mod gtid_set;
mod lease;
mod visibility;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts, OptsBuilder};
use tokio::sync::{Mutex, watch};

pub use check::{Problem, check};
pub use config::{MysqlConfig, MysqlProblem, redact};
pub use error::MysqlError;
pub use flavour::{Flavour, Position, TxnId};
pub use gtid::{Gtid, GtidState};
pub use gtid_set::{GtidSet, SidGtid};

use self::cascade::Cascades;
use self::decode::{Assembler, Step};
use self::lease::Lease;
use self::visibility::Visibility;
use super::in_flight::InFlight;
use super::{Intake, Source, SourceReport};
use crate::redis::Redis;
use crate::retry::Backoff;

crate::figures! {
    /// The MySQL source's live counters.
    live MysqlCounters;
    /// The MySQL source's counters at one moment.
    pub struct MysqlStats {
        /// Transactions read from the binary log (a replayed one counts
        /// again).
        Counter transactions,
        /// Row changes in those transactions.
        Counter writes,
        /// Transactions whose position was stored after their
        /// invalidations were applied.
        Counter confirmed,
        /// Streams lost and opened again.
        Counter reconnects,
        /// Streams dropped because nothing came for three heartbeats.
        Counter silent_streams,
        /// Consistent snapshots taken to see whether a transaction read is
        /// visible to other sessions yet.
        Counter visibility_checks,
        /// Events that could not be taken as they are (a bad checksum,
        /// rows of an unknown table, an event that could not be read);
        /// each is logged with its position.
        Counter oddities,
        /// Transactions read and not yet confirmed.
        Gauge in_flight,
        /// 1 while the binary log stream is up, else 0.
        Gauge connected,
        /// Milliseconds since the stream last delivered an event.
        Gauge idle_ms,
    }
}

/// Where and how to read, as `serve` resolves it.
#[derive(Clone)]
pub struct MysqlSettings {
    /// The `[mysql]` section (its `url` set).
    pub config: MysqlConfig,
    /// Reconnection back-off: first and longest delay.
    pub retry: (Duration, Duration),
    /// On stop, how long to wait for the transactions in flight to be
    /// applied and their position stored.
    pub drain: Duration,
    /// Where the position is kept: the pipeline's Redis. `None` keeps it
    /// in memory only (a restart starts at the server's position).
    pub position: Option<Arc<Redis>>,
}

/// The MySQL source, prepared and ready to run.
pub struct MysqlSource {
    state: Arc<State>,
}

/// What others see of a running [`MysqlSource`]: its figures and its
/// readiness.
#[derive(Clone)]
pub struct MysqlHandle {
    state: Arc<State>,
}

impl MysqlHandle {
    /// The counters now.
    pub fn stats(&self) -> MysqlStats {
        self.state.stats()
    }

    /// Ready while the binary log stream is up; else why not.
    pub fn ready(&self) -> Result<(), String> {
        if let Ok(purged) = self.state.purged.try_lock()
            && let Some(why) = purged.as_ref()
        {
            return Err(why.clone());
        }
        if self.state.counters.connected.load(Relaxed) == 1 {
            Ok(())
        } else {
            Err(format!(
                "the MySQL source is not streaming from `{}`",
                redact(&self.state.url)
            ))
        }
    }
}

/// The source's settings, position and figures, shared by its tasks and
/// its handles.
struct State {
    url: String,
    opts: Opts,
    settings: MysqlSettings,
    /// The server's `server_id`: commits' `source`, the position's key.
    server: u32,
    /// MariaDB or MySQL.
    flavour: Flavour,
    /// The database the URL names ("" for none).
    database: String,
    /// The last transaction read, where a new stream resumes.
    read: Mutex<Position>,
    /// Where the first stream began, while no transaction is read yet: a
    /// stream opened again starts there too, not at the log's end then,
    /// which would skip what was written during the outage.
    log_start: Mutex<Option<(String, u64)>>,
    /// While prepared XA transactions are held, the position before the
    /// first of them: what is stored meanwhile.
    xa_floor: Mutex<Option<String>>,
    /// Why reading cannot go on (the logs the position needs are purged),
    /// for readiness.
    purged: Mutex<Option<String>>,
    /// The claim on reading, when the position is kept in Redis.
    lease: Option<Lease>,
    /// The foreign keys with actions, as read at start.
    cascades: Cascades,
    /// What was read and handed over, with the position after it.
    in_flight: InFlight<String>,
    counters: MysqlCounters,
    /// When the stream last delivered an event (ms since the start).
    last_event_ms: AtomicU64,
    started: Instant,
}

impl MysqlSource {
    /// Connects to the server, checks that its binary log can be read,
    /// and finds where to start: the stored position, else the server's.
    pub async fn prepare(settings: MysqlSettings) -> Result<Self, MysqlError> {
        let url = settings.config.url.clone().ok_or(MysqlError::NoUrl)?;
        let opts = Opts::from_url(&url).map_err(|error| MysqlError::Url {
            url: redact(&url),
            error,
        })?;
        // A row event is as large as the server lets a packet be; the
        // client's own bound must not be smaller.
        let opts: Opts = OptsBuilder::from_opts(opts)
            .max_allowed_packet(Some(1 << 30))
            .into();
        let database = opts.db_name().unwrap_or_default().to_owned();
        let mut conn = connect(&opts, &url).await?;
        let version: String = query_one(&mut conn, "SELECT VERSION()").await?;
        let flavour = Flavour::of(&version).ok_or_else(|| MysqlError::Unsupported {
            url: redact(&url),
            version: version.clone(),
        })?;
        let problems = check::problems(&mut conn, flavour).await?;
        if !problems.is_empty() {
            return Err(MysqlError::Unfit {
                url: redact(&url),
                problems: problems.iter().map(ToString::to_string).collect(),
            });
        }
        let server: u32 = query_one(&mut conn, "SELECT @@server_id").await?;
        let stored = match &settings.position {
            // A resync starts from the server's position, whatever is
            // stored.
            Some(_) if settings.config.resync => None,
            Some(redis) => stored_position(redis, &position_key(server), flavour).await?,
            None => None,
        };
        let read = match stored {
            Some(state) => {
                tracing::info!(position = %state, key = %position_key(server),
                    "resuming the binary log from the stored position");
                state
            }
            None => {
                let variable = flavour.position_variable();
                let current: String = query_one(&mut conn, &format!("SELECT {variable}")).await?;
                let state =
                    flavour
                        .parse_position(&current)
                        .map_err(|reason| MysqlError::Position {
                            key: variable.to_owned(),
                            reason,
                        })?;
                tracing::info!(position = %state,
                    "no stored position: reading the binary log from the server's position");
                state
            }
        };
        let cascades = Cascades::load(&mut conn, &database).await?;
        if cascades.len() > 0 {
            tracing::info!(
                foreign_keys = cascades.len(),
                "following the foreign keys whose ON DELETE or ON UPDATE actions change rows \
                 the binary log does not carry"
            );
        }
        let _ = conn.disconnect().await;
        let lease = settings
            .position
            .as_ref()
            .map(|_| Lease::new(server, settings.config.lease));
        tracing::info!(address = %redact(&url), server_id = server, %flavour, %version,
            reader_id = settings.config.server_id(), "reading commits from MySQL");
        Ok(Self {
            state: Arc::new(State {
                url,
                opts,
                settings,
                server,
                flavour,
                database,
                read: Mutex::new(read),
                log_start: Mutex::new(None),
                xa_floor: Mutex::new(None),
                purged: Mutex::new(None),
                lease,
                cascades,
                in_flight: InFlight::default(),
                counters: MysqlCounters::default(),
                last_event_ms: AtomicU64::new(0),
                started: Instant::now(),
            }),
        })
    }

    /// A handle for the figures and readiness.
    pub fn handle(&self) -> MysqlHandle {
        MysqlHandle {
            state: self.state.clone(),
        }
    }
}

impl Source for MysqlSource {
    fn name(&self) -> &'static str {
        "mysql"
    }

    async fn run(self, intake: Intake, mut stop: watch::Receiver<bool>) -> SourceReport {
        let state = self.state;
        let storer = tokio::spawn(state.clone().store_positions(intake.clone()));
        if state.settings.config.resync {
            state.resync(&intake).await;
        }
        let (min, max) = state.settings.retry;
        let mut assembler =
            Assembler::new(format!("mysql:{}", state.server), state.database.clone());
        assembler.set_cascades(state.cascades.clone());
        let mut run = Run {
            intake,
            assembler,
            backoff: Backoff::new(min, max),
            outage: None,
        };
        let mut standing_by = false;
        while !*stop.borrow() {
            let result = tokio::select! {
                result = state.session(&mut run) => result,
                _ = stop.wait_for(|&s| s) => break,
            };
            state.counters.connected.store(0, Relaxed);
            run.assembler.reset();
            state.counters.reconnects.fetch_add(1, Relaxed);
            let delay = run.backoff.next_delay();
            let error = match result {
                Ok(()) => break,
                Err(error) => error,
            };
            if let MysqlError::Silent { .. } = error {
                state.counters.silent_streams.fetch_add(1, Relaxed);
            }
            if let MysqlError::Standby { .. } | MysqlError::LeaseLost = error {
                // Waiting for the reader to die is no outage.
                if !standing_by {
                    standing_by = true;
                    tracing::info!(%error, "the MySQL source stands by");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|&s| s) => break,
                }
                continue;
            }
            if let MysqlError::Purged { .. } = error {
                // Not an outage that ends by itself: said loudly, each
                // time, and readiness names the way out.
                tracing::error!(%error, "the MySQL source cannot go on");
                *state.purged.lock().await = Some(error.to_string());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|&s| s) => break,
                }
                continue;
            }
            if run.outage.is_none() {
                run.outage = Some(Instant::now());
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                    "the MySQL source lost its stream; retrying until it is back");
            } else {
                tracing::debug!(%error, "MySQL still unavailable; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|&s| s) => break,
            }
        }
        state.counters.connected.store(0, Relaxed);
        // What was handed over is applied and its position stored, within
        // the drain time.
        let drained =
            tokio::time::timeout(state.settings.drain, state.in_flight.wait_until(|n| n == 0))
                .await;
        storer.abort();
        if let (Some(lease), Some(redis)) = (&state.lease, &state.settings.position) {
            lease.release(redis).await;
        }
        if drained.is_err() {
            tracing::warn!(
                transactions = state.in_flight.len(),
                "stopping with transactions whose position is not stored; they are read again \
                 at the next start"
            );
        }
        SourceReport::default()
    }
}

/// What a run of the source carries from one stream to the next.
struct Run {
    intake: Intake,
    /// The transaction being read, the table maps, the XA transactions
    /// held.
    assembler: Assembler,
    backoff: Backoff,
    /// Since when the stream is lost, while it is.
    outage: Option<Instant>,
}

/// Connects, naming the server (its password hidden) on failure.
async fn connect(opts: &Opts, url: &str) -> Result<Conn, MysqlError> {
    Conn::new(opts.clone())
        .await
        .map_err(|error| MysqlError::Connect {
            url: redact(url),
            error,
        })
}

/// The one value `statement` selects.
async fn query_one<T: mysql_async::prelude::FromValue + Send + 'static>(
    conn: &mut Conn,
    statement: &str,
) -> Result<T, MysqlError> {
    let value: Option<T> = conn
        .query_first(statement)
        .await
        .map_err(MysqlError::of_statement(statement))?;
    value.ok_or_else(|| MysqlError::Statement {
        statement: statement.to_owned(),
        error: mysql_async::Error::Other("no row".into()),
    })
}

/// Runs `statement`, naming it on failure.
async fn run_statement(conn: &mut Conn, statement: &str) -> Result<(), MysqlError> {
    conn.query_drop(statement)
        .await
        .map_err(MysqlError::of_statement(statement))
}

/// The server's error when the logs a position needs are gone
/// (`ER_MASTER_FATAL_ERROR_READING_BINLOG`).
const PURGED: u16 = 1236;

/// The server's error for a statement it cannot parse
/// (`ER_PARSE_ERROR`): a name an older version does not know.
const PARSE_ERROR: u16 = 1064;

/// The Redis key of server `server`'s position.
pub fn position_key(server: u32) -> String {
    format!("inv:mysql:{server}:gtid")
}

/// The position stored at `key`, if any.
async fn stored_position(
    redis: &Redis,
    key: &str,
    flavour: Flavour,
) -> Result<Option<Position>, MysqlError> {
    let text: Option<String> =
        redis
            .query(redis::cmd("GET").arg(key))
            .await
            .map_err(|e| MysqlError::Position {
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
    text.map(|t| {
        flavour
            .parse_position(&t)
            .map_err(|reason| MysqlError::Position {
                key: key.to_owned(),
                reason,
            })
    })
    .transpose()
}

impl State {
    fn stats(&self) -> MysqlStats {
        let mut stats = self.counters.snapshot();
        stats.in_flight = self.in_flight.len() as u64;
        let last = self.last_event_ms.load(Relaxed);
        stats.idle_ms = (self.started.elapsed().as_millis() as u64).saturating_sub(last);
        stats
    }

    /// `--mysql-resync`: what was written while the logs went unread is
    /// unknown, so the rules' fallback targets are invalidated, and the
    /// position the server has now is stored once they are applied.
    async fn resync(&self, intake: &Intake) {
        let fallback = intake.rule_set().fallback();
        let position = self.read.lock().await.to_string();
        tracing::warn!(targets = fallback.len(), %position,
            "resync: invalidating the rules' fallback targets, then reading from the server's \
             position");
        let seq = intake.invalidate(fallback);
        self.in_flight.push(seq, position);
        self.in_flight.added.notify_one();
    }

    /// Renews the lease while reading; an error when another process may
    /// read now.
    async fn renew_lease(&self) -> Result<(), MysqlError> {
        let (Some(lease), Some(redis)) = (&self.lease, &self.settings.position) else {
            return Ok(());
        };
        match lease.renew(redis).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MysqlError::LeaseLost),
            // Redis unreachable: go on reading (the stream is the
            // server's to end); the lease may run out meanwhile.
            Err(error) => {
                tracing::warn!(%error, "renewing the MySQL lease failed; retrying");
                Ok(())
            }
        }
    }

    /// Reads the foreign keys again into `assembler`; on failure, says so
    /// and keeps the ones it has.
    async fn reload_cascades(&self, assembler: &mut Assembler) {
        let loaded = async {
            let mut conn = connect(&self.opts, &self.url).await?;
            let cascades = Cascades::load(&mut conn, &self.database).await;
            let _ = conn.disconnect().await;
            cascades
        };
        match loaded.await {
            Ok(cascades) => assembler.set_cascades(cascades),
            Err(error) => tracing::warn!(%error,
                "reading the foreign keys again after DDL failed; following the ones known"),
        }
    }

    fn touch(&self) {
        self.last_event_ms
            .store(self.started.elapsed().as_millis() as u64, Relaxed);
    }

    /// One stream: opened at the last transaction read, read until it
    /// fails.
    async fn session(&self, run: &mut Run) -> Result<(), MysqlError> {
        let config = &self.settings.config;
        if let (Some(lease), Some(redis)) = (&self.lease, &self.settings.position) {
            match lease.take(redis).await {
                Ok(Ok(())) => {}
                Ok(Err(holder)) => return Err(MysqlError::Standby { holder }),
                Err(error) => return Err(MysqlError::Lease(error)),
            }
            tracing::info!(holder = lease.holder(), "this process reads the binary log");
        }
        let mut conn = connect(&self.opts, &self.url).await?;
        let heartbeat = config.heartbeat.as_nanos();
        // MySQL 8.0.26 renamed the variables a dump thread reads; the old
        // names are read where the new are not.
        let mut statements = vec![
            format!("SET @master_heartbeat_period={heartbeat}"),
            format!("SET @source_heartbeat_period={heartbeat}"),
        ];
        match self.flavour {
            // Without it, MariaDB turns its GTID events into `BEGIN`
            // queries.
            Flavour::Mariadb => statements.push("SET @mariadb_slave_capability=4".to_owned()),
            // `mysql_async` announces checksums by the old name only.
            Flavour::Mysql => {
                statements.push("SET @source_binlog_checksum=@@GLOBAL.binlog_checksum".to_owned())
            }
        }
        for statement in &statements {
            run_statement(&mut conn, statement).await?;
        }
        let from = self.read.lock().await.clone();
        let request = BinlogStreamRequest::new(config.server_id());
        if from.is_empty() {
            // No transaction yet: from the end of the log, as it was when
            // the first stream began.
            let mut start = self.log_start.lock().await;
            let (file, pos) = match start.clone() {
                Some(at) => at,
                None => start.insert(self.log_end(&mut conn).await?).clone(),
            };
            drop(start);
            return self
                .stream(
                    conn,
                    request.with_filename(file.as_bytes()).with_pos(pos),
                    run,
                )
                .await;
        }
        match &from {
            Position::Domains(state) => {
                run_statement(&mut conn, &format!("SET @slave_connect_state='{state}'")).await?;
                run_statement(&mut conn, "SET @slave_gtid_strict_mode=1").await?;
                self.stream(conn, request, run).await
            }
            Position::Set(set) => {
                // Every transaction not in the set, from the oldest log
                // that holds one.
                let sids = set.sids().map_err(|reason| MysqlError::Position {
                    key: position_key(self.server),
                    reason,
                })?;
                self.stream(conn, request.with_gtid().with_gtid_set(sids), run)
                    .await
            }
        }
    }

    /// The end of the log now (file and offset), by the first of the
    /// flavour's statements the server knows.
    async fn log_end(&self, conn: &mut Conn) -> Result<(String, u64), MysqlError> {
        let statements = self.flavour.log_end_statements();
        let mut last = None;
        for statement in statements {
            match conn.query_first::<mysql_async::Row, _>(*statement).await {
                Ok(row) => {
                    let row = row.ok_or_else(|| MysqlError::Statement {
                        statement: (*statement).to_owned(),
                        error: mysql_async::Error::Other(
                            "no row: is the binary log on (`log_bin`)?".into(),
                        ),
                    })?;
                    let file: Option<String> = row.get(0);
                    let pos: Option<u64> = row.get(1);
                    return Ok((file.unwrap_or_default(), pos.unwrap_or(4)));
                }
                // A name this version does not know: the next.
                Err(mysql_async::Error::Server(error)) if error.code == PARSE_ERROR => {
                    last = Some(MysqlError::of_statement(statement)(
                        mysql_async::Error::Server(error),
                    ));
                }
                Err(error) => return Err(MysqlError::of_statement(statement)(error)),
            }
        }
        Err(last.expect("at least one statement"))
    }

    /// Reads the stream `request` asks for, handing each transaction over.
    async fn stream(
        &self,
        conn: Conn,
        request: BinlogStreamRequest<'_>,
        run: &mut Run,
    ) -> Result<(), MysqlError> {
        let config = &self.settings.config;
        let mut stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(MysqlError::Stream)?;
        self.counters.connected.store(1, Relaxed);
        self.touch();
        run.backoff.reset();
        if let Some(since) = run.outage.take() {
            tracing::info!(
                after_ms = since.elapsed().as_millis() as u64,
                "the MySQL source streams again"
            );
        }
        let silence = config.heartbeat * 3;
        let mut visibility = Visibility::new(self.flavour, self.opts.clone(), self.url.clone());
        let renew_every = self
            .lease
            .as_ref()
            .map_or(Duration::from_secs(3600), Lease::renew_every);
        let mut renew = tokio::time::interval(renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await; // the first tick is immediate: just taken
        let mut last_event = Instant::now();
        loop {
            // Back-pressure: at the bound, wait for the pipeline.
            self.in_flight
                .wait_until(|n| n < config.max_in_flight)
                .await;
            // Silence counts from the last event, across the renewals.
            let deadline = tokio::time::Instant::from_std(last_event + silence);
            let next = tokio::select! {
                next = tokio::time::timeout_at(deadline, stream.next()) => next,
                _ = renew.tick() => {
                    self.renew_lease().await?;
                    continue;
                }
            };
            let event = match next {
                Err(_) => {
                    return Err(MysqlError::Silent {
                        silent_ms: silence.as_millis() as u64,
                    });
                }
                Ok(None) => return Err(MysqlError::Ended),
                Ok(Some(Err(mysql_async::Error::Server(error)))) if error.code == PURGED => {
                    let from = self.read.lock().await.to_string();
                    return Err(MysqlError::Purged {
                        position: from,
                        message: error.message,
                    });
                }
                Ok(Some(Err(error))) => return Err(MysqlError::Stream(error)),
                Ok(Some(Ok(event))) => event,
            };
            self.touch();
            last_event = Instant::now();
            let step = run.assembler.event(&event, |id| stream.get_tme(id));
            for oddity in run.assembler.take_oddities() {
                self.counters.oddities.fetch_add(1, Relaxed);
                tracing::warn!(pos = oddity.pos, "binary log: {}", oddity.what);
            }
            if let Step::Committed {
                commit,
                gtid,
                end,
                ddl,
            } = step
            {
                visibility
                    .wait(&gtid, &end, || {
                        self.counters.visibility_checks.fetch_add(1, Relaxed);
                    })
                    .await?;
                self.counters.transactions.fetch_add(1, Relaxed);
                self.counters
                    .writes
                    .fetch_add(commit.writes.len() as u64, Relaxed);
                let position = {
                    let mut read = self.read.lock().await;
                    read.advance(&gtid);
                    let mut floor = self.xa_floor.lock().await;
                    if run.assembler.held() == 0 {
                        *floor = None;
                    }
                    // While prepared XA transactions are held, the stored
                    // position stays before the first: a restart reads
                    // their rows again.
                    floor.clone().unwrap_or_else(|| read.to_string())
                };
                let seq = run.intake.hand_over(commit);
                self.in_flight.push(seq, position);
                self.in_flight.added.notify_one();
                if ddl {
                    // A key may be new or gone: read them again before the
                    // next rows.
                    self.reload_cascades(&mut run.assembler).await;
                }
            } else if let Step::Held(gtid) = step {
                let mut read = self.read.lock().await;
                let mut floor = self.xa_floor.lock().await;
                if floor.is_none() {
                    *floor = Some(read.to_string());
                }
                read.advance(&gtid);
            }
        }
    }

    /// Stores the position of the transactions applied, as they are; a
    /// failed write is retried every second, the transactions staying in
    /// flight meanwhile. Runs until aborted.
    async fn store_positions(self: Arc<Self>, intake: Intake) {
        let mut applied = intake.applied();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let key = position_key(self.server);
        loop {
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                () = self.in_flight.added.notified() => {}
                _ = tick.tick() => {}
            }
            let upto = *applied.borrow_and_update();
            let done = self.in_flight.applied(upto);
            let Some((_, position)) = done.last() else {
                continue;
            };
            if let Some(redis) = &self.settings.position {
                let stored: Result<(), _> =
                    redis.query(redis::cmd("SET").arg(&key).arg(position)).await;
                if let Err(error) = stored {
                    tracing::warn!(%error, %key,
                        "storing the MySQL position failed; retrying (the transactions stay \
                         in flight)");
                    continue;
                }
            }
            self.in_flight.acknowledged(done.len());
            self.counters
                .confirmed
                .fetch_add(done.len() as u64, Relaxed);
        }
    }
}
