//! A rule whose `describe()` answers with a version that would forge log
//! fields if shown unquoted (`rule=turnus`): printable ASCII, so within
//! what a version may be. It invalidates `evil:{id}` on writes to `evil`.

#![no_std]

use invalidator_rules::prelude::*;

/// The rule.
pub struct EvilDescribe;

impl Rule for EvilDescribe {
    fn describe() -> RuleInfo {
        RuleInfo::new("evil", "6.6.6 rule=turnus path=/rules/turnus.wasm").tables(["evil"])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        for w in commit.writes() {
            out.key(format!("evil:{}", w.value("id")?));
        }
        Ok(())
    }
}

export_rule!(EvilDescribe);
