//! Redis glob patterns, matched on our side: [`glob_match`] for one pattern
//! and [`PatternSet`] for many at once.
//!
//! A sweep for many patterns reads the keyspace once and matches each key
//! here, so a pattern must remove exactly the keys `KEYS pattern` lists, or
//! stale values stay behind. [`glob_match`] is therefore a byte-for-byte
//! port of Redis's `stringmatchlen` (`util.c`), quirks included:
//!
//! - it works on bytes, not characters: `?` is one byte of a multi-byte
//!   UTF-8 character;
//! - range ends and the key byte are compared as C `char`, which is signed
//!   on the x86_64 servers we run against, so a byte above 0x7F sorts below
//!   `0`: `[a-é]` contains the digits;
//! - a class left open (`[abc`) runs to the end of the pattern, and `[^`
//!   at the very end matches any one byte;
//! - `x-]` inside a class is the range from `x` to `]`;
//! - the empty key is matched only by `*` alone (Redis short-cuts that
//!   pattern to "every key") and by the empty pattern;
//! - a match needing more than 1000 nested `*` runs fails, Redis's guard
//!   against abusive patterns (CVE-2024-31228).
//!
//! `tests/glob.rs` checks all of this against a real `redis-server`.

use std::collections::HashMap;

/// How deep `*` runs may nest before a match is given up, as in Redis.
const MAX_NESTING: u32 = 1000;

/// Whether `KEYS pattern` lists `key`.
///
/// Runs in time proportional to `pattern.len() * key.len()` at worst,
/// thanks to the same early exit Redis takes once the rest of a pattern
/// after a `*` has failed at every position.
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    // `KEYS *` and `SCAN` without a filter skip matching altogether, which
    // is the only way an empty key is listed.
    if pattern == b"*" {
        return true;
    }
    let mut give_up = false;
    string_match(pattern, 0, key, 0, &mut give_up, 0)
}

/// `text` as a pattern that matches exactly `text`: every character that
/// means something to a glob (`*`, `?`, `[`, `]`, `\\`) escaped with a
/// backslash.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The byte at `i`, or 0 past the end: Redis reads its patterns from
/// NUL-terminated strings and relies on that terminator in a few places.
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// A byte as C's signed `char` on x86_64, for range comparisons.
fn signed(byte: u8) -> i32 {
    i32::from(byte as i8)
}

/// `stringmatchlen_impl`: whether `pattern[p..]` matches `key[k..]`.
///
/// `give_up` is Redis's `skipLongerMatches`: once the rest of the pattern
/// after a `*` fails from every position of the key, no earlier `*` can
/// help by matching more, so every caller stops.
fn string_match(
    pattern: &[u8],
    mut p: usize,
    key: &[u8],
    mut k: usize,
    give_up: &mut bool,
    nesting: u32,
) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    // Redis keeps a signed length that one branch below takes back above
    // zero, so track the end explicitly rather than slicing.
    let plen = pattern.len();
    while p < plen && k < key.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < plen && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == plen {
                    return true;
                }
                while k < key.len() {
                    if string_match(pattern, p + 1, key, k, give_up, nesting + 1) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    k += 1;
                }
                *give_up = true;
                return false;
            }
            b'?' => k += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == b'^';
                if negate {
                    p += 1;
                }
                let byte = key[k];
                let mut hit = false;
                loop {
                    let left = plen.saturating_sub(p);
                    let c = at(pattern, p);
                    if c == b'\\' && left >= 2 {
                        p += 1;
                        hit |= pattern[p] == byte;
                    } else if c == b']' {
                        break;
                    } else if left == 0 {
                        // An open class ends with the pattern: step back
                        // so the common step below lands on the end.
                        p -= 1;
                        break;
                    } else if left >= 3 && pattern[p + 1] == b'-' {
                        let (mut lo, mut hi) = (signed(c), signed(pattern[p + 2]));
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        p += 2;
                        hit |= (lo..=hi).contains(&signed(byte));
                    } else {
                        hit |= c == byte;
                    }
                    p += 1;
                }
                if hit == negate {
                    return false;
                }
                k += 1;
            }
            c => {
                let literal = if c == b'\\' && plen - p >= 2 {
                    p += 1;
                    pattern[p]
                } else {
                    c
                };
                if literal != key[k] {
                    return false;
                }
                k += 1;
            }
        }
        p += 1;
        if k == key.len() {
            while at(pattern, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= plen && k == key.len()
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

    /// The pattern of the hostile rule's bomb, 999 runs of `*a`, against
    /// keys it nearly matches: with Redis's early exit this is one pass
    /// per star at worst, not one per way of splitting the key (which
    /// would never finish).
    #[test]
    fn many_stars_against_near_misses_end_at_once() {
        let pattern = format!("{}b", "*a".repeat(999));
        let key = "a".repeat(2000);
        assert!(!m(&pattern, &key));
        assert!(m(&pattern, &format!("{key}b")));
        let pattern = "*a".repeat(999);
        assert!(!m(&pattern, &"a".repeat(998)));
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
    fn bytes_compare_as_signed_chars_and_question_marks_take_one_byte() {
        assert!(m("[a-é]", "0"), "0xC3 is below `0` as a signed char");
        assert!(!m("[a-é]", "z"));
        assert!(m("??", "é"), "`é` is two bytes");
        assert!(!m("?", "é"));
    }

    #[test]
    fn open_classes_and_the_empty_key() {
        assert!(m("a[bc", "ab"), "an open class runs to the end");
        assert!(m("a[^", "ax"), "`[^` at the end matches any byte");
        assert!(!m("a[", "ab"));
        assert!(m("*", ""), "`*` alone lists every key");
        assert!(!m("**", ""), "but other patterns never match the empty key");
        assert!(m("", ""));
    }

    #[test]
    fn more_than_a_thousand_nested_stars_match_nothing() {
        let deep = "*a".repeat(1001);
        assert!(!m(&deep, &"a".repeat(1001)));
        let allowed = "*a".repeat(1000);
        assert!(m(&allowed, &"a".repeat(1000)));
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
