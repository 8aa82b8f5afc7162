//! The Redis layout of a tag, and how a tag is written and invalidated.
//!
//! A tag `T` is a sorted set at `inv:tag:T` (the [`index_key`]). Its
//! members are the cache keys that carry the tag; each member's score is
//! when that key expires, in milliseconds since the epoch, or `+inf`.
//!
//! - **Writing** a tagged key: `SET` the key, then, on each tag's index,
//!   `ZREMRANGEBYSCORE index -inf (now` (prune expired members) and `ZADD
//!   index expiry key`. On a single node the bundled script
//!   ([`TAGGED_SET_LUA`]) does all of it atomically, and any client in any
//!   language can `EVAL` it.
//! - **Invalidating** a tag: repeatedly take a chunk of members, remove
//!   them from the index, unlink them. On a single node each chunk is one
//!   atomic script call ([`TAG_CHUNK_LUA`]). In a cluster the members live
//!   in other slots, so a chunk is three steps: `ZRANGE`, `ZREM`, `UNLINK`
//!   (routed by slot); and a write is `SET`, then [`INDEX_ADD_LUA`] on each
//!   index (which prunes and adds by the index node's clock).
//!
//! Why the cluster steps are safe without atomicity: a writer sets a key
//! *before* indexing it, and the invalidator unindexes a chunk *before*
//! unlinking it. If a value is alive at the end, its `SET` came after our
//! `UNLINK`, so its `ZADD` came after our `ZREM`: it is still indexed, and
//! the next invalidation of the tag finds it.
//!
//! Indexes carry no TTL, so the `volatile-*` eviction policies never evict
//! one while its keys live (`allkeys-*` policies may; [`check_eviction`]
//! warns). Expired members are pruned on every write to the tag and by
//! [`prune`], which the pipeline runs periodically over every index.

use redis::Script;
use std::sync::LazyLock;

use crate::redis::{Node, Redis, RedisError};
use crate::sink::removed::lossy;

/// Where every tag index lives: `inv:tag:` then the tag.
pub const TAG_PREFIX: &str = "inv:tag:";

/// Members taken per chunk when invalidating a tag: a few hundred keys per
/// step keeps every step short for Redis.
pub const TAG_CHUNK: usize = 500;

/// The script that sets a value and registers its tags (see the module
/// documentation for the layout). Any client can `EVAL` it.
pub const TAGGED_SET_LUA: &str = include_str!("lua/tagged_set.lua");

/// The script that invalidates one chunk of a tag.
pub const TAG_CHUNK_LUA: &str = include_str!("lua/tag_chunk.lua");

/// The cluster form of [`TAGGED_SET_LUA`] for one index: registers a key
/// that is already set.
pub const INDEX_ADD_LUA: &str = include_str!("lua/index_add.lua");

/// Prunes one index of members whose keys have expired.
pub const INDEX_PRUNE_LUA: &str = include_str!("lua/index_prune.lua");

static TAGGED_SET: LazyLock<Script> = LazyLock::new(|| Script::new(TAGGED_SET_LUA));
static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| Script::new(INDEX_ADD_LUA));
static INDEX_PRUNE: LazyLock<Script> = LazyLock::new(|| Script::new(INDEX_PRUNE_LUA));
static TAG_CHUNK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TAG_CHUNK_LUA));

/// The key of the index of `tag`.
pub fn index_key(tag: &str) -> String {
    format!("{TAG_PREFIX}{tag}")
}

/// Sets `key` to `value`, expiring after `ttl_ms` (0: never), and
/// registers it under every tag of `tags`.
pub async fn set_tagged(
    redis: &Redis,
    key: &str,
    value: &[u8],
    ttl_ms: u64,
    tags: &[String],
) -> Result<(), RedisError> {
    if !redis.is_cluster() {
        let mut call = TAGGED_SET.key(key);
        for tag in tags {
            call.key(index_key(tag));
        }
        call.arg(value).arg(ttl_ms);
        let _: u64 = redis.invoke(&call).await?;
        return Ok(());
    }
    // Cluster: the key and the indexes may sit in different slots. SET
    // first, index second (see the module documentation for why).
    let mut set = redis::cmd("SET");
    set.arg(key).arg(value);
    if ttl_ms > 0 {
        set.arg("PX").arg(ttl_ms);
    }
    let () = redis.query(&set).await?;
    index(redis, key, tags, ttl_ms).await
}

/// The cluster form of indexing: registers `key`, already set, under each
/// of `tags` with `ttl_ms` (0: none), one index at a time. If one fails,
/// the key is unlinked (best effort; the error is reported either way): a
/// value no tag can find must not stay.
pub(crate) async fn index(
    redis: &Redis,
    key: &str,
    tags: &[String],
    ttl_ms: u64,
) -> Result<(), RedisError> {
    for tag in tags {
        // Scored and pruned by the clock of the index's node, which is the
        // clock Redis expires keys by, not by this machine's.
        let mut call = INDEX_ADD.key(index_key(tag));
        call.arg(key).arg(ttl_ms);
        if let Err(e) = redis.invoke::<u64>(&call).await {
            let _ = redis.unlink(&[key]).await;
            return Err(e);
        }
    }
    Ok(())
}

/// Deletes every key carrying `tag`, and the tag's index, chunk by chunk.
/// Returns how many keys existed, and, when `list` is set, the keys the
/// index listed that existed and were removed (what explain and the feed
/// record: which keys a tag removed).
pub async fn invalidate(
    redis: &Redis,
    tag: &str,
    list: bool,
) -> Result<(u64, Vec<String>), RedisError> {
    let index = index_key(tag);
    let mut deleted = 0;
    let mut listed = Vec::new();
    if !redis.is_cluster() {
        loop {
            let mut call = TAG_CHUNK_SCRIPT.key(&index);
            call.arg(TAG_CHUNK);
            let left = if list {
                call.arg("members");
                let (gone, left, members): (u64, u64, Vec<Vec<u8>>) = redis.invoke(&call).await?;
                deleted += gone;
                listed.extend(members.into_iter().map(lossy));
                left
            } else {
                let (gone, left): (u64, u64) = redis.invoke(&call).await?;
                deleted += gone;
                left
            };
            if left == 0 {
                return Ok((deleted, listed));
            }
        }
    }
    loop {
        // Keys are bytes to Redis: take them as bytes, so that a key that
        // is not UTF-8 is deleted like any other.
        let members: Vec<Vec<u8>> = redis
            .query(redis::cmd("ZRANGE").arg(&index).arg(0).arg(TAG_CHUNK - 1))
            .await?;
        if members.is_empty() {
            return Ok((deleted, listed));
        }
        // Unindex before unlinking: see the module documentation.
        let _: u64 = redis
            .query(redis::cmd("ZREM").arg(&index).arg(&members))
            .await?;
        if list {
            let existed = redis.unlink_each(&members).await?;
            for (member, existed) in members.into_iter().zip(existed) {
                if existed {
                    deleted += 1;
                    listed.push(lossy(member));
                }
            }
        } else {
            deleted += redis.unlink(&members).await?;
        }
    }
}

/// Prunes expired members from every tag index on every primary, by the
/// clock of the node holding the index. Returns how many members were
/// removed. Costs one `SCAN` over the keyspace (with
/// `MATCH inv:tag:* TYPE zset`), so it runs in the background, rarely.
pub async fn prune(redis: &Redis) -> Result<u64, RedisError> {
    let mut removed = 0;
    for node in redis.primaries().await? {
        removed += prune_node(redis, &node).await?;
    }
    Ok(removed)
}

async fn prune_node(redis: &Redis, node: &Node) -> Result<u64, RedisError> {
    let mut removed = 0;
    let mut cursor: u64 = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(format!("{TAG_PREFIX}*"))
            .arg("COUNT")
            .arg(1000)
            .arg("TYPE")
            .arg("zset");
        let (next, indexes): (u64, Vec<Vec<u8>>) = redis.query_node(node, scan).await?;
        for index in indexes {
            removed += redis.invoke::<u64>(&INDEX_PRUNE.key(index)).await?;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// Warns when Redis may evict tag indexes: under an `allkeys-*` policy
/// any key can go, an index included, and the keys it lists would then
/// never be invalidated by their tag. Returns the policy.
pub async fn check_eviction(redis: &Redis) -> Result<String, RedisError> {
    let reply: Vec<String> = redis
        .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
        .await?;
    let policy = reply.get(1).cloned().unwrap_or_default();
    if policy.starts_with("allkeys") {
        tracing::warn!(
            policy,
            "redis may evict tag indexes under `{policy}`; use `volatile-lru`, \
             `volatile-lfu`, `volatile-ttl` or `noeviction` so that an index \
             outlives its keys"
        );
    }
    Ok(policy)
}
