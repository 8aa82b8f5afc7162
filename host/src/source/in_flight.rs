//! [`InFlight`]: what a source handed to the pipeline and has not yet
//! acknowledged, each with the sequence number of its commit, so that it
//! is acknowledged only once its invalidations are applied. What a source
//! acknowledges by is its own: a stream entry's id, a WAL position.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Entries in flight, in the order their commits were handed over.
pub(crate) struct InFlight<T> {
    entries: Mutex<VecDeque<(u64, T)>>,
    /// Signalled whenever entries leave, for [`wait_until`](Self::wait_until).
    left: Notify,
    /// Signalled after entries are added: their commits may already be
    /// applied (the pipeline can be faster than the push), and the acker
    /// must not wait for the next commit to notice.
    pub(crate) added: Notify,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            left: Notify::new(),
            added: Notify::new(),
        }
    }
}

impl<T: Clone> InFlight<T> {
    /// Records entry `id`, whose commit was handed over as `seq`.
    pub(crate) fn push(&self, seq: u64, id: T) {
        self.entries
            .lock()
            .expect("in-flight lock")
            .push_back((seq, id));
    }

    /// The entries whose commits are applied (sequence up to `applied`).
    /// Commits are applied in order, so they are a prefix. They stay in
    /// flight until [`acknowledged`](Self::acknowledged): a shutdown waits
    /// for the `XACK`, not just for the pipeline.
    /// Each comes with its commit's sequence number.
    pub(crate) fn applied(&self, applied: u64) -> Vec<(u64, T)> {
        let entries = self.entries.lock().expect("in-flight lock");
        let n = entries.partition_point(|(seq, _)| *seq <= applied);
        entries.iter().take(n).cloned().collect()
    }

    /// Removes the first `n` entries, now acknowledged.
    pub(crate) fn acknowledged(&self, n: usize) {
        let mut entries = self.entries.lock().expect("in-flight lock");
        let n = n.min(entries.len());
        entries.drain(..n);
        drop(entries);
        self.left.notify_waiters();
    }

    /// The ids in flight, to keep them claimed while they are worked on.
    pub(crate) fn ids(&self) -> Vec<T> {
        let entries = self.entries.lock().expect("in-flight lock");
        entries.iter().map(|(_, id)| id.clone()).collect()
    }

    /// Waits until `done(len)` holds, rechecking whenever entries leave.
    pub(crate) async fn wait_until(&self, done: impl Fn(usize) -> bool) {
        loop {
            // Registered before the check, so that entries leaving between
            // the check and the wait still wake it.
            let left = self.left.notified();
            tokio::pin!(left);
            left.as_mut().enable();
            if done(self.len()) {
                return;
            }
            left.await;
        }
    }

    /// The oldest entry in flight, if any.
    pub(crate) fn first(&self) -> Option<(u64, T)> {
        self.entries
            .lock()
            .expect("in-flight lock")
            .front()
            .cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().expect("in-flight lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_entries_leave_only_once_acknowledged() {
        let f = InFlight::<String>::default();
        f.push(3, "1-0".into());
        f.push(5, "2-0".into());
        f.push(9, "3-0".into());
        assert!(f.applied(2).is_empty());
        assert_eq!(f.applied(5), [(3, "1-0".into()), (5, "2-0".into())]);
        assert_eq!(f.len(), 3, "in flight until acknowledged");
        f.acknowledged(2);
        assert_eq!(f.ids(), ["3-0"]);
        assert_eq!(f.len(), 1);
    }
}
