//! The point-of-sale system of seed 003: its `cache_tags` per data type,
//! scoped per shop as `shop:{shop_id}:{tag}`.
//!
//! - `products`: `products`, `catalog`, `inventory`, `dashboard`.
//! - `customers`: `customers`, `contacts`, `relationships`, `dashboard`.
//! - `bills`: `bills`, `orders`, `transactions`, `revenue`, `dashboard`.
//! - `employees`: `employees`, `staff`, `users`.
//!
//! A row moved to another shop invalidates the tags of both shops.

#![cfg_attr(not(test), no_std)]

use invalidator_rules::prelude::*;

/// The point-of-sale rule.
pub struct Pos;

/// Each written table and the tags of the caches built from it.
const TAGS: &[(&str, &[&str])] = &[
    (
        "products",
        &["products", "catalog", "inventory", "dashboard"],
    ),
    (
        "customers",
        &["customers", "contacts", "relationships", "dashboard"],
    ),
    (
        "bills",
        &["bills", "orders", "transactions", "revenue", "dashboard"],
    ),
    ("employees", &["employees", "staff", "users"]),
];

impl Rule for Pos {
    fn describe() -> RuleInfo {
        RuleInfo::new("pos", "1.0.0")
            .tables(TAGS.iter().map(|(t, _)| *t))
            // Without the shop id there is no telling which shop's caches are
            // stale, and tags cannot be matched by pattern: invalidate every
            // shop-scoped key.
            .fallback([Target::pattern("shop:*")])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        for w in commit.writes() {
            let Some((_, tags)) = TAGS.iter().find(|(t, _)| *t == w.table()) else {
                continue;
            };
            for shop in w.each("shop_id")? {
                for tag in *tags {
                    out.tag(format!("shop:{shop}:{tag}"));
                }
            }
        }
        Ok(())
    }
}

export_rule!(Pos);

#[cfg(test)]
mod tests {
    use super::*;
    use invalidator_rules::{evaluate, row};

    #[test]
    fn an_employee_invalidates_its_shops_staff_tags() {
        let w = Commit::build("t").delete(
            "employees",
            &row! {"id" => 5},
            Some(&row! {"id" => 5, "shop_id" => 12}),
        );
        let got = evaluate::<Pos>(&w.finish()).unwrap();
        assert_eq!(
            got,
            [
                Target::tag("shop:12:employees"),
                Target::tag("shop:12:staff"),
                Target::tag("shop:12:users"),
            ]
        );
    }
}
