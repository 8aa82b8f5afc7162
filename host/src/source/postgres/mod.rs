//! The Postgres source: commits read from the database's own log of
//! committed transactions (logical replication, the built-in `pgoutput`
//! plugin), so that every write is seen with no change to the
//! application: the ORM's, raw SQL, an admin's, a migration's.
//!
//! - One Postgres transaction becomes one commit ([`decode`]).
//! - A transaction's position (its end LSN) is confirmed to Postgres only
//!   once its invalidations are applied ([`InFlight`] follows the
//!   pipeline). A crash at any moment replays from the last confirmed
//!   position: at least once, and invalidations are idempotent.
//! - With nothing in flight, the server's keepalive position is confirmed
//!   too, so that an idle database's slot holds no WAL back.
//! - A lost connection (Postgres restarting, unreachable, or the slot used
//!   by another `serve`) is retried with the pipeline's back-off and logged
//!   once per outage; a second process on the same slot thus waits, and
//!   takes over when the first dies.
//! - A transaction is handed over only once it is visible to new
//!   snapshots ([`visibility`]): logical decoding sends it earlier, and an
//!   invalidation in between lets a reader store the old row for good.
//! - The publication names the rules' tables and follows them across
//!   swaps; the slot and the tables' replica identity are checked at start
//!   ([`catalog`], [`setup`]).
//! - A stream that stops while its connection looks open is noticed: the
//!   slot is read on a connection of its own, and a slot no longer streamed
//!   from while we think we stream drops the session and reconnects. While
//!   reading is paused by back-pressure, a status update goes out every
//!   tick, so that the server's `wal_sender_timeout` never ends a stream
//!   that is only waiting for the pipeline.

mod catalog;
mod config;
mod decode;
mod error;
mod setup;
mod tables;
mod visibility;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant, SystemTime};

use pg_walstream::{
    CancellationToken, ChangeEvent, EventType, LogicalReplicationStream, Lsn,
    ReplicationStreamConfig, RetryConfig, SharedLsnFeedback, StreamingMode,
};
use tokio::sync::{Mutex, Notify, watch};

pub use catalog::SlotInfo;
pub use config::{PostgresConfig, PostgresProblem, redact};
pub use error::PostgresError;
pub use tables::{RuleTables, TableName};

use self::catalog::Catalog;
use self::decode::{Assembler, Relation};
use self::setup::Setup;
use self::visibility::{Gate, Waiting};
use super::in_flight::InFlight;
use super::{Intake, Source, SourceReport};
use crate::retry::Backoff;

crate::figures! {
    /// The Postgres source's live counters.
    live PostgresCounters;
    /// The Postgres source's counters at one moment.
    pub struct PostgresStats {
        /// Transactions read from the slot (a replayed one counts again).
        Counter transactions,
        /// Row changes in those transactions.
        Counter writes,
        /// Transactions whose position was confirmed to Postgres after
        /// their invalidations were applied.
        Counter confirmed,
        /// Connections lost and retried.
        Counter reconnects,
        /// Sessions dropped because the server no longer streamed to them
        /// while the connection looked open.
        Counter silent_streams,
        /// Visibility checks of waiting transactions (one query each).
        Counter visibility_checks,
        /// Messages that could not be taken as they are (a value not of its
        /// column's type, an unexpected message); each is logged with its
        /// position.
        Counter oddities,
        /// Transactions read and not yet confirmed.
        Gauge in_flight,
        /// Of those, the ones read but not yet visible to other sessions
        /// (their commits are held back until they are).
        Gauge invisible,
        /// Milliseconds since the stream last delivered a message.
        Gauge idle_ms,
        /// 1 while the replication stream is up, else 0.
        Gauge connected,
        /// WAL the slot keeps from being recycled, in bytes
        /// (`pg_current_wal_lsn() - confirmed_flush_lsn`), as last read.
        Gauge retained_wal_bytes,
        /// The slot's confirmed position (`confirmed_flush_lsn`), as a
        /// number, as last read.
        Gauge confirmed_lsn,
        /// How long ago the oldest transaction not yet applied committed,
        /// in milliseconds; 0 when none is waiting.
        Gauge lag_ms,
    }
}

/// Where and how to read, as `serve` resolves it.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// The `[postgres]` section (its `url` set).
    pub config: PostgresConfig,
    /// Reconnection back-off: first and longest delay.
    pub retry: (Duration, Duration),
    /// On stop, how long to wait for the transactions in flight to be
    /// applied and confirmed.
    pub drain: Duration,
    /// The tables the rules in service read (the publication names them).
    pub tables: RuleTables,
}

/// What a transaction in flight is confirmed by.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// Its end LSN: confirming it tells Postgres the transaction is done.
    end: u64,
    /// When it committed, in microseconds since the Unix epoch (for the
    /// lag).
    committed_us: i64,
}

/// The Postgres source, prepared and ready to run.
pub struct PostgresSource {
    state: Arc<State>,
}

/// What others see of a running [`PostgresSource`]: its figures, its
/// readiness, and the tables its publication follows.
#[derive(Clone)]
pub struct PostgresHandle {
    state: Arc<State>,
}

impl PostgresHandle {
    /// The counters now.
    pub fn stats(&self) -> PostgresStats {
        self.state.stats()
    }

    /// Ready when the replication stream is up, its slot is there, and
    /// what was read is being applied; else why not.
    pub fn ready(&self) -> Result<(), NotReady> {
        self.state.ready()
    }

    /// Makes the publication name the tables of rules about to serve,
    /// before they serve, so that their tables' writes are streamed from
    /// the swap on. Blocks the caller (the rules folder's watcher) for the
    /// few statements it takes, on a thread of its own, so that it works
    /// whatever runtime (if any) the caller is on.
    pub fn follow_rules(&self, tables: RuleTables) {
        self.state.follow_rules(tables)
    }
}

/// Why the Postgres source is not ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The slot was dropped or invalidated while running.
    #[error(
        "replication slot `{slot}` is gone (dropped by hand, or invalidated): restart \
         serve to create it anew. Writes made since it went are never streamed, so \
         also flush the cache keys of the rules' tables"
    )]
    SlotGone {
        /// The slot.
        slot: String,
    },
    /// Not connected, or the slot is in another process's hands.
    #[error(
        "the Postgres source is not streaming from slot `{slot}` (database unreachable, \
         or the slot is in use by another process)"
    )]
    NotStreaming {
        /// The slot.
        slot: String,
    },
    /// What was read is not being applied.
    #[error(
        "the Postgres source is stalled: the oldest transaction read from slot `{slot}` \
         committed {lag_s} s ago and is not applied yet ({invisible} waiting to be visible, \
         {in_flight} to be applied; the bound is the server's wal_sender_timeout, {bound_s} s)"
    )]
    Stalled {
        /// The slot.
        slot: String,
        /// How long ago the oldest transaction committed, in seconds.
        lag_s: u64,
        /// Transactions waiting to be visible.
        invisible: usize,
        /// Transactions waiting to be applied.
        in_flight: usize,
        /// The bound, in seconds.
        bound_s: u64,
    },
}

/// The source's connection, settings and figures, shared by its tasks and
/// its handles.
struct State {
    url: String,
    config: PostgresConfig,
    retry: (Duration, Duration),
    drain: Duration,
    /// The database's name (`postgres:NAME` is each commit's source).
    database: String,
    /// The catalog connection, reopened when lost.
    catalog: Mutex<Option<Catalog>>,
    /// Transactions read, waiting to be visible before they are handed
    /// over; they then move to `in_flight`.
    gate: Gate<Position>,
    in_flight: InFlight<Position>,
    counters: PostgresCounters,
    /// The tables the publication names now, as the rules asked.
    tables: std::sync::Mutex<RuleTables>,
    /// How long the oldest transaction may wait to be applied before the
    /// source is not ready: the server's `wal_sender_timeout` (60 s when it
    /// has none).
    stall_after: Duration,
    /// Signalled when the slot is seen idle while we think we stream.
    silent: Notify,
    /// Signalled when the transactions read could not be checked for
    /// visibility, and were let go to be read again.
    recheck: Notify,
    /// Set while the slot is found missing.
    slot_missing: AtomicBool,
    /// When the stream last delivered a message (ms since the epoch).
    last_message_ms: AtomicU64,
}

impl PostgresSource {
    /// Connects to the database, checks (and, when allowed, creates) the
    /// publication and the slot, and warns of (or, as configured, refuses)
    /// published tables without `REPLICA IDENTITY FULL`.
    pub async fn prepare(settings: PostgresSettings) -> Result<Self, PostgresError> {
        let config = settings.config;
        let url = config.url.clone().ok_or(PostgresError::NoUrl)?;
        let mut catalog = Catalog::connect(&url).await?;
        let prepared = catalog.prepare(&config, &settings.tables).await?;
        catalog.warn_of_idle_slots(&config).await;
        tracing::info!(
            database = %prepared.database,
            publication = %config.publication,
            slot = %config.slot,
            address = %redact(&url),
            "reading commits from Postgres"
        );
        let stall_after = if prepared.wal_sender_timeout.is_zero() {
            Duration::from_secs(60)
        } else {
            prepared.wal_sender_timeout
        };
        let state = State {
            url,
            retry: settings.retry,
            drain: settings.drain,
            database: prepared.database,
            catalog: Mutex::new(Some(catalog)),
            gate: Gate::default(),
            in_flight: InFlight::default(),
            counters: PostgresCounters::default(),
            tables: std::sync::Mutex::new(settings.tables),
            stall_after,
            silent: Notify::new(),
            recheck: Notify::new(),
            slot_missing: AtomicBool::new(false),
            last_message_ms: AtomicU64::new(now_ms()),
            config,
        };
        Ok(Self {
            state: Arc::new(state),
        })
    }

    /// A handle on its figures and readiness, for while it runs.
    pub fn handle(&self) -> PostgresHandle {
        PostgresHandle {
            state: self.state.clone(),
        }
    }
}

impl State {
    /// See [`PostgresHandle::follow_rules`].
    fn follow_rules(&self, tables: RuleTables) {
        if *self.tables.lock().expect("tables lock") == tables {
            return;
        }
        let url = self.url.clone();
        let config = self.config.clone();
        let wanted = tables.clone();
        let result = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(PostgresError::Runtime)?;
            rt.block_on(async {
                let mut catalog = Catalog::connect(&url).await?;
                catalog.follow(&config, &wanted).await
            })
        })
        .join();
        match result {
            Ok(Ok(())) => *self.tables.lock().expect("tables lock") = tables,
            Ok(Err(error)) => tracing::error!(%error,
                "the publication could not follow the rules' tables; writes to a table new to \
                 the rules are not streamed until it does"),
            Err(_) => tracing::error!("following the rules' tables panicked"),
        }
    }

    /// The counters now.
    fn stats(&self) -> PostgresStats {
        let invisible = self.gate.len() as u64;
        PostgresStats {
            in_flight: self.in_flight.len() as u64 + invisible,
            invisible,
            lag_ms: self.lag_ms(),
            idle_ms: now_ms().saturating_sub(self.last_message_ms.load(Relaxed)),
            ..self.counters.snapshot()
        }
    }

    /// How long ago the oldest transaction not yet applied committed, in
    /// milliseconds.
    fn lag_ms(&self) -> u64 {
        // Transactions pass the gate into `in_flight`, so the oldest is
        // there when there is one.
        let oldest = self
            .in_flight
            .first()
            .map(|(_, p)| p)
            .or_else(|| self.gate.first());
        oldest.map_or(0, |p| {
            now_ms().saturating_sub((p.committed_us / 1000).max(0) as u64)
        })
    }

    /// See [`PostgresHandle::ready`].
    fn ready(&self) -> Result<(), NotReady> {
        let slot = self.config.slot.clone();
        if self.slot_missing.load(Relaxed) {
            return Err(NotReady::SlotGone { slot });
        }
        if self.counters.connected.load(Relaxed) != 1 {
            return Err(NotReady::NotStreaming { slot });
        }
        let lag = Duration::from_millis(self.lag_ms());
        if lag > self.stall_after {
            return Err(NotReady::Stalled {
                slot,
                lag_s: lag.as_secs(),
                invisible: self.gate.len(),
                in_flight: self.in_flight.len(),
                bound_s: self.stall_after.as_secs(),
            });
        }
        Ok(())
    }
}

/// The source while it runs: its state, and where its commits go.
struct Streaming {
    state: Arc<State>,
    intake: Intake,
}

impl std::ops::Deref for Streaming {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl Streaming {
    /// Streams until `stop`, reconnecting after every failure.
    async fn consume(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let watcher = tokio::spawn(self.clone().watch_slot());
        let gate = tokio::spawn(self.clone().release_visible());
        let mut backoff = Backoff::new(self.retry.0, self.retry.1);
        let mut assembler = Assembler::new(&self.database);
        let mut reader = Reader::default();
        let mut outage: Option<Instant> = None;
        while !*stop.borrow() {
            // The watchdog's signal drops the session wherever it is
            // waiting, a stalled await included.
            let silent = self.silent.notified();
            let recheck = self.recheck.notified();
            let result = tokio::select! {
                result = self.session(
                    &mut stop,
                    &mut assembler,
                    &mut reader,
                    &mut outage,
                    &mut backoff,
                ) => result,
                () = recheck => Err(PostgresError::Unchecked),
                () = silent => {
                    self.counters.silent_streams.fetch_add(1, Relaxed);
                    Err(PostgresError::Silent {
                        slot: self.config.slot.clone(),
                    })
                }
            };
            self.counters.connected.store(0, Relaxed);
            let error = match result {
                Ok(()) => break,
                Err(error) => error,
            };
            // What was half read is read again from the slot.
            assembler.reset();
            self.counters.reconnects.fetch_add(1, Relaxed);
            let delay = backoff.next_delay();
            if outage.is_none() {
                outage = Some(Instant::now());
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                    "the Postgres source lost its stream; retrying until it is back");
            } else {
                tracing::debug!(%error, "Postgres still unavailable; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|&s| s) => break,
            }
        }
        watcher.abort();
        gate.abort();
        let left = self.unconfirmed();
        if left > 0 {
            tracing::warn!(
                transactions = left,
                "stopping with transactions not confirmed; they are read again from the slot \
                 at the next start"
            );
        }
    }

    /// Transactions read and not yet confirmed: waiting at the gate, then
    /// in flight. The gate is read first: a transaction moves from it to
    /// `in_flight` under the gate's lock, so read in this order it is
    /// counted in one or the other, never in neither.
    fn unconfirmed(&self) -> usize {
        let waiting = self.gate.len();
        waiting + self.in_flight.len()
    }

    /// One connection's life: streams, hands commits over, confirms what
    /// is applied. `Ok` when stopped, `Err` when the connection failed.
    async fn session(
        &self,
        stop: &mut watch::Receiver<bool>,
        assembler: &mut Assembler,
        reader: &mut Reader,
        outage: &mut Option<Instant>,
        backoff: &mut Backoff,
    ) -> Result<(), PostgresError> {
        let c = &self.config;
        let stream_config = ReplicationStreamConfig::builder(&c.slot, &c.publication)
            // Whole transactions, decoded at commit: no streaming of
            // transactions in progress, so nothing rolled back is ever seen.
            .with_protocol_version(1)
            .with_streaming_mode(StreamingMode::Off)
            .with_feedback_interval(c.confirm_every)
            // The slot was checked (or made) at start; one dropped since
            // must not be silently made anew, skipping what came between.
            .with_existing_slot_required(true)
            // Retries are this source's, with the pipeline's back-off.
            .with_retry_config(RetryConfig {
                max_attempts: 1,
                ..RetryConfig::default()
            })
            .with_connection_timeout(Duration::from_secs(10));
        let mut stream =
            LogicalReplicationStream::new(&config::replication_url(&self.url), stream_config)
                .await?;
        stream.start(None).await?;
        self.counters.connected.store(1, Relaxed);
        self.last_message_ms.store(now_ms(), Relaxed);
        backoff.reset();
        if let Some(since) = outage.take() {
            tracing::info!(
                after_ms = since.elapsed().as_millis() as u64,
                "the Postgres source is streaming again"
            );
        }
        let feedback = stream.shared_lsn_feedback.clone();
        let cancel = CancellationToken::new();
        let mut applied = self.intake.applied();
        let mut tick = tokio::time::interval(c.confirm_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if *stop.borrow_and_update() {
            self.drain(&mut stream, &mut applied, &feedback).await;
            return Ok(());
        }
        loop {
            self.confirm_applied(*applied.borrow_and_update(), &feedback);
            let paused = self.unconfirmed() >= c.max_in_flight;
            let stopping = tokio::select! {
                biased;
                // A dropped sender is a stop too.
                changed = stop.changed() => changed.is_err() || *stop.borrow_and_update(),
                changed = applied.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    false
                }
                _ = tick.tick() => {
                    // Nothing waiting or in flight and no transaction half
                    // read: every commit up to the server's last keepalive
                    // is done.
                    if self.unconfirmed() == 0 && !assembler.is_open() {
                        feedback.update_applied_lsn(stream.current_lsn());
                    }
                    if paused {
                        // Not reading, we would not answer the server's
                        // keepalives, and it would end the stream at
                        // wal_sender_timeout: a status update, even an
                        // unchanged one, keeps it waiting for us.
                        stream.send_feedback().await?;
                    } else {
                        stream.maybe_send_feedback().await;
                    }
                    false
                }
                event = stream.next_event(&cancel), if !paused => {
                    self.last_message_ms.store(now_ms(), Relaxed);
                    self.take(event?, assembler, reader).await;
                    false
                }
            };
            if stopping {
                self.drain(&mut stream, &mut applied, &feedback).await;
                return Ok(());
            }
        }
    }

    /// Confirms the transactions applied up to sequence `upto`.
    fn confirm_applied(&self, upto: u64, feedback: &SharedLsnFeedback) {
        let done = self.in_flight.applied(upto);
        if let Some(last) = done.iter().map(|(_, p)| p.end).max() {
            feedback.update_applied_lsn(last);
            self.in_flight.acknowledged(done.len());
            self.counters
                .confirmed
                .fetch_add(done.len() as u64, Relaxed);
        }
    }

    /// On stop: waits up to the drain time for what is in flight to be
    /// applied, and confirms it.
    async fn drain(
        &self,
        stream: &mut LogicalReplicationStream,
        applied: &mut watch::Receiver<u64>,
        feedback: &SharedLsnFeedback,
    ) {
        let deadline = tokio::time::Instant::now() + self.drain;
        loop {
            self.confirm_applied(*applied.borrow_and_update(), feedback);
            if self.unconfirmed() == 0 {
                break;
            }
            // Transactions still at the gate reach the pipeline without a
            // change of `applied`: look again every few milliseconds too.
            let wait = tokio::time::timeout(Duration::from_millis(20), applied.changed());
            match tokio::time::timeout_at(deadline, wait).await {
                Ok(Ok(Ok(()))) | Ok(Err(_)) => {}
                _ => break,
            }
        }
        if let Err(error) = stream.send_feedback().await {
            tracing::warn!(%error, "confirming the last position to Postgres failed");
        }
        let _ = stream.stop().await;
    }

    /// Takes one event from the stream.
    async fn take(&self, event: ChangeEvent, assembler: &mut Assembler, reader: &mut Reader) {
        match &event.event_type {
            EventType::Relation {
                relation_id,
                namespace,
                relation_name,
                columns,
                ..
            } => {
                let relation = self
                    .relation(*relation_id, namespace, relation_name, columns, event.lsn)
                    .await;
                assembler.relation(*relation_id, relation);
            }
            EventType::Begin {
                commit_timestamp,
                transaction_id,
                ..
            } => {
                reader.committed_us = commit_timestamp.timestamp_micros();
                reader.xid = *transaction_id;
                assembler.event(&event.event_type, event.lsn);
            }
            EventType::Commit { end_lsn, .. } => {
                if let Some(commit) = assembler.event(&event.event_type, event.lsn) {
                    self.counters.transactions.fetch_add(1, Relaxed);
                    self.counters
                        .writes
                        .fetch_add(commit.writes.len() as u64, Relaxed);
                    // A transaction that wrote no published row still has
                    // a position to confirm, once what came before it is
                    // applied; it waits for nothing else.
                    self.gate.push(Waiting {
                        xid: reader.xid,
                        commit: (!commit.writes.is_empty()).then_some(commit),
                        position: Position {
                            end: end_lsn.value(),
                            committed_us: reader.committed_us,
                        },
                    });
                }
            }
            other => {
                assembler.event(other, event.lsn);
            }
        }
        for oddity in assembler.take_oddities() {
            self.counters.oddities.fetch_add(1, Relaxed);
            tracing::warn!(lsn = %oddity.lsn, "{}", oddity.what);
        }
    }

    /// Hands over the transactions waiting at the gate as they become
    /// visible to new snapshots, in the order they were read, on a
    /// connection of its own. Runs for the source's life, across
    /// reconnections: a transaction read is committed whatever happens to
    /// the stream, and one read again after a reconnection is only
    /// invalidated twice.
    async fn release_visible(self: Arc<Self>) {
        /// The first wait for a transaction not yet visible, and the
        /// longest: the gap is usually microseconds, but with a
        /// synchronous standby it lasts as long as the standby takes.
        const FIRST_WAIT: Duration = Duration::from_millis(1);
        const LONGEST_WAIT: Duration = Duration::from_millis(50);
        /// Most transactions checked in one query.
        const MOST_CHECKED: usize = 4096;
        let mut catalog: Option<Catalog> = None;
        let mut wait = FIRST_WAIT;
        let mut last_seq = 0;
        loop {
            let arrived = self.gate.arrived.notified();
            if self.gate.len() == 0 {
                arrived.await;
                continue;
            }
            let xids = self.gate.xids(MOST_CHECKED);
            let visible = if xids.is_empty() {
                HashSet::new()
            } else {
                self.counters.visibility_checks.fetch_add(1, Relaxed);
                let checked = match catalog.as_mut() {
                    Some(c) => c.visible(&xids).await,
                    None => match Catalog::connect(&self.url).await {
                        Ok(c) => catalog.insert(c).visible(&xids).await,
                        Err(e) => Err(e),
                    },
                };
                match checked {
                    Ok(visible) => visible,
                    Err(error) => {
                        // Without the check nothing may be handed over: an
                        // invalidation too early is a stale entry for good.
                        // Nor may the transactions just wait: in a fast
                        // shutdown the server refuses new connections, and
                        // its walsender waits for us to confirm what it
                        // sent, so holding them would hold the shutdown
                        // for good. So they are let go unconfirmed, and the
                        // session is dropped: they are read again from the
                        // slot once the server answers, and checked then.
                        let dropped = self.gate.clear();
                        tracing::warn!(%error, transactions = dropped,
                            "cannot check whether the transactions read are visible yet; \
                             reading them again from the slot");
                        catalog = None;
                        self.recheck.notify_waiters();
                        continue;
                    }
                }
            };
            let passed = self.gate.release(&visible, |commit, position| {
                if let Some(commit) = commit {
                    last_seq = self.intake.hand_over(commit);
                }
                self.in_flight.push(last_seq, position);
            });
            if passed > 0 {
                // The acker may be waiting for an applied commit whose
                // position it has not seen yet.
                self.in_flight.added.notify_one();
            }
            // The wait grows only while the same transaction stays
            // invisible: under a steady load the gate is never empty, and
            // each transaction's wait starts short.
            if passed > 0 || self.gate.len() == 0 {
                wait = FIRST_WAIT;
            } else {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LONGEST_WAIT);
            }
        }
    }

    /// What rules need of a table: its name, column types, and primary
    /// key from the catalog (else the columns the stream flags as its
    /// replica identity).
    async fn relation(
        &self,
        id: u32,
        schema: &str,
        table: &str,
        columns: &[pg_walstream::RelationColumn],
        lsn: Lsn,
    ) -> Relation {
        let name = decode::table_name(schema, table);
        let mut key = match self.primary_key(id).await {
            Ok(key) => key,
            Err(error) => {
                self.counters.oddities.fetch_add(1, Relaxed);
                tracing::warn!(%error, %lsn, table = %name,
                    "reading the primary key failed; using the replica identity's columns");
                Vec::new()
            }
        };
        if key.is_empty() {
            key = columns
                .iter()
                .filter(|c| c.is_key)
                .map(|c| c.name.to_string())
                .collect();
        }
        Relation {
            table: name,
            types: columns
                .iter()
                .map(|c| (c.name.clone(), c.type_id))
                .collect(),
            key,
        }
    }

    /// The primary key of relation `id`, through the catalog connection.
    /// A connection that a restart of the server killed is only found out
    /// by using it: it is then opened again and asked once more, rather
    /// than giving up on the key for the rest of the session.
    async fn primary_key(&self, id: u32) -> Result<Vec<String>, PostgresError> {
        let mut catalog = self.catalog.lock().await;
        let mut last = None;
        for _ in 0..2 {
            if catalog.is_none() {
                *catalog = Some(Catalog::connect(&self.url).await?);
            }
            match catalog.as_mut().expect("connected").primary_key(id).await {
                Ok(key) => return Ok(key),
                Err(error) => {
                    *catalog = None;
                    last = Some(error);
                }
            }
        }
        Err(last.expect("two tries failed"))
    }

    /// Reads the slot every `stats_every`, for the statistics and as the
    /// watchdog, on a connection of its own so that a slow answer never
    /// holds up the reading: a slot that nobody streams from while the
    /// session thinks it does, twice in a row, means the server ended our
    /// stream without our connection noticing.
    async fn watch_slot(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.stats_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut catalog: Option<Catalog> = None;
        let mut idle_reads = 0;
        loop {
            tick.tick().await;
            if catalog.is_none() {
                catalog = Catalog::connect(&self.url).await.ok();
            }
            let Some(c) = catalog.as_mut() else { continue };
            match c.slot_position(&self.config.slot).await {
                Ok(Some(p)) => {
                    if self.slot_missing.swap(false, Relaxed) {
                        tracing::info!(slot = %self.config.slot, "the replication slot is back");
                    }
                    self.counters
                        .retained_wal_bytes
                        .store(p.retained_bytes, Relaxed);
                    self.counters.confirmed_lsn.store(p.confirmed, Relaxed);
                    let streaming = self.counters.connected.load(Relaxed) == 1;
                    idle_reads = if streaming && !p.active {
                        idle_reads + 1
                    } else {
                        0
                    };
                    if idle_reads >= 2 {
                        idle_reads = 0;
                        self.silent.notify_waiters();
                    }
                }
                Ok(None) => {
                    if !self.slot_missing.swap(true, Relaxed) {
                        tracing::error!(slot = %self.config.slot,
                            "the replication slot is gone (dropped by hand, or invalidated): \
                             writes made from now on are not streamed. Restart serve to create \
                             it anew, and flush the cache keys of the rules' tables");
                    }
                }
                Err(_) => catalog = None,
            }
        }
    }
}

/// The time now, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// What `invalidator postgres check` prints for rules reading `tables`:
/// the SQL that sets the database at `config.url` up for `serve` as that
/// address's role, and whether any statement is needed.
pub async fn check(
    config: &PostgresConfig,
    tables: &RuleTables,
) -> Result<(String, bool), PostgresError> {
    let url = config.url.as_deref().ok_or(PostgresError::NoUrl)?;
    let mut catalog = Catalog::connect(url).await?;
    let facts = catalog.facts(config, tables).await?;
    let setup = Setup::new(tables, &facts);
    Ok(setup.script(&facts, &config.publication, &config.slot))
}

/// The replication slots of the server at `url`.
pub async fn slots(url: &str) -> Result<Vec<SlotInfo>, PostgresError> {
    Catalog::connect(url).await?.slots().await
}

/// Drops replication slot `name` of the server at `url`, refusing one in
/// use.
pub async fn drop_slot(url: &str, name: &str) -> Result<(), PostgresError> {
    Catalog::connect(url).await?.drop_slot(name).await
}

/// What the reading loop carries from one event to the next.
#[derive(Debug, Default)]
struct Reader {
    /// The id of the transaction being read.
    xid: u32,
    /// When the transaction being read committed.
    committed_us: i64,
}

impl Source for PostgresSource {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn run(self, intake: Intake, stop: watch::Receiver<bool>) -> SourceReport {
        let streaming = Streaming {
            state: self.state,
            intake,
        };
        Arc::new(streaming).consume(stop).await;
        SourceReport::default()
    }
}
