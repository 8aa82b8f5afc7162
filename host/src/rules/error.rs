//! Errors of loading a rule ([`LoadError`]) and of one rule failing on one
//! commit ([`RuleFailure`]).

use std::path::PathBuf;

use serde::Serialize;

/// Why a rule file, or a folder of them, could not be put in service.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The Wasm engine could not be set up with the given limits.
    #[error("cannot set up the wasm engine: {0:#}")]
    Engine(wasmtime::Error),
    /// The thread that bounds each call's time could not be started.
    #[error("cannot start the epoch thread: {0}")]
    EpochThread(std::io::Error),
    /// The compile cache folder cannot be used.
    #[error(transparent)]
    CompileCache(#[from] super::CacheError),
    /// The path could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A folder holds no `.wasm` file.
    #[error("no `.wasm` rule files in `{0}`")]
    Empty(PathBuf),
    /// The file is not a WebAssembly component.
    #[error("`{path}` is not a valid WebAssembly component: {reason}")]
    NotComponent {
        /// The file.
        path: PathBuf,
        /// What the compiler said.
        reason: String,
    },
    /// The component does not fit the `invalidator:rules/rule` world.
    #[error(
        "`{path}` does not implement the `invalidator:rules/rule@{}` world: {reason}",
        crate::bindings::WIT_VERSION
    )]
    WrongWorld {
        /// The file.
        path: PathBuf,
        /// The mismatch.
        reason: String,
    },
    /// `describe()` failed or gave an unusable answer.
    #[error("`{path}`: describe() {reason}")]
    Describe {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Two rules in one set have the same name.
    #[error("rule name `{name}` is used by both `{first}` and `{second}`")]
    DuplicateName {
        /// The name.
        name: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
}

/// One rule failing on one commit. Its fallback targets were applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleFailure {
    /// The rule's name.
    pub rule: String,
    /// Why, as a kind that metrics and logs can tell apart.
    pub kind: FailureKind,
    /// What went wrong, for people.
    pub message: String,
}

/// Why a rule call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// It ran past the time limit.
    TimeLimit,
    /// It asked for more memory than the limit.
    MemoryLimit,
    /// It trapped (a panic, an unreachable, an out-of-bounds access).
    Trap,
    /// It returned an error of its own.
    Returned,
    /// What it returned was over a budget (targets, bytes).
    OverBudget,
    /// It could not be instantiated.
    NotLoadable,
}

impl FailureKind {
    /// Every kind, in a fixed order (for counters indexed by kind).
    pub const ALL: [FailureKind; 6] = [
        FailureKind::TimeLimit,
        FailureKind::MemoryLimit,
        FailureKind::Trap,
        FailureKind::Returned,
        FailureKind::OverBudget,
        FailureKind::NotLoadable,
    ];

    /// The kind's name, as in metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::TimeLimit => "time_limit",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::Trap => "trap",
            FailureKind::Returned => "returned",
            FailureKind::OverBudget => "over_budget",
            FailureKind::NotLoadable => "not_loadable",
        }
    }
}
