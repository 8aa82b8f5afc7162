//! [`RuleSet`]: the immutable set of rules a commit is evaluated against,
//! and [`Outcome`], what they decided for one commit.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{LoadError, LoadedRule, RuleFailure, Runtime};
use crate::commit::Commit;
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
        for rule in &self.rules {
            let Some(view) = subscribed_view(rule, commit) else {
                continue;
            };
            match rule.call(&view) {
                Ok(targets) => outcome.targets.extend(targets),
                Err(failure) => {
                    tracing::warn!(
                        rule = %failure.rule,
                        txn = %commit.txn,
                        "rule failed, applying its fallback: {}",
                        failure.message
                    );
                    outcome
                        .targets
                        .extend(rule.info().fallback.iter().cloned());
                    outcome.failures.push(failure);
                }
            }
        }
        outcome
    }
}

/// The part of `commit` that `rule` subscribes to: the commit itself when
/// every write is wanted (the common case, no copy), a copy holding only the
/// wanted writes otherwise, and `None` when no write is.
fn subscribed_view<'c>(rule: &LoadedRule, commit: &'c Commit) -> Option<Cow<'c, Commit>> {
    let wanted = commit
        .writes
        .iter()
        .filter(|w| rule.subscribes(&w.table))
        .count();
    if wanted == 0 {
        None
    } else if wanted == commit.writes.len() {
        Some(Cow::Borrowed(commit))
    } else {
        Some(Cow::Owned(Commit {
            txn: commit.txn.clone(),
            source: commit.source.clone(),
            writes: commit
                .writes
                .iter()
                .filter(|w| rule.subscribes(&w.table))
                .cloned()
                .collect(),
        }))
    }
}
