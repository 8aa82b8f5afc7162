//! `GET /v1/rules` (what is in service, with each version's figures),
//! `POST /v1/rules/reload` (look at the folder now), and an operator's
//! actions on one rule: `POST /v1/rules/{name}/rollback` and
//! `POST /v1/rules/{name}/drop-shadow`.

use axum::Json;
use serde_json::{Value, json};

use super::ApiState;
use crate::http::ApiError;
use crate::pipeline::RuleStates;
use crate::rules::LoadedRule;
use axum::extract::{Path, State};

/// One rule, as the API shows it; `states` say whether it is on
/// probation, and since when it serves.
fn describe(rule: &LoadedRule, states: &RuleStates) -> Value {
    let m = rule.counters();
    let probation_until = states
        .probation
        .iter()
        .find(|(_, hash, _)| hash == rule.hash())
        .map(|(_, _, until)| *until);
    let ms = |q| m.latency().quantile(q).map(millis);
    json!({
        "name": rule.name(),
        "version": rule.info().version,
        "hash": rule.hash(),
        "language": rule.language(),
        "peak_memory_bytes": m.peak_memory(),
        "failures": crate::rules::FailureKind::ALL
            .iter()
            .map(|k| (k.as_str(), m.failures_of(*k)))
            .filter(|(_, n)| *n > 0)
            .collect::<std::collections::BTreeMap<_, _>>(),
        "file": rule.path().display().to_string(),
        "tables": rule.info().tables,
        "calls": m.calls(),
        "errors": m.failures(),
        "latency_ms": {"p50": ms(0.5), "p99": ms(0.99)},
        "on_probation_until_ms": probation_until,
        "swapped_at_ms": states.swapped_at.get(rule.name()),
    })
}

/// `d` in milliseconds, rounded to the microsecond for people:
/// `0.353`, where the float arithmetic alone would give
/// `0.35300000000000004`.
fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `GET /v1/rules`: `{"rules": [...], "shadows": [...], "rolled_back":
/// [...], "refused": N}`.
pub(crate) async fn list(State(api): ApiState) -> Json<Value> {
    let invalidator = &api.service.invalidator;
    let states = invalidator.rule_states();
    let rules: Vec<Value> = invalidator
        .rule_set()
        .rules()
        .iter()
        .map(|r| describe(r, &states))
        .collect();
    let none = RuleStates::default();
    let shadows: Vec<Value> = invalidator
        .shadows()
        .map(|s| s.rules().iter().map(|r| describe(r, &none)).collect())
        .unwrap_or_default();
    Json(json!({
        "rules": rules,
        "shadows": shadows,
        "rolled_back": states.rolled_back,
        "refused": api.service.refused(),
    }))
}

/// Who acted, for the log line of an action.
fn by(api: &super::Api) -> &'static str {
    if api.has_token {
        "the bearer token"
    } else {
        "anyone (no token configured)"
    }
}

/// `POST /v1/rules/{name}/rollback`: puts back the version the rule's
/// version in service replaced; the current one is refused until its file
/// changes. 200 `{"rule", "restored"}`, or 409 `conflict` saying why not.
pub(crate) async fn rollback(
    State(api): ApiState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let invalidator = api.service.invalidator.clone();
    let asked = name.clone();
    // Waits for the evaluator: off the async threads.
    let answer = tokio::task::spawn_blocking(move || invalidator.roll_back(&asked))
        .await
        .map_err(|e| ApiError::internal(format!("rolling back failed: {e}")))?;
    let shown = crate::escape::escape(&name);
    match answer {
        Ok(restored) => {
            tracing::warn!(rule = %shown, restored, by = by(&api), "rule rolled back by hand");
            Ok(Json(json!({"rule": name, "restored": restored})))
        }
        Err(why) => Err(ApiError::conflict(why)),
    }
}

/// `POST /v1/rules/{name}/drop-shadow`: stops running the shadow `name`
/// until the rules folder changes (delete its file to drop it for good).
/// 200 `{"rule", "dropped": true}`, or 404 when no such shadow runs.
pub(crate) async fn drop_shadow(
    State(api): ApiState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let shown = crate::escape::escape(&name);
    if !api.service.invalidator.drop_shadow(&name) {
        return Err(ApiError::not_found(format!("no shadow `{shown}` runs")));
    }
    tracing::warn!(rule = %shown, by = by(&api), "shadow dropped by hand");
    Ok(Json(json!({"rule": name, "dropped": true})))
}

/// `POST /v1/rules/reload`: refreshes from the folder at once, as the
/// watcher would on a change, and tells what happened.
pub(crate) async fn reload(State(api): ApiState) -> Result<Json<Value>, ApiError> {
    let service = api.service.clone();
    // Loading compiles: off the async threads.
    let refresh = tokio::task::spawn_blocking(move || service.reloader.refresh())
        .await
        .map_err(|e| ApiError::internal(format!("reloading failed: {e}")))?;
    let paths = |ps: &[std::path::PathBuf]| -> Vec<String> {
        ps.iter().map(|p| p.display().to_string()).collect()
    };
    let rejected: Vec<Value> = refresh
        .rejected
        .iter()
        .map(|(p, reason)| json!({"file": p.display().to_string(), "reason": reason}))
        .collect();
    let in_service: Vec<Value> = api
        .service
        .invalidator
        .rule_set()
        .rules()
        .iter()
        .map(|r| describe(r, &api.service.invalidator.rule_states()))
        .collect();
    Ok(Json(json!({
        "changed": refresh.set.is_some() || refresh.shadows.is_some(),
        "loaded": paths(&refresh.loaded),
        "removed": paths(&refresh.removed),
        "rejected": rejected,
        "rules": in_service,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn latencies_read_as_people_write_them() {
        let d = Duration::from_micros(353);
        // What the figure was before: the float noise shows.
        assert_eq!(
            (d.as_secs_f64() * 1000.0).to_string(),
            "0.35300000000000004"
        );
        assert_eq!(json!(millis(d)).to_string(), "0.353");
        assert_eq!(
            json!(millis(Duration::from_micros(2_100))).to_string(),
            "2.1"
        );
        assert_eq!(
            json!(millis(Duration::from_nanos(1_499))).to_string(),
            "0.001"
        );
    }
}
