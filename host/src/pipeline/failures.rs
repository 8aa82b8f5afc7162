//! [`Failures`]: the commits whose invalidations Redis refused for good,
//! kept so that the source of each commit can report it (an HTTP answer,
//! a dead-lettered stream entry).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::sink::Unapplied;

/// How many failed batches are remembered. A source asks about a commit
/// soon after it is applied, so only a burst of this many refused batches
/// between a commit being applied and its source asking could make one
/// be forgotten; the failure is logged and counted regardless.
const REMEMBERED: usize = 10_000;

/// Targets given up on in one applied batch, and the commits the batch
/// covers.
///
/// Pending work merges the targets of every commit evaluated while the
/// previous batch was applied, so a refused target cannot be traced to the
/// one commit that asked for it: every commit of the batch is reported.
/// Reporting a commit whose own targets were applied costs a needless
/// replay (invalidation is idempotent); missing the one that was not would
/// hide a stale key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyFailure {
    /// The first commit of the batch (by sequence number).
    pub first: u64,
    /// The last commit of the batch.
    pub last: u64,
    /// The targets Redis refused, each with its error.
    pub unapplied: Vec<Unapplied>,
}

impl std::fmt::Display for ApplyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "redis refused {} invalidation(s) for good (commits {} to {} were applied together): ",
            self.unapplied.len(),
            self.first,
            self.last
        )?;
        for (i, u) in self.unapplied.iter().take(5).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{u}")?;
        }
        if self.unapplied.len() > 5 {
            write!(f, "; and {} more", self.unapplied.len() - 5)?;
        }
        Ok(())
    }
}

/// The most recent failed batches, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    batches: VecDeque<Arc<ApplyFailure>>,
}

impl Failures {
    /// Records a failed batch; batches arrive in order of their commits.
    pub(crate) fn record(&mut self, failure: ApplyFailure) {
        if self.batches.len() == REMEMBERED {
            self.batches.pop_front();
        }
        self.batches.push_back(Arc::new(failure));
    }

    /// The failure of the batch that covered commit `seq`, if it failed.
    pub(crate) fn of(&self, seq: u64) -> Option<Arc<ApplyFailure>> {
        let i = self.batches.partition_point(|b| b.last < seq);
        self.batches.get(i).filter(|b| b.first <= seq).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, last: u64) -> ApplyFailure {
        ApplyFailure {
            first,
            last,
            unapplied: Vec::new(),
        }
    }

    #[test]
    fn a_commit_finds_the_failed_batch_that_covered_it() {
        let mut f = Failures::default();
        f.record(batch(3, 5));
        f.record(batch(9, 9));
        assert_eq!(f.of(2), None);
        assert_eq!(f.of(3).map(|b| b.first), Some(3));
        assert_eq!(f.of(5).map(|b| b.last), Some(5));
        assert_eq!(f.of(6), None);
        assert_eq!(f.of(9).map(|b| b.first), Some(9));
        assert_eq!(f.of(10), None);
    }
}
