//! Leases: how a reader that missed fills a key without ever storing a
//! value read before an invalidation of it (the race every invalidation
//! system meets: a reader misses, reads the old row, the writer commits and
//! the invalidation runs, then the reader stores the old value).
//!
//! A lease is the key itself holding a marker, [`LEASE_PREFIX`] then a
//! token unique to the caller, for at most the lease's time. The caller
//! loads, then stores its value only if the key still holds its marker
//! ([`LEASE_FILL_LUA`]). Every invalidation removes the marker as it would
//! remove a value: a key by `UNLINK`, a pattern by the sweep's `SCAN`, a
//! tag by unlinking its index's members, among which the lease is indexed
//! ([`LEASE_TAKE_LUA`]). So the sink needs nothing of its own for leases:
//! the scripts carry the argument, written next to them, for why each
//! case is safe on a single node and on a cluster. Readers take a marker
//! for a miss ([`is_lease`]).
//!
//! The same scripts are bundled with the Python package (a test checks the
//! copies are identical), so every client shares one protocol.

use redis::Script;
use std::sync::LazyLock;

use super::tags::{index as index_under, index_key};
use crate::redis::{Redis, RedisError};

/// What a key holds while a caller has a lease on it: this prefix, then
/// the lease's token.
pub const LEASE_PREFIX: &[u8] = b"\0inv:lease:";

/// Reads a key, or takes a lease on it (and indexes it under the tags, on
/// a single node). The argument for why leases are safe is in it.
pub const LEASE_TAKE_LUA: &str = include_str!("lua/lease_take.lua");

/// Fills a key under a lease, unless an invalidation defeated it.
pub const LEASE_FILL_LUA: &str = include_str!("lua/lease_fill.lua");

/// Gives a lease back, if it is still held.
pub const LEASE_RELEASE_LUA: &str = include_str!("lua/lease_release.lua");

static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(LEASE_TAKE_LUA));
static FILL: LazyLock<Script> = LazyLock::new(|| Script::new(LEASE_FILL_LUA));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(LEASE_RELEASE_LUA));

/// Whether `value` is a lease marker rather than a cached value.
pub fn is_lease(value: &[u8]) -> bool {
    value.starts_with(LEASE_PREFIX)
}

/// A lease a caller holds on a key.
#[derive(Debug, Clone)]
pub struct Lease {
    pub(crate) key: String,
    pub(crate) tags: Vec<String>,
    /// The marker the key holds: [`LEASE_PREFIX`] and the token.
    marker: Vec<u8>,
}

impl Lease {
    /// The marker for a fresh token, on `key` with `tags`.
    pub(crate) fn new(key: &str, tags: &[String]) -> Self {
        let mut token = [0u8; 16];
        // A clash would let two callers fill under one lease; 128 random
        // bits make that impossible in practice. Without the OS's entropy,
        // fall back on a generator seeded apart per process.
        if getrandom::fill(&mut token).is_err() {
            token = fastrand::u128(..).to_le_bytes();
        }
        let mut marker = LEASE_PREFIX.to_vec();
        marker.extend(token.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
        Self {
            key: key.to_owned(),
            tags: tags.to_vec(),
            marker,
        }
    }

    /// The marker, as the key holds it.
    pub fn marker(&self) -> &[u8] {
        &self.marker
    }
}

/// What [`take`] found.
#[derive(Debug)]
pub enum Taken {
    /// A value: a hit.
    Hit(Vec<u8>),
    /// Another caller holds a lease on the key.
    Held,
    /// The lease is this caller's: load, then [`fill`].
    Granted(Lease),
}

/// Reads `key`, or takes a lease on it for `lease_ms`, registered under
/// `tags` before it is returned (so that the loader starts after).
pub async fn take(
    redis: &Redis,
    key: &str,
    tags: &[String],
    lease_ms: u64,
) -> Result<Taken, RedisError> {
    let lease = Lease::new(key, tags);
    let token = &lease.marker[LEASE_PREFIX.len()..];
    let mut call = TAKE.key(key);
    if !redis.is_cluster() {
        for tag in tags {
            call.key(index_key(tag));
        }
    }
    call.arg(LEASE_PREFIX).arg(token).arg(lease_ms);
    let reply: Vec<redis::Value> = redis.invoke(&call).await?;
    let state: u8 = match reply.first() {
        Some(v) => redis::from_redis_value_ref(v).map_err(|e| odd(redis, e))?,
        None => 0,
    };
    let value: Option<Vec<u8>> = match reply.get(1) {
        Some(v) => Some(redis::from_redis_value_ref(v).map_err(|e| odd(redis, e))?),
        None => None,
    };
    match state {
        0 => Ok(Taken::Hit(value.unwrap_or_default())),
        1 => Ok(Taken::Held),
        _ => {
            if redis.is_cluster() {
                // Indexed before the loader runs: see lease_take.lua. A
                // failure unlinks the marker, which gives the lease back.
                index_under(redis, key, tags, lease_ms).await?;
            }
            Ok(Taken::Granted(lease))
        }
    }
}

/// An answer of the lease script that is not of its shape.
fn odd(redis: &Redis, e: impl std::fmt::Display) -> RedisError {
    redis.protocol_error(format!("lease_take answered oddly: {e}"))
}

/// Stores `value` under `lease` with `ttl_ms` (0: none), unless an
/// invalidation defeated it. Whether it was stored.
pub async fn fill(
    redis: &Redis,
    lease: &Lease,
    value: &[u8],
    ttl_ms: u64,
) -> Result<bool, RedisError> {
    let mut call = FILL.key(&lease.key);
    if !redis.is_cluster() {
        for tag in &lease.tags {
            call.key(index_key(tag));
        }
    }
    call.arg(&lease.marker).arg(value).arg(ttl_ms);
    let stored: u8 = redis.invoke(&call).await?;
    if stored == 1 && redis.is_cluster() {
        // Indexed with the lease's expiry only, the value could outlive its
        // index entry: a failure here unlinks it.
        index_under(redis, &lease.key, &lease.tags, ttl_ms).await?;
    }
    Ok(stored == 1)
}

/// Gives `lease` back (its loader failed), if the key still holds it.
pub async fn release(redis: &Redis, lease: &Lease) -> Result<(), RedisError> {
    let mut call = RELEASE.key(&lease.key);
    call.arg(&lease.marker);
    let _: u8 = redis.invoke(&call).await?;
    Ok(())
}
