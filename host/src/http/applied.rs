//! `?wait=true`: answering a request that handed work over either at once
//! (202), or once that work is applied (200), or with why not (502 when
//! Redis refused some of it for good, 504 after the wait's bound).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::pipeline::{ApplyFailure, Invalidator};
use crate::source::Intake;

/// The query of every endpoint that hands work over.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Wait {
    /// Answer only once the invalidations are applied.
    #[serde(default)]
    wait: bool,
}

/// Whether the request asked to wait; a query that is not `wait=true` (or
/// `false`) is refused, naming the one parameter there is.
pub(crate) fn wait(query: Result<Query<Wait>, QueryRejection>) -> Result<bool, ApiError> {
    query.map(|Query(w)| w.wait).map_err(|e| {
        ApiError::invalid(format!("bad query: {e}; the only parameter is `wait=true`"))
    })
}

/// Where a handler learns how far the pipeline has applied: a source's
/// [`Intake`], or the pipeline itself for work that bypasses the rules.
pub(crate) trait Progress: Sync {
    /// Resolves once work `seq`, and everything before it, is applied.
    fn applied_up_to(&self, seq: u64) -> impl Future<Output = ()> + Send;
    /// What Redis refused for good of the batch that applied `seq`.
    fn failure(&self, seq: u64) -> Option<Arc<ApplyFailure>>;
}

impl Progress for Intake {
    fn applied_up_to(&self, seq: u64) -> impl Future<Output = ()> + Send {
        Intake::applied_up_to(self, seq)
    }
    fn failure(&self, seq: u64) -> Option<Arc<ApplyFailure>> {
        Intake::failure(self, seq)
    }
}

impl Progress for Invalidator {
    fn applied_up_to(&self, seq: u64) -> impl Future<Output = ()> + Send {
        Invalidator::applied_up_to(self, seq)
    }
    fn failure(&self, seq: u64) -> Option<Arc<ApplyFailure>> {
        Invalidator::failure(self, seq)
    }
}

/// An answer: a status and a JSON body, or an [`ApiError`].
pub(crate) type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// 202 with `body` at once; or, when `wait`, 200 once the work numbered
/// `seqs` is applied, 502 `not_applied` when Redis refused some of its
/// targets for good, and 504 when `timeout` passes first.
pub(crate) async fn answer(
    progress: &impl Progress,
    wait: bool,
    timeout: Duration,
    seqs: &[u64],
    mut body: Value,
) -> Answer {
    if !wait {
        return Ok((StatusCode::ACCEPTED, Json(body)));
    }
    let (first, seq) = (
        seqs.first().copied().unwrap_or(0),
        seqs.last().copied().unwrap_or(0),
    );
    match tokio::time::timeout(timeout, progress.applied_up_to(seq)).await {
        Ok(()) => {
            if let Some(failure) = seqs.iter().find_map(|&s| progress.failure(s)) {
                return Err(ApiError::not_applied(format!(
                    "accepted as {first} to {seq}, and applied except: {failure}"
                )));
            }
            body["applied"] = json!(true);
            Ok((StatusCode::OK, Json(body)))
        }
        Err(_) => Err(ApiError::not_applied_yet(format!(
            "accepted as {seq}, but not applied after {timeout:?} (is the cache store \
             reachable?); it stays pending and will be applied"
        ))),
    }
}
