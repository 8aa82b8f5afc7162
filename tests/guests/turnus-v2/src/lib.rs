//! A second version of the `turnus` rule: the same name and keys, plus a
//! tag `turnus:{id}` per turnus, and a bug: turnus ids above 1000 fail.
//! Tests deploy it as a new version, as a shadow beside version 1, or as a
//! bad promotion that must be rolled back.
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
                if matches!(turnus, Value::Integer(n) if n > 1000) {
                    return Err(RuleError::other(
                        "turnus ids above 1000 are not handled yet",
                    ));
                }
                out.key(format!("turnus_data_{turnus}"));
                out.tag(format!("turnus:{turnus}"));
            }
        }
        Ok(())
    }
}

export_rule!(TurnusV2);
