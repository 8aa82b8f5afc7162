//! [`Service`]: the running service as the operations API sees it: the
//! pipeline, the rules folder's watcher, the cache, and handles on the
//! sources that have figures of their own, the recent figures' history;
//! and whether it is ready.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::pipeline::Invalidator;
use crate::redis::RedisError;
use crate::reload::Reloader;
use crate::source::mysql::MysqlHandle;
use crate::source::postgres::{self, PostgresHandle};
use crate::source::stream::StreamHandle;

/// The running service, as the HTTP handlers see it.
pub(crate) struct Service {
    pub(crate) invalidator: Arc<Invalidator>,
    pub(crate) reloader: Reloader,
    pub(crate) cache: Cache,
    pub(crate) stream: Option<StreamHandle>,
    pub(crate) postgres: Option<PostgresHandle>,
    pub(crate) mysql: Option<MysqlHandle>,
    pub(crate) started: Instant,
    pub(crate) refused_at_start: u64,
    /// The recent figures the console charts.
    pub(crate) history: Arc<super::History>,
    /// What the HTTP listener answered.
    pub(crate) http: Arc<crate::http::HttpCounters>,
}

/// Why the service is not ready to take work.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// No rule serves.
    #[error("no rule in service: the rules folder holds no valid rule file")]
    NoRules,
    /// The Postgres source is not streaming, or stalled.
    #[error(transparent)]
    Postgres(#[from] postgres::NotReady),
    /// The MySQL source is not streaming.
    #[error("{0}")]
    Mysql(String),
    /// Replicas do not acknowledge the deletes (`redis.replicas`): the
    /// invalidations are applied on the primary but not confirmed.
    #[error("invalidations are not confirmed: {0}")]
    Unreplicated(String),
    /// The cache store answered with an error.
    #[error("the cache store does not answer: {0}")]
    Store(RedisError),
    /// The cache store did not answer in time.
    #[error("the cache store {store} does not answer within 2 s")]
    StoreSilent {
        /// The store, as the logs name it.
        store: String,
    },
}

impl Service {
    /// Rule files refused since the start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused_at_start + self.reloader.refused()
    }

    /// Ready when rules are in service, the cache store answers and its
    /// replicas acknowledge (when asked to); else what is missing.
    pub(crate) async fn ready(&self) -> Result<(), NotReady> {
        if self.invalidator.rule_set().rules().is_empty() {
            return Err(NotReady::NoRules);
        }
        if let Some(postgres) = &self.postgres {
            postgres.ready()?;
        }
        if let Some(mysql) = &self.mysql {
            mysql.ready().map_err(NotReady::Mysql)?;
        }
        if let Some(why) = self.invalidator.unreplicated() {
            return Err(NotReady::Unreplicated(why));
        }
        let store = self.invalidator.store();
        match tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NotReady::Store(e)),
            Err(_) => Err(NotReady::StoreSilent {
                store: store.describe(),
            }),
        }
    }

    /// The cache store's hits and misses.
    pub(crate) async fn cache_counts(&self) -> Result<(u64, u64), RedisError> {
        self.invalidator.store().hits_and_misses().await
    }
}
