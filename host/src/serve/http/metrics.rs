//! `GET /metrics`: the service's figures in the Prometheus text format
//! (version 0.0.4), every name prefixed `invalidator_`.

use std::fmt::Write;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::ApiState;
use crate::histogram::Histogram;
use crate::rules::{FailureKind, LoadedRule};
use axum::extract::State;

/// Writes Prometheus families into a string.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        let _ = writeln!(self.text, "invalidator_{name} {value}");
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP invalidator_{name} {help}");
        let _ = writeln!(self.text, "# TYPE invalidator_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "invalidator_{name}{{{labels}}} {value}");
    }

    /// A summary of each rule's call latencies, in seconds.
    fn latency(&mut self, rules: &[(String, &Histogram)]) {
        let name = "rule_call_seconds";
        self.family(name, "summary", "How long rule calls took.");
        for (labels, h) in rules {
            for q in [0.5, 0.99] {
                if let Some(d) = h.quantile(q) {
                    self.sample(name, &format!("{labels},quantile=\"{q}\""), d.as_secs_f64());
                }
            }
            let _ = writeln!(
                self.text,
                "invalidator_{name}_sum{{{labels}}} {}",
                h.sum().as_secs_f64()
            );
            let _ = writeln!(
                self.text,
                "invalidator_{name}_count{{{labels}}} {}",
                h.count()
            );
        }
    }
}

/// A label value, escaped as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn rule_labels(rule: &LoadedRule) -> String {
    format!(
        "rule=\"{}\",version=\"{}\"",
        escape(rule.name()),
        escape(&rule.info().version)
    )
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(api): ApiState) -> impl IntoResponse {
    let service = &api.service;
    let s = service.invalidator.stats();
    let mut out = Exposition::default();
    let counters = [
        (
            "commits_total",
            "Commits handed over (manual invalidations included).",
            s.commits,
        ),
        (
            "evaluated_total",
            "Commits run through the rules.",
            s.evaluated,
        ),
        (
            "batches_total",
            "Batches commits were evaluated in.",
            s.batches,
        ),
        (
            "rule_failures_total",
            "Rule calls that failed; their fallback was applied.",
            s.rule_failures,
        ),
        ("keys_total", "Exact keys applied.", s.keys),
        ("patterns_total", "Patterns applied.", s.patterns),
        ("tags_total", "Tags applied.", s.tags),
        (
            "deleted_total",
            "Keys that existed and were deleted.",
            s.deleted,
        ),
        ("sweeps_total", "Keyspace sweeps for patterns.", s.sweeps),
        ("retries_total", "Retries after a store error.", s.retries),
        ("errors_total", "Store errors.", s.errors),
        (
            "unapplied_total",
            "Targets the store refused with an error no retry can fix.",
            s.unapplied,
        ),
        (
            "failed_commits_total",
            "Commits reported failed because the store refused a target of their batch for good.",
            s.failed_commits,
        ),
        (
            "collapses_total",
            "Times pending work collapsed into the fallbacks.",
            s.collapses,
        ),
        ("swaps_total", "Rule set swaps.", s.swaps),
        ("rollbacks_total", "Rule versions rolled back.", s.rollbacks),
        (
            "shadow_differences_total",
            "Commits where a shadow rule differed.",
            s.shadow_differences,
        ),
        (
            "rules_refused_total",
            "Rule files refused.",
            service.refused(),
        ),
    ];
    for (name, help, value) in counters {
        out.single(name, "counter", help, value);
    }
    out.single(
        "queued",
        "gauge",
        "Commits handed over, not yet evaluated.",
        s.queued,
    );
    out.single(
        "pending",
        "gauge",
        "Targets evaluated, not yet applied.",
        s.pending,
    );
    out.single(
        "uptime_seconds",
        "gauge",
        "Seconds since the service started.",
        service.started.elapsed().as_secs(),
    );
    if let Ok((hits, misses)) = service.cache_counts().await {
        out.single(
            "cache_hits_total",
            "counter",
            "Cache reads that found their key.",
            hits,
        );
        out.single(
            "cache_misses_total",
            "counter",
            "Cache reads that did not.",
            misses,
        );
    }
    if let Some(stream) = &service.stream {
        let st = stream.stats();
        let stream_counters = [
            (
                "stream_read_total",
                "Stream entries handed to the pipeline.",
                st.read,
            ),
            (
                "stream_claimed_total",
                "Stream entries claimed from a stopped consumer.",
                st.claimed,
            ),
            (
                "stream_acked_total",
                "Stream entries acknowledged once applied.",
                st.acked,
            ),
            (
                "stream_dead_lettered_total",
                "Stream entries sent to the dead-letter stream.",
                st.dead_lettered,
            ),
        ];
        for (name, help, value) in stream_counters {
            out.single(name, "counter", help, value);
        }
        out.single(
            "stream_in_flight",
            "gauge",
            "Stream entries read, not yet acknowledged.",
            st.in_flight,
        );
    }
    let rules = service.invalidator.rules();
    let labelled: Vec<(String, &LoadedRule)> =
        rules.rules().iter().map(|r| (rule_labels(r), r)).collect();
    out.family("rule_calls_total", "counter", "Calls of each rule version.");
    for (labels, rule) in &labelled {
        out.sample("rule_calls_total", labels, rule.metrics().calls());
    }
    out.family(
        "rule_errors_total",
        "counter",
        "Failed calls of each rule version.",
    );
    for (labels, rule) in &labelled {
        out.sample("rule_errors_total", labels, rule.metrics().failures());
    }
    out.family(
        "rule_failures_by_kind_total",
        "counter",
        "Failed calls of each rule version, by why: time_limit, memory_limit, trap, \
         returned, over_budget, not_loadable.",
    );
    for (labels, rule) in &labelled {
        for kind in FailureKind::ALL {
            let labels = format!("{labels},kind=\"{}\"", kind.as_str());
            out.sample(
                "rule_failures_by_kind_total",
                &labels,
                rule.metrics().failures_of(kind),
            );
        }
    }
    let histograms: Vec<(String, &Histogram)> = labelled
        .iter()
        .map(|(l, r)| (l.clone(), r.metrics().latency()))
        .collect();
    out.latency(&histograms);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out.text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
