//! `invalidator explain --server URL KEY`: asks a running `serve`
//! (`GET /v1/explain`) why a key is gone and prints the answer for a
//! terminal, one invalidation per line, newest first.

use std::process::ExitCode;

use anyhow::{Context, bail};
use invalidator::escape::escape;
use serde::Deserialize;

/// The answer of `GET /v1/explain`, as far as it is printed.
#[derive(Deserialize)]
struct Explained {
    key: String,
    invalidations: Vec<Invalidation>,
    held: usize,
    capacity: usize,
}

#[derive(Deserialize)]
struct Invalidation {
    txn: Option<String>,
    source: Option<String>,
    rule: Option<String>,
    version: Option<String>,
    cause: String,
    #[serde(default)]
    failed: bool,
    target: Target,
    applied_at: String,
}

#[derive(Deserialize)]
struct Target {
    kind: String,
    text: String,
}

/// Runs the command. Exit status 0 when some invalidation removed the key,
/// 1 when none did (as `grep` does), so that a script can branch on it.
pub(crate) async fn run(
    server: &str,
    key: &str,
    token: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let base = server.trim_end_matches('/');
    if !base.starts_with("http://") {
        bail!(
            "`--server {server}`: give the address of `serve --listen` as `http://HOST:PORT` \
             (this command speaks plain HTTP; reach a server behind TLS through its proxy)"
        );
    }
    let url = format!("{base}/v1/explain");
    let mut request = reqwest::Client::new()
        .get(&url)
        .query(&[("key", key), ("limit", &limit.to_string())]);
    let token = token.or_else(|| std::env::var("INVALIDATOR_TOKEN").ok());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("asking {url}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        bail!("{url} answered {status}: {}", body.trim());
    }
    if json {
        println!("{body}");
    }
    let explained: Explained = serde_json::from_str(&body)
        .with_context(|| format!("{url} answered something that is not an explanation"))?;
    if !json {
        print!("{}", render(&explained));
    }
    Ok(if explained.invalidations.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The answer for a terminal.
fn render(explained: &Explained) -> String {
    let key = escape(&explained.key);
    let mut out = String::new();
    if explained.invalidations.is_empty() {
        out.push_str(&format!(
            "no recent invalidation removed `{key}` (the log holds {} of {} targets and \
             listed keys)\n",
            explained.held, explained.capacity
        ));
        return out;
    }
    out.push_str(&format!(
        "`{key}` was removed by {} recent invalidation(s), newest first:\n",
        explained.invalidations.len()
    ));
    for i in &explained.invalidations {
        let target = format!("{} `{}`", i.target.kind, escape(&i.target.text));
        let origin = match (&i.rule, &i.txn) {
            (Some(rule), txn) => {
                let mut text = format!("rule {rule}");
                if let Some(version) = &i.version {
                    text.push_str(&format!(" {version}"));
                }
                if let Some(txn) = txn {
                    text.push_str(&format!(", txn {}", escape(txn)));
                }
                if let Some(source) = &i.source {
                    text.push_str(&format!(" from {}", escape(source)));
                }
                if i.failed {
                    text.push_str(" (the rule failed: its fallback)");
                }
                text
            }
            (None, _) => match i.cause.as_str() {
                "manual" => "asked for by hand".to_owned(),
                "replay" => "applied again after a failover".to_owned(),
                "fallback" => "the rules' fallback (the backlog outgrew its bound)".to_owned(),
                other => other.to_owned(),
            },
        };
        out.push_str(&format!("  {}  {target}  {origin}\n", i.applied_at));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_invalidation_is_a_line_naming_target_rule_and_commit() {
        let explained: Explained = serde_json::from_value(serde_json::json!({
            "key": "car:1", "held": 3, "capacity": 100,
            "invalidations": [
                {"txn": "42", "source": "pg", "rule": "dealership", "version": "1.2.0",
                 "cause": "rule", "target": {"kind": "tag", "text": "cars"},
                 "applied_at": "2026-12-04T20:00:00.000Z"},
                {"txn": null, "source": null, "rule": null, "version": null,
                 "cause": "manual", "target": {"kind": "key", "text": "car:1"},
                 "applied_at": "2026-12-04T19:00:00.000Z"}
            ]
        }))
        .unwrap();
        assert_eq!(
            render(&explained),
            "`car:1` was removed by 2 recent invalidation(s), newest first:\n  \
             2026-12-04T20:00:00.000Z  tag `cars`  rule dealership 1.2.0, txn 42 from pg\n  \
             2026-12-04T19:00:00.000Z  key `car:1`  asked for by hand\n"
        );
    }
}
