//! [`Removed`]: the keys that applying targets actually removed, listed
//! for whoever asked (the invalidation feed, the counts per rule), and
//! what each tag removed.
//!
//! Exact keys are listed in full: they are targets, already held in
//! memory. Keys found by a pattern sweep or a tag's index are listed up to
//! a bound, since one pattern can match millions of keys; past it they are
//! only counted, and the list says it was cut.

/// Keys that existed and were removed, by the kind of target that removed
/// them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Removed {
    /// Exact keys named and removed (named keys that did not exist are
    /// left out).
    pub keys: Vec<String>,
    /// Keys removed by a pattern sweep or a tag, up to `limit`.
    pub found: Vec<String>,
    /// Most keys kept in `found`.
    pub limit: usize,
    /// Whether keys beyond `limit` were left out of `found`.
    pub cut: bool,
}

impl Removed {
    /// An empty list keeping up to `limit` keys found by patterns and tags.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Lists a key a pattern or tag removed, unless the bound is reached.
    pub fn found(&mut self, key: String) {
        if self.found.len() < self.limit {
            self.found.push(key);
        } else {
            self.cut = true;
        }
    }

    /// Adds another list to this one, keeping the bound.
    pub fn absorb(&mut self, other: Removed) {
        self.keys.extend(other.keys);
        self.cut |= other.cut;
        for key in other.found {
            self.found(key);
        }
    }

    /// How many keys are listed.
    pub fn len(&self) -> usize {
        self.keys.len() + self.found.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.found.is_empty()
    }
}

/// A key as text: keys are bytes to Redis, and one that is not UTF-8 is
/// shown with replacement characters.
pub fn lossy(key: Vec<u8>) -> String {
    String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_keys_stop_at_the_bound_and_say_so() {
        let mut removed = Removed::new(2);
        removed.keys.push("k".into());
        for key in ["a", "b", "c"] {
            removed.found(key.into());
        }
        assert_eq!(removed.found, ["a", "b"]);
        assert!(removed.cut);
        let mut more = Removed::new(2);
        more.found("d".into());
        let mut all = Removed::new(3);
        all.absorb(removed);
        all.absorb(more);
        assert_eq!(all.found, ["a", "b", "d"]);
        assert_eq!(all.len(), 4);
        assert!(all.cut, "a cut part keeps the whole cut");
    }
}
