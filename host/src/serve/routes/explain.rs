//! `GET /v1/explain?key=K[&limit=N]`: the recent applied invalidations that
//! removed a key, newest first, each with the target that matched it (the
//! key, a pattern matching it, or a tag whose index listed it), the
//! commit's `txn` and source, the rule and its version, and when it was
//! applied. Keys are the application's data, so it asks the same token as
//! cache reads (or the read token).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::ApiState;
use crate::http::ApiError;
use crate::pipeline::Invalidation;

/// Invalidations returned when the query names no `limit`.
const DEFAULT_LIMIT: usize = 100;

/// The query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainQuery {
    /// The key, as stored in Redis (with any key prefix).
    key: Option<String>,
    /// At most this many, newest first.
    #[serde(default)]
    limit: Option<usize>,
}

/// The answer.
#[derive(Serialize)]
pub(crate) struct Explained {
    key: String,
    invalidations: Vec<Invalidation>,
    /// How many applied targets (and keys their tags listed) the log
    /// holds, out of its capacity: an empty answer from a full log means
    /// "not lately", from a young one "not since start".
    held: usize,
    capacity: usize,
}

/// `GET /v1/explain`.
pub(crate) async fn explain(
    State(api): ApiState,
    query: Result<Query<ExplainQuery>, QueryRejection>,
) -> Result<Json<Explained>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::invalid(format!("bad query: {e}; parameters are `key` and `limit`"))
    })?;
    let key = query
        .key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::invalid("`key` is missing: `/v1/explain?key=KEY`"))?;
    let invalidator = &api.service.invalidator;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let invalidations = invalidator.explain(&key, limit).ok_or_else(|| {
        ApiError::not_found(
            "explain is off: start `serve` with `--explain` (or `explain.enabled = true`, \
             with a capacity above 0) to keep applied invalidations",
        )
    })?;
    let log = invalidator.explain_log();
    Ok(Json(Explained {
        key,
        invalidations,
        held: log.held().0,
        capacity: log.capacity(),
    }))
}
