//! [`Removals`]: how many keys each rule and each tag removed, for
//! `/v1/stats` and `/metrics`.
//!
//! Both are exact and always kept. Per tag, applying a tag returns how
//! many of its keys existed. Per rule, the sink applies a batch's targets
//! in groups named by the same rules and counts each group for its rules
//! ([`Owners`](crate::sink::Owners)). A key two rules named counts for
//! both.
//!
//! Tags can be countless (`product:123`), so both maps are bounded: past
//! [`MAX_NAMES`] names, further ones are added up under [`OTHERS`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

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
    /// Keys removed by what each rule named.
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

    /// Counts what each rule removed.
    pub(crate) fn rules(&self, by_rule: &HashMap<String, u64>) {
        if by_rule.is_empty() {
            return;
        }
        let mut counts = self.counts.lock().expect("removals lock");
        for (rule, count) in by_rule {
            add(&mut counts.by_rule, rule, *count);
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
