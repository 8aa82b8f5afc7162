//! `invalidator diff`: two versions of the rules on the same commits,
//! printing the commits whose targets differ. Exit 0: none differ; 1: some
//! do; 2: it could not compare (a rule or the input unreadable).

use std::io;
use std::path::Path;
use std::process::ExitCode;

use invalidator::batch::diff::diff;
use invalidator::rules::RuleSet;

use super::args::SandboxArgs;
use super::open_events;

/// Compares `old` and `new` on `events`.
pub(super) fn run(old: &Path, new: &Path, events: &Path, sandbox: &SandboxArgs) -> ExitCode {
    let trouble = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    let runtime = match sandbox.runtime(&[old, new]) {
        Ok(r) => r,
        Err(e) => return trouble(format!("{e:#}")),
    };
    let (old, new) = match (RuleSet::load(&runtime, old), RuleSet::load(&runtime, new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(e), _) | (_, Err(e)) => return trouble(e.to_string()),
    };
    let stdout = io::stdout().lock();
    let input = match open_events(events) {
        Ok(input) => input,
        Err(e) => return trouble(e.to_string()),
    };
    let summary = match diff(&old, &new, input, stdout, io::stderr()) {
        Ok(s) => s,
        Err(e) => return trouble(format!("cannot read `{}`: {e}", events.display())),
    };
    eprintln!(
        "{} of {} commits differ",
        summary.differing, summary.commits
    );
    if summary.malformed > 0 {
        ExitCode::from(2)
    } else if summary.differing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
