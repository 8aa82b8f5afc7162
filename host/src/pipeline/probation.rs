//! Probation: newly promoted rule versions, watched for failures, and put
//! back to their previous version when they fail too often.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
    /// What operators are shown: when each rule's version came into
    /// service, and the rollbacks.
    states: RuleStates,
    /// The version each rule's version in service replaced, for a
    /// rollback by hand.
    replaced: HashMap<String, LoadedRule>,
}

/// The rules' states as operators see them: `/v1/rules` and the console.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleStates {
    /// Versions on probation: rule name, content hash, and when their
    /// watch ends (milliseconds since the Unix epoch).
    pub probation: Vec<(String, String, u64)>,
    /// When each rule's version in service came into service (ms).
    pub swapped_at: HashMap<String, u64>,
    /// The versions rolled back, newest last (at most [`KEPT_ROLLBACKS`]).
    pub rolled_back: Vec<RolledBack>,
}

/// A version put back to its previous one for failing too often.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RolledBack {
    /// The rule.
    pub name: String,
    /// The failing version.
    pub version: String,
    /// Its content hash: refused until the file changes.
    pub hash: String,
    /// The version restored, if there was one.
    pub restored: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Rollbacks kept for operators to see.
pub const KEPT_ROLLBACKS: usize = 20;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
            self.states
                .swapped_at
                .insert(rule.name().to_owned(), now_ms());
            if let Some(previous) = &previous {
                self.replaced
                    .insert(rule.name().to_owned(), previous.clone());
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

    /// The states to show, with probation watches lasting `window`.
    pub(crate) fn states(&self, window: Option<std::time::Duration>) -> RuleStates {
        let mut states = self.states.clone();
        if let Some(window) = window {
            let now = now_ms();
            states.probation = self
                .watched
                .iter()
                .filter_map(|w| {
                    let left = window.checked_sub(w.since.elapsed())?;
                    Some((
                        w.name.clone(),
                        w.hash.clone(),
                        now + left.as_millis() as u64,
                    ))
                })
                .collect();
        }
        states
    }

    /// An operator rolls rule `name` back: the version it replaced goes
    /// back in service, and the version in service is refused until its
    /// file changes, as after an automatic rollback. Returns the set to
    /// use and the version restored, or why it cannot be done.
    pub(crate) fn roll_back(
        &mut self,
        rules: &RuleSet,
        name: &str,
    ) -> Result<(Arc<RuleSet>, String), String> {
        let current = rules
            .rules()
            .iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| format!("no rule named `{name}` is in service"))?;
        let previous = self.replaced.remove(name).ok_or_else(|| {
            format!(
                "rule `{name}` has no earlier version to go back to: none was replaced since \
                 the service started"
            )
        })?;
        let restored = previous.info().version.clone();
        self.vetoed.insert(current.hash().to_owned());
        self.watched.retain(|w| w.name != name);
        self.states.rolled_back.push(RolledBack {
            name: name.to_owned(),
            version: current.info().version.clone(),
            hash: current.hash().to_owned(),
            restored: Some(restored.clone()),
            at_ms: now_ms(),
        });
        if self.states.rolled_back.len() > KEPT_ROLLBACKS {
            self.states.rolled_back.remove(0);
        }
        self.states.swapped_at.insert(name.to_owned(), now_ms());
        let set: Vec<LoadedRule> = rules
            .rules()
            .iter()
            .map(|r| {
                if r.name() == name {
                    previous.clone()
                } else {
                    r.clone()
                }
            })
            .collect();
        tracing::warn!(
            rule = name,
            hash = current.hash(),
            restored,
            "rolled back by hand"
        );
        let set = RuleSet::new(set).map_err(|e| e.to_string())?;
        Ok((Arc::new(set), restored))
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
        let failing = rules
            .rules()
            .iter()
            .find(|r| r.hash() == w.hash)
            .map(|r| r.info().version.clone())
            .unwrap_or_default();
        self.states.rolled_back.push(RolledBack {
            name: w.name.clone(),
            version: failing,
            hash: w.hash.clone(),
            restored: w.previous.as_ref().map(|p| p.info().version.clone()),
            at_ms: now_ms(),
        });
        if self.states.rolled_back.len() > KEPT_ROLLBACKS {
            self.states.rolled_back.remove(0);
        }
        if w.previous.is_some() {
            self.states.swapped_at.insert(w.name.clone(), now_ms());
        }
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
