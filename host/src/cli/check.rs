//! `invalidator check`: loads a rule file (or a folder of them) as the
//! host would, and shows what each rule declares, what it imports and how
//! large it is, warning when it imports WASI, and whether its compiled
//! code came from the compile cache.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use invalidator::rules::RuleSet;

use super::args::SandboxArgs;
use super::show_target;

/// Checks the rule file or folder at `path`.
pub(super) fn run(path: &Path, sandbox: &SandboxArgs) -> anyhow::Result<ExitCode> {
    let runtime = sandbox.runtime(&[path])?;
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
        let size = std::fs::metadata(rule.path())
            .map(|m| m.len())
            .with_context(|| format!("cannot read `{}`", rule.path().display()))?;
        println!("  size:     {}", show_size(size));
        let imports = rule.imports();
        println!("  imports:  {}", imports.join(", "));
        let wasi: Vec<&String> = imports.iter().filter(|i| i.starts_with("wasi:")).collect();
        if !wasi.is_empty() {
            // Not an error: the host gives such rules a WASI without
            // capabilities. But it is a bigger surface than a rule needs,
            // and each instance pays for it.
            println!(
                "  warning: the rule imports WASI ({}); the host stubs it with no \
                 capabilities, but a rule needs only `invalidator:rules/host`: build \
                 Rust rules `no_std`, Python ones with `componentize-py --stub-wasi`, \
                 JS ones with every componentize-js feature disabled",
                wasi.len()
            );
        }
    }
    // Whether the next run will compile again: what a rule author waiting
    // seconds on a Python or JS rule wants to know.
    match runtime.compile_cache() {
        Some(cache) => println!(
            "compiled code: kept in `{}` ({} from it, {} compiled now)",
            cache.dir().display(),
            cache.hits(),
            cache.misses()
        ),
        None => println!("compiled code: not kept"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes in the largest unit that keeps a whole number before the point.
fn show_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB ({b} bytes)", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB ({b} bytes)", b as f64 / f64::from(1 << 10)),
        b => format!("{b} bytes"),
    }
}
