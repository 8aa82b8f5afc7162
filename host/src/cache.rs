//! [`Cache`]: the client an application reads and writes its cache
//! through, so that what it writes can be invalidated by tag.
//!
//! Tags only work if the writes register them: [`Cache::set`] stores the
//! value and adds its key to each tag's index in one step (the layout is
//! documented in [`layout::tags`](crate::layout::tags)).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::layout::leases::{self as lease, Lease, Taken, is_lease};
use crate::layout::tags;
use crate::redis::{Redis, RedisError};
use crate::sink::{LeaseAnswer, Store};

/// How long a lease of [`Cache::get_or_fill`] lives: the longest a loader
/// may take; a holder that dies frees the key after it.
pub const LEASE_TIME: Duration = Duration::from_secs(10);

/// How long a miss of [`Cache::get_or_fill`] waits for another caller's
/// lease to be filled before loading by itself (without storing).
pub const LEASE_WAIT: Duration = Duration::from_millis(500);

/// Why a write to the cache was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A key inside the tag indexes' prefix.
    #[error("key `{key}` is inside `{}`, where tag indexes live", tags::TAG_PREFIX)]
    InvalidKey {
        /// The key.
        key: String,
    },
    /// An empty tag.
    #[error("tag `{tag}` is empty")]
    InvalidTag {
        /// The tag.
        tag: String,
    },
    /// A ttl of zero, or beyond [`MAX_TTL`].
    #[error("{}", ttl_refusal(.key, *.ttl))]
    InvalidTtl {
        /// The key it was given for.
        key: String,
        /// The ttl.
        ttl: Duration,
    },
    /// The cache store failed.
    #[error(transparent)]
    Store(#[from] RedisError),
}

/// Why `ttl` is refused for `key`.
fn ttl_refusal(key: &str, ttl: Duration) -> String {
    if ttl.is_zero() {
        format!("ttl of key `{key}` is zero; give a positive ttl, or none for no expiry")
    } else {
        format!(
            "ttl of key `{key}` is {} s, more than the {} s (100 years) a cache entry may \
             live; give none for no expiry",
            ttl.as_secs(),
            MAX_TTL.as_secs()
        )
    }
}

/// Why [`Cache::get_or_fill`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FillError<E> {
    /// The cache store failed, or the input was refused.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The loader failed; the lease was given back.
    #[error("loading failed: {0}")]
    Load(E),
}

/// The longest ttl [`Cache::set`] takes: 100 years. Tag indexes compute
/// expiry times in Redis's Lua, whose numbers are doubles; far beyond this
/// they stop being exact integers and Redis refuses them.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Refuses a key inside the tag indexes' prefix, an empty tag, or a ttl of
/// zero or beyond [`MAX_TTL`]; the ttl in milliseconds (0: none), never
/// rounded down to "no expiry".
fn check(key: &str, ttl: Option<Duration>, tags: &[String]) -> Result<u64, CacheError> {
    if key.starts_with(tags::TAG_PREFIX) {
        return Err(CacheError::InvalidKey { key: key.into() });
    }
    if let Some(tag) = tags.iter().find(|t| t.is_empty()) {
        return Err(CacheError::InvalidTag { tag: tag.clone() });
    }
    Ok(match ttl {
        None => 0,
        Some(ttl) if ttl.is_zero() || ttl > MAX_TTL => {
            return Err(CacheError::InvalidTtl {
                key: key.into(),
                ttl,
            });
        }
        Some(ttl) => (ttl.as_millis() as u64).max(1),
    })
}

/// Reads and tagged writes, with hit and miss counts.
pub struct Cache {
    store: Store,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Hits and misses of [`Cache::get`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStats {
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
    ) -> Result<(), CacheError> {
        let ttl_ms = check(key, ttl, tags)?;
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
        Ok(tags::set_tagged(redis, key, value, ttl_ms, tags).await?)
    }

    /// The value at `key`, if any (a key under a lease has none); counted
    /// as a hit or a miss.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        let value = self.raw(key).await?.filter(|v| !is_lease(v));
        let counter = if value.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Relaxed);
        Ok(value)
    }

    /// What `key` holds, lease markers included.
    async fn raw(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        Ok(match &self.store {
            Store::Redis(redis) => redis.query(redis::cmd("GET").arg(key)).await?,
            Store::Memory(memory) => memory.raw(key),
        })
    }

    /// The value at `key`; on a miss, `loader`'s, stored (with `ttl` and
    /// `tags`) only if no invalidation touched the key since the miss.
    ///
    /// The miss takes a lease on the key ([`lease`]). An invalidation of
    /// the key, of a pattern matching it or of one of its tags defeats the
    /// lease, and the loaded value, which may predate the commit behind
    /// it, is returned without being stored. While a caller holds the
    /// lease, other misses wait up to [`LEASE_WAIT`] for its value, then
    /// load by themselves without storing. A lease lives [`LEASE_TIME`] at
    /// most.
    pub async fn get_or_fill<F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[String],
        loader: F,
    ) -> Result<Vec<u8>, FillError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
    {
        let ttl_ms = check(key, ttl, tags)?;
        let lease_ms = LEASE_TIME.as_millis() as u64;
        let lease = match &self.store {
            Store::Redis(redis) => match lease::take(redis, key, tags, lease_ms)
                .await
                .map_err(CacheError::Store)?
            {
                Taken::Hit(value) => return Ok(self.hit(value)),
                Taken::Held => return self.wait_for(key, loader).await,
                Taken::Granted(lease) => lease,
            },
            Store::Memory(memory) => {
                let lease = Lease::new(key, tags);
                match memory.lease_take(&lease, LEASE_TIME) {
                    LeaseAnswer::Hit(value) => return Ok(self.hit(value)),
                    LeaseAnswer::Held => return self.wait_for(key, loader).await,
                    LeaseAnswer::Granted => lease,
                }
            }
        };
        self.misses.fetch_add(1, Relaxed);
        let value = match loader().await {
            Ok(value) => value,
            Err(e) => {
                match &self.store {
                    Store::Redis(redis) => {
                        let _ = lease::release(redis, &lease).await;
                    }
                    Store::Memory(memory) => memory.lease_release(&lease),
                }
                return Err(FillError::Load(e));
            }
        };
        match &self.store {
            Store::Redis(redis) => {
                lease::fill(redis, &lease, &value, ttl_ms)
                    .await
                    .map_err(CacheError::Store)?;
            }
            Store::Memory(memory) => {
                memory.lease_fill(&lease, &value, ttl);
            }
        }
        Ok(value)
    }

    fn hit(&self, value: Vec<u8>) -> Vec<u8> {
        self.hits.fetch_add(1, Relaxed);
        value
    }

    /// Another caller holds the lease on `key`: its value if it comes
    /// within [`LEASE_WAIT`], else `loader`'s, not stored.
    async fn wait_for<F, Fut, E>(&self, key: &str, loader: F) -> Result<Vec<u8>, FillError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
    {
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        let mut pause = Duration::from_millis(2);
        while tokio::time::Instant::now() < deadline {
            match self.raw(key).await.map_err(CacheError::Store)? {
                // Defeated, given back or expired: the holder stores nothing.
                None => break,
                Some(value) if !is_lease(&value) => return Ok(self.hit(value)),
                Some(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        self.misses.fetch_add(1, Relaxed);
        loader().await.map_err(FillError::Load)
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{Applied, MemoryStore};
    use crate::targets::{Target, TargetSet};

    #[tokio::test]
    async fn an_invalidation_while_loading_defeats_the_lease_in_memory_too() {
        let memory = Arc::new(MemoryStore::new());
        let cache = Cache::with_store(Store::Memory(memory.clone()));
        let tags = vec!["t".to_owned()];
        for target in [
            Target::Key("k".into()),
            Target::Pattern("k*".into()),
            Target::Tag("t".into()),
        ] {
            let invalidate = || async {
                let mut set = TargetSet::new();
                set.insert(target.clone());
                memory.apply(&mut set, &mut Applied::default());
                Ok::<_, std::convert::Infallible>(b"old".to_vec())
            };
            let got = cache
                .get_or_fill("k", None, &tags, invalidate)
                .await
                .unwrap();
            assert_eq!(got, b"old");
            assert_eq!(cache.get("k").await.unwrap(), None, "{target:?}");
        }
        let fresh = || async { Ok::<_, std::convert::Infallible>(b"new".to_vec()) };
        cache.get_or_fill("k", None, &tags, fresh).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[tokio::test]
    async fn a_miss_waits_for_the_holder_and_a_marker_is_never_a_value() {
        let memory = Arc::new(MemoryStore::new());
        let cache = Arc::new(Cache::with_store(Store::Memory(memory.clone())));
        let (started, wait_start) = tokio::sync::oneshot::channel();
        let holder = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let slow = || async {
                    let _ = started.send(());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::convert::Infallible>(b"once".to_vec())
                };
                cache.get_or_fill("k", None, &[], slow).await.unwrap()
            })
        };
        wait_start.await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), None, "a lease is a miss");
        let never = || async { Err::<Vec<u8>, _>("waited for the holder instead") };
        assert_eq!(
            cache.get_or_fill("k", None, &[], never).await.unwrap(),
            b"once"
        );
        assert_eq!(holder.await.unwrap(), b"once");
    }
}
