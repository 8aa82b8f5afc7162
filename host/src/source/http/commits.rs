//! The endpoints that hand commits over: commits as written, and an
//! entity's row run through the rules as if it had been updated.
//!
//! Each answers once the work is handed over to the pipeline (202), or,
//! with `?wait=true`, once its invalidations are applied (200; 504 after
//! `http.wait_timeout`). A request is checked whole before anything
//! of it is handed over: one bad commit in an array rejects the array.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::HttpIntake;
use crate::commit::{Commit, parse_json};
use crate::http::{Answer, ApiError, Wait, answer, read_body, wait};

type IntakeState = State<Arc<HttpIntake>>;

/// `POST /v1/commits`: one commit, or an array of them, in the JSON event
/// format.
pub(crate) async fn commits(
    State(api): IntakeState,
    query: Result<Query<Wait>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let wait = wait(query)?;
    let body = read_body(body, api.config.body_limit_bytes)?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_json(format!("body is not JSON: not UTF-8: {e}")))?;
    // Each commit is parsed from its own text, not from a parsed value, so
    // that an integer beyond 64 bits is refused rather than read as a float.
    let commits: Vec<Commit> = match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)
                .map_err(|e| ApiError::bad_json(format!("body is not JSON: {e}")))?;
            if items.is_empty() {
                return Err(ApiError::invalid_commit("the array holds no commit"));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    parse_json(item.get())
                        .map_err(|e| ApiError::invalid_commit(format!("commit [{i}]: {e}")))
                })
                .collect::<Result<_, _>>()?
        }
        Some(b'{') => {
            // Not JSON at all is `bad_json`; JSON that is no commit, not.
            serde_json::from_str::<&RawValue>(text)
                .map_err(|e| ApiError::bad_json(format!("body is not JSON: {e}")))?;
            vec![parse_json(text).map_err(|e| ApiError::invalid_commit(format!("commit: {e}")))?]
        }
        _ => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| ApiError::bad_json(format!("body is not JSON: {e}")))?;
            return Err(ApiError::invalid_commit(format!(
                "expected a commit object or an array of commits, found {}",
                kind(&value)
            )));
        }
    };
    api.taking_work()?;
    let count = commits.len();
    // Another request's commits may be numbered between ours.
    let seqs: Vec<u64> = commits
        .into_iter()
        .map(|commit| api.intake.hand_over(commit))
        .collect();
    let seq = seqs.last().copied().unwrap_or(0);
    answer(
        &api.intake,
        wait,
        api.config.wait_timeout,
        &seqs,
        json!({"accepted": count, "seq": seq}),
    )
    .await
}

/// The body of `POST /v1/invalidate/entity`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entity {
    table: String,
    /// The primary-key columns, as sent (parsed as a commit's rows are).
    key: Box<RawValue>,
    /// The row as it is now, if known; default: the key columns.
    #[serde(default)]
    row: Option<Box<RawValue>>,
    #[serde(default)]
    source: Option<String>,
}

/// `POST /v1/invalidate/entity`: `{"table": ..., "key": {...}}` runs the
/// rules as if that row had been updated with no earlier image, so every
/// rule treats every column as changed, and invalidates what they answer.
/// The answer lists the targets.
pub(crate) async fn entity(
    State(api): IntakeState,
    query: Result<Query<Wait>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let wait = wait(query)?;
    let body = read_body(body, api.config.body_limit_bytes)?;
    json_text(&body)?;
    let entity: Entity = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!("expected {{\"table\", \"key\", \"row\"?}}: {e}"))
    })?;
    let after = entity.row.as_ref().unwrap_or(&entity.key);
    // Built as text around the rows as sent, then parsed as any commit.
    let commit = parse_json(&format!(
        r#"{{"txn":{},"source":{},"writes":[{{"table":{},"op":"update","key":{},"after":{}}}]}}"#,
        json!(format!("entity:{}", entity.table)),
        json!(entity.source),
        json!(entity.table),
        entity.key.get(),
        after.get(),
    ))
    .map_err(|e| ApiError::invalid(format!("entity: {e}")))?;
    api.taking_work()?;
    // Through the pipeline like any commit, so that shadows, probation and
    // the counters see it; its own outcome comes back once evaluated.
    let (seq, outcome) = api.intake.hand_over_answered(commit);
    let outcome = outcome
        .await
        .map_err(|_| ApiError::internal("the pipeline stopped before evaluating the entity"))?;
    let failures: Vec<Value> = outcome
        .failures
        .iter()
        .map(|f| json!({"rule": f.rule, "kind": f.kind, "message": f.message}))
        .collect();
    let targets = serde_json::to_value(&outcome.targets).expect("targets serialize");
    let body = json!({"accepted": 1, "seq": seq, "targets": targets, "failures": failures});
    answer(&api.intake, wait, api.config.wait_timeout, &[seq], body).await
}

/// Checks that `body` is JSON, whatever its shape: a body that is not is
/// `bad_json`, one of the wrong shape is refused by its reader.
fn json_text(body: &[u8]) -> Result<(), ApiError> {
    serde_json::from_slice::<&RawValue>(body)
        .map(|_| ())
        .map_err(|e| ApiError::bad_json(format!("body is not JSON: {e}")))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
