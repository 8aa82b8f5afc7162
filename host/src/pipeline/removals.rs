//! [`Removals`]: how many keys each rule and each tag removed, for
//! `/v1/stats` and `/metrics`.
//!
//! Per tag, the count is exact and always kept: applying a tag returns how
//! many of its keys existed. Per rule, a batch's targets are merged before
//! they are applied, so a removed key is credited to a rule by matching it
//! against what the rule named; that needs the origins and the list of
//! removed keys the feed keeps, so rules are counted only while the feed
//! is on. A key two rules named counts for both.
//!
//! Tags can be countless (`product:123`), so both maps are bounded: past
//! [`MAX_NAMES`] names, further ones are added up under [`OTHERS`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::explain::Origin;
use crate::sink::Removed;
use crate::sink::glob::PatternSet;
use crate::targets::TargetSet;

/// Most rules, and most tags, counted by name.
pub const MAX_NAMES: usize = 1000;
/// The name the others are counted under once [`MAX_NAMES`] are.
pub const OTHERS: &str = "(others)";

/// Keys removed, by rule and by tag.
#[derive(Debug, Default)]
pub struct Removals {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    by_rule: HashMap<String, u64>,
    by_tag: HashMap<String, u64>,
}

/// The counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RemovalCounts {
    /// Keys removed by what each rule named (while the feed is on).
    pub by_rule: BTreeMap<String, u64>,
    /// Keys removed by each tag.
    pub by_tag: BTreeMap<String, u64>,
}

fn add(map: &mut HashMap<String, u64>, name: &str, count: u64) {
    if let Some(n) = map.get_mut(name) {
        *n += count;
    } else if map.len() < MAX_NAMES {
        map.insert(name.to_owned(), count);
    } else {
        *map.entry(OTHERS.to_owned()).or_default() += count;
    }
}

impl Removals {
    /// Counts what each tag removed.
    pub(crate) fn tags(&self, by_tag: &[(String, u64)]) {
        if by_tag.is_empty() {
            return;
        }
        let mut counts = self.counts.lock().expect("removals lock");
        for (tag, count) in by_tag {
            add(&mut counts.by_tag, tag, *count);
        }
    }

    /// Credits each rule among `origins` with the removed keys it named:
    /// its keys that were removed, what its tags removed, and the listed
    /// keys its patterns match.
    pub(crate) fn rules(
        &self,
        origins: &[(Arc<Origin>, TargetSet)],
        removed: &Removed,
        by_tag: &HashMap<String, u64>,
    ) {
        if origins.iter().all(|(o, _)| o.rule.is_none()) {
            return;
        }
        let keys: HashSet<&str> = removed.keys.iter().map(String::as_str).collect();
        let mut credit: Vec<(&str, u64)> = Vec::new();
        for (origin, named) in origins {
            let Some(rule) = &origin.rule else { continue };
            let mut n = named
                .keys
                .iter()
                .filter(|k| keys.contains(k.as_str()))
                .count() as u64;
            n += named.tags.iter().filter_map(|t| by_tag.get(t)).sum::<u64>();
            if !named.patterns.is_empty() {
                let patterns = PatternSet::new(&named.patterns);
                n += removed
                    .found
                    .iter()
                    .filter(|k| patterns.matches(k.as_bytes()))
                    .count() as u64;
            }
            if n > 0 {
                credit.push((rule, n));
            }
        }
        let mut counts = self.counts.lock().expect("removals lock");
        for (rule, n) in credit {
            add(&mut counts.by_rule, rule, n);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> RemovalCounts {
        let counts = self.counts.lock().expect("removals lock");
        RemovalCounts {
            by_rule: counts
                .by_rule
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            by_tag: counts.by_tag.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::explain::Cause;
    use crate::targets::Target;

    fn rule(name: &str) -> Arc<Origin> {
        Arc::new(Origin {
            rule: Some(name.to_owned()),
            ..Origin::of(Cause::Rule)
        })
    }

    #[test]
    fn each_rule_is_credited_with_the_removed_keys_it_named() {
        let removals = Removals::default();
        let mut removed = Removed::new(10);
        removed.keys = vec!["a".into(), "b".into()];
        removed.found("p:1".into());
        removed.found("p:2".into());
        removed.found("t1".into());
        let by_tag: HashMap<String, u64> = [("shop".to_owned(), 1)].into();
        let one: TargetSet = [Target::Key("a".into()), Target::Key("gone".into())]
            .into_iter()
            .collect();
        let two: TargetSet = [
            Target::Key("b".into()),
            Target::Pattern("p:*".into()),
            Target::Tag("shop".into()),
        ]
        .into_iter()
        .collect();
        removals.rules(&[(rule("one"), one), (rule("two"), two)], &removed, &by_tag);
        removals.tags(&[("shop".into(), 1)]);
        let counts = removals.snapshot();
        assert_eq!(
            counts.by_rule,
            [("one".into(), 1), ("two".into(), 4)].into()
        );
        assert_eq!(counts.by_tag, [("shop".into(), 1)].into());
    }

    #[test]
    fn names_past_the_bound_are_added_up_together() {
        let removals = Removals::default();
        let tags: Vec<(String, u64)> = (0..MAX_NAMES + 5).map(|i| (format!("t{i}"), 2)).collect();
        removals.tags(&tags);
        let counts = removals.snapshot();
        assert_eq!(counts.by_tag.len(), MAX_NAMES + 1);
        assert_eq!(counts.by_tag[OTHERS], 10);
    }
}
