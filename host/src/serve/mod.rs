//! [`serve`]: the `invalidator serve` command, a long-running service.
//!
//! It only wires the parts together and runs the operations API
//! ([`routes`]): rules come from a watched folder and are swapped live as
//! their files change ([`crate::reload`]); commits come from any of the
//! [`sources`](crate::source), at once if wanted: a JSON Lines input, the
//! HTTP intake, a Redis stream shared by any number of processes, and
//! Postgres's logical replication; their invalidations are applied by the
//! pipeline to Redis, or to an in-process store. Its settings are
//! [`ServeConfig`]; what the API sees of it is the [`Service`].
//!
//! Stopping (SIGTERM, Ctrl-C, or the end of the input when it is the only
//! source) takes no new work, finishes what is in flight, acknowledges it,
//! and returns a summary.

mod config;
mod console;
mod history;
mod redis_settings;
mod routes;
mod service;
mod signals;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::source::http::HttpConfig;
pub use crate::source::postgres::{PostgresConfig, PostgresStats};
pub use crate::source::stream::{StreamConfig, StreamStats};
pub use config::{ConfigError, ENV_PREFIX, ExplainConfig, LogFormat, ServeConfig, Unusable};
pub use history::{History, Sample};
pub use redis_settings::RedisSettings;
pub use service::NotReady;

use crate::batch::replay::ApplySummary;
use crate::cache::Cache;
use crate::pipeline::{Invalidator, PipelineConfig};
use crate::redis::{Redis, RedisError};
use crate::reload::{Refresh, Reloader, RuleFolder};
use crate::rules::{RuleSet, Runtime};
use crate::sink::{MemoryStore, Store};
use crate::source::http::HttpSource;
use crate::source::lines::LinesSource;
use crate::source::mysql::{MysqlError, MysqlHandle, MysqlSettings, MysqlSource, MysqlStats};
use crate::source::postgres::{
    PostgresError, PostgresHandle, PostgresSettings, PostgresSource, RuleTables,
};
use crate::source::stream::{StreamHandle, StreamSource};
use crate::source::{Intake, Source, SourceReport};
use service::Service;
use signals::Signals;

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
    /// The MySQL source's counters, when reading one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mysql: Option<MysqlStats>,
}

/// Puts what a refresh of the rules folder produced into service. With a
/// Postgres source, the publication first follows the tables of the rules
/// about to serve (shadows included), so that a new table's writes are
/// streamed from the swap on.
fn apply_change(invalidator: &Invalidator, postgres: Option<&PostgresHandle>, change: &Refresh) {
    if let Some(postgres) = postgres
        && (change.set.is_some() || change.shadows.is_some())
    {
        let rules = change.set.clone().unwrap_or_else(|| invalidator.rule_set());
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
    #[error("stream `{name}` has no Redis: set `stream.redis` or `redis`")]
    StreamWithoutRedis {
        /// The stream.
        name: String,
    },
    /// The rule runtime could not start (its compile cache, say).
    #[error(transparent)]
    Runtime(#[from] crate::rules::LoadError),
    /// The Redis address is not one.
    #[error(transparent)]
    Store(#[from] RedisError),
    /// Redis's TLS certificate does not verify (or ours was refused): no
    /// retry can fix it, so `serve` does not start.
    #[error("redis at `{endpoint}` refused over TLS: {reason}")]
    Certificate {
        /// The endpoint, without its password.
        endpoint: String,
        /// What did not verify.
        reason: String,
    },
    /// The rules folder cannot be watched.
    #[error(transparent)]
    Watch(#[from] crate::reload::WatchError),
    /// A source could not start.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// The HTTP API cannot listen where asked.
    #[error(transparent)]
    Listen(#[from] crate::http::ListenError),
    /// The Postgres source could not start.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    /// The MySQL source could not start.
    #[error(transparent)]
    Mysql(#[from] MysqlError),
}

/// Serves as `config` says until stopped: loads and watches the rules,
/// takes commits from `input` (if given), the HTTP API, the stream and
/// Postgres (if configured), and on stopping waits up to
/// `shutdown_timeout` for the work in flight to be applied and
/// acknowledged.
///
/// When the HTTP API listens, `on_listening` is called with its address
/// once requests are accepted.
pub async fn serve(
    config: ServeConfig,
    input: Option<LinesSource>,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<ServeSummary, ServeError> {
    let mut signals = Signals::listen();
    let (stop, stopping) = watch::channel(false);
    let rules = start_rules(&config).await?;
    let (service, sources) = start_sources(&config, rules, &stopping, on_listening).await?;
    let intake = Intake::new(service.invalidator.clone());
    let only_input = sources.is_empty();
    let malformed = wait_for_stop(&mut signals, input, &intake, &stopping, only_input).await;
    let _ = stop.send(true);
    for task in sources {
        let _ = task.await;
    }
    let flushed = service
        .invalidator
        .flush_timeout(config.shutdown_timeout)
        .await;
    if let Err(error) = &flushed {
        tracing::error!(%error, "stopping with invalidations not applied");
    }
    Ok(summarise(&service, malformed, flushed.is_ok()))
}

/// The rules in service, and what serves them: the pipeline, the watcher
/// of their folder, and the Postgres source that follows their tables.
struct Rules {
    invalidator: Arc<Invalidator>,
    reloader: Reloader,
    cache: Cache,
    postgres: Option<PostgresSource>,
    mysql: Option<MysqlSource>,
    refused_at_start: u64,
}

/// Loads the rules folder, starts the pipeline on the store, prepares the
/// Postgres source (whose publication names the rules' tables) and
/// watches the folder for changes.
async fn start_rules(config: &ServeConfig) -> Result<Rules, ServeError> {
    let dir = config.rules.clone();
    if !dir.is_dir() {
        return Err(ServeError::RulesFolder(dir));
    }
    let runtime =
        Runtime::with_compile_cache(config.sandbox.clone(), &config.compile_cache_dir()?)?;
    let store = open_store(config)?;
    check_certificates(&store).await?;
    let mut folder = RuleFolder::new(runtime, &dir);
    let first = folder.refresh();
    let rules = first_rules(&first, &dir);
    let cache = Cache::with_store(store.clone());
    let pipeline = PipelineConfig {
        explain_capacity: config.explain.pipeline_capacity(),
        feed: config.feed.clone(),
        ..config.pipeline.clone()
    };
    let invalidator = Arc::new(Invalidator::start(rules, store, pipeline));
    let postgres = prepare_postgres(config, &invalidator, &first).await?;
    let mysql = prepare_mysql(config, &invalidator).await?;
    invalidator.set_shadows(first.shadows.clone());
    let reloader = {
        let invalidator = invalidator.clone();
        let following = postgres.as_ref().map(PostgresSource::handle);
        Reloader::watch(folder, move |change| {
            apply_change(&invalidator, following.as_ref(), change)
        })?
    };
    // A file that arrived between the first look and the start of the
    // watching would otherwise wait for the next change.
    reloader.refresh();
    Ok(Rules {
        invalidator,
        reloader,
        cache,
        postgres,
        mysql,
        refused_at_start: first.rejected.len() as u64,
    })
}

/// The Postgres source, when `config` names a database: its publication
/// names the tables of the rules the first look found, shadows included.
async fn prepare_postgres(
    config: &ServeConfig,
    invalidator: &Invalidator,
    first: &Refresh,
) -> Result<Option<PostgresSource>, ServeError> {
    if config.postgres.url.is_none() {
        return Ok(None);
    }
    let source = PostgresSource::prepare(PostgresSettings {
        config: config.postgres.clone(),
        retry: (config.pipeline.retry_min, config.pipeline.retry_max),
        drain: config.shutdown_timeout,
        tables: RuleTables::of(&invalidator.rule_set(), first.shadows.as_deref()),
    })
    .await?;
    Ok(Some(source))
}

/// The MySQL source, when `config` names a server; its position is kept
/// in the pipeline's Redis.
async fn prepare_mysql(
    config: &ServeConfig,
    invalidator: &Invalidator,
) -> Result<Option<MysqlSource>, ServeError> {
    if config.mysql.url.is_none() {
        return Ok(None);
    }
    let position = match invalidator.store() {
        Store::Redis(redis) => Some(redis.clone()),
        Store::Memory(_) => {
            tracing::warn!(
                "the MySQL source keeps its position in Redis; with the in-process store, each \
                 start reads from the server's current position"
            );
            None
        }
    };
    let source = MysqlSource::prepare(MysqlSettings {
        config: config.mysql.clone(),
        retry: (config.pipeline.retry_min, config.pipeline.retry_max),
        drain: config.shutdown_timeout,
        position,
    })
    .await?;
    Ok(Some(source))
}

/// The rule set the first look at the folder found, logged file by file.
fn first_rules(first: &Refresh, dir: &std::path::Path) -> Arc<RuleSet> {
    for (path, reason) in &first.rejected {
        tracing::error!(file = %path.display(), "rule file refused: {reason}");
    }
    let rules = first
        .set
        .clone()
        .unwrap_or_else(|| Arc::new(RuleSet::new(Vec::new()).expect("no names clash")));
    if rules.rules().is_empty() {
        tracing::warn!(dir = %dir.display(), "no rule in service yet; waiting for rule files");
    }
    for rule in rules.rules() {
        tracing::info!(rule = rule.name(), version = %rule.info().version, hash = rule.hash(), "in service");
    }
    rules
}

/// Starts each configured source on a task of its own (the HTTP API, with
/// the operations routes on its listener; the stream; Postgres), and
/// returns the service the API sees, with the sources' handles.
async fn start_sources(
    config: &ServeConfig,
    rules: Rules,
    stopping: &watch::Receiver<bool>,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(Arc<Service>, Vec<JoinHandle<SourceReport>>), ServeError> {
    let stream = stream_source(config)?;
    let service = Arc::new(Service {
        invalidator: rules.invalidator,
        reloader: rules.reloader,
        cache: rules.cache,
        stream: stream.as_ref().map(StreamSource::handle),
        postgres: rules.postgres.as_ref().map(PostgresSource::handle),
        mysql: rules.mysql.as_ref().map(MysqlSource::handle),
        started: Instant::now(),
        refused_at_start: rules.refused_at_start,
        history: Arc::new(history::History::default()),
        http: Arc::default(),
    });
    // Ends with the runtime, when `serve` returns.
    tokio::spawn(history::sample(
        service.invalidator.clone(),
        service.history.clone(),
    ));
    let intake = Intake::new(service.invalidator.clone());
    let mut tasks = Vec::new();
    if let Some(listen) = &config.http.listen {
        let source = bind_http(config, listen, &service, stopping).await?;
        let addr = source.addr();
        tasks.push(spawn(source, &intake, stopping));
        tracing::info!(%addr, "HTTP API listening");
        on_listening(addr);
    }
    if let Some(stream) = stream {
        tasks.push(spawn(stream, &intake, stopping));
    }
    if let Some(postgres) = rules.postgres {
        tasks.push(spawn(postgres, &intake, stopping));
    }
    if let Some(mysql) = rules.mysql {
        tasks.push(spawn(mysql, &intake, stopping));
    }
    tracing::info!(store = service.invalidator.store().describe(), dir = %config.rules.display(),
        "serving; watching for rule changes");
    Ok((service, tasks))
}

/// Binds the HTTP API: the commit intake, with the operations routes on
/// the same listener.
async fn bind_http(
    config: &ServeConfig,
    listen: &str,
    service: &Arc<Service>,
    stopping: &watch::Receiver<bool>,
) -> Result<HttpSource, ServeError> {
    let http = &config.http;
    let api = Arc::new(routes::Api {
        service: service.clone(),
        body_limit: http.body_limit_bytes,
        wait_timeout: http.wait_timeout,
        stopping: stopping.clone(),
        has_token: http.token.is_some(),
    });
    let operations = routes::router(api, http.token.clone(), http.read_token.clone());
    Ok(HttpSource::bind(listen, http.clone(), operations, service.http.clone()).await?)
}

/// What the run did, from the pipeline's figures and the sources'.
fn summarise(service: &Service, malformed: u64, flushed: bool) -> ServeSummary {
    let stats = service.invalidator.stats();
    let stream = service.stream.as_ref().map(StreamHandle::stats);
    let postgres = service.postgres.as_ref().map(PostgresHandle::stats);
    let mysql = service.mysql.as_ref().map(MysqlHandle::stats);
    let mut applied = ApplySummary::new(&stats, malformed, flushed);
    applied.complete &= stream.is_none_or(|s| s.in_flight == 0);
    applied.complete &= postgres.is_none_or(|s| s.in_flight == 0);
    applied.complete &= mysql.is_none_or(|s| s.in_flight == 0);
    ServeSummary {
        applied,
        swaps: stats.swaps,
        refused: service.refused(),
        rollbacks: stats.rollbacks,
        shadow_differences: stats.shadow_differences,
        stream,
        postgres,
        mysql,
    }
}

/// The store `config` names: Redis, or the in-process store.
fn open_store(config: &ServeConfig) -> Result<Store, RedisError> {
    Ok(match &config.redis.url {
        Some(url) => Store::Redis(Arc::new(Redis::open(url, config.redis.config())?)),
        None => Store::Memory(Arc::new(MemoryStore::new())),
    })
}

/// Refuses a TLS Redis whose certificate does not verify, at once: every
/// retry would fail the same way while invalidations pile up. Any other
/// trouble (Redis not up yet) is the pipeline's to retry.
async fn check_certificates(store: &Store) -> Result<(), ServeError> {
    let Store::Redis(redis) = store else {
        return Ok(());
    };
    if !redis.endpoint().is_tls() {
        return Ok(());
    }
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), store.ping()).await;
    if let Ok(Err(error)) = first
        && let Some(reason) = error.certificate_problem()
    {
        return Err(ServeError::Certificate {
            endpoint: redis.endpoint().to_string(),
            reason,
        });
    }
    Ok(())
}

/// Runs `source` on its own task.
fn spawn<S: Source>(
    source: S,
    intake: &Intake,
    stopping: &watch::Receiver<bool>,
) -> JoinHandle<SourceReport> {
    tokio::spawn(source.run(intake.clone(), stopping.clone()))
}

/// The stream source, when `config` names a stream.
fn stream_source(config: &ServeConfig) -> Result<Option<StreamSource>, ServeError> {
    let Some(name) = &config.stream.name else {
        return Ok(None);
    };
    let Some(redis) = config.stream_redis() else {
        return Err(ServeError::StreamWithoutRedis { name: name.clone() });
    };
    Ok(Some(StreamSource::new(
        &config.stream,
        redis,
        &config.redis.config(),
        config.shutdown_timeout,
    )?))
}

/// Waits for the service to be told to stop: a signal, or the end of
/// `input` when it is the only source. Hands every commit of `input` to
/// the pipeline meanwhile, and returns how many of its lines were
/// malformed.
async fn wait_for_stop(
    signals: &mut Signals,
    input: Option<LinesSource>,
    intake: &Intake,
    stopping: &watch::Receiver<bool>,
    only_input: bool,
) -> u64 {
    let Some(input) = input else {
        let signal = signals.stopped().await;
        tracing::info!("{signal}: taking no new work, finishing what is in flight");
        return 0;
    };
    let reading = input.run(intake.clone(), stopping.clone());
    let signal = signals.stopped();
    tokio::pin!(signal);
    let report = tokio::select! {
        report = reading => report,
        signal = &mut signal => {
            tracing::info!("{signal}: taking no new work, finishing what was handed over");
            return 0;
        }
    };
    if !only_input {
        tracing::info!("the input ended; still serving the other sources");
        let signal = signal.await;
        tracing::info!("{signal}: taking no new work, finishing what is in flight");
    }
    report.malformed
}
