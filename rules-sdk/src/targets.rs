//! [`Targets`], the collector a rule fills, and the [`Target`] constructors.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use crate::Target;

/// The targets a rule has produced for one commit so far: a set, so adding a
/// target twice keeps one. A rule typically produces the same target for
/// many writes of one commit (a table's patterns, a shop's tags); only the
/// distinct ones cross back to the host.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Targets(BTreeSet<Target>);

impl Targets {
    /// An empty collector.
    pub fn new() -> Self {
        Self(BTreeSet::new())
    }

    /// Invalidates one exact cache key.
    pub fn key(&mut self, key: impl Into<String>) -> &mut Self {
        self.0.insert(Target::Key(key.into()));
        self
    }

    /// Invalidates every key matching a Redis glob pattern, such as
    /// `turnus_data_*`. Patterns cost a keyspace sweep: prefer keys and tags.
    pub fn pattern(&mut self, pattern: impl Into<String>) -> &mut Self {
        self.0.insert(Target::Pattern(pattern.into()));
        self
    }

    /// Invalidates every key registered under a tag.
    pub fn tag(&mut self, tag: impl Into<String>) -> &mut Self {
        self.0.insert(Target::Tag(tag.into()));
        self
    }

    /// Adds targets built elsewhere.
    pub fn extend(&mut self, targets: impl IntoIterator<Item = Target>) -> &mut Self {
        self.0.extend(targets);
        self
    }

    /// Whether `target` was added.
    pub fn contains(&self, target: &Target) -> bool {
        self.0.contains(target)
    }

    /// How many distinct targets were added.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The distinct targets, sorted: keys, then patterns, then tags.
    pub fn into_vec(self) -> Vec<Target> {
        self.0.into_iter().collect()
    }
}

impl Target {
    /// A [`Target::Key`].
    pub fn key(key: impl Into<String>) -> Self {
        Self::Key(key.into())
    }

    /// A [`Target::Pattern`].
    pub fn pattern(pattern: impl Into<String>) -> Self {
        Self::Pattern(pattern.into())
    }

    /// A [`Target::Tag`].
    pub fn tag(tag: impl Into<String>) -> Self {
        Self::Tag(tag.into())
    }
}
