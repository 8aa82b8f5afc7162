//! `invalidator apply`: the commits of a file through the pipeline into
//! Redis, with a summary line.

use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use invalidator::batch::replay::{ApplySummary, apply_events};
use invalidator::rules::RuleSet;

use super::args::{RedisArgs, SandboxArgs};
use super::{open_events, tokio_runtime};

/// Applies `events` with `rules` to `redis`, waiting up to `give_up_after`
/// seconds for the last invalidations.
pub(super) fn run(
    rules: &Path,
    events: &Path,
    redis: &RedisArgs,
    give_up_after: u64,
    sandbox: &SandboxArgs,
) -> anyhow::Result<ExitCode> {
    let runtime = sandbox.runtime(&[rules])?;
    let rules = RuleSet::load(&runtime, rules)?;
    let redis = redis.open()?;
    let give_up = Duration::from_secs(give_up_after);
    let summary: ApplySummary = tokio_runtime()?.block_on(async {
        apply_events(rules, redis, open_events(events)?, give_up, io::stderr())
            .await
            .with_context(|| format!("cannot read `{}`", events.display()))
    })?;
    println!(
        "{}",
        serde_json::to_string(&summary).expect("summary serializes")
    );
    // A one-shot run that left targets unapplied failed; a service reports
    // them as they happen instead.
    Ok(if summary.complete && summary.unapplied == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
