//! [`ExplainLog`]: the last applied targets, each with the commit and rule
//! it came from and, for a tag, the keys its index listed, so that an
//! operator can ask why a key is gone ([`Invalidator::explain`]).
//!
//! A bounded ring, newest last, written by the applier once per applied
//! batch (one lock) and read by the API. Its capacity counts targets and
//! the keys tags listed alike, so that tags with huge indexes cannot make
//! it grow past its bound. A query is a scan of the ring: a key matches a
//! key target equal to it, a pattern target that matches it (Redis's glob
//! rules), and a tag target whose index listed it.
//!
//! [`Invalidator::explain`]: super::Invalidator::explain

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::sink::glob::glob_match;
use crate::targets::Target;

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

/// An applied target, as the applier records it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) origin: Arc<Origin>,
    pub(crate) target: Target,
    /// For a tag, the keys its index listed.
    pub(crate) members: Vec<String>,
    pub(crate) at: SystemTime,
}

impl Entry {
    /// What it counts for against the capacity.
    fn weight(&self) -> usize {
        1 + self.members.len()
    }

    fn removed(&self, key: &str) -> bool {
        match &self.target {
            Target::Key(k) => k == key,
            Target::Pattern(p) => glob_match(p.as_bytes(), key.as_bytes()),
            Target::Tag(_) => self.members.iter().any(|m| m == key),
        }
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
    entries: VecDeque<Entry>,
    /// The sum of the entries' weights.
    weight: usize,
    /// Tag entries whose members were cut to fit.
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

    /// Adds applied targets, oldest first, dropping the oldest entries
    /// beyond the capacity.
    pub(crate) fn record(&self, entries: impl IntoIterator<Item = Entry>) {
        if !self.enabled() {
            return;
        }
        let mut ring = self.ring.lock().expect("explain lock");
        for mut entry in entries {
            // A tag listing more keys than the whole log holds keeps what
            // fits, and is counted as cut.
            if entry.weight() > self.capacity {
                entry.members.truncate(self.capacity - 1);
                ring.cut += 1;
            }
            ring.weight += entry.weight();
            ring.entries.push_back(entry);
            while ring.weight > self.capacity {
                let Some(old) = ring.entries.pop_front() else {
                    break;
                };
                ring.weight -= old.weight();
            }
        }
    }

    /// The recorded invalidations that removed `key`, newest first, at
    /// most `limit` of them.
    pub fn explain(&self, key: &str, limit: usize) -> Vec<Invalidation> {
        let ring = self.ring.lock().expect("explain lock");
        ring.entries
            .iter()
            .rev()
            .filter(|e| e.removed(key))
            .take(limit)
            .map(|e| Invalidation {
                origin: (*e.origin).clone(),
                target: ExplainedTarget {
                    kind: e.target.kind(),
                    text: e.target.text().to_owned(),
                },
                applied_at: humantime::format_rfc3339_millis(e.at).to_string(),
            })
            .collect()
    }

    /// How many targets and listed keys it holds, and how many tag
    /// entries were cut to fit.
    pub fn held(&self) -> (usize, u64) {
        let ring = self.ring.lock().expect("explain lock");
        (ring.weight, ring.cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rule: &str, target: Target, members: &[&str]) -> Entry {
        Entry {
            origin: Arc::new(Origin {
                txn: Some(format!("t-{rule}")),
                source: None,
                rule: Some(rule.to_owned()),
                version: Some("1".to_owned()),
                cause: Cause::Rule,
            }),
            target,
            members: members.iter().map(|m| m.to_string()).collect(),
            at: SystemTime::now(),
        }
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
        log.record([
            entry("by-key", Target::Key("car:1".into()), &[]),
            entry("other-key", Target::Key("car:10".into()), &[]),
            entry("by-pattern", Target::Pattern("car:[0-9]".into()), &[]),
            entry("other-pattern", Target::Pattern("shop:*".into()), &[]),
            entry("by-tag", Target::Tag("cars".into()), &["car:2", "car:1"]),
            entry("other-tag", Target::Tag("shops".into()), &["shop:1"]),
        ]);
        let found = log.explain("car:1", 10);
        assert_eq!(rules_of(&found), ["by-tag", "by-pattern", "by-key"]);
        assert_eq!(
            found[0].target,
            ExplainedTarget {
                kind: "tag",
                text: "cars".into()
            }
        );
        assert_eq!(rules_of(&log.explain("car:1", 2)), ["by-tag", "by-pattern"]);
        assert!(
            log.explain("car:3", 10)
                .iter()
                .all(|i| i.target.kind == "pattern")
        );
    }

    #[test]
    fn the_oldest_go_first_and_listed_keys_count_against_the_capacity() {
        let log = ExplainLog::new(5);
        log.record([entry("a", Target::Key("k".into()), &[])]);
        log.record([entry("b", Target::Tag("t".into()), &["k", "x", "y"])]);
        assert_eq!(log.held(), (5, 0));
        // One more key pushes out the oldest entry, and only it.
        log.record([entry("c", Target::Key("k".into()), &[])]);
        assert_eq!(rules_of(&log.explain("k", 10)), ["c", "b"]);
        // A tag bigger than the log keeps what fits, and says so.
        log.record([entry(
            "d",
            Target::Tag("big".into()),
            &["1", "2", "3", "4", "5", "6"],
        )]);
        assert_eq!(log.held(), (5, 1));
        assert_eq!(rules_of(&log.explain("4", 10)), ["d"]);
        assert!(log.explain("5", 10).is_empty(), "cut from the entry");
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let log = ExplainLog::new(0);
        log.record([entry("a", Target::Key("k".into()), &[])]);
        assert!(log.explain("k", 10).is_empty());
        assert!(!log.enabled());
    }
}
