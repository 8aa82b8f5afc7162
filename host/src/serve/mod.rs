//! [`serve`]: the `invalidator serve` command, a long-running service.
//!
//! Rules come from a watched folder and are swapped live as their files
//! change ([`crate::reload`]). Commits come from any of three sources, at
//! once if wanted: a JSON Lines input, the HTTP API ([`http`]), and a
//! Redis stream shared by any number of processes ([`stream`]). Their
//! invalidations are applied to Redis, or to an in-process store.
//!
//! Stopping (SIGTERM, Ctrl-C, or the end of the input when it is the only
//! source) takes no new work, finishes what is in flight, acknowledges it,
//! and prints a summary.

mod config;
mod http;
mod signals;
mod stream;

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

pub use config::{
    ENV_PREFIX, HttpConfig, LogFormat, PipelineSettings, SandboxSettings, ServeConfig, StreamConfig,
};
pub use stream::StreamStats;

use crate::apply::ApplySummary;
use crate::cache::Cache;
use crate::commit::for_each_commit;
use crate::pipeline::Invalidator;
use crate::reload::{Catalog, Refresh, Reloader};
use crate::rules::{RuleSet, Runtime};
use crate::sink::{MemoryStore, Redis, RedisConfig, SinkError, Store};
use stream::StreamSource;

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
}

/// The running service, as the HTTP handlers see it.
pub(crate) struct Service {
    pub(crate) invalidator: Arc<Invalidator>,
    pub(crate) reloader: Reloader,
    pub(crate) cache: Cache,
    pub(crate) stream: Option<Arc<StreamSource>>,
    pub(crate) started: Instant,
    refused_at_start: u64,
    stopping: watch::Receiver<bool>,
}

impl Service {
    /// Rule files refused since the start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused_at_start + self.reloader.refused()
    }

    /// Refuses new work once stopping has begun.
    pub(crate) fn taking_work(&self) -> Result<(), http::ApiError> {
        if *self.stopping.borrow() {
            return Err(http::ApiError::stopping());
        }
        Ok(())
    }

    /// Ready when rules are in service and the cache store answers; else
    /// what is missing.
    pub(crate) async fn ready(&self) -> Result<(), String> {
        if self.invalidator.rules().rules().is_empty() {
            return Err("no rule in service: the rules folder holds no valid rule file".into());
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
    pub(crate) async fn cache_counts(&self) -> Result<(u64, u64), SinkError> {
        self.invalidator.store().hits_and_misses().await
    }
}

/// Puts what a refresh of the rules folder produced into service.
fn apply_change(invalidator: &Invalidator, change: &Refresh) {
    if let Some(set) = &change.set {
        invalidator.swap_rules(set.clone());
    }
    if let Some(shadows) = &change.shadows {
        invalidator.set_shadows(Some(shadows.clone()));
    }
}

/// The store `config` names: Redis, or the in-process store.
fn open_store(config: &ServeConfig) -> Result<Store, String> {
    Ok(match &config.redis {
        Some(url) => Store::Redis(Arc::new(
            Redis::open(url, RedisConfig::default()).map_err(|e| e.to_string())?,
        )),
        None => Store::Memory(Arc::new(MemoryStore::new())),
    })
}

/// Serves as `config` says until stopped: loads and watches the rules,
/// takes commits from `input` (if given), the HTTP API and the stream (if
/// configured), and on stopping waits up to `shutdown_timeout_secs` for
/// the work in flight to be applied and acknowledged.
///
/// When the HTTP API listens, `on_listening` is called with its address
/// once requests are accepted.
pub async fn serve(
    config: ServeConfig,
    input: Option<Box<dyn BufRead + Send>>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<ServeSummary, String> {
    let dir = config.rules.clone();
    if !dir.is_dir() {
        return Err(format!("rules folder `{}` is not a folder", dir.display()));
    }
    let runtime =
        Runtime::with_compile_cache(config.sandbox_config(), &config.compile_cache_dir()?)
            .map_err(|e| e.to_string())?;
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
        config.pipeline_config(),
    ));
    invalidator.set_shadows(first.shadows);
    let reloader = {
        let invalidator = invalidator.clone();
        Reloader::watch(catalog, move |change| apply_change(&invalidator, change))?
    };
    // A file that arrived between the first look and the start of the
    // watching would otherwise wait for the next change.
    reloader.refresh();

    let (stop, stopping) = watch::channel(false);
    let drain = Duration::from_secs(config.shutdown_timeout_secs);
    let stream = match config.stream.name {
        Some(_) => Some(Arc::new(StreamSource::new(&config, invalidator.clone())?)),
        None => None,
    };
    let service = Arc::new(Service {
        invalidator: invalidator.clone(),
        reloader,
        cache,
        stream: stream.clone(),
        started: Instant::now(),
        refused_at_start: first.rejected.len() as u64,
        stopping: stopping.clone(),
    });

    let mut tasks = Vec::new();
    if let Some(listen) = &config.http.listen {
        let (listener, addr) = http::bind(listen, config.http.token.as_deref()).await?;
        let api = Arc::new(http::Api {
            service: service.clone(),
            token: config.http.token.clone(),
            body_limit: config.http.body_limit_bytes,
            wait_timeout: Duration::from_secs(config.http.wait_timeout_secs),
        });
        tasks.push(tokio::spawn(http::run(listener, api, stopping.clone())));
        tracing::info!(%addr, "HTTP API listening");
        on_listening(addr);
    }
    if let Some(stream) = &stream {
        tasks.push(tokio::spawn(stream.clone().run(stopping.clone(), drain)));
    }
    tracing::info!(store = described, dir = %dir.display(), "serving; watching for rule changes");

    let only_input = tasks.is_empty();
    let malformed = match input {
        Some(input) => read_input(&invalidator, input, only_input).await,
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
    let mut applied = ApplySummary::new(&stats, malformed, flushed.is_ok());
    applied.complete &= stream.is_none_or(|s| s.in_flight == 0);
    Ok(ServeSummary {
        applied,
        swaps: stats.swaps,
        refused: service.refused(),
        rollbacks: stats.rollbacks,
        shadow_differences: stats.shadow_differences,
        stream,
    })
}

/// Hands every commit of `input` to the pipeline. When the input is the
/// only source, its end stops the service; otherwise the service goes on
/// until a signal. Returns how many lines were malformed.
async fn read_input(
    invalidator: &Arc<Invalidator>,
    input: Box<dyn BufRead + Send>,
    only_source: bool,
) -> u64 {
    // Reading blocks: on a thread of its own.
    let reading = {
        let invalidator = invalidator.clone();
        tokio::task::spawn_blocking(move || {
            let read = for_each_commit(input, std::io::stderr(), |commit| {
                invalidator.after_commit(commit);
                Ok(())
            });
            read.unwrap_or_else(|e| {
                eprintln!("error: reading the commits: {e}");
                1
            })
        })
    };
    let signal = signals::stopped();
    tokio::pin!(signal);
    let malformed = tokio::select! {
        read = reading => read.unwrap_or(1),
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
    malformed
}
