//! [`ExplainLog`]: the last applied targets, each with the commit and rule
//! it came from and, for a tag, the keys its index listed, so that an
//! operator can ask why a key is gone ([`Invalidator::explain`]).
//!
//! A bounded ring, newest last, written by the applier once per applied
//! batch (one lock) and read by the API. An entry is what one rule named
//! for one commit (or batch), moved there as it is, so that keeping it
//! costs no copy per target. Its capacity counts targets and the keys tags
//! listed alike, so that tags with huge indexes cannot make it grow past
//! its bound. A query is a scan of the ring: a key matches a key target
//! equal to it, a pattern target that matches it (Redis's glob rules), and
//! a tag target whose index listed it.
//!
//! [`Invalidator::explain`]: super::Invalidator::explain

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::sink::glob::glob_match;
use crate::targets::{Target, TargetSet};

/// Why a target was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// A rule named it for a commit (or for a batch of commits evaluated
    /// together).
    Rule,
    /// Somebody asked for it by hand (`POST /v1/invalidate`, the console,
    /// [`Invalidator::invalidate`](super::Invalidator::invalidate)).
    Manual,
    /// Applied again on a new primary after a failover.
    Replay,
    /// No commit named it: the rules' fallback, standing in for a backlog
    /// that outgrew its bound.
    Fallback,
}

/// Where an applied target came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The commit's `txn`, or `first..last` for commits from one source
    /// evaluated together; none unless a rule named the target.
    pub txn: Option<String>,
    /// Where the commit came from, if it said.
    pub source: Option<String>,
    /// The rule that named the target.
    pub rule: Option<String>,
    /// That rule's version.
    pub version: Option<String>,
    /// Why it was applied.
    pub cause: Cause,
    /// Whether the rule failed on the commit, so that what it named is its
    /// fallback.
    pub failed: bool,
}

impl Origin {
    /// An origin that is not a rule's: by hand, a replay, the fallback.
    pub fn of(cause: Cause) -> Self {
        Self {
            txn: None,
            source: None,
            rule: None,
            version: None,
            cause,
            failed: false,
        }
    }
}

/// A target as explain shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedTarget {
    /// `key`, `pattern` or `tag`.
    pub kind: &'static str,
    /// The key, pattern or tag, as stored (with the key prefix).
    pub text: String,
}

/// One applied invalidation that removed the key asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalidation {
    /// Where it came from (flattened into this object in JSON).
    #[serde(flatten)]
    pub origin: Origin,
    /// The target that matched the key.
    pub target: ExplainedTarget,
    /// When it was applied, RFC 3339 in UTC, to the millisecond.
    pub applied_at: String,
}

/// Targets one origin named, as applied: what the ring holds.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) origin: Arc<Origin>,
    /// What it named, as stored (prefixed).
    pub(crate) targets: TargetSet,
    /// The keys each tag applied with it listed (shared by the entries
    /// recorded together).
    pub(crate) members: Arc<Members>,
    pub(crate) at: SystemTime,
}

/// The keys each tag's index listed when it was applied, by tag.
pub(crate) type Members = HashMap<String, Vec<String>>;

impl Entry {
    /// What it counts for against the capacity: its targets, and the keys
    /// its tags listed.
    fn weight(&self) -> usize {
        let listed: usize = self
            .targets
            .tags
            .iter()
            .filter_map(|t| self.members.get(t))
            .map(Vec::len)
            .sum();
        self.targets.len() + listed
    }

    /// The targets of this entry that removed `key`.
    fn removed<'a>(&'a self, key: &'a str) -> impl Iterator<Item = Target> + 'a {
        let by_key = self
            .targets
            .keys
            .contains(key)
            .then(|| Target::Key(key.to_owned()));
        let by_pattern = self
            .targets
            .patterns
            .iter()
            .filter(move |p| glob_match(p.as_bytes(), key.as_bytes()))
            .map(|p| Target::Pattern(p.clone()));
        let by_tag = self
            .targets
            .tags
            .iter()
            .filter(move |t| {
                self.members
                    .get(*t)
                    .is_some_and(|m| m.iter().any(|k| k == key))
            })
            .map(|t| Target::Tag(t.clone()));
        by_key.into_iter().chain(by_pattern).chain(by_tag)
    }
}

/// The ring of the last applied targets. Capacity 0 keeps nothing, and
/// the pipeline then collects nothing for it.
#[derive(Debug)]
pub struct ExplainLog {
    capacity: usize,
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    /// Oldest first, each with its weight.
    entries: VecDeque<(Entry, usize)>,
    /// The sum of the entries' weights.
    weight: usize,
    /// Tags whose listed keys were cut to fit.
    cut: u64,
}

impl ExplainLog {
    /// A log that holds `capacity` targets and listed keys at most.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ring: Mutex::new(Ring::default()),
        }
    }

    /// Whether it keeps anything.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Its capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds what `named` (each origin with its targets) had applied at
    /// `at`, with the keys the tags applied with them listed, dropping the
    /// oldest entries beyond the capacity (the newest is always kept).
    pub(crate) fn record(
        &self,
        named: Vec<(Arc<Origin>, TargetSet)>,
        mut members: Members,
        at: SystemTime,
    ) {
        if !self.enabled() || named.is_empty() {
            return;
        }
        let mut cut = 0;
        // A tag listing more keys than the whole log holds keeps what fits.
        for listed in members.values_mut() {
            if listed.len() > self.capacity {
                listed.truncate(self.capacity);
                cut += 1;
            }
        }
        let members = Arc::new(members);
        let mut ring = self.ring.lock().expect("explain lock");
        ring.cut += cut;
        for (origin, targets) in named {
            let entry = Entry {
                origin,
                targets,
                members: members.clone(),
                at,
            };
            let weight = entry.weight();
            ring.weight += weight;
            ring.entries.push_back((entry, weight));
        }
        while ring.weight > self.capacity && ring.entries.len() > 1 {
            let Some((_, weight)) = ring.entries.pop_front() else {
                break;
            };
            ring.weight -= weight;
        }
    }

    /// The recorded invalidations that removed `key`, newest first, at
    /// most `limit` of them.
    pub fn explain(&self, key: &str, limit: usize) -> Vec<Invalidation> {
        let ring = self.ring.lock().expect("explain lock");
        ring.entries
            .iter()
            .rev()
            .flat_map(|(e, _)| e.removed(key).map(move |target| (e, target)))
            .take(limit)
            .map(|(e, target)| Invalidation {
                origin: (*e.origin).clone(),
                target: ExplainedTarget {
                    kind: target.kind(),
                    text: target.text().to_owned(),
                },
                applied_at: humantime::format_rfc3339_millis(e.at).to_string(),
            })
            .collect()
    }

    /// How many targets and listed keys it holds, and how many tags had
    /// their listed keys cut to fit.
    pub fn held(&self) -> (usize, u64) {
        let ring = self.ring.lock().expect("explain lock");
        (ring.weight, ring.cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(rule: &str, targets: &[Target]) -> (Arc<Origin>, TargetSet) {
        let origin = Arc::new(Origin {
            txn: Some(format!("t-{rule}")),
            source: None,
            rule: Some(rule.to_owned()),
            version: Some("1".to_owned()),
            cause: Cause::Rule,
            failed: false,
        });
        (origin, targets.iter().cloned().collect())
    }

    fn members(tags: &[(&str, &[&str])]) -> Members {
        tags.iter()
            .map(|(t, m)| (t.to_string(), m.iter().map(|k| k.to_string()).collect()))
            .collect()
    }

    fn rules_of(found: &[Invalidation]) -> Vec<&str> {
        found
            .iter()
            .map(|i| i.origin.rule.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn a_key_is_explained_by_its_key_a_matching_pattern_and_a_tag_that_listed_it() {
        let log = ExplainLog::new(100);
        let now = SystemTime::now();
        log.record(
            vec![
                named(
                    "by-key",
                    &[Target::Key("car:1".into()), Target::Key("car:10".into())],
                ),
                named("by-pattern", &[Target::Pattern("car:[0-9]".into())]),
                named("other-pattern", &[Target::Pattern("shop:*".into())]),
            ],
            Members::new(),
            now,
        );
        log.record(
            vec![
                named("by-tag", &[Target::Tag("cars".into())]),
                named("other-tag", &[Target::Tag("shops".into())]),
            ],
            members(&[("cars", &["car:2", "car:1"]), ("shops", &["shop:1"])]),
            now,
        );
        let found = log.explain("car:1", 10);
        assert_eq!(rules_of(&found), ["by-tag", "by-pattern", "by-key"]);
        assert_eq!(
            found[0].target,
            ExplainedTarget {
                kind: "tag",
                text: "cars".into()
            }
        );
        assert_eq!(found[2].target.kind, "key");
        assert_eq!(rules_of(&log.explain("car:1", 2)), ["by-tag", "by-pattern"]);
        let other = log.explain("car:3", 10);
        assert_eq!(rules_of(&other), ["by-pattern"]);
    }

    #[test]
    fn the_oldest_go_first_and_listed_keys_count_against_the_capacity() {
        let log = ExplainLog::new(5);
        let now = SystemTime::now();
        log.record(
            vec![named("a", &[Target::Key("k".into())])],
            Members::new(),
            now,
        );
        log.record(
            vec![named("b", &[Target::Tag("t".into())])],
            members(&[("t", &["k", "x", "y"])]),
            now,
        );
        assert_eq!(log.held(), (5, 0));
        // One more key pushes out the oldest entry, and only it.
        log.record(
            vec![named("c", &[Target::Key("k".into())])],
            Members::new(),
            now,
        );
        assert_eq!(rules_of(&log.explain("k", 10)), ["c", "b"]);
        // A tag bigger than the log keeps what fits, and says so.
        log.record(
            vec![named("d", &[Target::Tag("big".into())])],
            members(&[("big", &["1", "2", "3", "4", "5", "6"])]),
            now,
        );
        assert_eq!(log.held().1, 1);
        assert_eq!(rules_of(&log.explain("5", 10)), ["d"]);
        assert!(log.explain("6", 10).is_empty(), "cut from the entry");
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let log = ExplainLog::new(0);
        let now = SystemTime::now();
        log.record(
            vec![named("a", &[Target::Key("k".into())])],
            Members::new(),
            now,
        );
        assert!(log.explain("k", 10).is_empty());
        assert!(!log.enabled());
    }
}
