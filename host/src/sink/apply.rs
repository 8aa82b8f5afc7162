//! [`apply`]: deletes what a [`TargetSet`] names, kind by kind, and gives
//! up on exactly the targets Redis refuses for good ([`Unapplied`]).

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;

use super::glob::PatternSet;
use super::owners::Owners;
use super::removed::Removed;
use super::sweep;
use crate::escape::escape;
use crate::layout::tags;
use crate::redis::{Redis, RedisError};
use crate::targets::{Target, TargetSet};

/// What applying targets did, added up across calls.
#[derive(Debug, Default, Clone, PartialEq)]
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
    /// Targets Redis refused with an error no retry can fix
    /// ([`RedisError::is_permanent`]): given up on, each with its error.
    pub unapplied: Vec<Unapplied>,
    /// Each tag applied, with the keys its index listed, when asked for
    /// ([`Applied::listing`]); `None` otherwise, so that applying costs
    /// nothing more when nobody keeps the list (explain does: it is how
    /// it knows which tag removed a key).
    pub tag_members: Option<Vec<TagMembers>>,
    /// The keys actually removed, when asked for ([`Applied::removing`]);
    /// `None` otherwise: listing them costs a reply per key (the feed
    /// asks, see [`FeedConfig`](crate::pipeline::FeedConfig)).
    pub removed: Option<Removed>,
    /// How many keys each tag removed (tags that removed none are left
    /// out): the counts per tag of `/v1/stats` and `/metrics`.
    pub by_tag: Vec<(String, u64)>,
    /// Who named the targets, when asked to count per owner
    /// ([`Applied::owned_by`]).
    pub owners: Option<Arc<Owners>>,
    /// How many keys what each owner named removed (owners that removed
    /// none are left out): the counts per rule of `/v1/stats`.
    pub by_owner: HashMap<String, u64>,
}

/// A tag applied, and the keys its index listed then.
#[derive(Debug, Clone, PartialEq)]
pub struct TagMembers {
    /// The tag.
    pub tag: String,
    /// The keys its index listed.
    pub members: Vec<String>,
}

impl Applied {
    /// An empty record that also lists the members of each tag applied
    /// ([`Applied::tag_members`]).
    pub fn listing() -> Self {
        Self {
            tag_members: Some(Vec::new()),
            ..Self::default()
        }
    }

    /// Also lists the keys actually removed, those found by patterns and
    /// tags up to `limit` ([`Applied::removed`]).
    pub fn removing(mut self, limit: usize) -> Self {
        self.removed = Some(Removed::new(limit));
        self
    }

    /// Also counts the keys removed per owner of the targets, `owners`
    /// telling who named what ([`Applied::by_owner`]).
    pub fn owned_by(mut self, owners: Arc<Owners>) -> Self {
        self.owners = Some(owners);
        self
    }

    /// Adds what another application did to this one.
    pub fn absorb(&mut self, other: Applied) {
        self.keys += other.keys;
        self.tags += other.tags;
        self.patterns += other.patterns;
        self.deleted += other.deleted;
        self.sweeps += other.sweeps;
        self.unapplied.extend(other.unapplied);
        if let (Some(listed), Some(other)) = (&mut self.tag_members, other.tag_members) {
            listed.extend(other);
        }
        if let (Some(removed), Some(other)) = (&mut self.removed, other.removed) {
            removed.absorb(other);
        }
        self.by_tag.extend(other.by_tag);
        for (owner, n) in other.by_owner {
            *self.by_owner.entry(owner).or_default() += n;
        }
    }

    /// The owners to count for, if asked and any are known.
    fn owners(&self) -> Option<Arc<Owners>> {
        self.owners.clone().filter(|o| !o.is_empty())
    }
}

/// A target given up on after a permanent Redis error.
#[derive(Debug, Clone, PartialEq)]
pub struct Unapplied {
    /// The target.
    pub target: Target,
    /// What Redis answered, starting with its error code (`NOPERM: ...`).
    pub error: String,
}

impl std::fmt::Display for Unapplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = &self.target;
        write!(
            f,
            "{} `{}`: {}",
            target.kind(),
            escape(target.text()),
            escape(&self.error)
        )
    }
}

/// Tags invalidated at once, each its own script call.
const TAGS_IN_FLIGHT: usize = 64;

/// Applies `targets` to Redis: exact keys by `UNLINK`, tags chunk by
/// chunk, patterns in one sweep.
///
/// Each target leaves `targets` once it is applied, and its effect is
/// added to `applied`. A target Redis refuses for good (`NOPERM`,
/// `WRONGTYPE`, a script error) leaves too, into `applied.unapplied`,
/// logged with its error: retrying it would hold up every invalidation
/// behind it for ever. On any other error, what is left in `targets` is
/// exactly what remains to do, and applying it again is safe because
/// every step is idempotent.
///
/// When replicas must acknowledge the deletes
/// ([`RedisConfig::replicas`](crate::redis::RedisConfig::replicas)), the
/// targets count as applied only once they have: on any error, the whole
/// of `targets` is left to apply again. `WAIT` only vouches for the
/// writes of the connection it is sent on, and the error may have been
/// the connection's, so the deletes are sent again rather than only waited
/// for again.
pub async fn apply(
    redis: &Redis,
    targets: &mut TargetSet,
    applied: &mut Applied,
) -> Result<(), RedisError> {
    let all = (redis.config().replicas > 0).then(|| targets.clone());
    let mut result = apply_each_kind(redis, targets, applied).await;
    if result.is_ok() {
        result = redis.wait_for_replicas().await;
    }
    if let (Err(_), Some(mut all)) = (&result, all) {
        // What was given up on for good is not tried again.
        for unapplied in &applied.unapplied {
            all.remove(&unapplied.target);
        }
        *targets = all;
        // Nothing counts as applied until replicas vouch for it: the
        // tags are listed when they are applied again.
        if let Some(listed) = &mut applied.tag_members {
            listed.clear();
        }
        if let Some(removed) = &mut applied.removed {
            *removed = Removed::new(removed.limit);
        }
    }
    result
}

async fn apply_each_kind(
    redis: &Redis,
    targets: &mut TargetSet,
    applied: &mut Applied,
) -> Result<(), RedisError> {
    apply_keys(redis, targets, applied).await?;
    apply_tags(redis, targets, applied).await?;
    apply_patterns(redis, targets, applied).await
}

/// Exact keys: one pipelined `UNLINK` for all of them.
async fn apply_keys(
    redis: &Redis,
    targets: &mut TargetSet,
    applied: &mut Applied,
) -> Result<(), RedisError> {
    if targets.keys.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = targets.keys.iter().cloned().collect();
    let owners = applied.owners();
    if let Some(removed) = &mut applied.removed {
        // Which existed: one reply per key.
        match redis.unlink_each(&keys).await {
            Ok(existed) => {
                for (key, existed) in keys.into_iter().zip(existed) {
                    if existed {
                        applied.deleted += 1;
                        if let Some(owners) = &owners {
                            owners.credit(&owners.of_key(&key), 1, &mut applied.by_owner);
                        }
                        removed.keys.push(key);
                    }
                }
                applied.keys += targets.keys.len() as u64;
                targets.keys.clear();
                return Ok(());
            }
            // Found key by key below, as without the list.
            Err(e) if e.is_permanent() => {}
            Err(e) => return Err(e),
        }
    }
    match unlink_counted(redis, &keys, applied).await {
        Ok(()) => {}
        // One refused key fails the whole pipelined batch: find which,
        // one key at a time (only ever on this path), so that the rest
        // are still deleted.
        Err(e) if e.is_permanent() => {
            for key in &keys {
                match redis.unlink(std::slice::from_ref(key)).await {
                    Ok(deleted) => {
                        applied.deleted += deleted;
                        if let (1, Some(removed)) = (deleted, &mut applied.removed) {
                            removed.keys.push(key.clone());
                        }
                        if let Some(owners) = &owners {
                            owners.credit(&owners.of_key(key), deleted, &mut applied.by_owner);
                        }
                    }
                    Err(e) if e.is_permanent() => {
                        give_up(applied, Target::Key(key.clone()), &e);
                    }
                    Err(e) => return Err(e),
                }
                targets.keys.remove(key);
                applied.keys += 1;
            }
        }
        Err(e) => return Err(e),
    }
    applied.keys += targets.keys.len() as u64;
    targets.keys.clear();
    Ok(())
}

/// Unlinks `keys`, counting what existed; with owners to count for, in
/// groups of the same owners, each group's count going to its owners.
async fn unlink_counted(
    redis: &Redis,
    keys: &[String],
    applied: &mut Applied,
) -> Result<(), RedisError> {
    let Some(owners) = applied.owners() else {
        applied.deleted += redis.unlink(keys).await?;
        return Ok(());
    };
    for (group, keys) in owners.split(keys.iter().collect(), |k| owners.of_key(k)) {
        let deleted = redis.unlink(&keys).await?;
        applied.deleted += deleted;
        owners.credit(&group, deleted, &mut applied.by_owner);
    }
    Ok(())
}

/// Tags, a group at a time, their scripts pipelined on the connection:
/// one round trip per tag would make a commit that names a tag cost a
/// round trip of its own.
async fn apply_tags(
    redis: &Redis,
    targets: &mut TargetSet,
    applied: &mut Applied,
) -> Result<(), RedisError> {
    let tags: Vec<String> = targets.tags.iter().cloned().collect();
    let list = applied.tag_members.is_some() || applied.removed.is_some();
    for group in tags.chunks(TAGS_IN_FLIGHT) {
        let results =
            futures::future::join_all(group.iter().map(|tag| tags::invalidate(redis, tag, list)))
                .await;
        let mut transient = None;
        for (tag, result) in group.iter().zip(results) {
            match result {
                Ok((deleted, members)) => {
                    applied.deleted += deleted;
                    if deleted > 0 {
                        applied.by_tag.push((tag.clone(), deleted));
                    }
                    if let Some(owners) = applied.owners() {
                        owners.credit(&owners.of_tag(tag), deleted, &mut applied.by_owner);
                    }
                    if let Some(removed) = &mut applied.removed {
                        for key in &members {
                            removed.found(key.clone());
                        }
                    }
                    if let Some(listed) = &mut applied.tag_members {
                        listed.push(TagMembers {
                            tag: tag.clone(),
                            members,
                        });
                    }
                }
                // For example another client wrote something other than a
                // sorted set at the tag's index (`WRONGTYPE`): the tag's keys
                // cannot be found, now or ever.
                Err(e) if e.is_permanent() => give_up(applied, Target::Tag(tag.clone()), &e),
                Err(e) => {
                    // Stays in `targets`, to be retried.
                    transient.get_or_insert(e);
                    continue;
                }
            }
            applied.tags += 1;
            targets.tags.remove(tag);
        }
        if let Some(e) = transient {
            return Err(e);
        }
    }
    Ok(())
}

/// Patterns: one sweep of the keyspace for all of them.
async fn apply_patterns(
    redis: &Redis,
    targets: &mut TargetSet,
    applied: &mut Applied,
) -> Result<(), RedisError> {
    if targets.patterns.is_empty() {
        return Ok(());
    }
    let patterns = PatternSet::new(&targets.patterns);
    let limit = applied.removed.as_ref().map(|r| r.limit);
    let owners = applied.owners();
    match sweep::sweep_listing(redis, &patterns, limit, owners.as_deref()).await {
        Ok(swept) => {
            applied.deleted += swept.deleted;
            for (owner, n) in swept.by_owner {
                *applied.by_owner.entry(owner).or_default() += n;
            }
            if let Some(removed) = &mut applied.removed {
                removed.cut |= swept.cut;
                for key in swept.removed {
                    removed.found(key);
                }
            }
        }
        // The sweep is one pass for all the patterns: a refusal (say
        // `SCAN` or `UNLINK` forbidden) refuses them all.
        Err(e) if e.is_permanent() => {
            for pattern in &targets.patterns {
                give_up(applied, Target::Pattern(pattern.clone()), &e);
            }
        }
        Err(e) => return Err(e),
    }
    applied.patterns += patterns.len() as u64;
    applied.sweeps += 1;
    drop(mem::take(&mut targets.patterns));
    Ok(())
}

/// Records `target` as given up on after `error`, and says so loudly.
fn give_up(applied: &mut Applied, target: Target, error: &RedisError) {
    // The code first: the client's own rendering of some errors (those
    // inside a pipeline) spells it differently.
    let error_text = match error.code() {
        Some(code) => format!("{code}: {error}"),
        None => error.to_string(),
    };
    let unapplied = Unapplied {
        target,
        error: error_text,
    };
    tracing::error!(
        code = error.code().unwrap_or(""),
        "redis refused an invalidation for good; it is not retried: {unapplied}"
    );
    applied.unapplied.push(unapplied);
}
