//! Shadow rules: versions of a rule that run beside the live one on the
//! same commits, with their targets compared and never applied, so that a
//! team sees what a change would do on real traffic before promoting it.

use crate::commit::Commit;
use crate::rules::RuleSet;

use super::PipelineCounters;

/// Runs every shadow rule on `commits`, commit by commit, next to the live
/// rule of the same name (or nothing, for a shadow of a new rule), and
/// counts and logs the commits whose targets differ.
pub(crate) fn compare(
    stats: &PipelineCounters,
    live: &RuleSet,
    shadows: &RuleSet,
    commits: &[Commit],
) {
    for shadow in shadows.rules() {
        let shadow_set = RuleSet::new(vec![shadow.clone()]).expect("one rule, no clash");
        let live_set = live
            .rules()
            .iter()
            .find(|r| r.name() == shadow.name())
            .map(|r| RuleSet::new(vec![r.clone()]).expect("one rule, no clash"));
        for commit in commits {
            let theirs = shadow_set.evaluate(commit).targets;
            let ours = live_set
                .as_ref()
                .map(|set| set.evaluate(commit).targets)
                .unwrap_or_default();
            let differs = theirs != ours;
            stats.shadowed(differs);
            if differs {
                let only = |a: &std::collections::BTreeSet<String>,
                            b: &std::collections::BTreeSet<String>| {
                    // Targets are the rules' text: shown escaped.
                    a.difference(b)
                        .map(|t| crate::escape::escape(t))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                tracing::info!(
                    rule = shadow.name(),
                    shadow_version = %shadow.info().version,
                    txn = %commit.txn,
                    added_keys = only(&theirs.keys, &ours.keys),
                    removed_keys = only(&ours.keys, &theirs.keys),
                    added_patterns = only(&theirs.patterns, &ours.patterns),
                    removed_patterns = only(&ours.patterns, &theirs.patterns),
                    added_tags = only(&theirs.tags, &ours.tags),
                    removed_tags = only(&ours.tags, &theirs.tags),
                    "shadow differs from the live rule"
                );
            }
        }
    }
}
