//! [`RuleSet`]: the immutable set of rules a commit is evaluated against,
//! and [`Outcome`], what they decided for one commit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Activity, LoadError, LoadedRule, RuleActivity, RuleFailure, Runtime};
use crate::bindings::types as wit;
use crate::commit::{Commit, flatten, flatten_writes};
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
        self.evaluate_traced(commit, None)
    }

    /// [`evaluate`](Self::evaluate), adding what each rule decided to
    /// `trace` when given.
    pub fn evaluate_traced(&self, commit: &Commit, trace: Option<&mut Vec<Activity>>) -> Outcome {
        let _span = tracing::debug_span!("commit", txn = %commit.txn).entered();
        let mut outcome = Outcome::default();
        let mut activity = trace
            .is_some()
            .then(|| Activity::new(commit.txn.clone(), [commit]));
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
            if let Some(activity) = &mut activity {
                activity.rules.push(rule_activity(rule, &result));
            }
            record(rule, &commit.txn, result, &mut outcome);
        }
        if let (Some(trace), Some(activity)) = (trace, activity) {
            trace.push(activity);
        }
        outcome
    }

    /// Runs a batch of commits through the rules, with one call per rule
    /// for the whole batch instead of one per commit.
    ///
    /// Consecutive commits from the same source are laid out as one commit
    /// whose writes are all of theirs, in order, named `first..last`. The
    /// targets are the same as commit by commit for any rule whose targets
    /// are the union of what each write implies, which is what the rules
    /// contract asks of a rule. If a rule fails on a batch, it runs again on
    /// each commit of the batch alone, so that its fallback stands in only
    /// for the commits it really fails on.
    pub fn evaluate_batch(&self, commits: &[Commit]) -> Outcome {
        self.evaluate_batch_traced(commits, None)
    }

    /// [`evaluate_batch`](Self::evaluate_batch), adding what each rule
    /// decided to `trace` when given: one [`Activity`] per commit
    /// evaluated alone, or per batch laid out as one commit.
    pub fn evaluate_batch_traced(
        &self,
        commits: &[Commit],
        mut trace: Option<&mut Vec<Activity>>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        for group in commits.chunk_by(|a, b| a.source == b.source) {
            let [first, .., last] = group else {
                let one = self.evaluate_traced(&group[0], trace.as_deref_mut());
                outcome.targets.merge(one.targets);
                outcome.failures.extend(one.failures);
                continue;
            };
            let _span =
                tracing::debug_span!("batch", first = %first.txn, last = %last.txn).entered();
            let total: usize = group.iter().map(|c| c.writes.len()).sum();
            let txn = format!("{}..{}", first.txn, last.txn);
            let mut activity = trace.is_some().then(|| Activity::new(txn.clone(), group));
            let mut whole: Option<wit::Commit> = None;
            for rule in &self.rules {
                let writes = || group.iter().flat_map(|c| &c.writes);
                let wanted = writes().filter(|w| rule.subscribes(&w.table)).count();
                let result = if wanted == 0 {
                    continue;
                } else if wanted == total {
                    let flat = whole.get_or_insert_with(|| {
                        flatten_writes(txn.clone(), first.source.clone(), total, writes())
                    });
                    rule.call_flat(flat)
                } else {
                    rule.call_flat(&flatten_writes(
                        txn.clone(),
                        first.source.clone(),
                        wanted,
                        writes().filter(|w| rule.subscribes(&w.table)),
                    ))
                };
                match result {
                    Ok(targets) => {
                        if let Some(activity) = &mut activity {
                            activity.rules.push(RuleActivity {
                                rule: rule.name().to_owned(),
                                version: rule.info().version.clone(),
                                targets: targets.iter().cloned().collect(),
                                failed: false,
                            });
                        }
                        outcome.targets.extend(targets);
                    }
                    Err(_) => {
                        // Find the commits it really fails on.
                        let mut part = Outcome::default();
                        for commit in group {
                            self.evaluate_rule(rule, commit, &mut part);
                        }
                        if let Some(activity) = &mut activity {
                            activity.rules.push(RuleActivity {
                                rule: rule.name().to_owned(),
                                version: rule.info().version.clone(),
                                targets: part.targets.clone(),
                                failed: !part.failures.is_empty(),
                            });
                        }
                        outcome.targets.merge(part.targets);
                        outcome.failures.extend(part.failures);
                    }
                }
            }
            if let (Some(trace), Some(activity)) = (trace.as_deref_mut(), activity) {
                trace.push(activity);
            }
        }
        outcome
    }

    /// Runs one rule on one commit alone, adding its targets (or its
    /// fallback and failure) to `outcome`.
    fn evaluate_rule(&self, rule: &LoadedRule, commit: &Commit, outcome: &mut Outcome) {
        if !commit.writes.iter().any(|w| rule.subscribes(&w.table)) {
            return;
        }
        record(rule, &commit.txn, rule.call(commit), outcome);
    }

    /// What stands in for everything the rules could ask for: the union of
    /// every rule's fallback, with `*` (the whole keyspace) for a rule that
    /// declares none. The pipeline collapses its pending work into this
    /// when the work outgrows its bound.
    pub fn fallback(&self) -> TargetSet {
        let mut all = TargetSet::new();
        for rule in &self.rules {
            if rule.info().fallback.is_empty() {
                all.insert(wit::Target::Pattern("*".to_owned()));
            }
            all.extend(rule.info().fallback.iter().cloned());
        }
        all
    }
}

/// Adds a rule's result on commit `txn` to `outcome`: its targets, or its
/// fallback and the failure.
/// `rule`'s part of an activity, from its call's `result`: its targets,
/// or its fallback where it failed.
fn rule_activity(
    rule: &LoadedRule,
    result: &Result<Vec<wit::Target>, RuleFailure>,
) -> RuleActivity {
    let (targets, failed) = match result {
        Ok(targets) => (targets.iter().cloned().collect(), false),
        Err(_) => (rule.info().fallback.iter().cloned().collect(), true),
    };
    RuleActivity {
        rule: rule.name().to_owned(),
        version: rule.info().version.clone(),
        targets,
        failed,
    }
}

fn record(
    rule: &LoadedRule,
    txn: &str,
    result: Result<Vec<wit::Target>, RuleFailure>,
    outcome: &mut Outcome,
) {
    match result {
        Ok(targets) => outcome.targets.extend(targets),
        Err(failure) => {
            tracing::warn!(
                rule = %failure.rule,
                kind = failure.kind.as_str(),
                txn,
                "rule failed, applying its fallback: {}",
                failure.message
            );
            outcome.targets.extend(rule.info().fallback.iter().cloned());
            outcome.failures.push(failure);
        }
    }
}
