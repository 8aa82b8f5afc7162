//! [`InFlight`]: the stream entries handed to the pipeline and not yet
//! acknowledged, each with the sequence number of its commit, so that an
//! entry is acknowledged only once its invalidations are applied.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Entries in flight, in the order their commits were handed over.
#[derive(Default)]
pub(crate) struct InFlight {
    entries: Mutex<VecDeque<(u64, String)>>,
    /// Signalled whenever entries leave, for a reader waiting for room and
    /// a shutdown waiting for the end.
    pub(crate) left: Notify,
}

impl InFlight {
    /// Records entry `id`, whose commit was handed over as `seq`.
    pub(crate) fn push(&self, seq: u64, id: String) {
        self.entries
            .lock()
            .expect("in-flight lock")
            .push_back((seq, id));
    }

    /// Takes the entries whose commits are applied (sequence up to
    /// `applied`). Commits are applied in order, so they are a prefix.
    pub(crate) fn take_applied(&self, applied: u64) -> Vec<String> {
        let mut entries = self.entries.lock().expect("in-flight lock");
        let n = entries.partition_point(|(seq, _)| *seq <= applied);
        entries.drain(..n).map(|(_, id)| id).collect()
    }

    /// The ids in flight, to keep them claimed while they are worked on.
    pub(crate) fn ids(&self) -> Vec<String> {
        let entries = self.entries.lock().expect("in-flight lock");
        entries.iter().map(|(_, id)| id.clone()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().expect("in-flight lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_applied_entries_are_taken_in_order() {
        let f = InFlight::default();
        f.push(3, "1-0".into());
        f.push(5, "2-0".into());
        f.push(9, "3-0".into());
        assert!(f.take_applied(2).is_empty());
        assert_eq!(f.take_applied(5), ["1-0", "2-0"]);
        assert_eq!(f.ids(), ["3-0"]);
        assert_eq!(f.len(), 1);
    }
}
