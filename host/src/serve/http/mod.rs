//! The HTTP API of `invalidator serve --listen ADDR`.
//!
//! | Method and path | What it does |
//! |---|---|
//! | `POST /v1/commits` | hands over one commit or an array (202) |
//! | `POST /v1/invalidate` | invalidates keys, patterns and tags as given |
//! | `POST /v1/invalidate/entity` | runs the rules as if a row was updated |
//! | `GET /v1/rules` | the rules in service and their figures |
//! | `POST /v1/rules/reload` | looks at the rules folder now |
//! | `GET /v1/stats` | the pipeline's and the cache's counters |
//! | `GET`/`PUT /v1/cache/{key}` | reads and writes the cache, tags included |
//! | `GET /metrics` | the same figures, in Prometheus text format |
//! | `GET /healthz`, `GET /readyz` | alive; ready to take work |
//!
//! Every `POST` and `PUT` needs `Authorization: Bearer TOKEN` when a token
//! is configured ([`auth`]). Errors have one JSON shape ([`ApiError`]).

mod auth;
mod cache;
mod commits;
mod error;
mod metrics;
mod rules;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub(crate) use auth::check_exposure;
pub(crate) use error::ApiError;

use super::Service;

/// What every handler sees.
pub(crate) struct Api {
    pub(crate) service: Arc<Service>,
    pub(crate) token: Option<String>,
    pub(crate) body_limit: usize,
    pub(crate) wait_timeout: std::time::Duration,
}

pub(crate) type ApiState = axum::extract::State<Arc<Api>>;

impl Api {
    /// The body of a request, or the error naming why it could not be
    /// read (413 past the limit).
    pub(crate) fn body(&self, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
        body.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(self.body_limit)
            } else {
                ApiError::invalid(format!("cannot read the request body: {e}"))
            }
        })
    }
}

/// The routes, with the token check on the mutating ones.
pub(crate) fn router(api: Arc<Api>) -> Router {
    let mutating = Router::new()
        .route("/v1/commits", post(commits::commits))
        .route("/v1/invalidate", post(commits::invalidate))
        .route("/v1/invalidate/entity", post(commits::entity))
        .route("/v1/rules/reload", post(rules::reload))
        .route("/v1/cache/{key}", axum::routing::put(cache::put))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/v1/rules", get(rules::list))
        .route("/v1/stats", get(status::stats))
        .route("/v1/cache/{key}", get(cache::get))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .merge(mutating)
        .fallback(|| async {
            ApiError::not_found("no such endpoint; see GET /v1/rules, POST /v1/commits")
        })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(api.body_limit))
        .with_state(api)
}

/// Binds `listen`, refusing a non-loopback address without a token.
/// Returns the listener and the address it got (port 0 picks one).
pub(crate) async fn bind(
    listen: &str,
    token: Option<&str>,
) -> Result<(TcpListener, SocketAddr), String> {
    let fail = |e: std::io::Error| format!("cannot listen on `{listen}`: {e}");
    // Checked before binding, so a refused address is never open at all.
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(fail)?
        .collect();
    for addr in &addrs {
        auth::check_exposure(*addr, token)?;
    }
    let listener = TcpListener::bind(addrs.as_slice()).await.map_err(fail)?;
    let addr = listener.local_addr().map_err(fail)?;
    Ok((listener, addr))
}

/// Serves the API on `listener` until `stop` turns true, then finishes the
/// requests under way.
pub(crate) async fn run(listener: TcpListener, api: Arc<Api>, mut stop: watch::Receiver<bool>) {
    let app = router(api);
    let stopped = async move {
        let _ = stop.wait_for(|&s| s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!("the HTTP server failed: {e}");
    }
}
