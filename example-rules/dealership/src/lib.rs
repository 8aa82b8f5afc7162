//! The car dealership of seed 000: customers, inventory and the offers
//! computed from both.
//!
//! - `customers` (key `id`): key `customer:{id}`; when the row appears,
//!   disappears, or its `payment_method`, `credit_score` or `income` changes,
//!   also tag `offers:customer:{id}`, since offers depend on those columns.
//! - `inventory` (key `vin`): key `vehicle:{vin}` and tag `inventory`; when
//!   the car appears, disappears, or its `price` or `status` changes, also tag
//!   `offers:vehicle:{vin}`.
//! - `offers` (key `id`): key `offer:{id}` and tag
//!   `offers:customer:{customer_id}`.

#![cfg_attr(not(test), no_std)]

use invalidator_rules::prelude::*;

/// The dealership rule.
pub struct Dealership;

/// Customer columns that offers are computed from.
const OFFER_INPUTS_CUSTOMER: &[&str] = &["payment_method", "credit_score", "income"];
/// Vehicle columns that offers are computed from.
const OFFER_INPUTS_VEHICLE: &[&str] = &["price", "status"];

impl Rule for Dealership {
    fn describe() -> RuleInfo {
        RuleInfo::new("dealership", "1.0.0")
            .tables(["customers", "inventory", "offers"])
            .fallback([
                Target::pattern("customer:*"),
                Target::pattern("vehicle:*"),
                Target::pattern("offer*"),
                Target::tag("inventory"),
            ])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        for w in commit.writes() {
            match w.table() {
                "customers" => {
                    let offers = w.changed_any(OFFER_INPUTS_CUSTOMER);
                    for id in w.each("id")? {
                        out.key(format!("customer:{id}"));
                        if offers {
                            out.tag(format!("offers:customer:{id}"));
                        }
                    }
                }
                "inventory" => {
                    out.tag("inventory");
                    let offers = w.changed_any(OFFER_INPUTS_VEHICLE);
                    for vin in w.each("vin")? {
                        out.key(format!("vehicle:{vin}"));
                        if offers {
                            out.tag(format!("offers:vehicle:{vin}"));
                        }
                    }
                }
                "offers" => {
                    for id in w.each("id")? {
                        out.key(format!("offer:{id}"));
                    }
                    for customer in w.each("customer_id")? {
                        out.tag(format!("offers:customer:{customer}"));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

export_rule!(Dealership);

#[cfg(test)]
mod tests {
    use super::*;
    use invalidator_rules::{CommitBuilder, evaluate, row};

    fn run(w: CommitBuilder) -> Vec<Target> {
        evaluate::<Dealership>(&w.finish()).unwrap()
    }

    #[test]
    fn payment_change_invalidates_the_customers_offers() {
        let w = Commit::build("t").update(
            "customers",
            &row! {"id" => "C1"},
            Some(&row! {"id" => "C1", "payment_method" => "card"}),
            &row! {"id" => "C1", "payment_method" => "cash"},
        );
        assert_eq!(
            run(w),
            [
                Target::key("customer:C1"),
                Target::tag("offers:customer:C1")
            ]
        );
    }

    #[test]
    fn a_name_change_leaves_offers_alone() {
        let w = Commit::build("t").update(
            "customers",
            &row! {"id" => "C1"},
            Some(&row! {"id" => "C1", "name" => "Ann", "payment_method" => "card", "credit_score" => 700, "income" => 10}),
            &row! {"id" => "C1", "name" => "Anne", "payment_method" => "card", "credit_score" => 700, "income" => 10},
        );
        assert_eq!(run(w), [Target::key("customer:C1")]);
    }

    #[test]
    fn a_price_change_invalidates_the_vehicles_offers() {
        let w = Commit::build("t").update(
            "inventory",
            &row! {"vin" => "V9"},
            Some(&row! {"vin" => "V9", "price" => 20_000}),
            &row! {"vin" => "V9", "price" => 18_500},
        );
        assert_eq!(
            run(w),
            [
                Target::key("vehicle:V9"),
                Target::tag("inventory"),
                Target::tag("offers:vehicle:V9")
            ]
        );
    }

    #[test]
    fn an_offer_moved_to_another_customer_invalidates_both() {
        let w = Commit::build("t").update(
            "offers",
            &row! {"id" => 7},
            Some(&row! {"id" => 7, "customer_id" => "C1"}),
            &row! {"id" => 7, "customer_id" => "C2"},
        );
        assert_eq!(
            run(w),
            [
                Target::key("offer:7"),
                Target::tag("offers:customer:C1"),
                Target::tag("offers:customer:C2")
            ]
        );
    }

    #[test]
    fn an_offer_without_customer_is_an_error() {
        let w = Commit::build("t").insert("offers", &row! {"id" => 7}, &row! {"id" => 7});
        let err = evaluate::<Dealership>(&w.finish()).unwrap_err();
        assert_eq!(err, RuleError::missing_column("offers", "customer_id"));
    }
}
