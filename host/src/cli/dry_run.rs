//! `invalidator run`: the rules on a file of commits, printing the targets
//! of each, touching nothing.

use std::io;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use invalidator::batch::dry_run::dry_run;
use invalidator::rules::RuleSet;

use super::args::SandboxArgs;
use super::open_events;

/// Runs `rules` on `events`; fails (exit 1) if a line was malformed.
pub(super) fn run(rules: &Path, events: &Path, sandbox: &SandboxArgs) -> anyhow::Result<ExitCode> {
    let runtime = sandbox.runtime(&[rules])?;
    let rules = RuleSet::load(&runtime, rules)?;
    let stdout = io::stdout().lock();
    let summary = dry_run(&rules, open_events(events)?, stdout, io::stderr())
        .with_context(|| format!("cannot read `{}`", events.display()))?;
    Ok(if summary.malformed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
