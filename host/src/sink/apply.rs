//! [`apply`]: deletes what a [`TargetSet`] names, kind by kind.

use std::mem;

use super::glob::PatternSet;
use super::{Redis, SinkError, sweep, tags};
use crate::targets::TargetSet;

/// What applying targets did, added up across calls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Exact keys applied.
    pub keys: u64,
    /// Tags applied.
    pub tags: u64,
    /// Patterns applied.
    pub patterns: u64,
    /// Keys that existed and were removed, of every kind.
    pub deleted: u64,
    /// Keyspace sweeps run (one per batch that had patterns).
    pub sweeps: u64,
    /// Tags whose index held another type of value, so that their keys
    /// could not be found (logged as errors).
    pub unappliable: u64,
}

/// Applies `targets` to Redis: exact keys by `UNLINK`, tags chunk by
/// chunk, patterns in one sweep.
///
/// Each target leaves `targets` once it is applied, and its effect is
/// added to `applied`; on an error, what is left in `targets` is exactly
/// what remains to do, and applying it again is safe because every step
/// is idempotent.
pub async fn apply(
    redis: &Redis,
    targets: &mut TargetSet,
    applied: &mut Applied,
) -> Result<(), SinkError> {
    if !targets.keys.is_empty() {
        let keys: Vec<String> = targets.keys.iter().cloned().collect();
        applied.deleted += redis.unlink(&keys).await?;
        applied.keys += keys.len() as u64;
        targets.keys.clear();
    }
    while let Some(tag) = targets.tags.first().cloned() {
        match tags::invalidate(redis, &tag).await {
            Ok(deleted) => applied.deleted += deleted,
            // Another client wrote something other than a sorted set at the
            // tag's index. Retrying would block every invalidation behind
            // this one forever; the tag's keys cannot be found anyway. Say
            // so loudly, count it, and go on.
            Err(e) if e.is_wrong_type() => {
                tracing::error!(
                    tag,
                    index = tags::index_key(&tag),
                    error = %e,
                    "the tag's index is not a sorted set: its keys cannot be invalidated by tag"
                );
                applied.unappliable += 1;
            }
            Err(e) => return Err(e),
        }
        applied.tags += 1;
        targets.tags.remove(&tag);
    }
    if !targets.patterns.is_empty() {
        let patterns = PatternSet::new(&targets.patterns);
        let swept = sweep::sweep(redis, &patterns).await?;
        applied.deleted += swept.deleted;
        applied.patterns += patterns.len() as u64;
        applied.sweeps += 1;
        drop(mem::take(&mut targets.patterns));
    }
    Ok(())
}
