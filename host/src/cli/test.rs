//! `invalidator test`: runs a rule on its fixture, the cases of
//! `NAME.test.jsonl`, and prints each failing case with the targets the
//! rule added and removed. Exit status 0 when every case passes, 1
//! otherwise: what a rule team puts in its own CI.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use invalidator::escape::escape;
use invalidator::reload::fixture::{CaseOutcome, fixture_path, run_cases};
use invalidator::rules::LoadedRule;
use invalidator::targets::TargetSet;

use super::args::SandboxArgs;

/// Tests the rule file `rule` against `fixtures` (default: the
/// `NAME.test.jsonl` beside it).
pub(super) fn run(
    rule: &Path,
    fixtures: Option<&Path>,
    sandbox: &SandboxArgs,
) -> anyhow::Result<ExitCode> {
    let fixtures = fixtures.map_or_else(|| fixture_path(rule), Path::to_owned);
    if !fixtures.is_file() {
        anyhow::bail!(
            "no fixture file `{}` for rule `{}` (one case per line: \
             {{\"commit\": ..., \"expect\": {{\"keys\": [...], \"patterns\": [...], \"tags\": [...]}}}}); \
             name another with --fixtures",
            fixtures.display(),
            rule.display()
        );
    }
    let runtime = sandbox.runtime(&[rule])?;
    let loaded = LoadedRule::load(&runtime, rule)?;
    let outcomes = run_cases(&loaded, &fixtures)
        .with_context(|| format!("cannot run the fixture of `{}`", rule.display()))?;
    let failed: Vec<&CaseOutcome> = outcomes.iter().filter(|o| !o.passed()).collect();
    for case in &failed {
        println!(
            "FAIL {}:{} (txn {})",
            fixtures.display(),
            case.line,
            escape(&case.txn)
        );
        print_targets("+", &case.added);
        print_targets("-", &case.removed);
        for error in &case.errors {
            println!(
                "  ! the rule failed, its fallback applied: {}",
                escape(error)
            );
        }
    }
    println!(
        "{}: {} of {} cases passed, {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        outcomes.len() - failed.len(),
        outcomes.len(),
        failed.len()
    );
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per target: `+ key user:1` for one the rule added, `- tag t`
/// for one it left out.
fn print_targets(sign: &str, set: &TargetSet) {
    for (kind, values) in [
        ("key", &set.keys),
        ("pattern", &set.patterns),
        ("tag", &set.tags),
    ] {
        for v in values {
            println!("  {sign} {kind} {}", escape(v));
        }
    }
}
