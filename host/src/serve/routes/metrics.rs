//! `GET /metrics`: the service's figures in the OpenMetrics text format
//! (which Prometheus reads), every name prefixed `invalidator_`, encoded by
//! `prometheus-client`. The pipeline's and the stream's counters come from
//! their [`figures!`](crate::figures!) declarations, so a counter added
//! there shows here without a line written in this file.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::ApiState;
use crate::figures::{Figure, FigureKind};
use crate::http::ApiError;
use crate::rules::FailureKind;

/// The quantiles of rule call latency exposed.
const QUANTILES: [f64; 2] = [0.5, 0.99];

/// One rule version's figures at the moment of the scrape.
#[derive(Debug)]
struct RuleFigures {
    name: String,
    version: String,
    calls: u64,
    /// Bytes: the largest linear memory of one instance.
    peak_memory: u64,
    failures: [u64; FailureKind::ALL.len()],
    /// Log lines dropped over the budget per minute.
    logs_dropped: u64,
    /// Seconds, for each of [`QUANTILES`], over the recent calls.
    latency: [Option<f64>; QUANTILES.len()],
}

/// Everything one scrape shows, read before encoding (the cache counts
/// need Redis, and a collector cannot wait).
#[derive(Debug)]
struct Scrape {
    /// Plain figures, each with the prefix of its group (`stream_` for
    /// the stream's), the pipeline's first.
    figures: Vec<(&'static str, Figure)>,
    rules: Vec<RuleFigures>,
    removed: crate::pipeline::RemovalCounts,
}

impl Scrape {
    fn labels(rule: &RuleFigures) -> [(&'static str, &str); 2] {
        [("rule", &rule.name), ("version", &rule.version)]
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (prefix, f) in &self.figures {
            let name = format!("{prefix}{}", f.name);
            let help = f.help.trim();
            match f.kind {
                FigureKind::Counter => {
                    let c = ConstCounter::new(f.value);
                    c.encode(encoder.encode_descriptor(&name, help, None, c.metric_type())?)?;
                }
                FigureKind::Gauge => {
                    let g = ConstGauge::new(f.value);
                    g.encode(encoder.encode_descriptor(&name, help, None, g.metric_type())?)?;
                }
            }
        }
        let counter = ConstCounter::new(0u64).metric_type();
        let mut family = encoder.encode_descriptor(
            "rule_calls",
            "Calls of each rule version in service.",
            None,
            counter,
        )?;
        for rule in &self.rules {
            let labels = Self::labels(rule);
            ConstCounter::new(rule.calls).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "rule_failures",
            "Failed calls of each rule version in service, by why: time_limit, \
             memory_limit, trap, returned, over_budget, not_loadable.",
            None,
            counter,
        )?;
        for rule in &self.rules {
            let [rule_label, version_label] = Self::labels(rule);
            for (kind, n) in FailureKind::ALL.iter().zip(rule.failures) {
                let labels = [rule_label, version_label, ("kind", kind.as_str())];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "rule_log_lines_dropped",
            "Log lines of each rule version in service dropped over its budget of lines \
             per minute (sandbox.max_log_lines_per_minute).",
            None,
            counter,
        )?;
        for rule in &self.rules {
            ConstCounter::new(rule.logs_dropped)
                .encode(family.encode_family(&Self::labels(rule))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "rule_memory_peak_bytes",
            "The most linear memory one instance of each rule version in service has \
             used, to hold against the sandbox's memory limit.",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for rule in &self.rules {
            let bytes = i64::try_from(rule.peak_memory).unwrap_or(i64::MAX);
            ConstGauge::new(bytes).encode(family.encode_family(&Self::labels(rule))?)?;
        }
        for (name, help, label, counts) in [
            (
                "removed_keys_by_rule",
                "Keys removed by what each rule named (past 1000 rules, the rest \
                 under `(others)`).",
                "rule",
                &self.removed.by_rule,
            ),
            (
                "removed_keys_by_tag",
                "Keys removed by each tag (past 1000 tags, the rest under `(others)`).",
                "tag",
                &self.removed.by_tag,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, counter)?;
            for (value, n) in counts {
                ConstCounter::new(*n).encode(family.encode_family(&[(label, value.as_str())])?)?;
            }
        }
        let gauge = ConstGauge::new(0.0f64).metric_type();
        let mut family = encoder.encode_descriptor(
            "rule_call_seconds",
            "How long the recent calls (the last 30 to 60 seconds) of each rule version \
             took, by quantile.",
            None,
            gauge,
        )?;
        for rule in &self.rules {
            let [rule_label, version_label] = Self::labels(rule);
            for (q, seconds) in QUANTILES.iter().zip(rule.latency) {
                let Some(seconds) = seconds else { continue };
                let q = q.to_string();
                let labels = [rule_label, version_label, ("quantile", q.as_str())];
                ConstGauge::new(seconds).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A figure that is not declared with [`figures!`](crate::figures!).
fn figure(name: &'static str, help: &'static str, kind: FigureKind, value: u64) -> Figure {
    Figure {
        name,
        help,
        kind,
        value,
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(api): ApiState) -> Result<impl IntoResponse, ApiError> {
    let service = &api.service;
    // The service's own figures, beside the pipeline's.
    let mut own = vec![
        figure(
            "rules_refused",
            "Rule files refused.",
            FigureKind::Counter,
            service.refused(),
        ),
        figure(
            "uptime_seconds",
            "Seconds since the service started.",
            FigureKind::Gauge,
            service.started.elapsed().as_secs(),
        ),
    ];
    let http = service.http.snapshot();
    own.extend([
        figure(
            "http_requests",
            "HTTP requests answered, of every status.",
            FigureKind::Counter,
            http.requests,
        ),
        figure(
            "http_client_errors",
            "HTTP requests answered 4xx.",
            FigureKind::Counter,
            http.client_errors,
        ),
        figure(
            "http_server_errors",
            "HTTP requests answered 5xx.",
            FigureKind::Counter,
            http.server_errors,
        ),
    ]);
    if let Ok((hits, misses)) = service.cache_counts().await {
        own.push(figure(
            "cache_hits",
            "Cache reads that found their key.",
            FigureKind::Counter,
            hits,
        ));
        own.push(figure(
            "cache_misses",
            "Cache reads that did not.",
            FigureKind::Counter,
            misses,
        ));
    }
    let mut figures: Vec<(&'static str, Figure)> = service
        .invalidator
        .stats()
        .figures()
        .into_iter()
        .chain(own)
        .map(|f| ("", f))
        .collect();
    if let Some(stream) = &service.stream {
        let stream = stream.stats().figures().into_iter();
        figures.extend(stream.map(|f| ("stream_", f)));
    }
    if let Some(postgres) = &service.postgres {
        let postgres = postgres.stats().figures().into_iter();
        figures.extend(postgres.map(|f| ("postgres_", f)));
    }
    if let Some(mysql) = &service.mysql {
        let mysql = mysql.stats().figures().into_iter();
        figures.extend(mysql.map(|f| ("mysql_", f)));
    }
    let rules = service
        .invalidator
        .rule_set()
        .rules()
        .iter()
        .map(|rule| {
            let m = rule.counters();
            RuleFigures {
                name: rule.name().to_owned(),
                version: rule.info().version.clone(),
                calls: m.calls(),
                peak_memory: m.peak_memory(),
                failures: FailureKind::ALL.map(|k| m.failures_of(k)),
                logs_dropped: rule.log_lines_dropped(),
                latency: QUANTILES.map(|q| m.latency().quantile(q).map(|d| d.as_secs_f64())),
            }
        })
        .collect();

    let mut registry = Registry::with_prefix("invalidator");
    let removed = service.invalidator.removals();
    registry.register_collector(Box::new(Scrape {
        figures,
        rules,
        removed,
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| ApiError::internal(format!("encoding the metrics failed: {e}")))?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
