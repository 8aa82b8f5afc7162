//! The invalidation feed: one entry per applied batch, added to a capped
//! Redis stream (`serve --feed NAME`), for whoever builds on what was
//! invalidated: warmers that fill hot keys again, near caches in other
//! languages, an audit trail.
//!
//! An entry is written once its batch is applied (after replicas
//! acknowledged, when they are asked to), never before, by a task of its
//! own: the applier hands the entry over and goes on, so a slow or failing
//! stream never holds up an invalidation. The feed is a notice, not the
//! invalidation itself: an entry that cannot be written (Redis down between
//! the batch and its entry, the hand-over queue full) is counted and
//! logged, and its keys stay invalidated; a warmer that misses it leaves
//! them cold, which costs a miss, never a stale read.
//!
//! Fields of an entry, all text:
//! - `at`: when the batch was applied, in milliseconds since the epoch;
//! - `origins`: a JSON array of what named the targets, as explain shows
//!   them (`txn`, `source`, `rule`, `version`, `cause`, `failed`);
//! - `keys`, `patterns`, `tags`: JSON arrays of the targets, as stored;
//! - `removed`: a JSON array of the keys that existed and were removed,
//!   the exact keys in full, those found by patterns and tags up to the
//!   feed's `max_keys`;
//! - `removed_count`: how many keys were removed in all;
//! - `cut`: `1` when `removed` leaves some out, else `0`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::explain::Origin;
use super::progress::Progress;
use crate::redis::Redis;
use crate::sink::Removed;
use crate::targets::TargetSet;

/// Entries kept by default in the stream (`MAXLEN ~`).
pub const DEFAULT_FEED_MAXLEN: u64 = 10_000;
/// Keys found by patterns and tags listed by default per entry.
pub const DEFAULT_FEED_KEYS: usize = 1_000;
/// Entries handed over and not yet written, before new ones are dropped
/// (and counted): the applier never waits on the feed.
const QUEUE: usize = 4096;

/// Where the feed goes and how much it keeps: the `[feed]` section of the
/// configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// The stream's key, as given (not under the key prefix); empty: no
    /// feed. Default empty.
    pub stream: String,
    /// About how many entries the stream keeps (`XADD ... MAXLEN ~`).
    /// Default 10 000.
    pub maxlen: u64,
    /// Most keys found by patterns and tags listed per entry; the entry
    /// says when it left some out. Default 1 000.
    pub max_keys: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            stream: String::new(),
            maxlen: DEFAULT_FEED_MAXLEN,
            max_keys: DEFAULT_FEED_KEYS,
        }
    }
}

impl FeedConfig {
    /// Whether a stream is named.
    pub fn enabled(&self) -> bool {
        !self.stream.is_empty()
    }
}

/// One applied batch, as the feed tells it.
#[derive(Debug)]
pub(crate) struct FeedEntry {
    pub(crate) at: SystemTime,
    pub(crate) origins: Vec<Arc<Origin>>,
    pub(crate) targets: TargetSet,
    pub(crate) removed: Removed,
    pub(crate) removed_count: u64,
}

impl FeedEntry {
    /// The stream entry's fields.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let at = self
            .at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        let removed: Vec<&String> = self
            .removed
            .keys
            .iter()
            .chain(&self.removed.found)
            .collect();
        let cut = self.removed.cut || (removed.len() as u64) < self.removed_count;
        vec![
            ("at", at.to_string()),
            ("origins", json(&self.origins)),
            ("keys", json(&self.targets.keys)),
            ("patterns", json(&self.targets.patterns)),
            ("tags", json(&self.targets.tags)),
            ("removed", json(&removed)),
            ("removed_count", self.removed_count.to_string()),
            ("cut", if cut { "1" } else { "0" }.to_owned()),
        ]
    }
}

/// A field's JSON text.
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("feed fields serialize")
}

/// The applier's end of the feed.
#[derive(Clone)]
pub(crate) struct FeedSender {
    tx: mpsc::Sender<FeedEntry>,
    progress: Arc<Progress>,
}

impl FeedSender {
    /// Hands an entry to the writer; never waits. A full queue (Redis far
    /// slower than the batches) drops the entry, counted and logged.
    pub(crate) fn send(&self, entry: FeedEntry) {
        if self.tx.try_send(entry).is_err() {
            self.progress.stats.feed_dropped();
            tracing::warn!("the invalidation feed's queue is full: an entry was dropped");
        }
    }
}

/// Starts the task that writes entries to the stream; its sender, and its
/// handle (aborted with the pipeline).
pub(crate) fn start(
    redis: Arc<Redis>,
    config: FeedConfig,
    progress: Arc<Progress>,
) -> (FeedSender, tokio::task::AbortHandle) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(write(redis, config, progress.clone(), rx));
    (FeedSender { tx, progress }, task.abort_handle())
}

/// Writes each entry handed over, in order.
async fn write(
    redis: Arc<Redis>,
    config: FeedConfig,
    progress: Arc<Progress>,
    mut rx: mpsc::Receiver<FeedEntry>,
) {
    while let Some(entry) = rx.recv().await {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&config.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(config.maxlen)
            .arg("*");
        for (field, value) in entry.fields() {
            xadd.arg(field).arg(value);
        }
        match redis.query::<redis::Value>(&xadd).await {
            Ok(_) => progress.stats.fed(),
            Err(error) => {
                progress.stats.feed_failed();
                tracing::warn!(stream = %config.stream, %error,
                    "could not add an entry to the invalidation feed; its keys stay invalidated");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::explain::Cause;
    use crate::targets::Target;

    #[test]
    fn an_entry_lists_its_origins_targets_and_removed_keys() {
        let mut removed = Removed::new(1);
        removed.keys.push("k1".into());
        removed.found("p1".into());
        removed.found("p2".into());
        let entry = FeedEntry {
            at: UNIX_EPOCH + Duration::from_millis(1234),
            origins: vec![Arc::new(Origin {
                txn: Some("t1".into()),
                source: Some("pg".into()),
                rule: Some("turnus".into()),
                version: Some("1.0.0".into()),
                cause: Cause::Rule,
                failed: false,
            })],
            targets: [Target::Key("k1".into()), Target::Pattern("p*".into())]
                .into_iter()
                .collect(),
            removed,
            removed_count: 3,
        };
        let fields: std::collections::HashMap<_, _> = entry.fields().into_iter().collect();
        assert_eq!(fields["at"], "1234");
        assert_eq!(
            fields["origins"],
            r#"[{"txn":"t1","source":"pg","rule":"turnus","version":"1.0.0","cause":"rule","failed":false}]"#
        );
        assert_eq!(fields["keys"], r#"["k1"]"#);
        assert_eq!(fields["patterns"], r#"["p*"]"#);
        assert_eq!(fields["tags"], "[]");
        assert_eq!(fields["removed"], r#"["k1","p1"]"#);
        assert_eq!(fields["removed_count"], "3");
        assert_eq!(fields["cut"], "1");
    }
}
