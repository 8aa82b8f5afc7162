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

use std::collections::HashMap;
use std::sync::Arc;

use super::explain::{Members, Origin};
use crate::sink::TagMembers;
use crate::targets::{Target, TargetSet};

/// Origins whose targets are not applied yet, and the keys of the tags
/// applied meanwhile.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    waiting: Vec<(u64, Arc<Origin>, TargetSet)>,
    members: Members,
}

impl Origins {
    /// Notes that `origin` named `targets` (as stored), in the commits up
    /// to `seq`.
    pub(crate) fn add(&mut self, seq: u64, origin: Arc<Origin>, targets: TargetSet) {
        if !targets.is_empty() {
            self.waiting.push((seq, origin, targets));
        }
    }

    /// Keeps the keys each applied tag listed, until its origin is
    /// recorded.
    pub(crate) fn listed(&mut self, tags: Vec<TagMembers>) {
        for TagMembers { tag, members } in tags {
            self.members.entry(tag).or_default().extend(members);
        }
    }

    /// Takes a target Redis refused for good out of every origin: it was
    /// not applied.
    pub(crate) fn given_up(&mut self, target: &Target) {
        for (_, _, targets) in &mut self.waiting {
            targets.remove(target);
        }
    }

    /// Forgets everything waiting: the pending work was replaced.
    pub(crate) fn clear(&mut self) {
        self.waiting.clear();
    }

    /// Takes out what is applied once the commits up to `seq` are, with
    /// the keys the tags among it listed.
    pub(crate) fn applied(&mut self, seq: u64) -> (Vec<(Arc<Origin>, TargetSet)>, Members) {
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(s, _, _)| *s <= seq);
        self.waiting = rest;
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
        let mut origins = Origins::default();
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
}
