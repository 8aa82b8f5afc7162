//! [`serve`]: the `invalidator serve` command, a long-running service.
//!
//! It only wires the parts together and runs the operations API
//! ([`http`]): rules come from a watched folder and are swapped live as
//! their files change ([`crate::reload`]); commits come from any of three
//! [`sources`](crate::source), at once if wanted: a JSON Lines input, the
//! HTTP intake, a Redis stream shared by any number of processes, and
//! Postgres's logical replication;
//! their invalidations are applied by the pipeline to Redis, or to an
//! in-process store. Its settings are [`ServeConfig`].
//!
//! Stopping (SIGTERM, Ctrl-C, or the end of the input when it is the only
//! source) takes no new work, finishes what is in flight, acknowledges it,
//! and prints a summary.

mod config;
mod http;
mod signals;

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

pub use crate::source::postgres::{PostgresConfig, PostgresStats};
pub use crate::source::stream::StreamStats;
pub use config::{ConfigError, ENV_PREFIX, HttpConfig, LogFormat, ServeConfig, StreamConfig};

use crate::apply::ApplySummary;
use crate::cache::Cache;
use crate::connection::{Redis, RedisConfig, RedisError};
use crate::pipeline::Invalidator;
use crate::reload::{Catalog, Refresh, Reloader};
use crate::rules::{RuleSet, Runtime};
use crate::sink::{MemoryStore, Store};
use crate::source::http::{HttpSettings, HttpSource};
use crate::source::lines::LinesSource;
use crate::source::postgres::{PostgresError, PostgresSettings, PostgresSource, RuleTables};
use crate::source::stream::{StreamSettings, StreamSource};
use crate::source::{Intake, Source, SourceReport};

/// What a `serve` run did; printed as its last line when it stops: the
/// fields of an `apply` summary, then what happened to the rules and the
/// stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServeSummary {
    /// Commits, targets, deletions and errors, as `apply` counts them;
    /// `complete` also needs every stream entry read acknowledged.
    #[serde(flatten)]
    pub applied: ApplySummary,
    /// Rule sets swapped into service while running.
    pub swaps: u64,
    /// Rule files refused (the running version kept serving).
    pub refused: u64,
    /// New rule versions rolled back for failing too often.
    pub rollbacks: u64,
    /// Commits on which a shadow rule's targets differed from the live
    /// rule's.
    pub shadow_differences: u64,
    /// The stream source's counters, when consuming a stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamStats>,
    /// The Postgres source's counters, when reading one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresStats>,
}

/// The running service, as the HTTP handlers see it.
pub(crate) struct Service {
    pub(crate) invalidator: Arc<Invalidator>,
    pub(crate) reloader: Reloader,
    pub(crate) cache: Cache,
    pub(crate) stream: Option<Arc<StreamSource>>,
    pub(crate) postgres: Option<Arc<PostgresSource>>,
    pub(crate) started: Instant,
    refused_at_start: u64,
}

impl Service {
    /// Rule files refused since the start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused_at_start + self.reloader.refused()
    }

    /// Ready when rules are in service and the cache store answers; else
    /// what is missing.
    pub(crate) async fn ready(&self) -> Result<(), String> {
        if self.invalidator.rules().rules().is_empty() {
            return Err("no rule in service: the rules folder holds no valid rule file".into());
        }
        if let Some(postgres) = &self.postgres {
            postgres.ready()?;
        }
        let store = self.invalidator.store();
        match tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the cache store does not answer: {e}")),
            Err(_) => Err(format!(
                "the cache store {} does not answer within 2 s",
                store.describe()
            )),
        }
    }

    /// The cache store's hits and misses.
    pub(crate) async fn cache_counts(&self) -> Result<(u64, u64), RedisError> {
        self.invalidator.store().hits_and_misses().await
    }
}

/// Puts what a refresh of the rules folder produced into service. With a
/// Postgres source, the publication first follows the tables of the rules
/// about to serve (shadows included), so that a new table's writes are
/// streamed from the swap on.
fn apply_change(invalidator: &Invalidator, postgres: Option<&PostgresSource>, change: &Refresh) {
    if let Some(postgres) = postgres
        && (change.set.is_some() || change.shadows.is_some())
    {
        let rules = change.set.clone().unwrap_or_else(|| invalidator.rules());
        let shadows = change.shadows.clone().or_else(|| invalidator.shadows());
        postgres.follow_rules(RuleTables::of(&rules, shadows.as_deref()));
    }
    if let Some(set) = &change.set {
        invalidator.swap_rules(set.clone());
    }
    if let Some(shadows) = &change.shadows {
        invalidator.set_shadows(Some(shadows.clone()));
    }
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The rules folder is not a folder.
    #[error("rules folder `{}` is not a folder", .0.display())]
    RulesFolder(std::path::PathBuf),
    /// The configuration is unusable (the compile cache).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A stream named with no Redis to read it from.
    #[error("{0}")]
    Stream(String),
    /// The rule runtime could not start (its compile cache, say).
    #[error(transparent)]
    Runtime(#[from] crate::rules::LoadError),
    /// The Redis address is not one.
    #[error(transparent)]
    Store(#[from] RedisError),
    /// The rules folder cannot be watched.
    #[error(transparent)]
    Watch(#[from] crate::reload::WatchError),
    /// A source could not start.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// The Postgres source could not start.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
}

/// The store `config` names: Redis, or the in-process store.
fn open_store(config: &ServeConfig) -> Result<Store, RedisError> {
    Ok(match &config.redis {
        Some(url) => Store::Redis(Arc::new(Redis::open(url, RedisConfig::default())?)),
        None => Store::Memory(Arc::new(MemoryStore::new())),
    })
}

/// Serves as `config` says until stopped: loads and watches the rules,
/// takes commits from `input` (if given), the HTTP API and the stream (if
/// configured), and on stopping waits up to `shutdown_timeout` for
/// the work in flight to be applied and acknowledged.
///
/// When the HTTP API listens, `on_listening` is called with its address
/// once requests are accepted.
pub async fn serve(
    config: ServeConfig,
    input: Option<Box<dyn BufRead + Send>>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<ServeSummary, ServeError> {
    let dir = config.rules.clone();
    if !dir.is_dir() {
        return Err(ServeError::RulesFolder(dir));
    }
    let cache_dir = config.compile_cache_dir()?;
    let runtime = Runtime::with_compile_cache(config.sandbox.clone(), &cache_dir)?;
    let store = open_store(&config)?;
    let mut catalog = Catalog::new(runtime, &dir);
    let first = catalog.refresh();
    for (path, reason) in &first.rejected {
        tracing::error!(file = %path.display(), "rule file refused: {reason}");
    }
    let rules = first
        .set
        .unwrap_or_else(|| Arc::new(RuleSet::new(Vec::new()).expect("no names clash")));
    if rules.rules().is_empty() {
        tracing::warn!(dir = %dir.display(), "no rule in service yet; waiting for rule files");
    }
    for rule in rules.rules() {
        tracing::info!(rule = rule.name(), version = %rule.info().version, hash = rule.hash(), "in service");
    }
    let described = store.describe();
    let cache = Cache::with_store(store.clone());
    let invalidator = Arc::new(Invalidator::start_with(
        rules,
        store,
        config.pipeline.clone(),
    ));
    let postgres = match &config.postgres.url {
        Some(_) => Some(Arc::new(
            PostgresSource::prepare(PostgresSettings {
                config: config.postgres.clone(),
                retry: (config.pipeline.retry_min, config.pipeline.retry_max),
                drain: config.shutdown_timeout,
                tables: RuleTables::of(&invalidator.rules(), first.shadows.as_deref()),
            })
            .await?,
        )),
        None => None,
    };
    invalidator.set_shadows(first.shadows);
    let reloader = {
        let invalidator = invalidator.clone();
        let postgres = postgres.clone();
        Reloader::watch(catalog, move |change| {
            apply_change(&invalidator, postgres.as_deref(), change)
        })?
    };
    // A file that arrived between the first look and the start of the
    // watching would otherwise wait for the next change.
    reloader.refresh();

    let (stop, stopping) = watch::channel(false);
    let drain = config.shutdown_timeout;
    let stream = match stream_settings(&config, drain).map_err(ServeError::Stream)? {
        Some(settings) => Some(Arc::new(StreamSource::new(settings)?)),
        None => None,
    };
    let service = Arc::new(Service {
        invalidator: invalidator.clone(),
        reloader,
        cache,
        stream: stream.clone(),
        postgres: postgres.clone(),
        started: Instant::now(),
        refused_at_start: first.rejected.len() as u64,
    });

    let intake = Intake::new(invalidator.clone());
    let mut tasks = Vec::new();
    if let Some(listen) = &config.http.listen {
        let api = Arc::new(http::Api {
            service: service.clone(),
            body_limit: config.http.body_limit_bytes,
        });
        let settings = HttpSettings {
            token: config.http.token.clone(),
            read_token: config.http.read_token.clone(),
            body_limit: config.http.body_limit_bytes,
            wait_timeout: config.http.wait_timeout,
            limits: crate::source::http::Limits {
                header_timeout: config.http.header_timeout,
                body_timeout: config.http.body_timeout,
                max_connections: config.http.max_connections,
            },
        };
        let operations = http::router(api, settings.token.clone(), settings.read_token.clone());
        let source = HttpSource::bind(listen, settings, operations).await?;
        let addr = source.addr();
        tasks.push(spawn_source(source, &intake, &stopping));
        tracing::info!(%addr, "HTTP API listening");
        on_listening(addr);
    }
    if let Some(stream) = &stream {
        tasks.push(tokio::spawn(
            stream.clone().run(intake.clone(), stopping.clone()),
        ));
    }
    if let Some(postgres) = &postgres {
        tasks.push(tokio::spawn(
            postgres.clone().run(intake.clone(), stopping.clone()),
        ));
    }
    tracing::info!(store = described, dir = %dir.display(), "serving; watching for rule changes");

    let only_input = tasks.is_empty();
    let malformed = match input {
        Some(input) => read_input(input, &intake, &stopping, only_input).await,
        None => {
            let signal = signals::stopped().await;
            tracing::info!("{signal}: taking no new work, finishing what is in flight");
            0
        }
    };

    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let flushed = invalidator.flush_timeout(drain).await;
    if let Err(e) = &flushed {
        eprintln!("error: {e}");
    }
    let stats = invalidator.stats();
    let stream = stream.map(|s| s.stats());
    let postgres = postgres.map(|s| s.stats());
    let mut applied = ApplySummary::new(&stats, malformed, flushed.is_ok());
    applied.complete &= stream.is_none_or(|s| s.in_flight == 0);
    applied.complete &= postgres.is_none_or(|s| s.in_flight == 0);
    Ok(ServeSummary {
        applied,
        swaps: stats.swaps,
        refused: service.refused(),
        rollbacks: stats.rollbacks,
        shadow_differences: stats.shadow_differences,
        stream,
        postgres,
    })
}

/// Runs `source` on its own task.
fn spawn_source<S: Source>(
    source: S,
    intake: &Intake,
    stopping: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<SourceReport> {
    tokio::spawn(Arc::new(source).run(intake.clone(), stopping.clone()))
}

/// The stream source's settings, when `config` names a stream.
fn stream_settings(
    config: &ServeConfig,
    drain: Duration,
) -> Result<Option<StreamSettings>, String> {
    let s = &config.stream;
    let (Some(name), Some(dead_letter)) = (s.name.clone(), config.dead_letter()) else {
        return Ok(None);
    };
    let Some(redis) = config.stream_redis() else {
        return Err(format!(
            "stream `{name}` has no Redis: set `stream.redis` or `redis`"
        ));
    };
    Ok(Some(StreamSettings {
        redis: redis.to_owned(),
        name,
        group: s.group.clone(),
        consumer: config.consumer_name(),
        dead_letter,
        claim_idle: s.claim_idle,
        max_attempts: s.max_attempts,
        read_count: s.read_count,
        block: s.block,
        max_in_flight: s.max_in_flight,
        drain,
    }))
}

/// Hands every commit of `input` to the pipeline. When the input is the
/// only source, its end stops the service; otherwise the service goes on
/// until a signal. Returns how many lines were malformed.
async fn read_input(
    input: Box<dyn BufRead + Send>,
    intake: &Intake,
    stopping: &watch::Receiver<bool>,
    only_source: bool,
) -> u64 {
    let lines = Arc::new(LinesSource::new(input, std::io::stderr()));
    let reading = lines.run(intake.clone(), stopping.clone());
    let signal = signals::stopped();
    tokio::pin!(signal);
    let report = tokio::select! {
        report = reading => report,
        signal = &mut signal => {
            tracing::info!("{signal}: taking no new work, finishing what was handed over");
            return 0;
        }
    };
    if !only_source {
        tracing::info!("the input ended; still serving the other sources");
        let signal = signal.await;
        tracing::info!("{signal}: taking no new work, finishing what is in flight");
    }
    report.malformed
}
