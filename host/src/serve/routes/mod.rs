//! The operations API of `invalidator serve`, served on the HTTP source's
//! listener ([`crate::source::http`]) beside the commit intake, with the
//! plumbing of [`crate::http`]:
//!
//! | Method and path | What it does |
//! |---|---|
//! | `GET /` | the operator's console ([`super::console`]) |
//! | `POST /v1/invalidate` | invalidates keys, patterns and tags as given |
//! | `GET /v1/rules` | the rules in service and their figures |
//! | `POST /v1/rules/reload` | looks at the rules folder now |
//! | `POST /v1/rules/{name}/rollback` | puts back the version it replaced |
//! | `POST /v1/rules/{name}/drop-shadow` | stops running a shadow |
//! | `GET /v1/stats` | the pipeline's and the cache's counters |
//! | `GET /v1/history` | the last 15 minutes' figures, every 5 s |
//! | `GET /v1/feed` | what the rules decide, live (server-sent events) |
//! | `GET /v1/explain?key=K` | the recent invalidations that removed a key |
//! | `POST /v1/try` | what each rule would invalidate for a commit; nothing applied |
//! | `GET`/`PUT /v1/cache/{key}` | reads and writes the cache, tags included |
//! | `GET /metrics` | the same figures, in Prometheus text format |
//! | `GET /healthz`, `GET /readyz` | alive; ready to take work |
//!
//! The mutating ones need the bearer token when one is configured, like
//! the intake's, and so does reading the cache (or the read token, which
//! may only read); they, and `try`, refuse requests a browser marks as
//! coming from another site ([`crate::http::refuse_cross_site`]). Errors
//! have the intake's one JSON shape.

mod cache;
mod explain;
mod feed;
mod invalidate;
mod metrics;
mod rules;
mod status;
mod try_commit;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post, put};

use super::Service;
use crate::http::{refuse_cross_site, require_read_token, require_token};

/// What every handler sees.
pub(crate) struct Api {
    pub(crate) service: Arc<Service>,
    pub(crate) body_limit: usize,
    /// How long `?wait=true` waits for the invalidations to be applied.
    pub(crate) wait_timeout: Duration,
    /// Turns true when the service stops taking work.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    /// Whether a bearer token guards the mutating routes: who an action
    /// was taken by, in its log line.
    pub(crate) has_token: bool,
}

pub(crate) type ApiState = axum::extract::State<Arc<Api>>;

/// The routes, with the token check on the mutating ones and on cache
/// reads.
pub(crate) fn router(api: Arc<Api>, token: Option<String>, read_token: Option<String>) -> Router {
    let reading = Router::new()
        .route("/v1/cache/{key}", get(cache::get))
        .route("/v1/feed", get(feed::feed))
        .route("/v1/explain", get(explain::explain))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new((token.clone(), read_token)),
            require_read_token,
        ));
    let mutating = Router::new()
        .route("/v1/rules/reload", post(rules::reload))
        .route("/v1/rules/{name}/rollback", post(rules::rollback))
        .route("/v1/rules/{name}/drop-shadow", post(rules::drop_shadow))
        .route("/v1/invalidate", post(invalidate::invalidate))
        .route("/v1/cache/{key}", put(cache::put))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        ))
        .route_layer(axum::middleware::from_fn(refuse_cross_site));
    let trying = Router::new()
        .route("/v1/try", post(try_commit::try_commit))
        .route_layer(axum::middleware::from_fn(refuse_cross_site));
    Router::new()
        .route("/", get(super::console::page))
        .route("/console.js", get(super::console::script))
        .route("/console.css", get(super::console::style))
        .route("/v1/rules", get(rules::list))
        .route("/v1/stats", get(status::stats))
        .route("/v1/history", get(status::history))
        .merge(reading)
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .merge(mutating)
        .merge(trying)
        .with_state(api)
}
