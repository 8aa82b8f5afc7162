//! [`Sandbox`]: the state of one rule instance for one call. It holds the
//! capability-free WASI context, the memory limiter, and the one host import
//! a rule has: `log`, with its budget of lines per call and, shared across
//! calls, per minute ([`LogQuota`]).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView,
    WasiView,
};

use crate::bindings::invalidator::rules::host::Host;
use crate::bindings::types::Host as TypesHost;
use crate::bindings::types::Level;

use super::log_quota::LogQuota;

/// The longest log line a rule may write; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;

/// Per-call state of a rule instance.
pub(crate) struct Sandbox {
    /// Shared with the loaded rule: no allocation per call.
    rule: Arc<str>,
    /// Built on first use: rules made with the SDK's default `no_std` never
    /// import WASI, and should not pay for it.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) memory: MemoryLimit,
    /// Log lines this call may still write.
    log_budget: u32,
    /// Log lines dropped because the budget was spent.
    pub(crate) logs_dropped: u64,
    /// The rule version's budget of lines per minute.
    quota: Arc<LogQuota>,
}

impl Sandbox {
    pub(crate) fn new(
        rule: Arc<str>,
        memory_limit: usize,
        max_log_lines: u32,
        quota: Arc<LogQuota>,
    ) -> Self {
        Self {
            rule,
            wasi: None,
            table: ResourceTable::new(),
            memory: MemoryLimit {
                limit: memory_limit,
                exceeded: false,
                peak: 0,
            },
            log_budget: max_log_lines,
            logs_dropped: 0,
            quota,
        }
    }

    /// Says, in one line, how many log lines the call dropped, if any.
    pub(crate) fn report_dropped_logs(&self) {
        // The report is a line too: past the minute's budget it is only
        // counted, or a rule called often would flood the logs with it.
        if self.logs_dropped > 0 && self.quota.take(&self.rule) {
            tracing::warn!(
                target: "rule",
                rule = &*self.rule,
                dropped = self.logs_dropped,
                "dropped {} log lines of one call over the budget of lines per call \
                 (sandbox.max_log_lines)",
                self.logs_dropped
            );
        }
    }
}

/// A WASI context without capabilities.
fn capability_free_wasi() -> WasiCtx {
    // Every WASI capability is off by default except stdio (empty input,
    // discarded output), clocks and randomness; those are replaced with
    // constants so that a rule cannot tell one call from another.
    WasiCtxBuilder::new()
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(Deterministic::new(vec![0x5a; 8]))
        .insecure_random(Deterministic::new(vec![0xa5; 8]))
        .insecure_random_seed(0)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(capability_free_wasi),
            table: &mut self.table,
        }
    }
}

impl Host for Sandbox {
    fn log(&mut self, level: Level, mut message: String) {
        // A rule must not be able to flood the host's logs: a call gets a
        // budget of lines, and what is over it is only counted.
        if self.log_budget == 0 {
            self.logs_dropped += 1;
            return;
        }
        self.log_budget -= 1;
        if !self.quota.take(&self.rule) {
            return;
        }
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let rule = &*self.rule;
        // The author's text, not ours: no forged lines, no escape sequences.
        let message = crate::escape::escape(&message);
        match level {
            Level::Trace => tracing::trace!(target: "rule", rule, "{message}"),
            Level::Debug => tracing::debug!(target: "rule", rule, "{message}"),
            Level::Info => tracing::info!(target: "rule", rule, "{message}"),
            Level::Warn => tracing::warn!(target: "rule", rule, "{message}"),
            Level::Error => tracing::error!(target: "rule", rule, "{message}"),
        }
    }
}

// The `types` interface has no functions; its trait only marks the sandbox
// as able to hold its types.
impl TypesHost for Sandbox {}

/// Caps linear memory growth, and remembers a refusal so the failure can be
/// reported as what it is rather than as the trap it turns into.
pub(crate) struct MemoryLimit {
    limit: usize,
    pub(crate) exceeded: bool,
    /// The largest linear memory granted in this store, in bytes: what one
    /// instance of the rule needs (tens of MiB for Python and JS rules,
    /// whose interpreter's heap is part of it).
    pub(crate) peak: usize,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.limit;
        self.exceeded |= !ok;
        if ok {
            self.peak = self.peak.max(desired);
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A clock that always reads zero: rules must not depend on time.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
