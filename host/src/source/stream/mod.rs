//! The Redis Streams source: commits read from a stream through a consumer
//! group, so that any number of `serve` processes, on any machines, share
//! one stream.
//!
//! Each entry carries one commit, as JSON, in its field `commit`:
//! `XADD commits * commit '{"txn":"t-1","writes":[...]}'`.
//!
//! - An entry is acknowledged (`XACK`) only after its commit's
//!   invalidations are applied ([`InFlight`] follows the pipeline).
//! - While this process works on entries it keeps them claimed (`XCLAIM
//!   ... JUSTID` resets their idle time without counting a delivery), so
//!   only the entries of a process that died or froze grow idle; those are
//!   claimed by the others after `claim_idle` ([`claim`]).
//! - An entry that is not a valid commit goes to the dead-letter stream at
//!   once: no attempt can fix it. An entry delivered `max_attempts` times
//!   without being acknowledged (it took its consumers down with it) goes
//!   there when next claimed. Either way the reason is recorded, the entry
//!   acknowledged, and the stream moves on ([`dead_letter`]).
//! - An entry whose invalidations Redis refused for good (`NOPERM`,
//!   `WRONGTYPE`, a script error; see
//!   [`Invalidator::failure`](crate::pipeline::Invalidator::failure)) goes
//!   there too once applied, with the refused targets as its reason.

mod claim;
mod config;
mod dead_letter;

pub use config::StreamConfig;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use redis::streams::{StreamId, StreamReadReply};
use tokio::sync::watch;

use super::in_flight::InFlight;
use super::{Intake, Source, SourceError, SourceReport};
use crate::commit::parse_json;
use crate::redis::{Redis, RedisConfig, RedisError};
use crate::retry::Backoff;

crate::figures! {
    /// The stream's live counters.
    live StreamCounters;
    /// The stream counters at one moment.
    pub struct StreamStats {
        /// Entries handed to the pipeline (read, or claimed from another
        /// consumer).
        Counter read,
        /// Of those, entries claimed from a consumer that stopped.
        Counter claimed,
        /// Entries acknowledged after their invalidations were applied.
        Counter acked,
        /// Entries moved to the dead-letter stream.
        Counter dead_lettered,
        /// Entries read and not yet acknowledged (kept by the entries in
        /// flight themselves, not by a counter).
        Gauge in_flight,
    }
}

/// One process's consumer of the stream, ready to run.
pub struct StreamSource {
    state: Arc<State>,
}

/// What others see of a running [`StreamSource`]: its figures.
#[derive(Clone)]
pub struct StreamHandle {
    state: Arc<State>,
}

impl StreamHandle {
    /// The counters now.
    pub fn stats(&self) -> StreamStats {
        self.state.stats()
    }
}

/// The consumer while it runs: its state, and where its commits go.
struct Consumer {
    state: Arc<State>,
    intake: Intake,
}

impl std::ops::Deref for Consumer {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

/// A consumer's settings and figures.
struct State {
    redis: Arc<Redis>,
    name: String,
    group: String,
    consumer: String,
    dead_letter: String,
    claim_idle: Duration,
    max_attempts: u64,
    read_count: usize,
    block: Duration,
    max_in_flight: usize,
    drain: Duration,
    in_flight: InFlight<String>,
    counters: StreamCounters,
}

impl StreamSource {
    /// A consumer of the stream `config` names, in Redis at `redis`
    /// reached as `connection` says (its TLS files, say), waiting up to
    /// `drain` on stop for its entries in flight. Connects lazily.
    pub fn new(
        config: &StreamConfig,
        redis: &str,
        connection: &RedisConfig,
        drain: Duration,
    ) -> Result<Self, SourceError> {
        let (Some(name), Some(dead_letter)) = (config.name.clone(), config.dead_letter_stream())
        else {
            return Err(SourceError::NoStream);
        };
        // A blocking read holds its connection: it gets one of its own, and
        // a response timeout longer than the block. Its writes (`XACK`)
        // need no replica: one lost in a failover only delivers an entry
        // again, which applies again.
        let redis = Redis::open(
            redis,
            RedisConfig {
                response_timeout: config.block + connection.response_timeout,
                replicas: 0,
                replay_window: Duration::ZERO,
                ..connection.clone()
            },
        )
        .map_err(SourceError::StreamRedis)?;
        let state = State {
            redis: Arc::new(redis),
            name,
            group: config.group.clone(),
            consumer: config.consumer_name(),
            dead_letter,
            claim_idle: config.claim_idle,
            max_attempts: config.max_attempts,
            read_count: config.read_count,
            block: config.block,
            max_in_flight: config.max_in_flight,
            drain,
            in_flight: InFlight::default(),
            counters: StreamCounters::default(),
        };
        Ok(Self {
            state: Arc::new(state),
        })
    }

    /// A handle on its figures, for while it runs.
    pub fn handle(&self) -> StreamHandle {
        StreamHandle {
            state: self.state.clone(),
        }
    }
}

impl State {
    /// The counters now.
    fn stats(&self) -> StreamStats {
        StreamStats {
            in_flight: self.in_flight.len() as u64,
            ..self.counters.snapshot()
        }
    }
}

impl Consumer {
    /// Consumes until `stop` turns true, then waits up to the drain time
    /// for the entries in flight to be applied and acknowledged. Redis
    /// errors are logged and retried with backoff; they never end the loop.
    async fn consume(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let drain = self.drain;
        tracing::info!(
            stream = %self.name,
            group = %self.group,
            consumer = %self.consumer,
            "consuming the stream"
        );
        let acker = tokio::spawn(self.clone().acknowledge());
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        // First our own entries left unacknowledged by an earlier run under
        // this name, then new ones.
        let mut history = true;
        let mut last_claim = tokio::time::Instant::now();
        // Whether the group is known to exist; after any error it is
        // checked again (the stream may have been deleted).
        let mut grouped = false;
        while !*stop.borrow() {
            tokio::select! {
                () = self.in_flight.wait_until(|n| n < self.max_in_flight) => {}
                _ = stop.wait_for(|&s| s) => break,
            }
            // Not cancelled on stop: entries a read was given are handed
            // over, and the block time bounds how long stopping waits.
            let step = async {
                if !grouped {
                    self.ensure_group().await?;
                    grouped = true;
                }
                if last_claim.elapsed() >= self.claim_idle / 2 {
                    last_claim = tokio::time::Instant::now();
                    self.claim().await?;
                }
                self.read(&mut history).await
            };
            match step.await {
                Ok(()) => backoff.reset(),
                Err(error) => {
                    grouped = false;
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, stream = %self.name, retry_in_ms = delay.as_millis() as u64,
                        "reading the stream failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        // Stopping: nothing new is read; what is in flight is applied by
        // the pipeline and acknowledged by the acker.
        let drained = tokio::time::timeout(drain, self.in_flight.wait_until(|n| n == 0)).await;
        acker.abort();
        if drained.is_err() {
            tracing::error!(
                in_flight = self.in_flight.len(),
                "stopping with stream entries not acknowledged; another consumer will claim them"
            );
        }
    }

    /// Creates the group (reading from the start of the stream, so that
    /// entries added before the first consumer are not skipped) and the
    /// stream, unless they exist.
    async fn ensure_group(&self) -> Result<(), RedisError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.name)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM");
        match self.redis.query::<()>(&cmd).await {
            Err(RedisError::Redis { source, .. }) if source.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Reads one batch: our own pending history while there is some, then
    /// new entries, waiting up to the block time for them.
    async fn read(&self, history: &mut bool) -> Result<(), RedisError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.read_count);
        if !*history {
            cmd.arg("BLOCK").arg(self.block.as_millis() as u64);
        }
        cmd.arg("STREAMS")
            .arg(&self.name)
            .arg(if *history { "0" } else { ">" });
        let reply: Option<StreamReadReply> = self.redis.query(&cmd).await?;
        let entries: Vec<StreamId> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect();
        if *history && entries.is_empty() {
            *history = false;
        }
        self.accept(entries, false).await
    }

    /// Hands the commits of `entries` to the pipeline, and sends the ones
    /// that are not commits to the dead-letter stream.
    async fn accept(&self, entries: Vec<StreamId>, claimed: bool) -> Result<(), RedisError> {
        let mut poison = Vec::new();
        for entry in entries {
            match commit_of(&entry) {
                Ok(commit) => {
                    let seq = self.intake.hand_over(commit);
                    self.in_flight.push(seq, entry.id);
                    self.counters.read.fetch_add(1, Relaxed);
                    if claimed {
                        self.counters.claimed.fetch_add(1, Relaxed);
                    }
                }
                Err(reason) => poison.push((entry, reason)),
            }
        }
        self.in_flight.added.notify_one();
        for (entry, reason) in poison {
            self.dead_letter(&entry, &reason, 1).await?;
        }
        Ok(())
    }

    /// Acknowledges entries as their invalidations are applied, and keeps
    /// the entries in flight claimed; runs until aborted.
    async fn acknowledge(self: Arc<Self>) {
        let mut applied = self.intake.applied();
        let mut touch = tokio::time::interval((self.claim_idle / 3).max(Duration::from_millis(10)));
        touch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                () = self.in_flight.added.notified() => {}
                _ = touch.tick() => {
                    if let Err(error) = self.keep_claimed().await {
                        tracing::warn!(%error, "keeping stream entries claimed failed; retrying");
                    }
                }
            }
            let upto = *applied.borrow_and_update();
            let done = self.in_flight.applied(upto);
            if done.is_empty() {
                continue;
            }
            match self.retire(&done).await {
                Ok(()) => self.in_flight.acknowledged(done.len()),
                // They stay in flight (and claimed): retried on the next
                // change or tick. An entry dead-lettered before the error
                // may be dead-lettered twice; none is lost.
                Err(error) => {
                    tracing::warn!(%error, entries = done.len(),
                        "acknowledging stream entries failed; retrying");
                }
            }
        }
    }

    /// Retires entries whose commits are applied: those whose batch Redis
    /// refused targets of for good go to the dead-letter stream with the
    /// refusal as reason, the others are acknowledged.
    async fn retire(&self, done: &[(u64, String)]) -> Result<(), RedisError> {
        let mut ok = Vec::with_capacity(done.len());
        for (seq, id) in done {
            match self.intake.failure(*seq) {
                None => ok.push(id.clone()),
                Some(failure) => {
                    // The entry's fields are read back for the copy only
                    // on this path, so that entries in flight cost no more
                    // than their ids.
                    let entry = self.entry(id).await?;
                    self.dead_letter(&entry, &failure.to_string(), 1).await?;
                }
            }
        }
        self.ack(&ok).await?;
        self.counters.acked.fetch_add(ok.len() as u64, Relaxed);
        Ok(())
    }

    /// Entry `id` of the stream, read back; only its id if it is gone
    /// (trimmed), so that it can still be dead-lettered and acknowledged.
    async fn entry(&self, id: &str) -> Result<StreamId, RedisError> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&self.name).arg(id).arg(id);
        let reply: redis::streams::StreamRangeReply = self.redis.query(&cmd).await?;
        Ok(reply.ids.into_iter().next().unwrap_or_else(|| StreamId {
            id: id.to_owned(),
            ..StreamId::default()
        }))
    }

    /// `XACK`s `ids`, a thousand at a time.
    async fn ack(&self, ids: &[String]) -> Result<(), RedisError> {
        for chunk in ids.chunks(1000) {
            let mut cmd = redis::cmd("XACK");
            cmd.arg(&self.name).arg(&self.group).arg(chunk);
            let _: u64 = self.redis.query(&cmd).await?;
        }
        Ok(())
    }

    /// Resets the idle time of the entries in flight (without counting a
    /// delivery), so that no other consumer claims them while this process
    /// is alive and working on them.
    async fn keep_claimed(&self) -> Result<(), RedisError> {
        for chunk in self.in_flight.ids().chunks(1000) {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&self.name)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(0)
                .arg(chunk)
                .arg("JUSTID");
            let _: Vec<String> = self.redis.query(&cmd).await?;
        }
        Ok(())
    }
}

impl Source for StreamSource {
    fn name(&self) -> &'static str {
        "stream"
    }

    async fn run(self, intake: Intake, stop: watch::Receiver<bool>) -> SourceReport {
        let consumer = Consumer {
            state: self.state,
            intake,
        };
        Arc::new(consumer).consume(stop).await;
        SourceReport::default()
    }
}

/// The commit an entry carries in its `commit` field, or why it has none.
fn commit_of(entry: &StreamId) -> Result<crate::commit::Commit, String> {
    let Some(value) = entry.map.get("commit") else {
        let fields: Vec<&str> = entry.map.keys().map(String::as_str).collect();
        return Err(format!(
            "entry has no `commit` field (fields: {})",
            fields.join(", ")
        ));
    };
    let text: String = redis::from_redis_value_ref(value)
        .map_err(|e| format!("field `commit` is not text: {e}"))?;
    parse_json(&text).map_err(|e| format!("field `commit` is not a valid commit: {e}"))
}
