//! The [`Rule`] trait a rule author implements, the [`export_rule!`] macro
//! that turns it into a component, and [`evaluate`] for native tests.

use alloc::vec::Vec;

use crate::{Commit, RuleError, RuleInfo, Target, Targets};

/// A cache-invalidation rule.
///
/// Implement it on a unit struct and export it with [`export_rule!`].
pub trait Rule {
    /// The rule's name, version, subscribed tables and fallback targets.
    fn describe() -> RuleInfo;

    /// Adds to `out` the targets that `commit` invalidates.
    ///
    /// The commit holds only the writes to the tables the rule subscribes to.
    /// Returning an error makes the host apply the rule's fallback instead of
    /// whatever was added to `out`.
    fn on_commit(commit: &Commit, out: &mut Targets) -> Result<(), RuleError>;
}

/// Runs a rule natively on one commit, as the host would run its component:
/// the targets it produced, or its error.
pub fn evaluate<R: Rule>(commit: &Commit) -> Result<Vec<Target>, RuleError> {
    let mut out = Targets::new();
    R::on_commit(commit, &mut out)?;
    Ok(out.into_vec())
}

/// Exports a [`Rule`] implementation as the rule component's entry points.
///
/// Use it once per rule crate, at the top level of a `cdylib` crate:
/// `invalidator_rules::export_rule!(MyRule);`
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        // Only a Wasm build exports entry points: natively, several rules can
        // be linked into one test or benchmark binary without their exported
        // symbols colliding.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __InvalidatorRuleExport;

            impl $crate::bindings::Guest for __InvalidatorRuleExport {
                fn describe() -> $crate::RuleInfo {
                    <$rule as $crate::Rule>::describe()
                }

                fn on_commit(
                    commit: $crate::bindings::invalidator::rules::types::Commit,
                ) -> ::core::result::Result<
                    $crate::__alloc::vec::Vec<$crate::Target>,
                    $crate::RuleError,
                > {
                    $crate::evaluate::<$rule>(&$crate::Commit::from_raw(commit))
                }
            }

            $crate::bindings::__export_bindings!(__InvalidatorRuleExport);
        };
    };
}
