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

/// Runs the fixture of `rule`'s file, if there is one. The error names the
/// fixture line and what differed.
pub fn check(rule: &LoadedRule) -> Result<(), FixtureError> {
    let path = fixture_path(rule.path());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(FixtureError::Read { path, source }),
    };
    // One rule has no name to clash with.
    let set = RuleSet::new(vec![rule.clone()]).expect("one rule, no clash");
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("fixture `{}` line {}", path.display(), i + 1);
        let fail = |reason: String| FixtureError::Case {
            at: at.clone(),
            reason,
        };
        let case: Case = serde_json::from_str(line).map_err(|e| fail(e.to_string()))?;
        let commit = parse_json(&case.commit.to_string()).map_err(|e| fail(e.to_string()))?;
        let got = set.evaluate(&commit).targets;
        let want = TargetSet {
            keys: case.expect.keys,
            patterns: case.expect.patterns,
            tags: case.expect.tags,
        };
        if got != want {
            return Err(fail(format!(
                "expected {}, got {}",
                serde_json::to_string(&want).unwrap_or_default(),
                serde_json::to_string(&got).unwrap_or_default()
            )));
        }
    }
    Ok(())
}
