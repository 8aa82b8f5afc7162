//! [`Pending`]: the evaluated targets not yet applied, with their bound.

use crate::targets::TargetSet;

/// Targets waiting to be applied, and the last commit they cover.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    targets: TargetSet,
    /// The sequence number of the last commit whose targets are in here.
    seq: u64,
}

impl Pending {
    /// Adds the targets of the commits up to `seq`. When the pending work
    /// then exceeds `max` targets, it is replaced by `fallback()`, which by
    /// the rules' contract covers everything they could have asked for:
    /// the cost is extra misses, never a stale key. Returns whether that
    /// collapse happened.
    pub(crate) fn add(
        &mut self,
        targets: TargetSet,
        seq: u64,
        max: usize,
        fallback: impl FnOnce() -> TargetSet,
    ) -> bool {
        self.targets.merge(targets);
        self.seq = self.seq.max(seq);
        if self.targets.len() <= max {
            return false;
        }
        let dropped = self.targets.len();
        self.targets = fallback();
        tracing::warn!(
            dropped,
            max,
            fallback = self.targets.len(),
            "pending invalidations exceeded their bound: collapsed into the rules' fallback targets"
        );
        true
    }

    /// Takes the work out, if there is any that is not applied yet
    /// (`applied` is the last commit known applied). Work with no targets
    /// still counts: applying it marks its commits done.
    pub(crate) fn take(&mut self, applied: u64) -> Option<(TargetSet, u64)> {
        if self.targets.is_empty() && self.seq <= applied {
            return None;
        }
        Some((std::mem::take(&mut self.targets), self.seq))
    }

    /// Takes out the keys and tags waiting, leaving the patterns and the
    /// last commit covered: applied while a sweep runs, they do not mark
    /// their commits done, which only the work left here can.
    pub(crate) fn take_keys_and_tags(&mut self) -> TargetSet {
        TargetSet {
            keys: std::mem::take(&mut self.targets.keys),
            tags: std::mem::take(&mut self.targets.tags),
            patterns: Default::default(),
        }
    }

    /// The last commit whose targets were added.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// How many targets are waiting.
    pub(crate) fn len(&self) -> usize {
        self.targets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Target;

    fn keys(n: usize) -> TargetSet {
        (0..n).map(|i| Target::Key(format!("k{i}"))).collect()
    }

    #[test]
    fn work_is_taken_once_and_marks_its_last_commit() {
        let mut p = Pending::default();
        assert!(p.take(0).is_none());
        assert!(!p.add(keys(2), 3, 10, TargetSet::new));
        let (t, seq) = p.take(0).unwrap();
        assert_eq!((t.len(), seq), (2, 3));
        assert!(p.take(3).is_none(), "nothing new after commit 3");
        p.add(TargetSet::new(), 4, 10, TargetSet::new);
        assert_eq!(p.take(3).map(|(t, s)| (t.len(), s)), Some((0, 4)));
    }

    #[test]
    fn outgrowing_the_bound_collapses_into_the_fallback() {
        let mut p = Pending::default();
        let fallback = || [Target::Pattern("shop:*".into())].into_iter().collect();
        assert!(!p.add(keys(10), 1, 10, fallback));
        assert!(p.add(keys(11), 2, 10, fallback));
        let (t, seq) = p.take(0).unwrap();
        assert_eq!(seq, 2);
        assert_eq!(t.patterns.iter().collect::<Vec<_>>(), ["shop:*"]);
        assert!(t.keys.is_empty());
    }
}
