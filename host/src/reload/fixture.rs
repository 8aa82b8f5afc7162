//! Fixtures: `NAME.test.jsonl` beside `NAME.wasm`, one case per line:
//! `{"commit": <a commit, as in the events format>, "expect": <targets, as
//! `invalidator run` prints them>}`. Of `expect`, the `keys`, `patterns`
//! and `tags` are compared (missing ones are empty); other fields, such as
//! `txn` and `errors`, are ignored, so a line of `run` output can be pasted
//! as it is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::commit::parse_json;
use crate::rules::{LoadedRule, RuleSet};
use crate::targets::TargetSet;

#[derive(Deserialize)]
struct Case {
    commit: serde_json::Value,
    expect: Expected,
}

#[derive(Deserialize)]
struct Expected {
    #[serde(default)]
    keys: BTreeSet<String>,
    #[serde(default)]
    patterns: BTreeSet<String>,
    #[serde(default)]
    tags: BTreeSet<String>,
}

/// The fixture file of a rule file: `dir/NAME.wasm` → `dir/NAME.test.jsonl`.
pub fn fixture_path(rule_file: &Path) -> PathBuf {
    rule_file.with_extension("test.jsonl")
}

/// Why a rule's fixture refuses it.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The fixture file exists but cannot be read.
    #[error("cannot read fixture `{}`: {source}", path.display())]
    Read {
        /// The fixture file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the fixture is not a case, or the rule's targets differ
    /// from the case's; `at` names the file and line.
    #[error("{at}: {reason}")]
    Case {
        /// `fixture `FILE` line N`.
        at: String,
        /// What was wrong or what differed.
        reason: String,
    },
}

/// One case of a fixture, run.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// The case's line in the fixture file, from 1.
    pub line: usize,
    /// The commit's transaction id.
    pub txn: String,
    /// Targets the rule gave that the case does not expect.
    pub added: TargetSet,
    /// Targets the case expects that the rule did not give.
    pub removed: TargetSet,
    /// Why the rule failed on the commit, if it did (its fallback then
    /// stood in for its targets).
    pub errors: Vec<String>,
}

impl CaseOutcome {
    /// Whether the rule gave exactly the expected targets.
    pub fn passed(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Runs every case of the fixture file at `path` on `rule`, failing only
/// when the file cannot be read or a line is not a case.
pub fn run_cases(rule: &LoadedRule, path: &Path) -> Result<Vec<CaseOutcome>, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
        path: path.to_owned(),
        source,
    })?;
    // One rule has no name to clash with.
    let set = RuleSet::new(vec![rule.clone()]).expect("one rule, no clash");
    let mut outcomes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fail = |reason: String| FixtureError::Case {
            at: format!("fixture `{}` line {}", path.display(), i + 1),
            reason,
        };
        let case: Case = serde_json::from_str(line).map_err(|e| fail(e.to_string()))?;
        let commit = parse_json(&case.commit.to_string()).map_err(|e| fail(e.to_string()))?;
        let outcome = set.evaluate(&commit);
        let got = outcome.targets;
        let want = TargetSet {
            keys: case.expect.keys,
            patterns: case.expect.patterns,
            tags: case.expect.tags,
        };
        outcomes.push(CaseOutcome {
            line: i + 1,
            txn: commit.txn.clone(),
            added: got.difference(&want),
            removed: want.difference(&got),
            errors: outcome
                .failures
                .iter()
                .map(|f| format!("{} ({:?})", f.message, f.kind))
                .collect(),
        });
    }
    Ok(outcomes)
}

/// Runs the fixture of `rule`'s file, if there is one. The error names the
/// first failing case's line and what differed.
pub fn check(rule: &LoadedRule) -> Result<(), FixtureError> {
    let path = fixture_path(rule.path());
    if !path.exists() {
        return Ok(());
    }
    let outcomes = run_cases(rule, &path)?;
    match outcomes.into_iter().find(|o| !o.passed()) {
        None => Ok(()),
        Some(o) => Err(FixtureError::Case {
            at: format!("fixture `{}` line {}", path.display(), o.line),
            reason: format!(
                "the rule added {} and left out {} (`invalidator test` shows every failing case)",
                serde_json::to_string(&o.added).unwrap_or_default(),
                serde_json::to_string(&o.removed).unwrap_or_default()
            ),
        }),
    }
}
