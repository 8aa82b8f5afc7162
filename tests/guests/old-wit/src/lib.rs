//! A rule built against `invalidator:rules@0.1.0` (its WIT, copied into
//! `wit/`), whose commit record had lists of `u64`: the host refuses it,
//! saying which version it was built against.

wit_bindgen::generate!({ path: "wit", world: "rule" });

struct Old;

impl Guest for Old {
    fn describe() -> RuleInfo {
        RuleInfo {
            name: "old".to_owned(),
            version: "0.1.0".to_owned(),
            tables: Vec::new(),
            fallback: Vec::new(),
        }
    }

    fn on_commit(commit: Commit) -> Result<Vec<Target>, RuleError> {
        Ok(vec![Target::Key(commit.txn)])
    }
}

export!(Old);
