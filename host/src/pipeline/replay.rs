//! [`ReplayLog`]: the invalidations applied over the last window, kept to
//! be applied again on a new primary.
//!
//! A delete a primary acknowledged reaches its replicas a moment later.
//! When the primary dies within that moment, the promoted replica still
//! holds the values, and the source's position is already confirmed, so
//! nothing would ever delete them again. We know exactly what was
//! invalidated lately: after a failover, the applier applies it again on
//! the new primary before going on. Re-applying is safe (deleting is
//! idempotent) and costs only misses.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::targets::TargetSet;

/// What was applied when, over the last `window`.
#[derive(Debug)]
pub(crate) struct ReplayLog {
    window: Duration,
    /// Most targets kept: past it, the log collapses into the rules'
    /// fallback targets, which cover everything the rules could name.
    max: usize,
    entries: VecDeque<(Instant, TargetSet)>,
    len: usize,
}

impl ReplayLog {
    pub(crate) fn new(window: Duration, max: usize) -> Self {
        Self {
            window,
            max,
            entries: VecDeque::new(),
            len: 0,
        }
    }

    /// Whether anything is kept at all (a zero window keeps nothing).
    pub(crate) fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// Notes `targets` as applied now; `fallback` stands in for the whole
    /// log when it outgrows its bound.
    pub(crate) fn record(&mut self, targets: TargetSet, fallback: impl FnOnce() -> TargetSet) {
        if !self.enabled() || targets.is_empty() {
            return;
        }
        let now = Instant::now();
        self.forget_before(now);
        self.len += targets.len();
        self.entries.push_back((now, targets));
        if self.len > self.max {
            let fallback = fallback();
            tracing::warn!(
                kept = self.len,
                max = self.max,
                "the failover replay log outgrew its bound: it now holds the rules' fallback targets"
            );
            self.entries.clear();
            self.len = fallback.len();
            self.entries.push_back((now, fallback));
        }
    }

    /// Everything applied within the window, as one set.
    pub(crate) fn targets(&mut self) -> TargetSet {
        self.forget_before(Instant::now());
        let mut all = TargetSet::new();
        for (_, targets) in &self.entries {
            all.merge(targets.clone());
        }
        all
    }

    /// Whether nothing is kept.
    pub(crate) fn is_empty(&mut self) -> bool {
        self.forget_before(Instant::now());
        self.entries.is_empty()
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some((at, targets)) = self.entries.front() {
            if now.duration_since(*at) <= self.window {
                break;
            }
            self.len -= targets.len();
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Target;

    fn keys(names: &[&str]) -> TargetSet {
        names.iter().map(|k| Target::Key((*k).to_owned())).collect()
    }

    #[test]
    fn what_is_older_than_the_window_is_forgotten() {
        let mut log = ReplayLog::new(Duration::from_millis(50), 100);
        log.record(keys(&["a"]), TargetSet::new);
        std::thread::sleep(Duration::from_millis(80));
        log.record(keys(&["b"]), TargetSet::new);
        assert_eq!(log.targets(), keys(&["b"]));
        std::thread::sleep(Duration::from_millis(80));
        assert!(log.is_empty());
    }

    #[test]
    fn outgrowing_the_bound_keeps_the_fallback() {
        let mut log = ReplayLog::new(Duration::from_secs(60), 2);
        let fallback = || [Target::Pattern("*".to_owned())].into_iter().collect();
        log.record(keys(&["a", "b"]), fallback);
        log.record(keys(&["c"]), fallback);
        assert_eq!(log.targets(), fallback());
    }

    #[test]
    fn a_zero_window_keeps_nothing() {
        let mut log = ReplayLog::new(Duration::ZERO, 10);
        log.record(keys(&["a"]), TargetSet::new);
        assert!(log.is_empty() && !log.enabled());
    }
}
