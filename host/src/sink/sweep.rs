//! The pattern sweep: every pending pattern, in one `SCAN` pass over the
//! keyspace of every primary.
//!
//! `KEYS` would block Redis for the whole keyspace; `SCAN` walks it in
//! small steps. One pass per pattern would make the cost grow with the
//! number of patterns; instead the keys of one pass are matched against all
//! of them here ([`PatternSet`]), and Redis filters first whenever the
//! patterns share a literal prefix.

use std::collections::HashMap;

use super::glob::PatternSet;
use super::owners::Owners;
use super::removed::lossy;
use crate::redis::{Node, Redis, RedisError};

/// Keys Redis looks at per `SCAN` step.
pub const SCAN_COUNT: usize = 1000;

/// Matched keys gathered before they are unlinked.
const UNLINK_BATCH: usize = 256;

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Keys read back from `SCAN`.
    pub scanned: u64,
    /// Keys that matched a pattern and existed when unlinked.
    pub deleted: u64,
    /// Those keys, when listed ([`sweep_listing`]), up to its limit.
    pub removed: Vec<String>,
    /// Whether keys beyond the limit were left out of `removed`.
    pub cut: bool,
    /// Keys removed per owner of the patterns, when counted for owners.
    pub by_owner: HashMap<String, u64>,
}

impl Swept {
    fn absorb(&mut self, other: Swept, limit: usize) {
        self.scanned += other.scanned;
        self.deleted += other.deleted;
        self.cut |= other.cut;
        for (owner, n) in other.by_owner {
            *self.by_owner.entry(owner).or_default() += n;
        }
        for key in other.removed {
            if self.removed.len() < limit {
                self.removed.push(key);
            } else {
                self.cut = true;
            }
        }
    }
}

/// Deletes every key matching any of `patterns`, one `SCAN` pass per
/// primary, primaries in parallel.
pub async fn sweep(redis: &Redis, patterns: &PatternSet) -> Result<Swept, RedisError> {
    sweep_listing(redis, patterns, None, None).await
}

/// [`sweep`], also listing up to `limit` of the keys it removed (`None`:
/// none), and with `owners`, counting the keys removed per owner whose
/// patterns matched them. Listing costs a reply per matched key (which
/// ones existed when unlinked), so it is asked for only by whoever keeps
/// the list; counting per owner costs an `UNLINK` per group of owners
/// among each batch of matches.
pub async fn sweep_listing(
    redis: &Redis,
    patterns: &PatternSet,
    limit: Option<usize>,
    owners: Option<&Owners>,
) -> Result<Swept, RedisError> {
    if patterns.is_empty() {
        return Ok(Swept::default());
    }
    let nodes = redis.primaries().await?;
    let passes = nodes
        .iter()
        .map(|node| sweep_node(redis, node, patterns, limit, owners));
    let mut total = Swept::default();
    for swept in futures::future::join_all(passes).await {
        total.absorb(swept?, limit.unwrap_or(0));
    }
    Ok(total)
}

/// One node's keyspace, swept as [`PARTS`] parts at once on a single
/// node. A cluster node is swept in one part: since Redis 7.4 (and in
/// Valkey 8) a cluster node keeps one table per slot and its cursor's low
/// bits are the slot, so splitting by them would be wrong there.
async fn sweep_node(
    redis: &Redis,
    node: &Node,
    patterns: &PatternSet,
    limit: Option<usize>,
    owners: Option<&Owners>,
) -> Result<Swept, RedisError> {
    let filter = patterns.server_filter();
    let parts: Vec<u64> = if redis.is_cluster() {
        vec![WHOLE]
    } else {
        (0..PARTS).collect()
    };
    let parts = parts.into_iter().map(|part| {
        sweep_part(
            redis,
            node,
            patterns,
            filter.as_deref(),
            part,
            limit,
            owners,
        )
    });
    let mut total = Swept::default();
    for swept in futures::future::try_join_all(parts).await? {
        total.absorb(swept, limit.unwrap_or(0));
    }
    Ok(total)
}

/// Which part of the keyspace a cursor is in: its low bits, reversed.
///
/// Redis walks its hash table in the order of the *reversed* bits of the
/// bucket index, which is what keeps `SCAN` complete while the table
/// grows or shrinks. So the top bits of the reversed cursor (its low bits)
/// split that order into [`PARTS`] consecutive ranges, whatever the table
/// size. Part `p` starts at the cursor whose reversed low bits are `p`
/// and ends when Redis hands back a cursor of another part (or 0, the end).
/// A step that crosses into the next part reads a few keys twice, which
/// only costs a repeated, harmless `UNLINK`.
fn part_of(cursor: u64) -> u64 {
    (cursor & (PARTS - 1)).reverse_bits() >> (64 - PART_BITS)
}

/// The keyspace of a node is swept in this many parts at once, so that
/// Redis works on one part while we match the keys of another: a sweep
/// then costs about what Redis spends walking its keys, however many
/// patterns it serves.
const PART_BITS: u32 = 2;
const PARTS: u64 = 1 << PART_BITS;
/// The part that is the whole keyspace: from cursor 0 to the end.
const WHOLE: u64 = u64::MAX;

async fn sweep_part(
    redis: &Redis,
    node: &Node,
    patterns: &PatternSet,
    filter: Option<&[u8]>,
    part: u64,
    limit: Option<usize>,
    owners: Option<&Owners>,
) -> Result<Swept, RedisError> {
    let mut swept = Swept::default();
    let mut cursor: u64 = if part == WHOLE {
        0
    } else {
        part.reverse_bits() >> (64 - PART_BITS)
    };
    let mut matched: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor);
        if let Some(filter) = filter {
            scan.arg("MATCH").arg(filter);
        }
        scan.arg("COUNT").arg(SCAN_COUNT);
        // Matches are unlinked in batches, sent together with the next
        // SCAN step so that they share its round trip instead of adding
        // one of their own.
        let batch = if matched.len() >= UNLINK_BATCH {
            std::mem::take(&mut matched)
        } else {
            Vec::new()
        };
        let (page, unlinked) = futures::join!(
            redis.query_node(node, scan),
            unlink(redis, batch, limit, owners, &mut swept)
        );
        unlinked?;
        let (next, keys): (u64, Vec<Vec<u8>>) = page?;
        swept.scanned += keys.len() as u64;
        matched.extend(keys.into_iter().filter(|k| patterns.matches(k)));
        if next == 0 || (part != WHOLE && part_of(next) != part) {
            unlink(redis, matched, limit, owners, &mut swept).await?;
            return Ok(swept);
        }
        cursor = next;
    }
}

/// Unlinks matched keys, counting (and with a `limit`, listing) those
/// that existed; with `owners`, per group of the owners whose patterns
/// match them.
async fn unlink(
    redis: &Redis,
    keys: Vec<Vec<u8>>,
    limit: Option<usize>,
    owners: Option<&Owners>,
    swept: &mut Swept,
) -> Result<(), RedisError> {
    if keys.is_empty() {
        return Ok(());
    }
    let Some(owners) = owners else {
        return unlink_group(redis, keys, limit, None, swept).await;
    };
    for (group, keys) in owners.split(keys, |k| owners.of_found(k)) {
        unlink_group(redis, keys, limit, Some((owners, &group)), swept).await?;
    }
    Ok(())
}

/// [`unlink`] of keys whose owners, if counted, are `group`.
async fn unlink_group(
    redis: &Redis,
    keys: Vec<Vec<u8>>,
    limit: Option<usize>,
    group: Option<(&Owners, &[usize])>,
    swept: &mut Swept,
) -> Result<(), RedisError> {
    let Some(limit) = limit else {
        let deleted = redis.unlink(&keys).await?;
        swept.deleted += deleted;
        if let Some((owners, group)) = group {
            owners.credit(group, deleted, &mut swept.by_owner);
        }
        return Ok(());
    };
    let existed = redis.unlink_each(&keys).await?;
    for (key, existed) in keys.into_iter().zip(existed) {
        if !existed {
            continue;
        }
        swept.deleted += 1;
        if let Some((owners, group)) = group {
            owners.credit(group, 1, &mut swept.by_owner);
        }
        if swept.removed.len() < limit {
            swept.removed.push(lossy(key));
        } else {
            swept.cut = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_start_where_their_range_of_the_reversed_order_starts() {
        let starts: Vec<u64> = (0..PARTS)
            .map(|p| p.reverse_bits() >> (64 - PART_BITS))
            .collect();
        assert_eq!(starts, [0, 2, 1, 3]);
        for (p, start) in starts.iter().enumerate() {
            assert_eq!(part_of(*start), p as u64);
        }
        // Cursors of a large table land in the part of their low bits.
        assert_eq!(part_of(0b1000), 0);
        assert_eq!(part_of(0b1010), 1);
        assert_eq!(part_of(0b1001), 2);
        assert_eq!(part_of(0b1011), 3);
    }
}
