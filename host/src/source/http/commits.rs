//! The endpoints that hand over work: commits, manual invalidations, and
//! entity invalidations through the rules.
//!
//! Each answers once the work is handed over to the pipeline (202), or,
//! with `?wait=true`, once its invalidations are applied (200; 504 after
//! `http.wait_timeout`). A request is checked whole before anything
//! of it is handed over: one bad commit in an array rejects the array.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, HttpIntake, read_body};
use serde_json::value::RawValue;

use crate::commit::{Commit, parse_json};
use crate::targets::{Target, TargetSet};
use axum::extract::State;

type IntakeState = State<Arc<HttpIntake>>;

/// The query of every endpoint here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Wait {
    /// Answer only once the invalidations are applied.
    #[serde(default)]
    wait: bool,
}

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// `POST /v1/commits`: one commit, or an array of them, in the JSON event
/// format.
pub(crate) async fn commits(
    State(api): IntakeState,
    query: Result<Query<Wait>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let wait = wait(query)?;
    let body = read_body(body, api.settings.body_limit)?;
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
    answer(&api, wait, &seqs, json!({"accepted": count, "seq": seq})).await
}

/// The body of `POST /v1/invalidate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manual {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// `POST /v1/invalidate`: `{"keys": [...], "patterns": [...], "tags":
/// [...]}`, invalidated as given, without the rules.
pub(crate) async fn invalidate(
    State(api): IntakeState,
    query: Result<Query<Wait>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let wait = wait(query)?;
    let manual: Manual = serde_json::from_value(json_body(&api, body)?).map_err(|e| {
        ApiError::invalid(format!(
            "expected {{\"keys\", \"patterns\", \"tags\"}}: {e}"
        ))
    })?;
    let mut targets = TargetSet::new();
    let kinds = [
        ("keys", manual.keys, Target::Key as fn(String) -> Target),
        ("patterns", manual.patterns, Target::Pattern),
        ("tags", manual.tags, Target::Tag),
    ];
    for (kind, values, target) in kinds {
        if let Some(i) = values.iter().position(String::is_empty) {
            return Err(ApiError::invalid(format!("{kind}[{i}] is empty")));
        }
        values.into_iter().for_each(|v| targets.insert(target(v)));
    }
    if targets.is_empty() {
        return Err(ApiError::invalid(
            "nothing to invalidate: give at least one of `keys`, `patterns`, `tags`",
        ));
    }
    api.taking_work()?;
    let count = targets.len();
    let seq = api.intake.invalidate(targets);
    answer(&api, wait, &[seq], json!({"accepted": count, "seq": seq})).await
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
    let body = read_body(body, api.settings.body_limit)?;
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
    answer(&api, wait, &[seq], body).await
}

fn wait(query: Result<Query<Wait>, QueryRejection>) -> Result<bool, ApiError> {
    query.map(|Query(w)| w.wait).map_err(|e| {
        ApiError::invalid(format!("bad query: {e}; the only parameter is `wait=true`"))
    })
}

/// The body, read as JSON.
pub(crate) fn json_body(
    api: &HttpIntake,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let body = read_body(body, api.settings.body_limit)?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_json(format!("body is not JSON: {e}")))
}

/// Checks that `body` is JSON, whatever its shape: a body that is not is
/// `bad_json`, one of the wrong shape is refused by its reader.
fn json_text(body: &[u8]) -> Result<(), ApiError> {
    serde_json::from_slice::<&RawValue>(body)
        .map(|_| ())
        .map_err(|e| ApiError::bad_json(format!("body is not JSON: {e}")))
}

/// 202 with `body` at once, or, when `wait`, 200 once the work numbered
/// `seqs` is applied, or 502 `not_applied` when Redis refused some of its
/// targets for good.
async fn answer(api: &HttpIntake, wait: bool, seqs: &[u64], mut body: Value) -> Answer {
    if !wait {
        return Ok((StatusCode::ACCEPTED, Json(body)));
    }
    let (first, seq) = (
        seqs.first().copied().unwrap_or(0),
        seqs.last().copied().unwrap_or(0),
    );
    let intake = &api.intake;
    let wait_timeout = api.settings.wait_timeout;
    match tokio::time::timeout(wait_timeout, intake.applied_up_to(seq)).await {
        Ok(()) => {
            if let Some(failure) = seqs.iter().find_map(|&s| intake.failure(s)) {
                return Err(ApiError::not_applied(format!(
                    "accepted as {first} to {seq}, and applied except: {failure}"
                )));
            }
            body["applied"] = json!(true);
            Ok((StatusCode::OK, Json(body)))
        }
        Err(_) => Err(ApiError::not_applied_yet(format!(
            "accepted as {seq}, but not applied after {:?} (is the cache store reachable?); \
             it stays pending and will be applied",
            wait_timeout
        ))),
    }
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
