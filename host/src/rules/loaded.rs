//! [`LoadedRule`]: one rule component, compiled once, pre-instantiated,
//! validated by calling its `describe()`, and called once per commit in a
//! fresh sandbox, its answer held to the sandbox's budgets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use super::log_quota::LogQuota;
use super::sandbox::Sandbox;
use super::validate::{check_info, within_budget};
use super::{FailureKind, GuestError, LoadError, RuleCounters, RuleFailure, RuleInfo, Runtime};
use crate::bindings::types as wit;
use crate::bindings::{Rule, RulePre};
use crate::commit::{Commit, flatten};
use crate::escape::escape;
use crate::targets::Target;

/// A rule ready to run: compiled, linked against the sandbox's imports, and
/// described. Cloning shares the compiled code.
#[derive(Clone)]
pub struct LoadedRule {
    runtime: Runtime,
    path: PathBuf,
    info: RuleInfo,
    /// The name again, shared with every call's sandbox for its log lines.
    name: Arc<str>,
    hash: String,
    /// The language it was written in, for people.
    language: String,
    pre: RulePre<Sandbox>,
    metrics: Arc<RuleCounters>,
    /// Its budget of log lines per minute, shared by its calls.
    logs: Arc<LogQuota>,
}

/// SHA-256 of `bytes`, in lowercase hex: the [`LoadedRule::hash`] of a
/// component file with these bytes.
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl LoadedRule {
    /// Loads the component at `path`.
    pub fn load(runtime: &Runtime, path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(runtime, path, &bytes)
    }

    /// Loads a component from memory; `path` only names it in messages.
    pub fn from_bytes(runtime: &Runtime, path: &Path, bytes: &[u8]) -> Result<Self, LoadError> {
        Self::from_hashed_bytes(runtime, path, bytes, content_hash(bytes))
    }

    /// [`from_bytes`](Self::from_bytes) with the [`content_hash`] of
    /// `bytes` already taken: hashing a Python or JS rule's tens of MB twice
    /// on each swap is time the swap does not need.
    pub(crate) fn from_hashed_bytes(
        runtime: &Runtime,
        path: &Path,
        bytes: &[u8],
        hash: String,
    ) -> Result<Self, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotComponent {
                path: path.to_owned(),
                reason: "it is not WebAssembly at all (no `\\0asm` header)".into(),
            });
        }
        let compile = || Component::new(runtime.engine(), bytes);
        let component = match runtime.compile_cache() {
            Some(cache) => cache.get_or_compile(runtime.engine(), &hash, compile),
            None => compile(),
        }
        .map_err(|e| LoadError::NotComponent {
            path: path.to_owned(),
            reason: chain(&e),
        })?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            path: path.to_owned(),
            reason: match other_wit_version(runtime, &component) {
                Some(version) => format!(
                    "it was built against `invalidator:rules@{version}`; rebuild it with \
                     an SDK for {} ({})",
                    crate::bindings::WIT_VERSION,
                    chain(&e)
                ),
                None => chain(&e),
            },
        };
        let instance_pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = RulePre::new(instance_pre).map_err(wrong_world)?;

        let describe_err = |reason: String| LoadError::Describe {
            path: path.to_owned(),
            reason,
        };
        let label = path.display().to_string();
        let metrics = Arc::<RuleCounters>::default();
        let logs = Arc::new(LogQuota::new(runtime.config().max_log_lines_per_minute));
        let mut info = sandboxed(
            runtime,
            &pre,
            Arc::from(label.as_str()),
            &metrics,
            &logs,
            |store, rule| rule.call_describe(store),
        )
        .map_err(|(_, reason)| describe_err(reason))?;
        check_info(&mut info, runtime.config()).map_err(describe_err)?;
        tracing::info!(rule = %info.name, version = %info.version, path = %label, %hash, "rule loaded");
        Ok(Self {
            hash,
            language: super::language::language(bytes),
            runtime: runtime.clone(),
            path: path.to_owned(),
            name: Arc::from(info.name.as_str()),
            info,
            pre,
            metrics,
            logs,
        })
    }

    /// The language it was written in (`rust`, `python`, `javascript`,
    /// ...), from its producers sections; `unknown` without them.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// Log lines this version wrote over its budget per minute, dropped.
    pub fn log_lines_dropped(&self) -> u64 {
        self.logs.dropped()
    }

    /// The SHA-256 of the component file, in hex: which build of the rule
    /// this is, whatever version it claims.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// What the rule said about itself when it was loaded.
    pub fn info(&self) -> &RuleInfo {
        &self.info
    }

    /// What this version has done since it was loaded.
    pub fn counters(&self) -> &RuleCounters {
        &self.metrics
    }

    /// The file the rule was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the component's imports, such as
    /// `invalidator:rules/host@0.2.0` or `wasi:cli/environment@0.2.0`.
    pub fn imports(&self) -> Vec<String> {
        let component = self.pre.instance_pre().component();
        component
            .component_type()
            .imports(self.runtime.engine())
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Whether the rule wants writes to `table`.
    pub fn subscribes(&self, table: &str) -> bool {
        self.info.tables.is_empty() || self.info.tables.iter().any(|t| t == table)
    }

    /// Runs the rule on the writes of `commit` to its tables, in a fresh
    /// sandbox.
    pub fn call(&self, commit: &Commit) -> Result<Vec<Target>, RuleFailure> {
        self.call_flat(&flatten(commit, |w| self.subscribes(&w.table)))
    }

    /// Runs the rule on a commit already laid out for the sandbox.
    pub(crate) fn call_flat(&self, commit: &wit::Commit) -> Result<Vec<Target>, RuleFailure> {
        let failure = |(kind, message)| RuleFailure {
            rule: self.info.name.clone(),
            kind,
            message,
        };
        let started = std::time::Instant::now();
        let result = sandboxed(
            &self.runtime,
            &self.pre,
            self.name.clone(),
            &self.metrics,
            &self.logs,
            |store, rule| rule.call_on_commit(store, commit),
        )
        .map_err(failure)
        .and_then(|r| r.map_err(|e| failure((FailureKind::Returned, describe_guest_error(&e)))))
        .and_then(|mut targets| {
            let dropped = within_budget(&mut targets, self.runtime.config())
                .map_err(|m| failure((FailureKind::OverBudget, m)))?;
            if dropped > 0 {
                self.metrics.empty_targets_dropped(dropped);
                tracing::warn!(
                    rule = %self.info.name,
                    dropped,
                    "dropped empty keys, patterns or tags the rule returned"
                );
            }
            Ok(targets)
        });
        self.metrics
            .record(started.elapsed(), result.as_ref().err().map(|f| f.kind));
        result
    }
}

/// The version of `invalidator:rules` that `component` imports, when it is
/// not this host's: a rule built with an older or newer SDK, which deserves
/// to be told so rather than shown a type mismatch.
fn other_wit_version(runtime: &Runtime, component: &Component) -> Option<String> {
    component
        .component_type()
        .imports(runtime.engine())
        .find_map(|(name, _)| {
            let version = name.strip_prefix("invalidator:rules/")?.split_once('@')?.1;
            (version != crate::bindings::WIT_VERSION).then(|| version.to_owned())
        })
}

/// Instantiates the rule in a fresh store with the runtime's limits and runs
/// `f`, turning every way it can fail into a kind and a message.
fn sandboxed<R>(
    runtime: &Runtime,
    pre: &RulePre<Sandbox>,
    rule_name: Arc<str>,
    metrics: &RuleCounters,
    logs: &Arc<LogQuota>,
    f: impl FnOnce(&mut Store<Sandbox>, &Rule) -> wasmtime::Result<R>,
) -> Result<R, (FailureKind, String)> {
    let config = runtime.config();
    let mut store = Store::new(
        runtime.engine(),
        Sandbox::new(
            rule_name,
            config.memory_limit,
            config.max_log_lines,
            logs.clone(),
        ),
    );
    store.limiter(|s| &mut s.memory);
    super::time_limit::arm(&mut store, config.time_limit);
    // A rule that cannot even be instantiated is told apart from one that
    // fails while running.
    let mut instantiated = false;
    let result = pre.instantiate(&mut store).and_then(|rule| {
        instantiated = true;
        f(&mut store, &rule)
    });
    store.data().report_dropped_logs();
    metrics.memory_used(store.data().memory.peak);
    // A guest may catch its own failed allocation and answer anyway (Python
    // raises `MemoryError`, which a rule can turn into an error of its own
    // or swallow): having hit the limit is the failure, whatever follows.
    let result = match result {
        Ok(_) if store.data().memory.exceeded => Err(wasmtime::Error::msg("memory limit")),
        other => other,
    };
    result.map_err(|e| {
        if store.data().memory.exceeded {
            (
                FailureKind::MemoryLimit,
                format!(
                    "exceeded its memory limit of {} MiB",
                    config.memory_limit >> 20
                ),
            )
        } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            (
                FailureKind::TimeLimit,
                format!(
                    "exceeded its time limit of {} ms",
                    config.time_limit.as_millis()
                ),
            )
        } else if !instantiated {
            (
                FailureKind::NotLoadable,
                format!("could not be instantiated: {}", chain(&e)),
            )
        } else {
            (FailureKind::Trap, format!("trapped: {}", chain(&e)))
        }
    })
}

/// The error a rule returned, for people: its text escaped, since the rule
/// wrote it.
fn describe_guest_error(e: &GuestError) -> String {
    match e {
        GuestError::MissingColumn(c) => format!(
            "missing column `{}` in table `{}`",
            escape(&c.column),
            escape(&c.table)
        ),
        GuestError::WrongType(c) => format!(
            "column `{}` in table `{}` has the wrong type",
            escape(&c.column),
            escape(&c.table)
        ),
        GuestError::Other(message) => format!("rule error: {}", escape(message)),
    }
}

/// An error and its causes on one line (the first line of each: some
/// causes append multi-line dumps).
fn chain(e: &wasmtime::Error) -> String {
    e.chain()
        .map(|c| c.to_string().lines().next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join(": ")
}
