//! [`Origins`]: what each origin (a rule for a commit, a hand, a replay,
//! the fallback) named that is not applied yet, kept by the applier until
//! the commits it belongs to are applied, when it goes into the
//! [`ExplainLog`](super::explain::ExplainLog) with the keys its tags
//! listed.
//!
//! Each origin's targets wait as the rule named them, with the sequence
//! number of the last commit of their batch; once a batch up to that
//! number is applied, so are they (pending work is applied in order). That
//! costs nothing per target, where looking each applied target up would
//! cost a hash and a copy. What Redis refused for good is taken out, and
//! when the pending work collapses into the fallback, the fallback's
//! targets replace everything waiting.
//!
//! While Redis is down, pending work stays small (a key named by a
//! thousand commits is one target), but what named it does not: the oldest
//! origins go once more targets wait than the explain log holds, since
//! they would leave the log as soon as they entered it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::explain::{Members, Origin};
use crate::sink::{Owners, TagMembers};
use crate::targets::{Target, TargetSet};

/// Origins whose targets are not applied yet, and the keys of the tags
/// applied meanwhile.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    waiting: VecDeque<(u64, Arc<Origin>, TargetSet)>,
    /// The targets waiting, summed over the origins.
    weight: usize,
    /// The most targets kept waiting: the explain log's capacity.
    capacity: usize,
    members: Members,
}

impl Origins {
    /// Origins for an explain log of `capacity`.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// Notes that `origin` named `targets` (as stored), in the commits up
    /// to `seq`; forgets the oldest origins beyond the capacity.
    pub(crate) fn add(&mut self, seq: u64, origin: Arc<Origin>, targets: TargetSet) {
        if targets.is_empty() {
            return;
        }
        self.weight += targets.len();
        self.waiting.push_back((seq, origin, targets));
        while self.weight > self.capacity && self.waiting.len() > 1 {
            if let Some((_, _, old)) = self.waiting.pop_front() {
                self.weight -= old.len();
            }
        }
    }

    /// Keeps the keys each applied tag listed, until its origin is
    /// recorded.
    pub(crate) fn listed(&mut self, tags: Vec<TagMembers>) {
        for TagMembers { tag, members } in tags {
            self.members.entry(tag).or_default().extend(members);
        }
    }

    /// What each rule named among the origins waiting, for the sink to
    /// count the keys each removed.
    pub(crate) fn owners(&self) -> Owners {
        Owners::new(
            self.waiting
                .iter()
                .filter_map(|(_, origin, targets)| Some((origin.rule.clone()?, targets.clone()))),
        )
    }

    /// Takes a target Redis refused for good out of every origin: it was
    /// not applied.
    pub(crate) fn given_up(&mut self, target: &Target) {
        for (_, _, targets) in &mut self.waiting {
            let before = targets.len();
            targets.remove(target);
            self.weight -= before - targets.len();
        }
    }

    /// Forgets everything waiting: the pending work was replaced.
    pub(crate) fn clear(&mut self) {
        self.waiting.clear();
        self.weight = 0;
    }

    /// Takes out what is applied once the commits up to `seq` are, with
    /// the keys the tags among it listed.
    pub(crate) fn applied(&mut self, seq: u64) -> (Vec<(Arc<Origin>, TargetSet)>, Members) {
        let (done, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(s, _, _)| *s <= seq);
        self.waiting = rest;
        self.weight = self.waiting.iter().map(|(_, _, t)| t.len()).sum();
        let members = if self.waiting.is_empty() {
            std::mem::take(&mut self.members)
        } else {
            let mut mine = HashMap::new();
            for (_, _, targets) in &done {
                for tag in &targets.tags {
                    if let Some(listed) = self.members.remove(tag) {
                        mine.insert(tag.clone(), listed);
                    }
                }
            }
            mine
        };
        let done = done.into_iter().map(|(_, o, t)| (o, t)).collect();
        (done, members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::explain::Cause;

    fn rule(name: &str) -> Arc<Origin> {
        Arc::new(Origin {
            rule: Some(name.to_owned()),
            ..Origin::of(Cause::Rule)
        })
    }

    fn set(targets: &[Target]) -> TargetSet {
        targets.iter().cloned().collect()
    }

    #[test]
    fn origins_leave_once_their_commits_are_applied_with_their_tags_members() {
        let mut origins = Origins::new(100);
        origins.add(1, rule("a"), set(&[Target::Tag("t".into())]));
        origins.add(
            2,
            rule("b"),
            set(&[Target::Key("k".into()), Target::Tag("u".into())]),
        );
        origins.add(3, rule("empty"), TargetSet::new());
        origins.listed(vec![
            TagMembers {
                tag: "t".into(),
                members: vec!["x".into()],
            },
            TagMembers {
                tag: "u".into(),
                members: vec!["y".into()],
            },
        ]);
        let (done, members) = origins.applied(1);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0.rule.as_deref(), Some("a"));
        assert_eq!(members.keys().collect::<Vec<_>>(), ["t"], "u waits for b");
        // A refused target is not applied.
        origins.given_up(&Target::Key("k".into()));
        let (done, members) = origins.applied(2);
        assert_eq!(done[0].1, set(&[Target::Tag("u".into())]));
        assert_eq!(members["u"], ["y"]);
        assert!(origins.applied(9).0.is_empty());
    }

    #[test]
    fn past_the_capacity_the_oldest_origins_go() {
        let mut origins = Origins::new(3);
        let key = |k: &str| set(&[Target::Key(k.into())]);
        for (seq, name) in ["a", "b", "c", "d"].iter().enumerate() {
            origins.add(seq as u64, rule(name), key(name));
        }
        let (done, _) = origins.applied(9);
        let names: Vec<_> = done.iter().map(|(o, _)| o.rule.clone().unwrap()).collect();
        assert_eq!(names, ["b", "c", "d"]);
    }
}
