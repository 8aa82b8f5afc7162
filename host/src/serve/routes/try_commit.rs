//! `POST /v1/try`: what every loaded rule, shadows included, would
//! invalidate for a commit, with nothing applied. The console's "try a
//! commit" asks it. The calls run in the rules' sandboxes, with their
//! limits, and count in each rule's figures like any other call.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde_json::{Value, json};

use super::ApiState;
use crate::commit::{Commit, parse_json};
use crate::http::{ApiError, read_body};
use crate::rules::LoadedRule;
use crate::targets::TargetSet;

/// `POST /v1/try`: `{"txn", "rules": [{"name", "version", "state",
/// "reads", "targets": {"keys", "patterns", "tags"}, "failure"}]}`.
pub(crate) async fn try_commit(
    State(api): ApiState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, api.body_limit)?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_json("the body is not UTF-8 text"))?;
    let commit = parse_json(text).map_err(|e| ApiError::invalid_commit(format!("commit: {e}")))?;
    let invalidator = &api.service.invalidator;
    let serving = invalidator.rule_set();
    let shadows = invalidator.shadows();
    // Rule calls are CPU work: off the async threads.
    let rules = tokio::task::spawn_blocking(move || {
        let mut answers: Vec<Value> = serving
            .rules()
            .iter()
            .map(|rule| answer(rule, "serving", &commit))
            .collect();
        if let Some(shadows) = &shadows {
            answers.extend(
                shadows
                    .rules()
                    .iter()
                    .map(|rule| answer(rule, "shadow", &commit)),
            );
        }
        (commit.txn, answers)
    })
    .await
    .map_err(|e| ApiError::internal(format!("trying the commit failed: {e}")))?;
    Ok(Json(json!({"txn": rules.0, "rules": rules.1})))
}

/// What `rule` makes of `commit`: nothing when it reads none of its
/// tables, else its targets or its failure.
fn answer(rule: &LoadedRule, state: &str, commit: &Commit) -> Value {
    let reads = commit.writes.iter().any(|w| rule.subscribes(&w.table));
    let (targets, failure) = if !reads {
        (TargetSet::new(), None)
    } else {
        match rule.call(commit) {
            Ok(targets) => (targets.into_iter().collect(), None),
            Err(failure) => (TargetSet::new(), Some(failure)),
        }
    };
    json!({
        "name": rule.name(),
        "version": rule.info().version,
        "state": state,
        "reads": reads,
        "targets": targets,
        "failure": failure,
    })
}
