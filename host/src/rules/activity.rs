//! [`Activity`]: what the rules decided for one commit (or one batch of
//! commits from one source, evaluated together), rule by rule: what the
//! console's live feed shows, and where the pipeline learns which rule
//! named which target (for the counts per rule, the explain log and the
//! invalidation feed).

use serde::Serialize;

use crate::commit::Commit;
use crate::targets::TargetSet;

/// One commit's (or batch's) invalidations, as the rules decided them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// The commit's `txn`, or `first..last` for a batch laid out as one.
    pub txn: String,
    /// Where the commits came from, if they said.
    pub source: Option<String>,
    /// The tables written, each once, in order of first write.
    pub tables: Vec<String>,
    /// When it was evaluated, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What each rule that read one of the tables asked for.
    pub rules: Vec<RuleActivity>,
}

/// One rule's part of an [`Activity`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleActivity {
    /// The rule's name.
    pub rule: String,
    /// Its version.
    pub version: String,
    /// What it asked for (its fallback where it failed).
    pub targets: TargetSet,
    /// Whether it failed (on the commit, or on some commit of the batch).
    pub failed: bool,
}

impl Activity {
    /// An activity for `commits` (one, or a batch from one source) named
    /// `txn`, with no rule's part yet.
    pub(crate) fn new<'a>(txn: String, commits: impl IntoIterator<Item = &'a Commit>) -> Self {
        let mut source = None;
        let mut tables: Vec<String> = Vec::new();
        for commit in commits {
            source = source.or_else(|| commit.source.clone());
            for write in &commit.writes {
                if !tables.contains(&write.table) {
                    tables.push(write.table.clone());
                }
            }
        }
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            txn,
            source,
            tables,
            at_ms,
            rules: Vec::new(),
        }
    }
}
