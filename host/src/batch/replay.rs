//! [`apply_events`]: behind `invalidator apply`: the commits of a JSON
//! Lines file through the pipeline into Redis, with a summary.

use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::pipeline::{Invalidator, PipelineConfig, PipelineStats};
use crate::redis::Redis;
use crate::rules::RuleSet;
use crate::source::{Intake, lines};

/// What an `apply` run did; printed as its last line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ApplySummary {
    /// Commits read and handed over.
    pub commits: u64,
    /// Exact keys applied (after merging the targets of a batch).
    pub keys: u64,
    /// Patterns applied.
    pub patterns: u64,
    /// Tags applied.
    pub tags: u64,
    /// Keys that existed and were removed.
    pub deleted: u64,
    /// Malformed lines, rule failures (their fallback was applied) and
    /// Redis errors (retried, or refused for good).
    pub errors: u64,
    /// Targets Redis refused with an error no retry can fix, given up on
    /// (shown only when there are some).
    #[serde(skip_serializing_if = "is_zero")]
    pub unapplied: u64,
    /// Whether every commit read was handed over and its invalidations
    /// applied or, where Redis refused them for good, given up on (see
    /// `unapplied`).
    #[serde(skip)]
    pub complete: bool,
}

/// Hands every commit of `input` (JSON Lines; blank lines skipped) to a
/// pipeline on `redis`, then waits up to `give_up` for all of them to be
/// applied. A malformed line is reported on `diagnostics` with its number,
/// and the run goes on.
///
/// No tag pruning and no explain log: the run ends with the process, and
/// nobody could ask the log anything.
pub async fn apply_events(
    rules: RuleSet,
    redis: Redis,
    input: impl BufRead,
    give_up: Duration,
    diagnostics: impl Write,
) -> io::Result<ApplySummary> {
    let config = PipelineConfig {
        prune_every: None,
        explain_capacity: 0,
        ..PipelineConfig::default()
    };
    apply_events_with(config, rules, redis, input, give_up, diagnostics).await
}

/// [`apply_events`] with a pipeline configured as given (the benchmarks
/// measure what the explain log costs this way).
pub async fn apply_events_with(
    config: PipelineConfig,
    rules: RuleSet,
    redis: Redis,
    input: impl BufRead,
    give_up: Duration,
    mut diagnostics: impl Write,
) -> io::Result<ApplySummary> {
    let invalidator = Arc::new(Invalidator::start(Arc::new(rules), redis, config));
    let malformed = lines::read_into(input, &mut diagnostics, &Intake::new(invalidator.clone()));
    let flushed = invalidator.flush_timeout(give_up).await;
    if let Err(e) = &flushed {
        writeln!(diagnostics, "error: {e}")?;
    }
    Ok(ApplySummary::new(
        &invalidator.stats(),
        malformed,
        flushed.is_ok(),
    ))
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ApplySummary {
    /// The summary of a run with these pipeline `stats`, `malformed` input
    /// lines, and whether everything handed over was applied.
    pub fn new(stats: &PipelineStats, malformed: u64, flushed: bool) -> Self {
        Self {
            commits: stats.commits,
            keys: stats.keys,
            patterns: stats.patterns,
            tags: stats.tags,
            deleted: stats.deleted,
            errors: malformed + stats.failed_rule_calls + stats.errors,
            unapplied: stats.unapplied,
            complete: flushed && malformed == 0,
        }
    }
}
