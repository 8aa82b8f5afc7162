//! [`History`]: the service's recent figures, sampled every
//! [`EVERY`] into a bounded ring covering the last [`SPAN`]: invalidations
//! applied per second and each rule's p99 latency. The console draws its
//! charts from it (`GET /v1/history`); nothing is kept beyond the span.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::pipeline::Invalidator;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(5);
/// How far back the samples go.
pub const SPAN: Duration = Duration::from_secs(15 * 60);
const SAMPLES: usize = (SPAN.as_secs() / EVERY.as_secs()) as usize;

/// One sample.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Keys, patterns and tags applied per second since the sample before.
    pub applied_per_sec: f64,
    /// Commits handed over per second since the sample before.
    pub commits_per_sec: f64,
    /// Each rule in service's p99 latency, in ms, if it had calls.
    pub p99_ms: Vec<(String, Option<f64>)>,
}

/// The ring of samples.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .expect("history lock")
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().expect("history lock");
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }
}

/// Samples `invalidator` into `history` every [`EVERY`], for ever.
pub(crate) async fn sample(invalidator: Arc<Invalidator>, history: Arc<History>) {
    let mut interval = tokio::time::interval(EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(std::time::Instant, u64, u64)> = None;
    loop {
        interval.tick().await;
        let stats = invalidator.stats();
        let applied = stats.keys + stats.patterns + stats.tags;
        let now = std::time::Instant::now();
        let (applied_per_sec, commits_per_sec) = match last {
            Some((at, a, c)) => {
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                (
                    applied.saturating_sub(a) as f64 / secs,
                    stats.commits.saturating_sub(c) as f64 / secs,
                )
            }
            None => (0.0, 0.0),
        };
        last = Some((now, applied, stats.commits));
        let p99_ms = invalidator
            .rule_set()
            .rules()
            .iter()
            .map(|r| {
                let p99 = r.counters().latency().quantile(0.99);
                let ms = p99.map(|d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0);
                (r.name().to_owned(), ms)
            })
            .collect();
        history.push(Sample {
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            applied_per_sec: (applied_per_sec * 10.0).round() / 10.0,
            commits_per_sec: (commits_per_sec * 10.0).round() / 10.0,
            p99_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_span_and_no_more() {
        let history = History::default();
        for i in 0..SAMPLES + 10 {
            history.push(Sample {
                at_ms: i as u64,
                applied_per_sec: 0.0,
                commits_per_sec: 0.0,
                p99_ms: Vec::new(),
            });
        }
        let samples = history.samples();
        assert_eq!(samples.len(), SAMPLES);
        assert_eq!(samples[0].at_ms, 10, "the oldest went first");
    }
}
