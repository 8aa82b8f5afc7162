//! Redis glob patterns, matched on our side: [`glob_match`] for one pattern
//! and [`PatternSet`] for many at once.
//!
//! A sweep for many patterns reads the keyspace once and matches each key
//! here, so the patterns must mean exactly what `SCAN MATCH` means: `*` any
//! run of bytes, `?` one byte, `[abc]`, `[^abc]` and `[a-z]` one byte of a
//! class, and `\x` the byte `x` itself.

use std::collections::HashMap;

/// Whether `key` matches the Redis glob `pattern`.
///
/// Runs in time proportional to `pattern.len() * key.len()` at worst: on a
/// mismatch it only ever resumes from the most recent `*`, which is enough
/// because every other token consumes exactly one byte.
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Where to resume after a mismatch: the token after the last `*`, and
    // the key position that `*` is currently extended to.
    let mut resume: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    resume = Some((p, k));
                    continue;
                }
                _ => {
                    if let Some(next) = match_one(pattern, p, key[k]) {
                        p = next;
                        k += 1;
                        continue;
                    }
                }
            }
        }
        match resume {
            Some((rp, rk)) => {
                p = rp;
                k = rk + 1;
                resume = Some((rp, rk + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches the single-byte token at `pattern[p]` (not `*`) against `byte`;
/// returns the index after the token when it matches.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte).then_some(p + 2),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut hit = false;
            // As in Redis, a class left open runs to the end of the pattern.
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    hit |= pattern[i + 1] == byte;
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
                    // As in Redis, `x-]` is a range too, and the class
                    // goes on after it.
                    let (a, b) = (pattern[i], pattern[i + 2]);
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    hit |= (lo..=hi).contains(&byte);
                    i += 3;
                } else {
                    hit |= pattern[i] == byte;
                    i += 1;
                }
            }
            (hit != negate).then_some((i + 1).min(pattern.len()))
        }
        c => (c == byte).then_some(p + 1),
    }
}

/// The bytes of `pattern` before its first special character: every key
/// it matches starts with them.
fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    &pattern[..end]
}

/// Many patterns, matched together.
///
/// Patterns are indexed by their literal prefix, so a key is only tried
/// against the patterns whose prefix it starts with: matching costs a few
/// hash lookups per key rather than one match per pattern.
#[derive(Debug, Default)]
pub struct PatternSet {
    patterns: Vec<Vec<u8>>,
    /// For each distinct prefix length, the patterns by prefix.
    by_prefix: Vec<(usize, ByPrefix)>,
}

/// Indexes of the patterns that share one literal prefix, by prefix.
type ByPrefix = HashMap<Vec<u8>, Vec<usize>>;

impl PatternSet {
    /// The set of `patterns`.
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns: Vec<Vec<u8>> = patterns
            .into_iter()
            .map(|p| p.as_ref().as_bytes().to_vec())
            .collect();
        let mut by_len: HashMap<usize, ByPrefix> = HashMap::new();
        for (i, p) in patterns.iter().enumerate() {
            let prefix = literal_prefix(p);
            by_len
                .entry(prefix.len())
                .or_default()
                .entry(prefix.to_vec())
                .or_default()
                .push(i);
        }
        let mut by_prefix: Vec<_> = by_len.into_iter().collect();
        by_prefix.sort_by_key(|(len, _)| *len);
        Self {
            patterns,
            by_prefix,
        }
    }

    /// How many patterns there are.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `key` matches any of the patterns.
    pub fn matches(&self, key: &[u8]) -> bool {
        for (len, prefixes) in &self.by_prefix {
            if *len > key.len() {
                break;
            }
            if let Some(candidates) = prefixes.get(&key[..*len])
                && candidates
                    .iter()
                    .any(|&i| glob_match(&self.patterns[i], key))
            {
                return true;
            }
        }
        false
    }

    /// A `SCAN MATCH` argument that keeps every key some pattern matches,
    /// so Redis filters before sending: the pattern itself when there is
    /// one, else the common literal prefix followed by `*`. `None` when the
    /// patterns share no prefix, and every key must be read.
    pub fn server_filter(&self) -> Option<Vec<u8>> {
        match self.patterns.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            [first, rest @ ..] => {
                let mut common = literal_prefix(first);
                for p in rest {
                    let n = common
                        .iter()
                        .zip(literal_prefix(p))
                        .take_while(|(a, b)| a == b)
                        .count();
                    common = &common[..n];
                }
                if common.is_empty() {
                    return None;
                }
                let mut filter = common.to_vec();
                filter.push(b'*');
                Some(filter)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, k: &str) -> bool {
        glob_match(p.as_bytes(), k.as_bytes())
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("user:*", "user:7"));
        assert!(m("user:*", "user:"));
        assert!(!m("user:*", "users:7"));
        assert!(m("*:profile", "user:7:profile"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("a**b", "ab"));
        assert!(m("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn classes_ranges_negation_and_escapes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges work as in redis");
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"[\]]", "]"));
        assert!(m("key:[0-9]*", "key:42"));
        assert!(
            m("k[a-]_]", "k_"),
            "`a-]` is the range `]`..`a`, as in redis"
        );
        assert!(m("k[a-]x]", "kx"), "and the class goes on after it");
    }

    #[test]
    fn a_set_matches_what_any_member_matches() {
        let set = PatternSet::new(["shop:1:*", "shop:12:*", "*:price", "x?"]);
        assert!(set.matches(b"shop:1:a"));
        assert!(set.matches(b"shop:12:a"));
        assert!(!set.matches(b"shop:123:a"));
        assert!(set.matches(b"car:7:price"));
        assert!(set.matches(b"xy"));
        assert!(!set.matches(b"xyz"));
        assert_eq!(set.server_filter(), None);
    }

    #[test]
    fn the_server_filter_keeps_every_match() {
        let set = PatternSet::new(["shop:1:*", "shop:12:*"]);
        assert_eq!(set.server_filter().as_deref(), Some(&b"shop:1*"[..]));
        let one = PatternSet::new(["car:[0-9]"]);
        assert_eq!(one.server_filter().as_deref(), Some(&b"car:[0-9]"[..]));
    }
}
