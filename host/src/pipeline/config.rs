//! [`PipelineConfig`]: the pipeline's bounds and timings, with documented
//! defaults. (Redis timeouts belong to the [`Redis`](crate::connection::Redis)
//! handle: see [`RedisConfig`](crate::connection::RedisConfig).)

use std::time::Duration;

/// How the pipeline batches, bounds and retries its work.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Most commits evaluated and applied together. Batches form only when
    /// commits arrive faster than they are applied, so an idle pipeline adds
    /// no delay; this bounds the delay a busy one adds. Default 256.
    pub max_batch: usize,
    /// How long to wait for more commits before evaluating a batch. Default
    /// zero: take what is queued, never wait for more.
    pub linger: Duration,
    /// Most targets kept pending (while Redis is down or slow) before the
    /// pending work collapses into the rules' fallback targets. Default
    /// 100 000.
    pub max_pending: usize,
    /// First retry delay after a Redis error; each further retry doubles
    /// it, with jitter. Default 50 ms.
    pub retry_min: Duration,
    /// Longest delay between retries. Default 5 s.
    pub retry_max: Duration,
    /// When a newly promoted version of a rule is put back: see
    /// [`RollbackPolicy`]. `None` never rolls back.
    pub rollback: Option<RollbackPolicy>,
    /// How often expired members are pruned from every tag index, or
    /// `None` for never. Default every 10 minutes.
    pub prune_every: Option<Duration>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            linger: Duration::ZERO,
            max_pending: 100_000,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            prune_every: Some(Duration::from_secs(600)),
            rollback: Some(RollbackPolicy::default()),
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
