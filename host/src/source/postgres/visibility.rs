//! [`Gate`]: transactions read from the log that wait to become visible
//! before their commits are handed over.
//!
//! Logical decoding sends a transaction once its commit record is flushed
//! to the WAL. Other sessions see it only later, when its backend leaves
//! the proc array; with synchronous replication, only once a standby has
//! answered, which can be any time later. Invalidating in that gap loses
//! the race that leases exist to win: a reader misses, takes a lease,
//! reads the *old* row, and stores it after the invalidation, for good.
//! So a commit is handed over only once its transaction is visible to a
//! new snapshot.
//!
//! The check is `pg_visible_in_snapshot(xid8, pg_current_snapshot())` on
//! a plain connection ([`Catalog::visible`](super::catalog::Catalog)),
//! for every transaction waiting, in one query per round. Waiting on the
//! transaction's lock would also work, but takes a query per transaction,
//! and the snapshot check is what "visible to a reader" means. In the
//! common case the gap is microseconds and the first round finds the
//! whole batch visible, so the cost is one round trip per batch of
//! commits read together, not one per commit.
//!
//! Commits leave in the order they were read (the order of their WAL
//! positions): a later commit never passes an earlier one, so that
//! confirming a position to Postgres never confirms one still waiting.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::commit::Commit;

/// A transaction read, waiting for its turn.
pub(crate) struct Waiting<P> {
    /// Its transaction id, as decoded (32 bits; the check widens it).
    pub(crate) xid: u32,
    /// Its commit; `None` when it wrote no published row (only its
    /// position is to be confirmed, and there is nothing to wait for).
    pub(crate) commit: Option<Commit>,
    /// What confirms it to Postgres.
    pub(crate) position: P,
}

/// The transactions waiting, in the order they were read.
pub(crate) struct Gate<P> {
    queue: Mutex<VecDeque<Waiting<P>>>,
    /// Signalled when a transaction arrives.
    pub(crate) arrived: Notify,
}

impl<P> Default for Gate<P> {
    fn default() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
        }
    }
}

impl<P: Copy> Gate<P> {
    /// Adds a transaction read.
    pub(crate) fn push(&self, waiting: Waiting<P>) {
        self.queue.lock().expect("gate lock").push_back(waiting);
        self.arrived.notify_one();
    }

    /// How many wait.
    pub(crate) fn len(&self) -> usize {
        self.queue.lock().expect("gate lock").len()
    }

    /// The oldest waiting transaction's position.
    pub(crate) fn first(&self) -> Option<P> {
        self.queue
            .lock()
            .expect("gate lock")
            .front()
            .map(|w| w.position)
    }

    /// Lets every waiting transaction go without passing it (they are to
    /// be read again); returns how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut queue = self.queue.lock().expect("gate lock");
        let n = queue.len();
        queue.clear();
        n
    }

    /// The ids of the waiting transactions that have something to hand
    /// over, oldest first, up to the first `limit`.
    pub(crate) fn xids(&self, limit: usize) -> Vec<u32> {
        self.queue
            .lock()
            .expect("gate lock")
            .iter()
            .filter(|w| w.commit.is_some())
            .take(limit)
            .map(|w| w.xid)
            .collect()
    }

    /// Lets through, in order, every transaction at the front that is
    /// `visible` (or has nothing to hand over), handing each to `pass`
    /// while the queue is held: a transaction is thus never in neither
    /// place, for whoever checks the gate and then the next place.
    /// Returns how many passed.
    pub(crate) fn release(
        &self,
        visible: &HashSet<u32>,
        mut pass: impl FnMut(Option<Commit>, P),
    ) -> usize {
        let mut queue = self.queue.lock().expect("gate lock");
        let mut passed = 0;
        while let Some(front) = queue.front() {
            if front.commit.is_some() && !visible.contains(&front.xid) {
                break;
            }
            let w = queue.pop_front().expect("a front");
            pass(w.commit, w.position);
            passed += 1;
        }
        passed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(xid: u32, writes: bool) -> Waiting<u32> {
        Waiting {
            xid,
            commit: writes.then(|| Commit {
                txn: xid.to_string(),
                source: None,
                writes: Vec::new(),
            }),
            position: xid,
        }
    }

    #[test]
    fn commits_pass_in_order_and_never_ahead_of_an_invisible_one() {
        let gate = Gate::default();
        for (xid, writes) in [(10, true), (11, false), (12, true), (13, true)] {
            gate.push(waiting(xid, writes));
        }
        assert_eq!(gate.xids(10), [10, 12, 13]);
        // 12 is not visible yet: 13 waits behind it though visible.
        let mut out = Vec::new();
        let passed = gate.release(&[10, 13].into(), |c, p| out.push((c.is_some(), p)));
        assert_eq!(passed, 2);
        assert_eq!(out, [(true, 10), (false, 11)]);
        assert_eq!(gate.len(), 2);
        assert_eq!(gate.first(), Some(12));
        let passed = gate.release(&[12, 13].into(), |c, p| out.push((c.is_some(), p)));
        assert_eq!(passed, 2);
        assert_eq!(gate.len(), 0);
    }
}
