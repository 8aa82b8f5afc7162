//! [`SandboxConfig`]: the limits every rule call runs under.

use std::time::Duration;

/// Limits applied to every call into a rule. A call that exceeds one fails,
/// and the rule's fallback targets are applied instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Wall-clock time one call may run. Default: 100 ms, several hundred
    /// times what the example rules need for a 100-write commit.
    pub time_limit: Duration,
    /// Linear memory one rule instance may grow to. Default: 64 MiB.
    pub memory_limit: usize,
    /// How many rule instances may be alive at once across all threads (the
    /// size of the pre-reserved instance pool). Default: 128.
    pub max_instances: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            time_limit: Duration::from_millis(100),
            memory_limit: 64 << 20,
            max_instances: 128,
        }
    }
}
