//! The dry run behind `invalidator run`: commits in as JSON Lines, the
//! targets each would invalidate out as JSON Lines, nothing applied.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};

use serde::Serialize;

use crate::commit::for_each_commit;
use crate::rules::{Outcome, RuleFailure, RuleSet};

/// One output line: a commit's targets, sorted and deduplicated, and the
/// rules that failed on it.
#[derive(Debug, Serialize)]
pub struct DryRunLine<'a> {
    /// The commit's transaction id.
    pub txn: &'a str,
    /// Keys to delete.
    pub keys: &'a BTreeSet<String>,
    /// Patterns to sweep.
    pub patterns: &'a BTreeSet<String>,
    /// Tags to invalidate.
    pub tags: &'a BTreeSet<String>,
    /// Rules that failed (their fallbacks are included above).
    pub errors: &'a [RuleFailure],
}

impl<'a> DryRunLine<'a> {
    /// The line for `outcome` of commit `txn`.
    pub fn new(txn: &'a str, outcome: &'a Outcome) -> Self {
        Self {
            txn,
            keys: &outcome.targets.keys,
            patterns: &outcome.targets.patterns,
            tags: &outcome.targets.tags,
            errors: &outcome.failures,
        }
    }
}

/// What a dry run went through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DryRunSummary {
    /// Commits evaluated.
    pub commits: u64,
    /// Input lines that were not valid commits.
    pub malformed: u64,
    /// Rule failures, summed over commits.
    pub rule_failures: u64,
}

/// Evaluates every commit of `input` (JSON Lines; blank lines are skipped)
/// and writes one [`DryRunLine`] per commit to `out`, in input order. A line
/// that is not a valid commit is reported on `diagnostics` with its line
/// number, and the run goes on.
pub fn dry_run(
    rules: &RuleSet,
    input: impl BufRead,
    mut out: impl Write,
    diagnostics: impl Write,
) -> io::Result<DryRunSummary> {
    let mut summary = DryRunSummary::default();
    summary.malformed = for_each_commit(input, diagnostics, |commit| {
        let outcome = rules.evaluate(&commit);
        summary.commits += 1;
        summary.rule_failures += outcome.failures.len() as u64;
        serde_json::to_writer(&mut out, &DryRunLine::new(&commit.txn, &outcome))?;
        out.write_all(b"\n")
    })?;
    out.flush()?;
    Ok(summary)
}
