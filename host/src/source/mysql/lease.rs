//! [`Lease`]: which of several `serve` processes reads a server's binary
//! log. MariaDB ends the older of two readers with one replica id and
//! keeps no position for us, so two processes reading at once would fight
//! over the stream and the stored position. The reader holds a lease in
//! Redis (`inv:mysql:<server_id>:lease`, its value the holder's name, with
//! a time to live) and renews it while it streams; the others stand by,
//! and the first to find it expired (its holder dead) takes over from the
//! stored position.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::redis::{Redis, RedisError};

/// Renews the lease if `ARGV[1]` holds it; 1 if it does.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
           return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
         end \
         return 0",
    )
});

/// Gives the lease up if `ARGV[1]` holds it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
           return redis.call('DEL', KEYS[1]) \
         end \
         return 0",
    )
});

/// This process's claim on reading one server's log.
pub(crate) struct Lease {
    key: String,
    holder: String,
    ttl: Duration,
}

impl Lease {
    /// A claim on server `server`'s log, held for `ttl` at a time.
    pub(crate) fn new(server: u32, ttl: Duration) -> Self {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        Self {
            key: format!("inv:mysql:{server}:lease"),
            holder: format!("{}-{}", host.trim(), std::process::id()),
            ttl,
        }
    }

    /// How often to renew: a third of the time to live, so that two
    /// renewals can fail before it runs out.
    pub(crate) fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes the lease, or renews it when this process holds it; `Err`
    /// names the holder when another does.
    pub(crate) async fn take(&self, redis: &Redis) -> Result<Result<(), String>, RedisError> {
        let ttl_ms = self.ttl.as_millis() as u64;
        let taken: Option<String> = redis
            .query(
                redis::cmd("SET")
                    .arg(&self.key)
                    .arg(&self.holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await?;
        if taken.is_some() || self.renew(redis).await? {
            return Ok(Ok(()));
        }
        let holder: Option<String> = redis.query(redis::cmd("GET").arg(&self.key)).await?;
        Ok(Err(
            holder.unwrap_or_else(|| "(expired meanwhile)".to_owned())
        ))
    }

    /// Renews the lease; false when this process no longer holds it.
    pub(crate) async fn renew(&self, redis: &Redis) -> Result<bool, RedisError> {
        let mut call = RENEW.key(&self.key);
        call.arg(&self.holder).arg(self.ttl.as_millis() as u64);
        let renewed: i64 = redis.invoke(&call).await?;
        Ok(renewed == 1)
    }

    /// Gives the lease up, so that a standby takes over at once.
    pub(crate) async fn release(&self, redis: &Redis) {
        let mut call = RELEASE.key(&self.key);
        call.arg(&self.holder);
        if let Err(error) = redis.invoke::<i64>(&call).await {
            tracing::warn!(%error, key = %self.key,
                "giving up the MySQL lease failed; a standby takes over when it expires");
        }
    }

    /// This process's name in the lease.
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }
}
