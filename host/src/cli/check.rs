//! `invalidator check`: loads a rule file (or a folder of them) as the
//! host would, and shows what each rule declares.

use std::path::Path;
use std::process::ExitCode;

use invalidator::rules::RuleSet;

use super::args::SandboxArgs;
use super::show_target;

/// Checks the rule file or folder at `path`.
pub(super) fn run(path: &Path, sandbox: &SandboxArgs) -> anyhow::Result<ExitCode> {
    let runtime = sandbox.runtime()?;
    let rules = RuleSet::load(&runtime, path)?;
    for rule in rules.rules() {
        let info = rule.info();
        println!(
            "ok: `{}` is rule {} {}",
            rule.path().display(),
            info.name,
            info.version
        );
        // The version is escaped when the rule is loaded, and table
        // names with control characters are refused.
        let tables = if info.tables.is_empty() {
            "(all)".to_owned()
        } else {
            info.tables.join(", ")
        };
        println!("  tables:   {tables}");
        let fallback: Vec<String> = info.fallback.iter().map(show_target).collect();
        let fallback = if fallback.is_empty() {
            "(none)".to_owned()
        } else {
            fallback.join(", ")
        };
        println!("  fallback: {fallback}");
    }
    Ok(ExitCode::SUCCESS)
}
