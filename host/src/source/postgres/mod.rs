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
//! - The publication, the slot, and the tables' replica identity are
//!   checked at start ([`catalog`]).

mod catalog;
mod config;
mod decode;
mod error;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use pg_walstream::{
    CancellationToken, ChangeEvent, EventType, LogicalReplicationStream, Lsn,
    ReplicationStreamConfig, RetryConfig, SharedLsnFeedback, StreamingMode,
};
use tokio::sync::{Mutex, watch};

pub use config::{PostgresConfig, redact};
pub use error::PostgresError;

use self::catalog::Catalog;
use self::decode::{Assembler, Relation};
use super::in_flight::InFlight;
use super::{Intake, Source, SourceReport};
use crate::connection::Backoff;

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
        /// Messages that could not be taken as they are (a value not of its
        /// column's type, an unexpected message); each is logged with its
        /// position.
        Counter oddities,
        /// Transactions read and not yet confirmed.
        Gauge in_flight,
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

/// The Postgres source.
pub struct PostgresSource {
    url: String,
    config: PostgresConfig,
    retry: (Duration, Duration),
    drain: Duration,
    /// The database's name (`postgres:NAME` is each commit's source).
    database: String,
    /// The catalog connection, reopened when lost.
    catalog: Mutex<Option<Catalog>>,
    in_flight: InFlight<Position>,
    counters: PostgresCounters,
    /// Where commits go, once running.
    intake: OnceLock<Intake>,
}

impl PostgresSource {
    /// Connects to the database, checks (and, when allowed, creates) the
    /// publication and the slot, and warns of (or, as configured, refuses)
    /// published tables without `REPLICA IDENTITY FULL`.
    pub async fn prepare(settings: PostgresSettings) -> Result<Self, PostgresError> {
        let config = settings.config;
        let url = config
            .url
            .clone()
            .ok_or_else(|| PostgresError::Refused("no `postgres.url` given".into()))?;
        let mut catalog = Catalog::connect(&url).await?;
        let prepared = catalog.prepare(&config).await?;
        if !prepared.without_full_identity.is_empty() {
            let tables = prepared.without_full_identity.join(", ");
            if config.require_full_identity {
                return Err(PostgresError::Refused(format!(
                    "published tables without REPLICA IDENTITY FULL: {tables}; and \
                     `postgres.require_full_identity` is true. Run `ALTER TABLE ... REPLICA \
                     IDENTITY FULL` on each"
                )));
            }
            tracing::warn!(
                tables,
                "published tables without REPLICA IDENTITY FULL: their updates carry no \
                 `before` image, so a row that moves (to another parent, say) leaves its old \
                 place stale. Run `ALTER TABLE ... REPLICA IDENTITY FULL` on those whose rows move"
            );
        }
        tracing::info!(
            database = %prepared.database,
            publication = %config.publication,
            slot = %config.slot,
            address = %redact(&url),
            "reading commits from Postgres"
        );
        Ok(Self {
            url,
            retry: settings.retry,
            drain: settings.drain,
            database: prepared.database,
            catalog: Mutex::new(Some(catalog)),
            in_flight: InFlight::default(),
            counters: PostgresCounters::default(),
            intake: OnceLock::new(),
            config,
        })
    }

    /// The counters now.
    pub fn stats(&self) -> PostgresStats {
        let lag_ms = self.in_flight.first().map_or(0, |(_, p)| {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros() as i64;
            (now - p.committed_us).max(0) as u64 / 1000
        });
        PostgresStats {
            in_flight: self.in_flight.len() as u64,
            lag_ms,
            ..self.counters.snapshot()
        }
    }

    /// Ready when the replication stream is up; else why not.
    pub fn ready(&self) -> Result<(), String> {
        if self.counters.connected.load(Relaxed) == 1 {
            Ok(())
        } else {
            Err(format!(
                "the Postgres source is not streaming from slot `{}` (database unreachable, \
                 or the slot is in use by another process)",
                self.config.slot
            ))
        }
    }

    fn intake(&self) -> &Intake {
        self.intake
            .get()
            .expect("the Postgres source hands over only while running")
    }

    /// Streams until `stop`, reconnecting after every failure.
    async fn consume(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let watcher = tokio::spawn(self.clone().watch_slot());
        let mut backoff = Backoff::new(self.retry.0, self.retry.1);
        let mut assembler = Assembler::new(&self.database);
        let mut reader = Reader::default();
        let mut outage: Option<Instant> = None;
        while !*stop.borrow() {
            let result = self
                .session(
                    &mut stop,
                    &mut assembler,
                    &mut reader,
                    &mut outage,
                    &mut backoff,
                )
                .await;
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
        let left = self.in_flight.len();
        if left > 0 {
            tracing::warn!(
                transactions = left,
                "stopping with transactions not confirmed; they are read again from the slot \
                 at the next start"
            );
        }
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
        backoff.reset();
        if let Some(since) = outage.take() {
            tracing::info!(
                after_ms = since.elapsed().as_millis() as u64,
                "the Postgres source is streaming again"
            );
        }
        let feedback = stream.shared_lsn_feedback.clone();
        let cancel = CancellationToken::new();
        let mut applied = self.intake().applied();
        let mut tick = tokio::time::interval(c.confirm_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if *stop.borrow_and_update() {
            self.drain(&mut stream, &mut applied, &feedback).await;
            return Ok(());
        }
        loop {
            self.confirm_applied(*applied.borrow_and_update(), &feedback);
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
                    // Nothing in flight and no transaction half read: every
                    // commit up to the server's last keepalive is done.
                    if self.in_flight.len() == 0 && !assembler.is_open() {
                        feedback.update_applied_lsn(stream.current_lsn());
                    }
                    stream.maybe_send_feedback().await;
                    false
                }
                event = stream.next_event(&cancel),
                    if self.in_flight.len() < c.max_in_flight => {
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
            if self.in_flight.len() == 0 {
                break;
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
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
                commit_timestamp, ..
            } => {
                reader.committed_us = commit_timestamp.timestamp_micros();
                assembler.event(&event.event_type, event.lsn);
            }
            EventType::Commit { end_lsn, .. } => {
                if let Some(commit) = assembler.event(&event.event_type, event.lsn) {
                    self.counters.transactions.fetch_add(1, Relaxed);
                    // A transaction that wrote no published row still has
                    // a position to confirm, once what came before it is
                    // applied.
                    if !commit.writes.is_empty() {
                        self.counters
                            .writes
                            .fetch_add(commit.writes.len() as u64, Relaxed);
                        reader.last_seq = self.intake().hand_over(commit);
                    }
                    self.in_flight.push(
                        reader.last_seq,
                        Position {
                            end: end_lsn.value(),
                            committed_us: reader.committed_us,
                        },
                    );
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

    /// The primary key of relation `id`, through the catalog connection
    /// (opened again if it was lost).
    async fn primary_key(&self, id: u32) -> Result<Vec<String>, PostgresError> {
        let mut catalog = self.catalog.lock().await;
        if catalog.is_none() {
            *catalog = Some(Catalog::connect(&self.url).await?);
        }
        let result = catalog.as_mut().expect("connected").primary_key(id).await;
        if result.is_err() {
            *catalog = None;
        }
        result
    }

    /// Reads the slot's position every `stats_every`, for the statistics,
    /// on a connection of its own so that a slow answer never holds up
    /// the reading.
    async fn watch_slot(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.stats_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut catalog: Option<Catalog> = None;
        loop {
            tick.tick().await;
            if catalog.is_none() {
                catalog = Catalog::connect(&self.url).await.ok();
            }
            let Some(c) = catalog.as_mut() else { continue };
            match c.slot_position(&self.config.slot).await {
                Ok(Some(p)) => {
                    self.counters
                        .retained_wal_bytes
                        .store(p.retained_bytes, Relaxed);
                    self.counters.confirmed_lsn.store(p.confirmed, Relaxed);
                }
                Ok(None) => {}
                Err(_) => catalog = None,
            }
        }
    }
}

/// What the reading loop carries from one event to the next.
#[derive(Debug, Default)]
struct Reader {
    /// The sequence number of the last commit handed over.
    last_seq: u64,
    /// When the transaction being read committed.
    committed_us: i64,
}

impl Source for PostgresSource {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn run(self: Arc<Self>, intake: Intake, stop: watch::Receiver<bool>) -> SourceReport {
        if self.intake.set(intake).is_err() {
            tracing::error!("the Postgres source was run twice");
            return SourceReport::default();
        }
        self.consume(stop).await;
        SourceReport::default()
    }
}
