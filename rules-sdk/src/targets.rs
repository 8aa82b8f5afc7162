//! [`Targets`], the collector a rule fills, and the [`Target`] constructors.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Target;

/// The targets a rule has produced for one commit so far.
///
/// Duplicates are allowed: the host merges and deduplicates the targets of
/// every rule anyway.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Targets(Vec<Target>);

impl Targets {
    /// An empty collector.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Invalidates one exact cache key.
    pub fn key(&mut self, key: impl Into<String>) -> &mut Self {
        self.0.push(Target::Key(key.into()));
        self
    }

    /// Invalidates every key matching a Redis glob pattern, such as
    /// `turnus_data_*`. Patterns cost a keyspace sweep: prefer keys and tags.
    pub fn pattern(&mut self, pattern: impl Into<String>) -> &mut Self {
        self.0.push(Target::Pattern(pattern.into()));
        self
    }

    /// Invalidates every key registered under a tag.
    pub fn tag(&mut self, tag: impl Into<String>) -> &mut Self {
        self.0.push(Target::Tag(tag.into()));
        self
    }

    /// Adds targets built elsewhere.
    pub fn extend(&mut self, targets: impl IntoIterator<Item = Target>) -> &mut Self {
        self.0.extend(targets);
        self
    }

    /// The targets collected so far, in the order they were added.
    pub fn as_slice(&self) -> &[Target] {
        &self.0
    }

    /// The targets collected, in the order they were added.
    pub fn into_vec(self) -> Vec<Target> {
        self.0
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
