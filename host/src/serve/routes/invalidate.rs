//! `POST /v1/invalidate`: keys, patterns and tags invalidated as given, by
//! an operator or a script, without commits or rules. It is not a source:
//! nothing was committed, so it hands its targets to the pipeline's
//! applier directly.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use crate::http::{Answer, ApiError, Wait, answer, read_body, wait};
use crate::targets::{Target, TargetSet};

/// The body: `{"keys": [...], "patterns": [...], "tags": [...]}`.
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

/// `POST /v1/invalidate`: answers once handed over (202), or with
/// `?wait=true` once applied.
pub(crate) async fn invalidate(
    State(api): ApiState,
    query: Result<Query<Wait>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let wait = wait(query)?;
    let body = read_body(body, api.body_limit)?;
    let manual: Manual = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|e| ApiError::bad_json(format!("body is not JSON: {e}")))
        .and_then(|value| {
            serde_json::from_value(value).map_err(|e| {
                ApiError::invalid(format!(
                    "expected {{\"keys\", \"patterns\", \"tags\"}}: {e}"
                ))
            })
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
    if *api.stopping.borrow() {
        return Err(ApiError::stopping());
    }
    let count = targets.len();
    // Who asked is the token that let the request through (the route
    // needs it when one is configured); what, the targets, escaped.
    let show = |set: &std::collections::BTreeSet<String>| -> Vec<String> {
        set.iter()
            .map(|t| crate::escape::escape(t).into_owned())
            .collect()
    };
    tracing::info!(
        keys = ?show(&targets.keys),
        patterns = ?show(&targets.patterns),
        tags = ?show(&targets.tags),
        by = if api.has_token { "the bearer token" } else { "anyone (no token configured)" },
        "manual invalidation"
    );
    let invalidator = &api.service.invalidator;
    let seq = invalidator.invalidate(targets);
    let body = json!({"accepted": count, "seq": seq});
    answer(&**invalidator, wait, api.wait_timeout, &[seq], body).await
}
