//! The hedge-accounting backend of seed 001: its `CACHE_DEPENDENCIES` map
//! from written table to the cached views that depend on it, as patterns,
//! plus tags `currency:{currency}` and `entity:{entity_id}` for rows that
//! carry those columns (its `invalidate_by_currency` and
//! `invalidate_by_entity`).

#![cfg_attr(not(test), no_std)]

use invalidator_rules::prelude::*;

/// The hedge rule.
pub struct Hedge;

/// Each written table and the patterns of the cached views built from it.
const DEPENDENCIES: &[(&str, &[&str])] = &[
    (
        "hedge_instructions",
        &[
            "*hedge_positions*",
            "*v_available_amounts_fast*",
            "*v_entity_capacity_complete*",
            "*exposure_analysis*",
            "*hedge_effectiveness*",
            "*allocation_drift*",
        ],
    ),
    (
        "position_nav_master",
        &[
            "*v_available_amounts_fast*",
            "*v_entity_capacity_complete*",
            "*nav_calculations*",
            "*portfolio_valuation*",
            "*position_nav_master*",
        ],
    ),
    (
        "deal_bookings",
        &[
            "*hedge_positions*",
            "*portfolio_structure*",
            "*deal_bookings*",
            "*real_time_pnl*",
        ],
    ),
    (
        "gl_entries",
        &["*portfolio_valuation*", "*real_time_pnl*", "*gl_entries*"],
    ),
];

/// Adds `{prefix}:{value}` tags for each value of an optional column.
fn tag_if_present(w: Write<'_>, column: &str, prefix: &str, out: &mut Targets) {
    // The column is optional here: a row without it adds no tag, and is no
    // error, because the table's patterns already cover its views.
    if let Ok(values) = w.each(column) {
        for v in values {
            out.tag(format!("{prefix}:{v}"));
        }
    }
}

impl Rule for Hedge {
    fn describe() -> RuleInfo {
        let mut fallback: Vec<Target> = Vec::new();
        for (_, patterns) in DEPENDENCIES {
            for p in *patterns {
                let t = Target::pattern(*p);
                if !fallback.contains(&t) {
                    fallback.push(t);
                }
            }
        }
        RuleInfo::new("hedge", "1.0.0")
            .tables(DEPENDENCIES.iter().map(|(t, _)| *t))
            .fallback(fallback)
    }

    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError> {
        for w in commit.writes() {
            let Some((_, patterns)) = DEPENDENCIES.iter().find(|(t, _)| *t == w.table()) else {
                continue;
            };
            for p in *patterns {
                out.pattern(*p);
            }
            tag_if_present(w, "currency", "currency", out);
            tag_if_present(w, "entity_id", "entity", out);
        }
        Ok(())
    }
}

export_rule!(Hedge);

#[cfg(test)]
mod tests {
    use super::*;
    use invalidator_rules::{evaluate, row};

    #[test]
    fn gl_entries_invalidate_their_views_and_currency() {
        let w = Commit::build("t").insert(
            "gl_entries",
            &row! {"id" => 1},
            &row! {"id" => 1, "currency" => "USD"},
        );
        let got = evaluate::<Hedge>(&w.finish()).unwrap();
        assert_eq!(
            got,
            [
                Target::pattern("*gl_entries*"),
                Target::pattern("*portfolio_valuation*"),
                Target::pattern("*real_time_pnl*"),
                Target::tag("currency:USD"),
            ]
        );
    }

    #[test]
    fn fallback_covers_every_dependency_once() {
        let info = Hedge::describe();
        assert_eq!(info.tables.len(), 4);
        assert_eq!(info.fallback.len(), 13);
    }
}
