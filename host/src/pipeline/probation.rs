//! Probation: newly promoted rule versions, watched for failures, and put
//! back to their previous version when they fail too often.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::commit::Commit;
use crate::rules::{LoadedRule, RuleFailure, RuleSet};

use super::RollbackPolicy;

/// A version on probation.
struct Watched {
    name: String,
    hash: String,
    previous: Option<LoadedRule>,
    since: Instant,
    calls: u64,
    failures: u64,
}

/// The versions on probation, and those refused after a rollback.
#[derive(Default)]
pub(crate) struct Probation {
    watched: Vec<Watched>,
    /// Hashes of versions rolled back: refused until their file changes.
    vetoed: HashSet<String>,
}

impl Probation {
    /// `next` is about to replace `current`: drops vetoed versions from
    /// `next` (keeping the current version of that rule), and puts every
    /// rule whose version changed on probation. Returns the set to use.
    pub(crate) fn promote(&mut self, current: &RuleSet, next: Arc<RuleSet>) -> Arc<RuleSet> {
        let by_name =
            |set: &RuleSet, name: &str| set.rules().iter().find(|r| r.name() == name).cloned();
        let next = if next.rules().iter().any(|r| self.vetoed.contains(r.hash())) {
            let rules = next
                .rules()
                .iter()
                .filter_map(|r| {
                    if self.vetoed.contains(r.hash()) {
                        tracing::warn!(
                            rule = r.name(),
                            hash = r.hash(),
                            "refusing a version that was rolled back"
                        );
                        by_name(current, r.name())
                    } else {
                        Some(r.clone())
                    }
                })
                .collect();
            match RuleSet::new(rules) {
                Ok(set) => Arc::new(set),
                Err(_) => next,
            }
        } else {
            next
        };
        self.watched
            .retain(|w| next.rules().iter().any(|r| r.hash() == w.hash));
        for rule in next.rules() {
            let previous = by_name(current, rule.name());
            if previous.as_ref().is_some_and(|p| p.hash() == rule.hash()) {
                continue;
            }
            self.watched.push(Watched {
                name: rule.name().to_owned(),
                hash: rule.hash().to_owned(),
                previous,
                since: Instant::now(),
                calls: 0,
                failures: 0,
            });
        }
        next
    }

    /// Counts a batch evaluated by `rules`. Returns the rule set to roll
    /// back to, if a version on probation failed too often.
    pub(crate) fn judge(
        &mut self,
        policy: &RollbackPolicy,
        rules: &RuleSet,
        commits: &[Commit],
        failures: &[RuleFailure],
    ) -> Option<Arc<RuleSet>> {
        self.watched.retain(|w| w.since.elapsed() < policy.window);
        let mut rollback = None;
        for w in &mut self.watched {
            let Some(rule) = rules.rules().iter().find(|r| r.hash() == w.hash) else {
                continue;
            };
            w.calls += commits
                .iter()
                .filter(|c| c.writes.iter().any(|x| rule.subscribes(&x.table)))
                .count() as u64;
            w.failures += failures.iter().filter(|f| f.rule == w.name).count() as u64;
            if w.calls >= policy.min_commits
                && w.failures as f64 > policy.max_failure_rate * w.calls as f64
            {
                rollback = Some(w.name.clone());
                break;
            }
        }
        let name = rollback?;
        let at = self.watched.iter().position(|w| w.name == name)?;
        let w = self.watched.remove(at);
        self.vetoed.insert(w.hash.clone());
        let restored: Vec<LoadedRule> = rules
            .rules()
            .iter()
            .filter_map(|r| {
                if r.name() == w.name {
                    w.previous.clone()
                } else {
                    Some(r.clone())
                }
            })
            .collect();
        tracing::error!(
            rule = w.name,
            hash = w.hash,
            failures = w.failures,
            calls = w.calls,
            restored = w
                .previous
                .as_ref()
                .map(|p| p.info().version.as_str())
                .unwrap_or("(none)"),
            "rolled back a new rule version that failed too often"
        );
        RuleSet::new(restored).ok().map(Arc::new)
    }
}
