//! [`Owners`]: who named each target of a batch, so that applying it counts
//! the keys removed per owner ([`Applied::by_owner`](super::Applied)),
//! exactly and without a reply per key.
//!
//! An owner is only a name to the sink (the pipeline passes rule names). A
//! batch merges what several owners named, and one `UNLINK` of many keys
//! says only how many of them existed, not which. So the keys of a batch
//! are unlinked in groups named by the same owners, each group's `UNLINK`
//! counting for each of its owners. Most keys are named by one owner, so
//! there is usually one group and nothing is added to the cost. A tag's
//! count goes to the owners that named the tag, and a key a sweep matched
//! goes into the group of the owners whose patterns match it. A key two
//! owners named counts for both.

use std::collections::{BTreeMap, HashMap};

use super::glob::PatternSet;
use crate::targets::TargetSet;

/// The owners that named a target: indexes into [`Owners`], in order.
pub(crate) type Group = Vec<usize>;

/// What each owner named, and its patterns ready to match.
#[derive(Debug)]
pub struct Owners {
    named: Vec<(String, TargetSet)>,
    patterns: Vec<Option<PatternSet>>,
}

impl PartialEq for Owners {
    fn eq(&self, other: &Self) -> bool {
        // The patterns are made from what was named.
        self.named == other.named
    }
}

impl Owners {
    /// Owners of what `named` lists: each name with the targets (as
    /// stored) it named. A name listed twice is one owner.
    pub fn new(named: impl IntoIterator<Item = (String, TargetSet)>) -> Self {
        let mut merged: BTreeMap<String, TargetSet> = BTreeMap::new();
        for (name, targets) in named {
            merged.entry(name).or_default().merge(targets);
        }
        let named: Vec<(String, TargetSet)> = merged.into_iter().collect();
        let patterns = named
            .iter()
            .map(|(_, t)| (!t.patterns.is_empty()).then(|| PatternSet::new(&t.patterns)))
            .collect();
        Self { named, patterns }
    }

    /// Whether no owner is known.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty()
    }

    /// The owners that named exact key `key`.
    pub(crate) fn of_key(&self, key: &str) -> Group {
        self.which(|targets, _| targets.keys.contains(key))
    }

    /// The owners that named tag `tag`.
    pub(crate) fn of_tag(&self, tag: &str) -> Group {
        self.which(|targets, _| targets.tags.contains(tag))
    }

    /// The owners one of whose patterns matches `key`, found by a sweep.
    pub(crate) fn of_found(&self, key: &[u8]) -> Group {
        self.which(|_, patterns| patterns.is_some_and(|p| p.matches(key)))
    }

    fn which(&self, named: impl Fn(&TargetSet, Option<&PatternSet>) -> bool) -> Group {
        self.named
            .iter()
            .zip(&self.patterns)
            .enumerate()
            .filter(|(_, ((_, targets), patterns))| named(targets, patterns.as_ref()))
            .map(|(i, _)| i)
            .collect()
    }

    /// Splits `items` into groups of the same owners, as `of` finds them,
    /// in the order each group first appears.
    pub(crate) fn split<T>(&self, items: Vec<T>, of: impl Fn(&T) -> Group) -> Vec<(Group, Vec<T>)> {
        let mut groups: Vec<(Group, Vec<T>)> = Vec::new();
        for item in items {
            let group = of(&item);
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, members)) => members.push(item),
                None => groups.push((group, vec![item])),
            }
        }
        groups
    }

    /// Counts `removed` keys for each owner of `group`.
    pub(crate) fn credit(
        &self,
        group: &[usize],
        removed: u64,
        by_owner: &mut HashMap<String, u64>,
    ) {
        if removed == 0 {
            return;
        }
        for &i in group {
            *by_owner.entry(self.named[i].0.clone()).or_default() += removed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Target;

    fn set(targets: &[Target]) -> TargetSet {
        targets.iter().cloned().collect()
    }

    #[test]
    fn targets_are_grouped_by_the_owners_that_named_them() {
        let owners = Owners::new([
            (
                "b".to_owned(),
                set(&[Target::Key("k1".into()), Target::Pattern("p:*".into())]),
            ),
            (
                "a".to_owned(),
                set(&[Target::Key("k1".into()), Target::Key("k2".into())]),
            ),
            ("a".to_owned(), set(&[Target::Tag("t".into())])),
        ]);
        // Owners in name order: a is 0, b is 1; a's two entries are one.
        assert_eq!(owners.of_key("k1"), [0, 1]);
        assert_eq!(owners.of_key("k2"), [0]);
        assert_eq!(owners.of_tag("t"), [0]);
        assert_eq!(owners.of_found(b"p:1"), [1]);
        assert!(owners.of_key("nobody's").is_empty());
        let groups = owners.split(vec!["k1", "k2", "x", "k1"], |k| owners.of_key(k));
        assert_eq!(
            groups,
            [
                (vec![0, 1], vec!["k1", "k1"]),
                (vec![0], vec!["k2"]),
                (vec![], vec!["x"])
            ]
        );
        let mut by_owner = HashMap::new();
        owners.credit(&[0, 1], 2, &mut by_owner);
        owners.credit(&[0], 1, &mut by_owner);
        owners.credit(&[1], 0, &mut by_owner);
        assert_eq!(by_owner, [("a".into(), 3), ("b".into(), 2)].into());
    }
}
