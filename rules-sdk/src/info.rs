//! Builders for [`RuleInfo`], what a rule says about itself.

use alloc::string::String;
use alloc::vec::Vec;

use crate::{RuleInfo, Target};

impl RuleInfo {
    /// A rule named `name` at `version`, subscribed to every table, with no
    /// fallback. Most rules should set both with [`tables`](Self::tables) and
    /// [`fallback`](Self::fallback).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            tables: Vec::new(),
            fallback: Vec::new(),
        }
    }

    /// Subscribes to these tables only: the rule sees no other writes and is
    /// not called for commits that touch none of them.
    pub fn tables<S: Into<String>>(mut self, tables: impl IntoIterator<Item = S>) -> Self {
        self.tables = tables.into_iter().map(Into::into).collect();
        self
    }

    /// The targets the host applies when this rule fails on a commit. Make
    /// them broad enough to cover anything the rule could have produced.
    pub fn fallback(mut self, fallback: impl IntoIterator<Item = Target>) -> Self {
        self.fallback = fallback.into_iter().collect();
        self
    }
}
