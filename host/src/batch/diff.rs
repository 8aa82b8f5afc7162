//! [`diff`]: the `invalidator diff` command: two versions of a rule on the
//! same commits, and the commits on which their targets differ.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};

use serde::Serialize;

use crate::commit::for_each_commit;
use crate::rules::RuleSet;
use crate::targets::TargetSet;

/// Targets of one kind and another, as a difference goes.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct TargetDelta {
    /// Keys.
    pub keys: BTreeSet<String>,
    /// Patterns.
    pub patterns: BTreeSet<String>,
    /// Tags.
    pub tags: BTreeSet<String>,
}

impl TargetDelta {
    fn between(from: &TargetSet, to: &TargetSet) -> Self {
        Self {
            keys: to.keys.difference(&from.keys).cloned().collect(),
            patterns: to.patterns.difference(&from.patterns).cloned().collect(),
            tags: to.tags.difference(&from.tags).cloned().collect(),
        }
    }
}

/// One output line: a commit whose targets differ between the versions.
#[derive(Debug, Serialize)]
pub struct DiffLine<'a> {
    /// The commit's transaction id.
    pub txn: &'a str,
    /// Targets only the new version gives.
    pub added: TargetDelta,
    /// Targets only the old version gives.
    pub removed: TargetDelta,
    /// Whether the old version failed (its fallback is in its targets).
    pub old_failed: bool,
    /// Whether the new version failed.
    pub new_failed: bool,
}

/// What a diff went through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiffSummary {
    /// Commits run through both versions.
    pub commits: u64,
    /// Commits whose targets differ.
    pub differing: u64,
    /// Input lines that were not valid commits.
    pub malformed: u64,
}

/// Runs every commit of `input` (JSON Lines; blank lines skipped) through
/// `old` and `new`, writing a [`DiffLine`] to `out` for each commit whose
/// targets differ (a failing version counts with its fallback). Malformed
/// lines are reported on `diagnostics` with their number.
pub fn diff(
    old: &RuleSet,
    new: &RuleSet,
    input: impl BufRead,
    mut out: impl Write,
    diagnostics: impl Write,
) -> io::Result<DiffSummary> {
    let mut summary = DiffSummary::default();
    summary.malformed = for_each_commit(input, diagnostics, |commit| {
        summary.commits += 1;
        let (before, after) = (old.evaluate(&commit), new.evaluate(&commit));
        if before.targets == after.targets {
            return Ok(());
        }
        summary.differing += 1;
        let line = DiffLine {
            txn: &commit.txn,
            added: TargetDelta::between(&before.targets, &after.targets),
            removed: TargetDelta::between(&after.targets, &before.targets),
            old_failed: !before.failures.is_empty(),
            new_failed: !after.failures.is_empty(),
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")
    })?;
    out.flush()?;
    Ok(summary)
}
