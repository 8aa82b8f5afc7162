//! [`PipelineConfig`]: the pipeline's bounds and timings, with documented
//! defaults, read as they are from the `[pipeline]` section of the
//! configuration (durations as text with a unit). (Redis timeouts belong to
//! the [`Redis`](crate::redis::Redis) handle: see
//! [`RedisConfig`](crate::redis::RedisConfig).)

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::feed::FeedConfig;

/// How the pipeline batches, bounds and retries its work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most commits evaluated and applied together. Batches form only when
    /// commits arrive faster than they are applied, so an idle pipeline adds
    /// no delay; this bounds the delay a busy one adds. Default 256.
    pub max_batch: usize,
    /// How long to wait for more commits before evaluating a batch. Default
    /// zero: take what is queued, never wait for more.
    #[serde(with = "crate::duration::required")]
    pub linger: Duration,
    /// Most targets kept pending (while Redis is down or slow) before the
    /// pending work collapses into the rules' fallback targets. Default
    /// 100 000.
    pub max_pending: usize,
    /// First retry delay after a Redis error; each further retry doubles
    /// it, with jitter. Default 50 ms.
    #[serde(with = "crate::duration::required")]
    pub retry_min: Duration,
    /// Longest delay between retries. Default 5 s.
    #[serde(with = "crate::duration::required")]
    pub retry_max: Duration,
    /// How often expired members are pruned from every tag index, or
    /// `None` for never (`never` in the configuration). Default every 10
    /// minutes.
    #[serde(with = "crate::duration::optional")]
    pub prune_every: Option<Duration>,
    /// Text put before every key and pattern the rules (or an operator)
    /// name, to reach the keys as the application stores them: a Django
    /// project that sets `KEY_PREFIX = "site"` and `VERSION = 2` stores
    /// `turnus_data_1` at `site:2:turnus_data_1`, so it sets `site:2:`.
    /// Tags are not prefixed (their indexes hold the keys as stored).
    /// Default empty: keys are applied as named.
    pub key_prefix: String,
    /// When a newly promoted version of a rule is put back: see
    /// [`RollbackPolicy`]. `None` never rolls back (a `never` window in
    /// the configuration). Last, because it is a table of its own in TOML.
    #[serde(with = "rollback_setting")]
    pub rollback: Option<RollbackPolicy>,
    /// How many applied targets (and keys their tags listed) the explain
    /// log keeps ([`Invalidator::explain`](super::Invalidator::explain));
    /// 0 keeps none and collects nothing for it. Default 0 (off): keeping
    /// it costs about a tenth of the end-to-end throughput (see the
    /// README's "Explain"); [`DEFAULT_EXPLAIN_CAPACITY`] is the capacity
    /// `serve --explain` gives it. Set by `serve` from its own `[explain]`
    /// section, not from `[pipeline]`.
    #[serde(skip)]
    pub explain_capacity: usize,
    /// The invalidation feed: a Redis stream with an entry per applied
    /// batch ([`FeedConfig`]). Default none. Set by `serve` from its own
    /// `[feed]` section, not from `[pipeline]`; only a Redis store feeds.
    #[serde(skip)]
    pub feed: FeedConfig,
}

/// The explain log's capacity when it is on and none is given: applied
/// targets, and the keys their tags listed.
pub const DEFAULT_EXPLAIN_CAPACITY: usize = 100_000;

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            linger: Duration::ZERO,
            max_pending: 100_000,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            prune_every: Some(Duration::from_secs(600)),
            key_prefix: String::new(),
            rollback: Some(RollbackPolicy::default()),
            explain_capacity: 0,
            feed: FeedConfig::default(),
        }
    }
}

/// When a rule version that just replaced another is rolled back: if,
/// within `window` of its promotion, it has run on at least `min_commits`
/// commits and failed on more than `max_failure_rate` of them, the previous
/// version is restored, and the failing version is refused until its file
/// changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollbackPolicy {
    /// How long a new version is watched. Default 60 s.
    pub window: Duration,
    /// Commits it must have run on before it is judged. Default 20.
    pub min_commits: u64,
    /// The failure rate above which it is rolled back. Default 0.5.
    pub max_failure_rate: f64,
}

impl Default for RollbackPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            min_commits: 20,
            max_failure_rate: 0.5,
        }
    }
}

/// `[pipeline.rollback]` as written: the policy's fields, where a `never`
/// window switches rolling back off, so that one table says it all.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RollbackSetting {
    #[serde(with = "crate::duration::optional")]
    window: Option<Duration>,
    min_commits: u64,
    max_failure_rate: f64,
}

impl Default for RollbackSetting {
    fn default() -> Self {
        let d = RollbackPolicy::default();
        Self {
            window: Some(d.window),
            min_commits: d.min_commits,
            max_failure_rate: d.max_failure_rate,
        }
    }
}

/// Reads and writes `Option<RollbackPolicy>` as a [`RollbackSetting`].
mod rollback_setting {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{RollbackPolicy, RollbackSetting};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<RollbackPolicy>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let setting = match value {
            Some(p) => RollbackSetting {
                window: Some(p.window),
                min_commits: p.min_commits,
                max_failure_rate: p.max_failure_rate,
            },
            None => RollbackSetting {
                window: None,
                ..RollbackSetting::default()
            },
        };
        setting.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<RollbackPolicy>, D::Error> {
        let s = RollbackSetting::deserialize(deserializer)?;
        Ok(s.window.map(|window| RollbackPolicy {
            window,
            min_commits: s.min_commits,
            max_failure_rate: s.max_failure_rate,
        }))
    }
}
