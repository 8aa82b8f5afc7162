//! The dead-letter stream: where entries that cannot be applied go, with
//! the reason, so that the stream moves on and an operator can look.

use std::sync::atomic::Ordering::Relaxed;

use redis::streams::StreamId;

use super::Consumer;
use crate::redis::RedisError;

impl Consumer {
    /// Copies `entry` to the dead-letter stream with `reason`, then
    /// acknowledges it. In that order: a crash between the two leaves the
    /// entry pending, to be retired again (a duplicate in the dead-letter
    /// stream), never lost.
    ///
    /// The copy has the fields `reason`, `stream`, `entry` (the original
    /// id), `deliveries` and `consumer`, then the entry's own fields.
    pub(super) async fn dead_letter(
        &self,
        entry: &StreamId,
        reason: &str,
        deliveries: u64,
    ) -> Result<(), RedisError> {
        tracing::error!(
            entry = %entry.id,
            dead_letter = %self.dead_letter,
            "stream entry moved to the dead-letter stream: {reason}"
        );
        let mut add = redis::cmd("XADD");
        add.arg(&self.dead_letter)
            .arg("*")
            .arg("reason")
            .arg(reason)
            .arg("stream")
            .arg(&self.name)
            .arg("entry")
            .arg(&entry.id)
            .arg("deliveries")
            .arg(deliveries)
            .arg("consumer")
            .arg(&self.consumer);
        let mut fields: Vec<_> = entry.map.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (field, value) in fields {
            add.arg(field);
            match value {
                redis::Value::BulkString(bytes) => add.arg(bytes.as_slice()),
                redis::Value::SimpleString(text) => add.arg(text),
                other => add.arg(format!("{other:?}")),
            };
        }
        let _: String = self.redis.query(&add).await?;
        self.ack(std::slice::from_ref(&entry.id)).await?;
        self.counters.dead_lettered.fetch_add(1, Relaxed);
        Ok(())
    }
}
