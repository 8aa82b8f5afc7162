//! [`serve`]: the `invalidator serve` command: rules from a watched folder,
//! swapped live as their files change, commits from a JSON Lines stream,
//! invalidations applied to Redis or to an in-process store.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::apply::ApplySummary;
use crate::commit::for_each_commit;
use crate::pipeline::{Invalidator, PipelineConfig};
use crate::reload::{Catalog, Refresh, Reloader};
use crate::rules::{RuleSet, Runtime};
use crate::sink::Store;

/// What a `serve` run did; printed as its last line when it stops: the
/// fields of an `apply` summary, then what happened to the rules.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServeSummary {
    /// Commits, targets, deletions and errors, as `apply` counts them.
    #[serde(flatten)]
    pub applied: ApplySummary,
    /// Rule sets swapped into service while running.
    pub swaps: u64,
    /// Rule files refused (the running version kept serving).
    pub refused: u64,
    /// New rule versions rolled back for failing too often.
    pub rollbacks: u64,
    /// Commits on which a shadow rule's targets differed from the live
    /// rule's.
    pub shadow_differences: u64,
}

/// Puts what a refresh of the rules folder produced into service.
fn apply_change(invalidator: &Invalidator, change: &Refresh) {
    if let Some(set) = &change.set {
        invalidator.swap_rules(set.clone());
    }
    if let Some(shadows) = &change.shadows {
        invalidator.set_shadows(Some(shadows.clone()));
    }
}

/// Serves until `input` ends or Ctrl-C: loads the rules of `dir`, watches
/// it and swaps each valid change into service, hands every commit of
/// `input` to the pipeline, and at the end waits up to `give_up` for the
/// work to be applied.
pub async fn serve(
    runtime: Runtime,
    dir: &Path,
    store: Store,
    input: impl BufRead + Send + 'static,
    give_up: Duration,
) -> Result<ServeSummary, String> {
    if !dir.is_dir() {
        return Err(format!("rules folder `{}` is not a folder", dir.display()));
    }
    let mut catalog = Catalog::new(runtime, dir);
    let first = catalog.refresh();
    let first_shadows = first.shadows.clone();
    for (path, reason) in &first.rejected {
        tracing::error!(file = %path.display(), "rule file refused: {reason}");
    }
    let rules = first
        .set
        .unwrap_or_else(|| Arc::new(RuleSet::new(Vec::new()).expect("no names clash")));
    if rules.rules().is_empty() {
        tracing::warn!(dir = %dir.display(), "no rule in service yet; waiting for rule files");
    }
    for rule in rules.rules() {
        tracing::info!(rule = rule.name(), version = %rule.info().version, hash = rule.hash(), "in service");
    }
    let described = store.describe();
    let config = PipelineConfig::default();
    let invalidator = Arc::new(Invalidator::start_with(rules, store, config));
    invalidator.set_shadows(first_shadows);
    let reloader = {
        let invalidator = invalidator.clone();
        Reloader::watch(catalog, move |change| apply_change(&invalidator, change))?
    };
    // A file that arrived between the first look and the start of the
    // watching would otherwise wait for the next change.
    apply_change(&invalidator, &reloader.refresh());
    tracing::info!(store = described, dir = %dir.display(), "serving; watching for rule changes");

    // The input is read on a thread of its own: reading blocks.
    let reading = {
        let invalidator = invalidator.clone();
        tokio::task::spawn_blocking(move || {
            let read = for_each_commit(input, std::io::stderr(), |commit| {
                invalidator.after_commit(commit);
                Ok(())
            });
            read.unwrap_or_else(|e| {
                eprintln!("error: reading the commits: {e}");
                1
            })
        })
    };
    let malformed = tokio::select! {
        read = reading => read.unwrap_or(1),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted: applying what was handed over, then stopping");
            0
        }
    };
    let refused = first.rejected.len() as u64 + reloader.refused();
    drop(reloader);
    let flushed = invalidator.flush_timeout(give_up).await;
    if let Err(e) = &flushed {
        eprintln!("error: {e}");
    }
    let stats = invalidator.stats();
    Ok(ServeSummary {
        applied: ApplySummary::new(&stats, malformed, flushed.is_ok()),
        swaps: stats.swaps,
        refused,
        rollbacks: stats.rollbacks,
        shadow_differences: stats.shadow_differences,
    })
}
