//! [`SandboxConfig`]: the limits every rule call runs under, and the
//! budgets on what one call may return and log.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits applied to every call into a rule. A call that exceeds one fails,
/// and the rule's fallback targets are applied instead. Read as it is from
/// the `[sandbox]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// CPU time one call may use, checked every 5 ms tick: the work the
    /// rule does, not the moments a busy machine kept it waiting. Default:
    /// 100 ms, several hundred times what the example rules need for a
    /// 100-write commit.
    #[serde(with = "crate::duration::required")]
    pub time_limit: Duration,
    /// Linear memory one rule instance may grow to, in bytes. Default: 64
    /// MiB. Written in MiB in the configuration (`memory_limit_mib`).
    #[serde(rename = "memory_limit_mib", with = "mib")]
    pub memory_limit: usize,
    /// How many rule instances may be alive at once across all threads (the
    /// size of the pre-reserved instance pool). Default: 128.
    pub max_instances: u32,
    /// Targets one call may return. Default: 100,000; a batch over it is
    /// re-run commit by commit, so only a single commit asking for more
    /// fails.
    pub max_targets: usize,
    /// Bytes of all the targets of one call together. Default: 16 MiB.
    pub max_target_bytes: usize,
    /// Bytes of one target. Default: 64 KiB; Redis keys that large are a
    /// bug, and every one is sent, logged and indexed.
    pub max_target_len: usize,
    /// Log lines one call may write; the rest are dropped, and one line
    /// says how many. Default: 100.
    pub max_log_lines: u32,
    /// Log lines one rule version may write a minute, across its calls;
    /// the rest are dropped and counted, and one line a minute says how
    /// many. Default: 600.
    pub max_log_lines_per_minute: u32,
    /// What matching the patterns of one call may cost: each distinct
    /// pattern costs its length times its runs of `*`, summed. Default:
    /// 100,000. Matching a pattern against a key costs up to the
    /// pattern's length times the key's, for every key of a sweep, so 200
    /// patterns of 999 `*a` each held every invalidation up for seconds.
    pub max_pattern_cost: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            time_limit: Duration::from_millis(100),
            memory_limit: 64 << 20,
            max_instances: 128,
            max_targets: 100_000,
            max_target_bytes: 16 << 20,
            max_target_len: 64 << 10,
            max_log_lines: 100,
            max_log_lines_per_minute: 600,
            max_pattern_cost: 100_000,
        }
    }
}

/// Bytes kept as bytes, written as whole MiB.
mod mib {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &usize,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64((*bytes >> 20) as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<usize, D::Error> {
        let mib = usize::deserialize(deserializer)?;
        mib.checked_mul(1 << 20).ok_or_else(|| {
            serde::de::Error::custom(format!("{mib} MiB is more memory than can be addressed"))
        })
    }
}
