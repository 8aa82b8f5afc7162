//! The HTTP source: `invalidator serve --listen ADDR`. It takes commits
//! at:
//!
//! | Method and path | What it does |
//! |---|---|
//! | `POST /v1/commits` | hands over one commit or an array (202) |
//! | `POST /v1/invalidate/entity` | runs the rules as if a row was updated |
//!
//! With `?wait=true` a request is answered once its invalidations are
//! applied: that is how this source learns of, and acknowledges, them.
//! The listener, the tokens and the error shape are [`crate::http`]'s;
//! the operations API (`serve`'s own endpoints) rides on the same
//! listener, handed in as a router.

mod commits;
mod config;

pub use config::HttpConfig;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Intake, Source, SourceReport};
use crate::http::{self, ApiError, Limits, ListenError, require_token};

/// The HTTP source, bound and ready to serve.
pub struct HttpSource {
    listener: TcpListener,
    addr: SocketAddr,
    config: HttpConfig,
    operations: Router,
    counters: Arc<http::HttpCounters>,
}

/// What the intake handlers see.
pub(crate) struct HttpIntake {
    pub(crate) intake: Intake,
    pub(crate) config: HttpConfig,
    pub(crate) stopping: watch::Receiver<bool>,
}

impl HttpIntake {
    /// Refuses new work once stopping has begun.
    pub(crate) fn taking_work(&self) -> Result<(), ApiError> {
        if *self.stopping.borrow() {
            return Err(ApiError::stopping());
        }
        Ok(())
    }
}

impl HttpSource {
    /// Binds `listen`, refusing a non-loopback address without a token.
    /// `operations` is served beside the intake, on the same listener;
    /// its mutating routes should carry [`require_token`] themselves.
    /// Every answer is counted in `counters`.
    pub async fn bind(
        listen: &str,
        config: HttpConfig,
        operations: Router,
        counters: Arc<http::HttpCounters>,
    ) -> Result<Self, ListenError> {
        let fail = |e: std::io::Error| ListenError::Bind {
            listen: listen.to_owned(),
            source: e,
        };
        // Checked before binding, so a refused address is never open at all.
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
            .await
            .map_err(fail)?
            .collect();
        for addr in &addrs {
            http::check_exposure(*addr, config.token.as_deref())?;
            if let Some(read) = config.read_token.as_deref() {
                http::check_exposure(*addr, Some(read))?;
            }
        }
        let listener = TcpListener::bind(addrs.as_slice()).await.map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        Ok(Self {
            listener,
            addr,
            config,
            operations,
            counters,
        })
    }

    /// The address it listens on (port 0 picks one).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The intake routes, with the token check.
    fn router(&self, intake: Arc<HttpIntake>, operations: Router) -> Router {
        let token = Arc::new(self.config.token.clone());
        let taking = Router::new()
            .route("/v1/commits", post(commits::commits))
            .route("/v1/invalidate/entity", post(commits::entity))
            .route_layer(axum::middleware::from_fn_with_state(token, require_token))
            .with_state(intake);
        taking
            .merge(operations)
            .fallback(|| async {
                ApiError::not_found("no such endpoint; see GET /v1/rules, POST /v1/commits")
            })
            .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
            .layer(axum::middleware::from_fn_with_state(
                (self.config.body_timeout, self.config.body_limit_bytes),
                http::read_body_in_time,
            ))
            .layer(DefaultBodyLimit::max(self.config.body_limit_bytes))
            // Outermost, so that every answer counts, refusals included.
            .layer(axum::middleware::from_fn_with_state(
                self.counters.clone(),
                http::count_requests,
            ))
    }
}

impl Source for HttpSource {
    fn name(&self) -> &'static str {
        "http"
    }

    /// Serves until `stop` turns true, then finishes the requests under
    /// way.
    async fn run(self, intake: Intake, mut stop: watch::Receiver<bool>) -> SourceReport {
        let state = Arc::new(HttpIntake {
            intake,
            config: self.config.clone(),
            stopping: stop.clone(),
        });
        let app = self.router(state, self.operations.clone());
        let stopped = async move {
            let _ = stop.wait_for(|&s| s).await;
        };
        let limits = Limits {
            header_timeout: self.config.header_timeout,
            body_timeout: self.config.body_timeout,
            max_connections: self.config.max_connections,
        };
        http::serve(self.listener, app, limits, stopped).await;
        SourceReport::default()
    }
}
