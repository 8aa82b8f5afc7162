//! [`RuleSet`]: the immutable set of rules a commit is evaluated against,
//! and [`Outcome`], what they decided for one commit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{LoadError, LoadedRule, RuleFailure, Runtime};
use crate::bindings::types as wit;
use crate::commit::{Commit, flatten};
use crate::targets::TargetSet;

/// What the rules decided for one commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Every target of every rule, merged; for a failed rule, its fallback.
    pub targets: TargetSet,
    /// The rules that failed, in rule-set order.
    pub failures: Vec<RuleFailure>,
}

/// An immutable set of loaded rules.
///
/// A commit is evaluated against one rule set from start to end; reloading
/// rules means building a new set, never changing this one.
pub struct RuleSet {
    rules: Vec<LoadedRule>,
}

impl RuleSet {
    /// Loads one `.wasm` file, or every `.wasm` file of a folder (in name
    /// order). Any bad file fails the whole set: a rule set is put in
    /// service whole or not at all.
    pub fn load(runtime: &Runtime, path: &Path) -> Result<Self, LoadError> {
        let read_err = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let files = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(read_err)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(LoadError::Empty(path.to_owned()));
            }
            files
        } else {
            vec![path.to_owned()]
        };
        let rules = files
            .iter()
            .map(|f| LoadedRule::load(runtime, f))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(rules)
    }

    /// A set of already loaded rules. Names must be unique.
    pub fn new(rules: Vec<LoadedRule>) -> Result<Self, LoadError> {
        let mut seen: HashMap<&str, &Path> = HashMap::new();
        for r in &rules {
            if let Some(first) = seen.insert(r.name(), r.path()) {
                return Err(LoadError::DuplicateName {
                    name: r.name().to_owned(),
                    first: first.to_owned(),
                    second: r.path().to_owned(),
                });
            }
        }
        Ok(Self { rules })
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[LoadedRule] {
        &self.rules
    }

    /// Runs `commit` through every rule subscribed to a table it wrote.
    ///
    /// Each rule sees only the writes to its tables. A rule that fails
    /// contributes its fallback targets and a [`RuleFailure`]; the others are
    /// unaffected.
    pub fn evaluate(&self, commit: &Commit) -> Outcome {
        let _span = tracing::debug_span!("commit", txn = %commit.txn).entered();
        let mut outcome = Outcome::default();
        // Laid out once for every rule that wants all of the commit (the
        // common case); rules that want part of it get their own layout.
        let mut whole: Option<wit::Commit> = None;
        for rule in &self.rules {
            let wanted = commit
                .writes
                .iter()
                .filter(|w| rule.subscribes(&w.table))
                .count();
            let result = if wanted == 0 {
                continue;
            } else if wanted == commit.writes.len() {
                let flat = whole.get_or_insert_with(|| flatten(commit, |_| true));
                rule.call_flat(flat)
            } else {
                rule.call_flat(&flatten(commit, |w| rule.subscribes(&w.table)))
            };
            match result {
                Ok(targets) => outcome.targets.extend(targets),
                Err(failure) => {
                    tracing::warn!(
                        rule = %failure.rule,
                        txn = %commit.txn,
                        "rule failed, applying its fallback: {}",
                        failure.message
                    );
                    outcome.targets.extend(rule.info().fallback.iter().cloned());
                    outcome.failures.push(failure);
                }
            }
        }
        outcome
    }
}
