//! A rule whose `describe()` answers with a version that would forge a log
//! line and colour the terminal if shown raw. It invalidates `evil:{id}`
//! on writes to `evil`.

#![no_std]

use invalidator_rules::prelude::*;

/// The rule.
pub struct EvilDescribe;

impl Rule for EvilDescribe {
    fn describe() -> RuleInfo {
        RuleInfo::new("evil", "6.6.6\n\x1b[31mFAKE").tables(["evil"])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        for w in commit.writes() {
            out.key(format!("evil:{}", w.value("id")?));
        }
        Ok(())
    }
}

export_rule!(EvilDescribe);
