//! Replica acknowledgements: which primaries were written to since their
//! replicas were last waited for ([`Written`]), by the cluster's key
//! slots that tell them apart.
//!
//! `WAIT n` waits for the writes *of the connection it is sent on*, so the
//! handle sends it on the connection that carried the deletes, to each
//! primary that received some; a primary that received none is not asked
//! (its `WAIT` would time out whenever its replica is away, for nothing).

use std::sync::Mutex;

use super::slot::{SLOTS, slot};

/// What was written since the last wait: on a single node, whether
/// anything was; in a cluster, which slots.
#[derive(Default)]
pub(crate) struct Written {
    inner: Mutex<Marks>,
}

/// A set of written slots, or for a single node just "something".
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Marks {
    /// Something was written (on a single node, all there is to know).
    pub(crate) any: bool,
    /// One bit per cluster slot written to, when it is a cluster.
    bits: Vec<u64>,
}

impl Marks {
    /// The written slots, in order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u16> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, &word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| (i * 64 + b) as u16)
        })
    }

    fn add(&mut self, other: &Marks) {
        self.any |= other.any;
        if self.bits.len() < other.bits.len() {
            self.bits.resize(other.bits.len(), 0);
        }
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= b;
        }
    }
}

impl Written {
    /// Notes a write to a single node.
    pub(crate) fn node(&self) {
        self.inner.lock().expect("written lock").any = true;
    }

    /// Notes writes to the slots of `keys`.
    pub(crate) fn keys<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        let mut marks = self.inner.lock().expect("written lock");
        if marks.bits.is_empty() {
            marks.bits = vec![0; SLOTS / 64];
        }
        for key in keys {
            let s = slot(key) as usize;
            marks.bits[s / 64] |= 1 << (s % 64);
            marks.any = true;
        }
    }

    /// Takes what was written, leaving nothing.
    pub(crate) fn take(&self) -> Marks {
        std::mem::take(&mut *self.inner.lock().expect("written lock"))
    }

    /// Puts back marks taken out but not waited for.
    pub(crate) fn restore(&self, marks: &Marks) {
        self.inner.lock().expect("written lock").add(marks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_taken_once_and_can_be_put_back() {
        let w = Written::default();
        w.keys([b"foo".as_slice(), b"user1".as_slice()]);
        let marks = w.take();
        assert_eq!(marks.slots().collect::<Vec<_>>(), [8106, 12182]);
        assert!(!w.take().any);
        w.restore(&marks);
        assert_eq!(w.take(), marks);
    }
}
