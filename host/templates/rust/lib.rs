//! Rule `{{name}}`: keeps the caches built from table `items` fresh.
//!
//! - every write to `items`: key `item:{id}`;
//! - when an item's category or name changes (inserts and deletes
//!   included): key `category:{category_id}:items`, of the old and the new
//!   category.
//!
//! When the rule cannot tell (a delete without its row, say), its fallback
//! patterns invalidate every item and category page instead.

#![cfg_attr(not(test), no_std)]

use invalidator_rules::prelude::*;

/// The rule.
pub struct {{type}};

impl Rule for {{type}} {
    fn describe() -> RuleInfo {
        RuleInfo::new("{{name}}", "0.1.0")
            .tables(["items"])
            .fallback([Target::pattern("item:*"), Target::pattern("category:*")])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        for w in commit.writes_to("items") {
            for id in w.each("id")? {
                out.key(format!("item:{id}"));
            }
            if w.changed_any(&["category_id", "name"]) {
                for category in w.each("category_id")? {
                    out.key(format!("category:{category}:items"));
                }
            }
        }
        Ok(())
    }
}

export_rule!({{type}});

#[cfg(test)]
mod tests {
    use super::*;
    use invalidator_rules::{evaluate, row};

    #[test]
    fn an_item_moved_to_another_category_invalidates_both_pages() {
        let commit = Commit::build("t")
            .update(
                "items",
                &row! {"id" => 1},
                Some(&row! {"id" => 1, "category_id" => 7, "name" => "Tea"}),
                &row! {"id" => 1, "category_id" => 8, "name" => "Tea"},
            )
            .finish();
        let got = evaluate::<{{type}}>(&commit).unwrap();
        assert_eq!(
            got,
            [
                Target::key("category:7:items"),
                Target::key("category:8:items"),
                Target::key("item:1"),
            ]
        );
    }
}
