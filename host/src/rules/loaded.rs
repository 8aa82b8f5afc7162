//! [`LoadedRule`]: one rule component, compiled once, pre-instantiated,
//! validated by calling its `describe()`, and called once per commit in a
//! fresh sandbox, its answer held to the sandbox's budgets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use super::log_quota::LogQuota;
use super::sandbox::Sandbox;
use super::{
    FailureKind, GuestError, LoadError, RuleCounters, RuleFailure, RuleInfo, Runtime, SandboxConfig,
};
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
            runtime: runtime.clone(),
            path: path.to_owned(),
            name: Arc::from(info.name.as_str()),
            info,
            pre,
            metrics,
            logs,
        })
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

/// The longest rule name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// The longest rule version, in characters.
pub const MAX_VERSION_LEN: usize = 64;

/// Checks what `describe()` said, in place: a name fit to show and to
/// label metrics with, a version fit to show, table names without
/// control characters, and fallback targets within the call budgets.
///
/// Names and versions are on every log line, metric and API answer about
/// the rule, so they are bounded: a 4,000,000-character name once turned
/// one commit into 40 MB of logs, and a 7 MB version one `/metrics`
/// scrape into 72 MB. A name is `[a-z0-9][a-z0-9_-]{0,63}`, which also
/// rules out look-alikes (`dealership` followed by an invisible Hangul
/// filler showed beside `dealership`); a version is printable ASCII.
fn check_info(info: &mut RuleInfo, config: &SandboxConfig) -> Result<(), String> {
    let name_ok = |(i, c): (usize, char)| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || (i > 0 && matches!(c, '_' | '-'))
    };
    if info.name.is_empty()
        || info.name.len() > MAX_NAME_LEN
        || !info.name.chars().enumerate().all(name_ok)
    {
        return Err(format!(
            "gave the name `{}`: a rule name must be 1 to {MAX_NAME_LEN} characters of `a-z`, \
             `0-9`, `_` and `-`, starting with a letter or a digit",
            shown(&info.name)
        ));
    }
    let version_ok = |c: char| c.is_ascii_graphic() || c == ' ';
    if info.version.trim().is_empty()
        || info.version.len() > MAX_VERSION_LEN
        || !info.version.chars().all(version_ok)
    {
        return Err(format!(
            "gave rule `{}` the version `{}`: a version must be 1 to {MAX_VERSION_LEN} printable \
             ASCII characters, not all spaces",
            info.name,
            shown(&info.version)
        ));
    }
    if let Some(table) = info
        .tables
        .iter()
        .find(|t| *t != &*escape(t) || t.is_empty())
    {
        return Err(format!(
            "gave rule `{}` the table name `{}`: table names must be non-empty, without \
             control characters",
            info.name,
            escape(table)
        ));
    }
    within_budget(&mut info.fallback, config)
        .map(|_| ())
        .map_err(|e| format!("gave rule `{}` fallback targets that {e}", info.name))
}

/// At most the first 64 characters of `text`, escaped, and how long it
/// was when that is longer: an error about an overlong name must not be
/// overlong itself.
fn shown(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_NAME_LEN {
        return escape(text).into_owned();
    }
    let head: String = text.chars().take(MAX_NAME_LEN).collect();
    format!("{}… ({count} characters)", escape(&head))
}

/// Holds one call's targets to the budgets of `config`, dropping empty
/// ones (an empty key means nothing, and an empty pattern or tag is a bug
/// that must not reach Redis). Returns how many were dropped, or why the
/// targets are over budget.
fn within_budget(targets: &mut Vec<Target>, config: &SandboxConfig) -> Result<usize, String> {
    let before = targets.len();
    targets.retain(|t| !t.text().is_empty());
    if targets.len() > config.max_targets {
        return Err(format!(
            "returned {} targets, over the budget of {} per call (sandbox.max_targets)",
            targets.len(),
            config.max_targets
        ));
    }
    let mut total = 0usize;
    for t in targets.iter() {
        let text = t.text();
        if text.len() > config.max_target_len {
            let mut start = 40.min(text.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            return Err(format!(
                "returned a target of {} bytes (`{}…`), over the budget of {} bytes per target \
                 (sandbox.max_target_len)",
                text.len(),
                escape(&text[..start]),
                config.max_target_len
            ));
        }
        total += text.len();
    }
    if total > config.max_target_bytes {
        return Err(format!(
            "returned {total} bytes of targets, over the budget of {} bytes per call \
             (sandbox.max_target_bytes)",
            config.max_target_bytes
        ));
    }
    let cost = pattern_cost(targets);
    if cost > config.max_pattern_cost {
        return Err(format!(
            "returned patterns costing {cost} (each distinct pattern's length times its runs \
             of `*`, summed), over the budget of {} per call (sandbox.max_pattern_cost)",
            config.max_pattern_cost
        ));
    }
    Ok(before - targets.len())
}

/// What matching `targets`' patterns may cost, per key swept: each
/// distinct pattern's length times its runs of `*` (consecutive stars
/// match as one, in Redis as here), at least its length. Matching is
/// bounded by the pattern's length times the key's, and a pattern's runs
/// of `*` are what make it reach that bound.
pub(crate) fn pattern_cost(targets: &[Target]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    targets
        .iter()
        .filter_map(|t| match t {
            Target::Pattern(p) if seen.insert(p.as_str()) => Some(p),
            _ => None,
        })
        .map(|p| {
            let runs = p
                .as_bytes()
                .split(|&b| b != b'*')
                .filter(|run| !run.is_empty())
                .count()
                .max(1);
            (p.len() as u64).saturating_mul(runs as u64)
        })
        .fold(0u64, u64::saturating_add)
}

/// An error and its causes on one line (the first line of each: some
/// causes append multi-line dumps).
fn chain(e: &wasmtime::Error) -> String {
    e.chain()
        .map(|c| c.to_string().lines().next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, version: &str, tables: &[&str]) -> RuleInfo {
        RuleInfo {
            name: name.to_owned(),
            version: version.to_owned(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            fallback: vec![Target::Pattern("p:*".into()), Target::Key(String::new())],
        }
    }

    #[test]
    fn describe_answers_are_checked_and_made_safe_to_show() {
        let config = SandboxConfig::default();
        let mut ok = info("turnus-2_b", "6.6.6 rule=other (build 7)", &["kinder"]);
        check_info(&mut ok, &config).unwrap();
        assert_eq!(ok.version, "6.6.6 rule=other (build 7)");
        assert_eq!(
            ok.fallback,
            [Target::Pattern("p:*".into())],
            "empty dropped"
        );
        let longest = "a".repeat(MAX_NAME_LEN);
        check_info(
            &mut info(&longest, &"1".repeat(MAX_VERSION_LEN), &[]),
            &config,
        )
        .unwrap();

        let huge = "x".repeat(4_000_000);
        for bad in [
            "",
            "two words",
            "evil\x1b[2J",
            "a/b",
            "Dealership",
            "dealership\u{3164}",
            "deal\u{ad}ership",
            "-lead",
            "_lead",
            "rule.v2",
            "rüle",
            &format!("{longest}a"),
            &huge,
        ] {
            let err = check_info(&mut info(bad, "1", &[]), &config).unwrap_err();
            assert!(
                err.contains("a rule name must be 1 to 64"),
                "{bad:?}: {err}"
            );
            assert!(!err.contains('\x1b'), "{err:?}");
            assert!(
                err.len() < 400,
                "the error stays short: {} bytes",
                err.len()
            );
        }
        for bad in [
            " ",
            "",
            "6.6.6\n\x1b[31mFAKE",
            "1.0\u{3164}",
            "1.0\t",
            "é",
            &"1".repeat(MAX_VERSION_LEN + 1),
            &huge,
        ] {
            let err = check_info(&mut info("r", bad, &[]), &config).unwrap_err();
            assert!(
                err.contains("a version must be 1 to 64 printable ASCII"),
                "{bad:?}: {err}"
            );
            assert!(!err.contains(['\x1b', '\n']), "{err:?}");
            assert!(
                err.len() < 400,
                "the error stays short: {} bytes",
                err.len()
            );
        }
        let err = check_info(&mut info("r", "1", &["ok", "bad\n"]), &config).unwrap_err();
        assert!(err.contains("`bad\\n`"), "{err}");
    }

    #[test]
    fn a_fallback_over_budget_is_refused() {
        let config = SandboxConfig {
            max_target_len: 2,
            ..SandboxConfig::default()
        };
        let err = check_info(&mut info("r", "1", &[]), &config).unwrap_err();
        assert!(
            err.contains("fallback targets that returned a target of 3 bytes")
                && err.contains("sandbox.max_target_len"),
            "{err}"
        );
        // A fallback is held to the pattern budget too.
        let config = SandboxConfig {
            max_pattern_cost: 10,
            ..SandboxConfig::default()
        };
        let mut expensive = info("r", "1", &[]);
        expensive.fallback = vec![Target::Pattern("*a*b*c*".into())];
        let err = check_info(&mut expensive, &config).unwrap_err();
        assert!(err.contains("sandbox.max_pattern_cost"), "{err}");
    }

    #[test]
    fn patterns_cost_their_length_times_their_runs_of_stars_once_each() {
        let p = |s: &str| Target::Pattern(s.to_owned());
        assert_eq!(pattern_cost(&[p("shop:*")]), 6);
        assert_eq!(pattern_cost(&[p("*")]), 1);
        assert_eq!(pattern_cost(&[p("no-star")]), 7, "at least its length");
        assert_eq!(pattern_cost(&[p("*a*b*")]), 15);
        assert_eq!(
            pattern_cost(&[p("**a**")]),
            10,
            "a run of stars counts once"
        );
        assert_eq!(
            pattern_cost(&[p("*a*"), p("*a*"), Target::Key("*a*".into())]),
            6,
            "distinct patterns only; keys cost nothing"
        );
        let bomb: Vec<Target> = (0..200)
            .map(|i| p(&format!("{}{i}", "*a".repeat(999))))
            .collect();
        assert!(pattern_cost(&bomb) > SandboxConfig::default().max_pattern_cost);
        // The example rules' patterns are far inside the budget.
        let hedge = [
            "*v_available_amounts_fast*",
            "*portfolio_valuation*",
            "*real_time_pnl*",
        ];
        let hedge: Vec<Target> = hedge.iter().map(|s| p(s)).collect();
        assert!(pattern_cost(&hedge) < 200);
    }
}
