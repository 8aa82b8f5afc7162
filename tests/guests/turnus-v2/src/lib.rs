//! A second version of the `turnus` rule: the same name and keys, plus a
//! tag `turnus:{id}` per turnus. Tests deploy it as a new version, or as a
//! shadow beside version 1, and watch the difference.
#![no_std]

use invalidator_rules::prelude::*;

/// Version 2 of the turnus rule.
pub struct TurnusV2;

const PER_TURNUS: &[&str] = &["kinder", "schwerpunkte", "notizen", "geld"];

impl Rule for TurnusV2 {
    fn describe() -> RuleInfo {
        RuleInfo::new("turnus", "2.0.0")
            .tables(PER_TURNUS.iter().copied())
            .fallback([
                Target::pattern("turnus_data_*"),
                Target::pattern("turnus:*"),
            ])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        for w in commit.writes() {
            for turnus in w.each("turnus_id")? {
                out.key(format!("turnus_data_{turnus}"));
                out.tag(format!("turnus:{turnus}"));
            }
        }
        Ok(())
    }
}

export_rule!(TurnusV2);
