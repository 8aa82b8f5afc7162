//! Claiming: taking over the entries of a consumer that stopped
//! acknowledging (its process died or froze), and retiring the entries
//! that keep failing.

use std::sync::LazyLock;

use redis::Script;
use redis::streams::{StreamClaimReply, StreamPendingCountReply};

use super::Consumer;
use crate::redis::RedisError;

/// Pending entries looked at per claim pass.
const CLAIM_BATCH: usize = 256;

/// A consumer that holds nothing and has not been seen for this many
/// claim times is forgotten.
const FORGET_AFTER_CLAIMS: u32 = 10;

static FORGET_CONSUMERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/forget_consumers.lua")));

impl Consumer {
    /// One pass: the entries other consumers have held idle for
    /// `claim_idle` are claimed and handed to the pipeline, except those
    /// already delivered `max_attempts` times, which go to the dead-letter
    /// stream; and consumers long gone are forgotten.
    pub(super) async fn claim(&self) -> Result<(), RedisError> {
        let idle = self.claim_idle.as_millis() as u64;
        let mut pending = redis::cmd("XPENDING");
        pending
            .arg(&self.name)
            .arg(&self.group)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(CLAIM_BATCH);
        let reply: StreamPendingCountReply = self.redis.query(&pending).await?;
        let (spent, live): (Vec<_>, Vec<_>) = reply
            .ids
            .into_iter()
            .filter(|p| p.consumer != self.consumer)
            .partition(|p| p.times_delivered as u64 >= self.max_attempts);
        if !live.is_empty() {
            let ids: Vec<&str> = live.iter().map(|p| p.id.as_str()).collect();
            let claimed = self.xclaim(&ids).await?;
            if !claimed.ids.is_empty() {
                tracing::warn!(
                    entries = claimed.ids.len(),
                    from = %live[0].consumer,
                    "claimed stream entries from a consumer that stopped acknowledging"
                );
            }
            self.accept(claimed.ids, true).await?;
        }
        self.forget_stopped_consumers().await?;
        for p in spent {
            // Claimed first, so that of several consumers only one retires
            // it (and its fields are read in the same step).
            let claimed = self.xclaim(&[p.id.as_str()]).await?;
            for entry in claimed.ids {
                let reason = format!(
                    "delivered {} times without being acknowledged (last to consumer `{}`)",
                    p.times_delivered, p.consumer
                );
                self.dead_letter(&entry, &reason, p.times_delivered as u64 + 1)
                    .await?;
            }
        }
        Ok(())
    }

    /// Removes from the group the consumers that hold no entry and were
    /// not seen for [`FORGET_AFTER_CLAIMS`] claim times: processes that
    /// stopped, whose `HOSTNAME-PID` names would otherwise pile up. (A live
    /// consumer removed by mistake is recreated by its next read, and
    /// holds nothing to lose.)
    async fn forget_stopped_consumers(&self) -> Result<(), RedisError> {
        let idle = (self.claim_idle * FORGET_AFTER_CLAIMS).as_millis() as u64;
        let mut invocation = FORGET_CONSUMERS.key(&self.name);
        invocation.arg(&self.group).arg(idle).arg(&self.consumer);
        let removed: Vec<String> = self.redis.invoke(&invocation).await?;
        if !removed.is_empty() {
            tracing::info!(consumers = ?removed, "forgot stopped consumers that held nothing");
        }
        Ok(())
    }

    /// `XCLAIM`s `ids` for this consumer if they are still idle for
    /// `claim_idle` (another consumer may have just claimed them). Entries
    /// deleted from the stream meanwhile are not returned (Redis drops them
    /// from the pending list).
    async fn xclaim(&self, ids: &[&str]) -> Result<StreamClaimReply, RedisError> {
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&self.name)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(self.claim_idle.as_millis() as u64)
            .arg(ids);
        self.redis.query(&cmd).await
    }
}
