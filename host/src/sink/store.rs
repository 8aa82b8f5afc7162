//! [`Store`]: where invalidations go, Redis or this process's memory.

use std::sync::Arc;

use super::{Applied, MemoryStore};
use crate::redis::{Redis, RedisError};
use crate::targets::TargetSet;

/// A cache store the pipeline applies targets to.
#[derive(Clone)]
pub enum Store {
    /// Redis, a single node or a cluster.
    Redis(Arc<Redis>),
    /// An in-process store.
    Memory(Arc<MemoryStore>),
}

impl From<Redis> for Store {
    fn from(redis: Redis) -> Self {
        Store::Redis(Arc::new(redis))
    }
}

impl From<Arc<Redis>> for Store {
    fn from(redis: Arc<Redis>) -> Self {
        Store::Redis(redis)
    }
}

impl From<Arc<MemoryStore>> for Store {
    fn from(memory: Arc<MemoryStore>) -> Self {
        Store::Memory(memory)
    }
}

impl Store {
    /// Applies `targets`; see [`apply`](super::apply()) for what is left in
    /// `targets` on an error.
    pub async fn apply(
        &self,
        targets: &mut TargetSet,
        applied: &mut Applied,
    ) -> Result<(), RedisError> {
        match self {
            Store::Redis(redis) => super::apply(redis, targets, applied).await,
            Store::Memory(memory) => {
                memory.apply(targets, applied);
                Ok(())
            }
        }
    }

    /// Checks that the store answers: `PING` on every Redis primary.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let Store::Redis(redis) = self else {
            return Ok(());
        };
        for node in redis.primaries().await? {
            let _: String = redis.query_node(&node, redis::cmd("PING")).await?;
        }
        Ok(())
    }

    /// Reads that found their key, and reads that did not, as the store
    /// itself counts them: for Redis, `keyspace_hits` and
    /// `keyspace_misses` of `INFO stats`, summed over the primaries (every
    /// client's reads, since the server started); in process, the reads of
    /// [`MemoryStore::get`].
    pub async fn hits_and_misses(&self) -> Result<(u64, u64), RedisError> {
        let redis = match self {
            Store::Redis(redis) => redis,
            Store::Memory(memory) => return Ok(memory.hits_and_misses()),
        };
        let (mut hits, mut misses) = (0, 0);
        for node in redis.primaries().await? {
            let info: String = redis
                .query_node(&node, redis::cmd("INFO").arg("stats").to_owned())
                .await?;
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        redis.protocol_error(format!("`INFO stats` of {node} has no `{name}`"))
                    })
            };
            hits += field("keyspace_hits")?;
            misses += field("keyspace_misses")?;
        }
        Ok((hits, misses))
    }

    /// How far back applied invalidations are kept for a failover replay:
    /// Redis's [`replay_window`](crate::redis::RedisConfig::replay_window);
    /// zero in process, where there is no failover.
    pub fn replay_window(&self) -> std::time::Duration {
        match self {
            Store::Redis(redis) => redis.config().replay_window,
            Store::Memory(_) => std::time::Duration::ZERO,
        }
    }

    /// Looks at who the primaries are now, noting a change; see
    /// [`Redis::check_primaries`].
    pub async fn check_primaries(&self) -> Result<(), RedisError> {
        match self {
            Store::Redis(redis) => redis.check_primaries().await,
            Store::Memory(_) => Ok(()),
        }
    }

    /// A change of primary noticed and not yet taken.
    pub fn take_primary_change(&self) -> Option<crate::redis::PrimaryChange> {
        match self {
            Store::Redis(redis) => redis.take_primary_change(),
            Store::Memory(_) => None,
        }
    }

    /// Where it is, for logs.
    pub fn describe(&self) -> String {
        match self {
            Store::Redis(redis) => redis.endpoint().to_string(),
            Store::Memory(_) => "in-process store".to_owned(),
        }
    }
}
