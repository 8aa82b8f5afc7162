//! [`Cache`]: the client an application reads and writes its cache
//! through, so that what it writes can be invalidated by tag.
//!
//! Tags only work if the writes register them: [`Cache::set`] stores the
//! value and adds its key to each tag's index in one step (the layout is
//! documented in [`sink::tags`](crate::sink::tags)).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::connection::{Redis, RedisError};
use crate::sink::{Store, tags};

/// The longest ttl [`Cache::set`] takes: 100 years. Tag indexes compute
/// expiry times in Redis's Lua, whose numbers are doubles; far beyond this
/// they stop being exact integers and Redis refuses them.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Reads and tagged writes, with hit and miss counts.
pub struct Cache {
    store: Store,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Hits and misses of [`Cache::get`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheCounts {
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found none.
    pub misses: u64,
}

impl Cache {
    /// A cache client on `redis`.
    pub fn new(redis: Arc<Redis>) -> Self {
        Self::with_store(Store::Redis(redis))
    }

    /// A cache client on any [`Store`], an in-process one included.
    pub fn with_store(store: Store) -> Self {
        Self {
            store,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Stores `value` at `key`, expiring after `ttl` (`None`: never; at
    /// most [`MAX_TTL`]), and registers the key under each of `tags`.
    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<(), RedisError> {
        if key.starts_with(tags::TAG_PREFIX) {
            return Err(RedisError::Invalid(format!(
                "key `{key}` is inside `{}`, where tag indexes live",
                tags::TAG_PREFIX
            )));
        }
        if let Some(tag) = tags.iter().find(|t| t.is_empty()) {
            return Err(RedisError::Invalid(format!("tag `{tag}` is empty")));
        }
        let ttl_ms = match ttl {
            None => 0,
            Some(ttl) if ttl.is_zero() => {
                return Err(RedisError::Invalid(format!(
                    "ttl of key `{key}` is zero; give a positive ttl, or none for no expiry"
                )));
            }
            Some(ttl) if ttl > MAX_TTL => {
                return Err(RedisError::Invalid(format!(
                    "ttl of key `{key}` is {} s, more than the {} s (100 years) a cache \
                     entry may live; give none for no expiry",
                    ttl.as_secs(),
                    MAX_TTL.as_secs()
                )));
            }
            // Never round a short ttl down to "no expiry".
            Some(ttl) => (ttl.as_millis() as u64).max(1),
        };
        let redis = match &self.store {
            Store::Redis(redis) => redis,
            Store::Memory(memory) => {
                memory.set(key, value, ttl, tags);
                return Ok(());
            }
        };
        if tags.is_empty() {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(value);
            if ttl_ms > 0 {
                set.arg("PX").arg(ttl_ms);
            }
            let () = redis.query(&set).await?;
            return Ok(());
        }
        tags::set_tagged(redis, key, value, ttl_ms, tags).await
    }

    /// The value at `key`, if any; counted as a hit or a miss.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        let value: Option<Vec<u8>> = match &self.store {
            Store::Redis(redis) => redis.query(redis::cmd("GET").arg(key)).await?,
            Store::Memory(memory) => memory.get(key),
        };
        let counter = if value.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Relaxed);
        Ok(value)
    }

    /// Hits and misses so far.
    pub fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
        }
    }

    /// Warns (and returns the policy) when Redis's eviction policy could
    /// evict a tag index before its keys; see [`tags::check_eviction`].
    /// (An in-process store evicts nothing: `noeviction`.)
    pub async fn check_eviction_policy(&self) -> Result<String, RedisError> {
        match &self.store {
            Store::Redis(redis) => tags::check_eviction(redis).await,
            Store::Memory(_) => Ok("noeviction".to_owned()),
        }
    }
}
