//! The pattern sweep: every pending pattern, in one `SCAN` pass over the
//! keyspace of every primary.
//!
//! `KEYS` would block Redis for the whole keyspace; `SCAN` walks it in
//! small steps. One pass per pattern would make the cost grow with the
//! number of patterns; instead the keys of one pass are matched against all
//! of them here ([`PatternSet`]), and Redis filters first whenever the
//! patterns share a literal prefix.

use super::glob::PatternSet;
use super::{Node, Redis, SinkError};

/// Keys Redis looks at per `SCAN` step.
pub const SCAN_COUNT: usize = 1000;

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Keys read back from `SCAN`.
    pub scanned: u64,
    /// Keys that matched a pattern and existed when unlinked.
    pub deleted: u64,
}

/// Deletes every key matching any of `patterns`, one `SCAN` pass per
/// primary, primaries in parallel.
pub async fn sweep(redis: &Redis, patterns: &PatternSet) -> Result<Swept, SinkError> {
    if patterns.is_empty() {
        return Ok(Swept::default());
    }
    let nodes = redis.primaries().await?;
    let passes = nodes.iter().map(|node| sweep_node(redis, node, patterns));
    let mut total = Swept::default();
    for swept in futures::future::join_all(passes).await {
        let swept = swept?;
        total.scanned += swept.scanned;
        total.deleted += swept.deleted;
    }
    Ok(total)
}

async fn sweep_node(redis: &Redis, node: &Node, patterns: &PatternSet) -> Result<Swept, SinkError> {
    let filter = patterns.server_filter();
    let mut swept = Swept::default();
    let mut cursor: u64 = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor);
        if let Some(filter) = &filter {
            scan.arg("MATCH").arg(filter.as_slice());
        }
        scan.arg("COUNT").arg(SCAN_COUNT);
        let (next, keys): (u64, Vec<Vec<u8>>) = redis.query_node(node, scan).await?;
        swept.scanned += keys.len() as u64;
        let matched: Vec<String> = keys
            .into_iter()
            .filter(|k| patterns.matches(k))
            .filter_map(|k| String::from_utf8(k).ok())
            .collect();
        if !matched.is_empty() {
            swept.deleted += redis.unlink(&matched).await?;
        }
        if next == 0 {
            return Ok(swept);
        }
        cursor = next;
    }
}
