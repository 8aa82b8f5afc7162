//! The Django app of seed 002: per-turnus page caches and user profiles.
//!
//! - `kinder`, `schwerpunkte`, `notizen`, `geld`: key `turnus_data_{turnus_id}`
//!   (both turnuses when a row moves from one to another).
//! - `auslagerorte`: pattern `turnus_data_*`, since a location can affect
//!   every turnus (the seed's `invalidate_all_turnus_caches`).
//! - `user_profiles`: key `user_profile_{user_id}`, the profile's user, as
//!   the seed keys it (`user_profile_{user.id}`); both users when a
//!   profile moves from one to another.

#![cfg_attr(not(test), no_std)]

use invalidator_rules::prelude::*;

/// The turnus rule.
pub struct Turnus;

/// Tables whose rows belong to one turnus.
const PER_TURNUS: &[&str] = &["kinder", "schwerpunkte", "notizen", "geld"];

impl Rule for Turnus {
    fn describe() -> RuleInfo {
        RuleInfo::new("turnus", "1.0.0")
            .tables(
                PER_TURNUS
                    .iter()
                    .copied()
                    .chain(["auslagerorte", "user_profiles"]),
            )
            .fallback([
                Target::pattern("turnus_data_*"),
                Target::pattern("user_profile_*"),
            ])
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        for w in commit.writes() {
            match w.table() {
                t if PER_TURNUS.contains(&t) => {
                    for turnus in w.each("turnus_id")? {
                        out.key(format!("turnus_data_{turnus}"));
                    }
                }
                "auslagerorte" => {
                    out.pattern("turnus_data_*");
                }
                "user_profiles" => {
                    for user in w.each("user_id")? {
                        out.key(format!("user_profile_{user}"));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

export_rule!(Turnus);

#[cfg(test)]
mod tests {
    use super::*;
    use invalidator_rules::{evaluate, row};

    #[test]
    fn a_child_moved_to_another_turnus_invalidates_both() {
        let w = Commit::build("t").update(
            "kinder",
            &row! {"id" => 3},
            Some(&row! {"id" => 3, "turnus_id" => 1}),
            &row! {"id" => 3, "turnus_id" => 2},
        );
        let got = evaluate::<Turnus>(&w.finish()).unwrap();
        assert_eq!(
            got,
            [Target::key("turnus_data_1"), Target::key("turnus_data_2")]
        );
    }

    #[test]
    fn a_profile_is_keyed_by_its_user_not_its_own_id() {
        let w = Commit::build("t").update(
            "user_profiles",
            &row! {"id" => 1},
            Some(&row! {"id" => 1, "user_id" => 2, "theme" => "light"}),
            &row! {"id" => 1, "user_id" => 2, "theme" => "dark"},
        );
        let got = evaluate::<Turnus>(&w.finish()).unwrap();
        assert_eq!(got, [Target::key("user_profile_2")]);
    }

    #[test]
    fn a_null_turnus_produces_nothing() {
        let w = Commit::build("t").insert(
            "geld",
            &row! {"id" => 3},
            &row! {"id" => 3, "turnus_id" => None::<i64>},
        );
        let got = evaluate::<Turnus>(&w.finish()).unwrap();
        assert!(got.is_empty(), "{got:?}");
    }
}
