//! What to invalidate: [`Target`]s as rules produce them, and [`TargetSet`],
//! the sorted, deduplicated merge of every rule's targets for a commit.

use std::collections::BTreeSet;

use serde::Serialize;

pub use crate::bindings::types::Target;

impl Target {
    /// Its kind, as logs, errors and the API name it: `key`, `pattern` or
    /// `tag`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Key(_) => "key",
            Target::Pattern(_) => "pattern",
            Target::Tag(_) => "tag",
        }
    }

    /// Its text, whatever its kind.
    pub fn text(&self) -> &str {
        match self {
            Target::Key(s) | Target::Pattern(s) | Target::Tag(s) => s,
        }
    }
}

/// The targets of one or more commits, by kind, sorted and deduplicated.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSet {
    /// Exact cache keys.
    pub keys: BTreeSet<String>,
    /// Redis glob patterns.
    pub patterns: BTreeSet<String>,
    /// Tags.
    pub tags: BTreeSet<String>,
}

impl TargetSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one target.
    pub fn insert(&mut self, target: Target) {
        match target {
            Target::Key(k) => self.keys.insert(k),
            Target::Pattern(p) => self.patterns.insert(p),
            Target::Tag(t) => self.tags.insert(t),
        };
    }

    /// Removes one target, if it is there.
    pub fn remove(&mut self, target: &Target) {
        match target {
            Target::Key(k) => self.keys.remove(k),
            Target::Pattern(p) => self.patterns.remove(p),
            Target::Tag(t) => self.tags.remove(t),
        };
    }

    /// Adds every target of another set.
    pub fn merge(&mut self, other: TargetSet) {
        self.keys.extend(other.keys);
        self.patterns.extend(other.patterns);
        self.tags.extend(other.tags);
    }

    /// These targets with `prefix` before every key and pattern (as text
    /// in a pattern: a `*` in the prefix matches only a `*`); tags stay
    /// as they are. An empty prefix changes nothing.
    pub fn prefixed(self, prefix: &str) -> TargetSet {
        if prefix.is_empty() {
            return self;
        }
        let literal = crate::sink::glob::literal(prefix);
        TargetSet {
            keys: self
                .keys
                .into_iter()
                .map(|k| format!("{prefix}{k}"))
                .collect(),
            patterns: self
                .patterns
                .into_iter()
                .map(|p| format!("{literal}{p}"))
                .collect(),
            tags: self.tags,
        }
    }

    /// Whether there is nothing to invalidate.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.patterns.is_empty() && self.tags.is_empty()
    }

    /// The targets of this set that `other` lacks.
    pub fn difference(&self, other: &TargetSet) -> TargetSet {
        TargetSet {
            keys: self.keys.difference(&other.keys).cloned().collect(),
            patterns: self.patterns.difference(&other.patterns).cloned().collect(),
            tags: self.tags.difference(&other.tags).cloned().collect(),
        }
    }

    /// How many targets there are, of all kinds.
    pub fn len(&self) -> usize {
        self.keys.len() + self.patterns.len() + self.tags.len()
    }
}

impl Extend<Target> for TargetSet {
    fn extend<I: IntoIterator<Item = Target>>(&mut self, iter: I) {
        for t in iter {
            self.insert(t);
        }
    }
}

impl FromIterator<Target> for TargetSet {
    fn from_iter<I: IntoIterator<Item = Target>>(iter: I) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_sorts_and_deduplicates_by_kind() {
        let mut set: TargetSet = [
            Target::Key("b".into()),
            Target::Key("a".into()),
            Target::Key("b".into()),
            Target::Tag("a".into()),
        ]
        .into_iter()
        .collect();
        set.merge(
            [Target::Pattern("p*".into()), Target::Tag("a".into())]
                .into_iter()
                .collect(),
        );
        assert_eq!(set.keys.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(set.patterns.iter().collect::<Vec<_>>(), ["p*"]);
        assert_eq!(set.tags.iter().collect::<Vec<_>>(), ["a"]);
        assert_eq!(set.len(), 4);
    }

    #[test]
    fn a_prefix_goes_before_keys_and_patterns_and_is_literal_in_patterns() {
        let set: TargetSet = [
            Target::Key("turnus_data_1".into()),
            Target::Pattern("user_profile_*".into()),
            Target::Tag("shop:1".into()),
        ]
        .into_iter()
        .collect();
        let prefixed = set.clone().prefixed("site*[1]:2:");
        assert_eq!(
            prefixed.keys.iter().collect::<Vec<_>>(),
            ["site*[1]:2:turnus_data_1"]
        );
        let pattern = prefixed.patterns.first().unwrap();
        assert_eq!(pattern, "site\\*\\[1\\]:2:user_profile_*");
        let m = |k: &str| crate::sink::glob::glob_match(pattern.as_bytes(), k.as_bytes());
        assert!(m("site*[1]:2:user_profile_7"));
        assert!(!m("siteX1:2:user_profile_7"), "the prefix's `*` is literal");
        assert!(!m("user_profile_7"));
        assert_eq!(prefixed.tags, set.tags, "tags are not prefixed");
        assert_eq!(set.clone().prefixed(""), set);
    }
}
