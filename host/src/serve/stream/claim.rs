//! Claiming: taking over the entries of a consumer that stopped
//! acknowledging (its process died or froze), and retiring the entries
//! that keep failing.

use redis::streams::{StreamClaimReply, StreamPendingCountReply};

use super::StreamSource;
use crate::sink::SinkError;

/// Pending entries looked at per claim pass.
const CLAIM_BATCH: usize = 256;

impl StreamSource {
    /// One pass: the entries other consumers have held idle for
    /// `claim_idle` are claimed and handed to the pipeline, except those
    /// already delivered `max_attempts` times, which go to the dead-letter
    /// stream.
    pub(super) async fn claim(&self) -> Result<(), SinkError> {
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

    /// `XCLAIM`s `ids` for this consumer if they are still idle for
    /// `claim_idle` (another consumer may have just claimed them). Entries
    /// deleted from the stream meanwhile are not returned (Redis drops them
    /// from the pending list).
    async fn xclaim(&self, ids: &[&str]) -> Result<StreamClaimReply, SinkError> {
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&self.name)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(self.claim_idle.as_millis() as u64)
            .arg(ids);
        self.redis.query(&cmd).await
    }
}
