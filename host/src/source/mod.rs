//! Sources: where commits come from. A source produces commits, hands them
//! to the pipeline through an [`Intake`], and learns from it when each
//! one's invalidations are applied, so that it can acknowledge them in its
//! own terms. Nothing downstream knows where a commit came from.
//!
//! - [`lines`]: a JSON Lines input (a file, standard input); nothing to
//!   acknowledge.
//! - [`http`]: the HTTP API's intake; a `?wait=true` request is answered
//!   once applied.
//! - [`stream`]: a Redis stream read through a consumer group; an entry is
//!   `XACK`ed once applied, and tracked meanwhile ([`in_flight`]).
//! - [`postgres`]: the database's own log of committed transactions
//!   (logical replication); a transaction's position is confirmed to
//!   Postgres once applied.
//! - [`mysql`]: a MariaDB server's binary log, read as a replica reads it;
//!   a transaction's GTID position is stored once applied.
//! - [`transaction`]: for services that embed the host, their own code: a
//!   guard that records a transaction's writes and hands them over only
//!   when it commits. It is driven by the service's calls rather than run,
//!   so it is the one source that does not implement [`Source`].

pub mod http;
mod in_flight;
pub mod lines;
pub mod mysql;
pub mod postgres;
pub mod stream;
mod transaction;

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{oneshot, watch};

pub use transaction::{IntoRow, Transaction};

use crate::commit::Commit;
use crate::pipeline::{ApplyFailure, Invalidator, Outcome};

/// Something commits come from, run by `serve` beside the others.
///
/// Running consumes the source: what others need to see of it while it
/// runs (its figures, its readiness) they take beforehand, as a handle.
pub trait Source: Send + 'static {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Takes commits and hands them to `intake` until `stop` turns true or
    /// its input ends, acknowledging each once `intake` says it is
    /// applied. On stop it takes no new work, and waits, as its own
    /// settings say, for what it handed over to be acknowledged.
    fn run(
        self,
        intake: Intake,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = SourceReport> + Send;
}

/// What a source reports when it ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    /// Input that was not a commit (a malformed line), reported and
    /// skipped.
    pub malformed: u64,
    /// Whether its input ended by itself (rather than by a stop).
    pub ended: bool,
}

/// Why a source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The HTTP listener could not be opened, or may not be.
    #[error(transparent)]
    Listen(#[from] crate::http::ListenError),
    /// The stream source was asked for without a stream.
    #[error("stream: no `stream.name` given")]
    NoStream,
    /// The stream's Redis address is unusable.
    #[error("stream: its Redis: {0}")]
    StreamRedis(crate::redis::RedisError),
}

/// The pipeline as a source sees it: where commits are handed over, and
/// where their progress is learnt.
#[derive(Clone)]
pub struct Intake {
    pipeline: Arc<Invalidator>,
}

impl Intake {
    /// An intake into `pipeline`.
    pub fn new(pipeline: Arc<Invalidator>) -> Self {
        Self { pipeline }
    }

    /// Hands over a committed transaction; returns its sequence number.
    pub fn hand_over(&self, commit: Commit) -> u64 {
        self.pipeline.after_commit(commit)
    }

    /// Hands over committed transactions, in order; returns the sequence
    /// number of the last (0 for none). Cheaper per commit than one by
    /// one: the queue is taken once.
    pub fn hand_over_all(&self, commits: Vec<Commit>) -> u64 {
        self.pipeline.after_commits(commits)
    }

    /// Hands over a commit and answers with what the rules decided for it
    /// alone, once evaluated.
    pub fn hand_over_answered(&self, commit: Commit) -> (u64, oneshot::Receiver<Outcome>) {
        self.pipeline.after_commit_answered(commit)
    }

    /// Hands over targets to invalidate as they are; returns their
    /// sequence number.
    pub fn invalidate(&self, targets: crate::targets::TargetSet) -> u64 {
        self.pipeline.invalidate(targets)
    }

    /// The rules in service.
    pub fn rule_set(&self) -> Arc<crate::rules::RuleSet> {
        self.pipeline.rule_set()
    }

    /// Follows the sequence number of the last commit applied.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.pipeline.applied()
    }

    /// Waits until commit `seq` (and everything before it) is applied.
    pub async fn applied_up_to(&self, seq: u64) {
        self.pipeline.applied_up_to(seq).await
    }

    /// What Redis refused for good of the batch that applied commit `seq`,
    /// if anything; ask once it is applied.
    pub fn failure(&self, seq: u64) -> Option<Arc<ApplyFailure>> {
        self.pipeline.failure(seq)
    }
}
