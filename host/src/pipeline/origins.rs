//! [`Origins`]: where each pending target came from, kept by the applier
//! from the moment a target joins the pending work until it is applied,
//! when it goes into the [`ExplainLog`](super::explain::ExplainLog) with
//! its origins.
//!
//! Pending work merges targets (a hot key named by fifty commits is
//! deleted once), so a target can have several origins; the newest
//! [`PER_TARGET`] are kept. The map follows the pending work's own bound:
//! a target leaves it when applied or given up on, and everything leaves
//! when the pending work collapses into the fallback.

use std::collections::HashMap;
use std::sync::Arc;

use super::explain::Origin;
use crate::targets::{Target, TargetSet};

/// Origins kept per pending target, newest last.
pub(crate) const PER_TARGET: usize = 8;

/// Pending targets' origins, by kind and text (as stored, prefixed).
#[derive(Debug, Default)]
pub(crate) struct Origins {
    by_target: HashMap<(&'static str, String), Vec<Arc<Origin>>>,
}

impl Origins {
    /// Notes that `origin` named each of `targets`.
    pub(crate) fn add(&mut self, origin: &Arc<Origin>, targets: &TargetSet) {
        let each = [
            ("key", &targets.keys),
            ("pattern", &targets.patterns),
            ("tag", &targets.tags),
        ];
        for (kind, texts) in each {
            for text in texts {
                let list = self.by_target.entry((kind, text.clone())).or_default();
                if list.len() == PER_TARGET {
                    list.remove(0);
                }
                list.push(origin.clone());
            }
        }
    }

    /// Notes `origin` for the targets that have none yet: a replay does
    /// not hide the commit that first named a target still pending.
    pub(crate) fn add_missing(&mut self, origin: &Arc<Origin>, targets: &TargetSet) {
        let mut missing = TargetSet::new();
        for target in iter(targets) {
            if !self
                .by_target
                .contains_key(&(target.kind(), target.text().to_owned()))
            {
                missing.insert(target);
            }
        }
        self.add(origin, &missing);
    }

    /// Takes the origins of an applied target (none if it had none).
    pub(crate) fn take(&mut self, target: &Target) -> Vec<Arc<Origin>> {
        self.by_target
            .remove(&(target.kind(), target.text().to_owned()))
            .unwrap_or_default()
    }

    /// Forgets every origin: the pending work was replaced.
    pub(crate) fn clear(&mut self) {
        self.by_target.clear();
    }

    /// How many targets have origins.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_target.len()
    }
}

/// Each target of a set.
fn iter(targets: &TargetSet) -> impl Iterator<Item = Target> + '_ {
    let keys = targets.keys.iter().cloned().map(Target::Key);
    let patterns = targets.patterns.iter().cloned().map(Target::Pattern);
    let tags = targets.tags.iter().cloned().map(Target::Tag);
    keys.chain(patterns).chain(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::explain::Cause;

    fn rule(name: &str) -> Arc<Origin> {
        Arc::new(Origin {
            rule: Some(name.to_owned()),
            ..Origin::of(Cause::Rule)
        })
    }

    #[test]
    fn a_target_keeps_its_newest_origins_until_it_is_taken() {
        let mut origins = Origins::default();
        let key: TargetSet = [Target::Key("k".into())].into_iter().collect();
        for i in 0..PER_TARGET + 2 {
            origins.add(&rule(&i.to_string()), &key);
        }
        origins.add_missing(&Arc::new(Origin::of(Cause::Replay)), &key);
        let taken = origins.take(&Target::Key("k".into()));
        let names: Vec<_> = taken.iter().map(|o| o.rule.clone().unwrap()).collect();
        let newest: Vec<_> = (2..PER_TARGET + 2).map(|i| i.to_string()).collect();
        assert_eq!(names, newest, "the oldest two dropped, no replay added");
        assert!(origins.take(&Target::Key("k".into())).is_empty());
        // The same text under another kind is another target.
        origins.add(&rule("t"), &[Target::Tag("k".into())].into_iter().collect());
        assert!(origins.take(&Target::Key("k".into())).is_empty());
        assert_eq!(origins.len(), 1);
    }
}
