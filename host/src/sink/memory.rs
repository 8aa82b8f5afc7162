//! [`MemoryStore`]: an in-process cache store, for running the host with
//! nothing else installed (`invalidator serve` without `--redis`) and for
//! services that cache in their own memory.
//!
//! It follows the same rules as Redis: keys with an optional expiry, tags
//! as sets of keys, patterns as Redis globs.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::Applied;
use super::apply::TagMembers;
use super::glob::PatternSet;
use crate::layout::leases::{Lease, is_lease};
use crate::targets::TargetSet;

/// What [`MemoryStore::lease_take`] found.
#[derive(Debug)]
pub enum LeaseAnswer {
    /// A value.
    Hit(Vec<u8>),
    /// Another caller's lease.
    Held,
    /// The lease is the caller's.
    Granted,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

#[derive(Debug, Default)]
struct State {
    values: HashMap<String, Entry>,
    tags: HashMap<String, BTreeSet<String>>,
}

/// Stores `value` at `key` in `state`, under `tags`, pruning those tags'
/// sets of expired keys (the in-process version of pruning a Redis tag
/// index).
fn insert(
    state: &mut State,
    now: Instant,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
    tags: &[String],
) {
    state.values.insert(
        key.to_owned(),
        Entry {
            value: value.to_vec(),
            expires: ttl.map(|t| now + t),
        },
    );
    let State { values, tags: all } = state;
    for tag in tags {
        let members = all.entry(tag.clone()).or_default();
        members.insert(key.to_owned());
        members.retain(|k| values.get(k).is_some_and(|e| e.live(now)));
    }
}

/// Values, their expiry and their tags, in this process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` at `key`, expiring after `ttl`, under `tags`.
    pub fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>, tags: &[String]) {
        let mut state = self.state.lock().expect("store lock");
        insert(&mut state, Instant::now(), key, value, ttl, tags);
    }

    /// Takes a lease on `key` for `lease` (see [`super::lease`]), unless it
    /// holds a value (returned) or another caller's lease (`Held`). The
    /// same steps as `lease_take.lua`, under the store's lock.
    pub fn lease_take(&self, lease: &Lease, duration: Duration) -> LeaseAnswer {
        let now = Instant::now();
        let mut state = self.state.lock().expect("store lock");
        match state.values.get(&lease.key) {
            Some(e) if e.live(now) && is_lease(&e.value) => return LeaseAnswer::Held,
            Some(e) if e.live(now) => return LeaseAnswer::Hit(e.value.clone()),
            _ => {}
        }
        insert(
            &mut state,
            now,
            &lease.key,
            lease.marker(),
            Some(duration),
            &lease.tags,
        );
        LeaseAnswer::Granted
    }

    /// Stores `value` under `lease` unless the key no longer holds its
    /// marker; whether it was stored. Checked and written under one lock,
    /// which invalidations (`apply`) take too.
    pub fn lease_fill(&self, lease: &Lease, value: &[u8], ttl: Option<Duration>) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock().expect("store lock");
        let held = state
            .values
            .get(&lease.key)
            .is_some_and(|e| e.live(now) && e.value == lease.marker());
        if held {
            insert(&mut state, now, &lease.key, value, ttl, &lease.tags);
        }
        held
    }

    /// What `key` holds, lease markers included (for a caller waiting on
    /// another's lease).
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let state = self.state.lock().expect("store lock");
        state
            .values
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    /// Gives `lease` back, if the key still holds it.
    pub fn lease_release(&self, lease: &Lease) {
        let mut state = self.state.lock().expect("store lock");
        if state
            .values
            .get(&lease.key)
            .is_some_and(|e| e.value == lease.marker())
        {
            state.values.remove(&lease.key);
        }
    }

    /// The value at `key`, if it exists and has not expired (a lease
    /// marker is not a value).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let mut state = self.state.lock().expect("store lock");
        let value = match state.values.get(key) {
            Some(e) if e.live(now) && is_lease(&e.value) => None,
            Some(e) if e.live(now) => Some(e.value.clone()),
            Some(_) => {
                state.values.remove(key);
                None
            }
            None => None,
        };
        let counter = if value.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Relaxed);
        value
    }

    /// Reads of [`get`](Self::get) that found their key, and that did not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    /// How many live keys there are.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let state = self.state.lock().expect("store lock");
        state.values.values().filter(|e| e.live(now)).count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `targets` (all of them: nothing here can fail), adding what
    /// it did to `applied`.
    pub fn apply(&self, targets: &mut TargetSet, applied: &mut Applied) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("store lock");
        let remove =
            |state: &mut State, key: &str| state.values.remove(key).is_some_and(|e| e.live(now));
        let mut listed = Vec::new();
        let owners = applied.owners.clone();
        for key in std::mem::take(&mut targets.keys) {
            if remove(&mut state, &key) {
                applied.deleted += 1;
                if let Some(o) = &owners {
                    o.credit(&o.of_key(&key), 1, &mut applied.by_owner);
                }
                if let Some(removed) = &mut applied.removed {
                    removed.keys.push(key);
                }
            }
            applied.keys += 1;
        }
        for tag in std::mem::take(&mut targets.tags) {
            let members: Vec<String> = state
                .tags
                .remove(&tag)
                .unwrap_or_default()
                .into_iter()
                .filter(|key| remove(&mut state, key))
                .collect();
            applied.deleted += members.len() as u64;
            if let Some(o) = &owners {
                o.credit(&o.of_tag(&tag), members.len() as u64, &mut applied.by_owner);
            }
            if !members.is_empty() {
                applied.by_tag.push((tag.clone(), members.len() as u64));
            }
            if let Some(removed) = &mut applied.removed {
                members.iter().for_each(|key| removed.found(key.clone()));
            }
            applied.tags += 1;
            listed.push(TagMembers { tag, members });
        }
        if !targets.patterns.is_empty() {
            let patterns = PatternSet::new(std::mem::take(&mut targets.patterns));
            let matched: Vec<String> = state
                .values
                .keys()
                .filter(|k| patterns.matches(k.as_bytes()))
                .cloned()
                .collect();
            for key in matched {
                if remove(&mut state, &key) {
                    applied.deleted += 1;
                    if let Some(o) = &owners {
                        o.credit(&o.of_found(key.as_bytes()), 1, &mut applied.by_owner);
                    }
                    if let Some(removed) = &mut applied.removed {
                        removed.found(key);
                    }
                }
            }
            applied.patterns += patterns.len() as u64;
            applied.sweeps += 1;
        }
        if let Some(all) = &mut applied.tag_members {
            all.extend(listed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Target;

    #[test]
    fn keys_tags_and_patterns_remove_exactly_their_keys() {
        let store = MemoryStore::new();
        for k in ["a:1", "a:2", "b:1", "b:22", "c:1"] {
            store.set(k, b"v", None, &[]);
        }
        store.set("x:1", b"v", None, &["t".into()]);
        store.set("x:2", b"v", Some(Duration::from_secs(60)), &["t".into()]);
        let mut targets: TargetSet = [
            Target::Key("a:1".into()),
            Target::Key("missing".into()),
            Target::Pattern("b:*".into()),
            Target::Tag("t".into()),
        ]
        .into_iter()
        .collect();
        let mut applied = Applied::default();
        store.apply(&mut targets, &mut applied);
        assert!(targets.is_empty());
        assert_eq!(applied.deleted, 1 + 2 + 2);
        assert_eq!(
            (applied.keys, applied.tags, applied.patterns, applied.sweeps),
            (2, 1, 1, 1)
        );
        assert_eq!(store.len(), 2);
        assert!(store.get("a:2").is_some() && store.get("c:1").is_some());
    }

    #[test]
    fn expired_values_are_gone_and_leave_their_tags() {
        let store = MemoryStore::new();
        store.set("short", b"v", Some(Duration::from_millis(1)), &["t".into()]);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.get("short"), None);
        store.set("long", b"v", None, &["t".into()]);
        let state = store.state.lock().unwrap();
        assert_eq!(state.tags["t"].iter().collect::<Vec<_>>(), ["long"]);
    }
}
