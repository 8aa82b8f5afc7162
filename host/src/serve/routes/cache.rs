//! `GET` and `PUT /v1/cache/{key}`: the cache as the application sees it,
//! for trying the service with nothing but `curl` (and for applications
//! that would rather not speak Redis). Writes register their tags the way
//! [`Cache::set`](crate::cache::Cache::set) does.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use crate::cache::CacheError;
use crate::http::ApiError;
use axum::extract::State;

/// The query of `PUT`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutQuery {
    /// Expire after this many seconds.
    #[serde(default)]
    ttl_secs: Option<f64>,
    /// Tags, comma-separated.
    #[serde(default)]
    tags: Option<String>,
}

/// `GET /v1/cache/{key}`: the value (200), or 404.
pub(crate) async fn get(
    State(api): ApiState,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    match api.service.cache.get(&key).await {
        Ok(Some(value)) => Ok(value.into_response()),
        Ok(None) => Err(ApiError::not_found(format!(
            "key `{key}` is not in the cache"
        ))),
        Err(e) => Err(ApiError::store(e.to_string())),
    }
}

/// `PUT /v1/cache/{key}?ttl_secs=60&tags=a,b`: stores the body (204).
pub(crate) async fn put(
    State(api): ApiState,
    Path(key): Path<String>,
    query: Result<Query<PutQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::invalid(format!(
            "bad query: {e}; parameters are `ttl_secs` and `tags`"
        ))
    })?;
    let body = crate::http::read_body(body, api.body_limit)?;
    let ttl = query
        .ttl_secs
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ApiError::invalid(format!("ttl_secs `{s}` is not a positive number"))
                })
        })
        .transpose()?;
    let tags: Vec<String> = query
        .tags
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::to_owned)
        .collect();
    api.service
        .cache
        .set(&key, &body, ttl, &tags)
        .await
        .map_err(|e| match e {
            CacheError::Store(store) => ApiError::store(store.to_string()),
            refused => ApiError::invalid(refused.to_string()),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
