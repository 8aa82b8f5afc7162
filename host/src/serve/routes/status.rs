//! `GET /v1/stats`, `GET /v1/history`, `GET /healthz` and `GET /readyz`.

use axum::Json;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiState;
use crate::http::ApiError;
use axum::extract::State;

/// `GET /v1/stats`: the pipeline's counters, the cache's hits and misses,
/// the stream's and the Postgres source's counters (if reading them),
/// what the HTTP listener answered, each Redis node's state, the keys
/// removed by rule and by tag, uptime.
pub(crate) async fn stats(State(api): ApiState) -> Json<Value> {
    let service = &api.service;
    let cache = match service.cache_counts().await {
        Ok((hits, misses)) => json!({"hits": hits, "misses": misses}),
        Err(e) => json!({"error": e.to_string()}),
    };
    let nodes = match service.invalidator.store() {
        crate::sink::Store::Redis(redis) => Some(redis.node_states().await),
        crate::sink::Store::Memory(_) => None,
    };
    Json(json!({
        "uptime_secs": service.started.elapsed().as_secs(),
        "redis_nodes": nodes,
        "http": service.http.snapshot(),
        "store": service.invalidator.store().describe(),
        "pipeline": service.invalidator.stats(),
        "removed": service.invalidator.removals(),
        "cache": cache,
        "stream": service.stream.as_ref().map(|s| s.stats()),
        "postgres": service.postgres.as_ref().map(|s| s.stats()),
        "mysql": service.mysql.as_ref().map(|s| s.stats()),
        "rules_in_service": service.invalidator.rule_set().rules().len(),
        "rules_refused": service.refused(),
    }))
}

/// `GET /v1/history`: the samples of the last 15 minutes, oldest first,
/// one every 5 seconds.
pub(crate) async fn history(State(api): ApiState) -> Json<Value> {
    Json(json!({
        "every_secs": crate::serve::history::EVERY.as_secs(),
        "samples": api.service.history.samples(),
    }))
}

/// `GET /healthz`: the process is up and answering.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when rules are in service, the cache store answers
/// and the Postgres source (if any) is streaming; 503 naming what is
/// missing otherwise.
pub(crate) async fn readyz(State(api): ApiState) -> Result<(StatusCode, Json<Value>), ApiError> {
    api.service
        .ready()
        .await
        .map_err(|e| ApiError::not_ready(e.to_string()))?;
    Ok((StatusCode::OK, Json(json!({"status": "ready"}))))
}
