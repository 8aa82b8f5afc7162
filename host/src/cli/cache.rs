//! `invalidator cache`: reads and writes the cache as an application does,
//! registering tags on writes.

use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use invalidator::cache::Cache;

use super::args::CacheCommand;

/// Runs a `cache` subcommand.
pub(super) async fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        CacheCommand::Set {
            redis,
            key,
            value,
            ttl,
            tags,
        } => {
            let ttl = ttl
                .map(|s| {
                    Duration::try_from_secs_f64(s)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "invalid --ttl `{s}`: give a positive number of seconds"
                            )
                        })
                })
                .transpose()?;
            let cache = Cache::new(Arc::new(redis.open()?));
            cache
                .set(&key, value.as_bytes(), ttl, &tags)
                .await
                .with_context(|| format!("cannot set `{key}`"))?;
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Get { redis, key } => {
            let cache = Cache::new(Arc::new(redis.open()?));
            match cache
                .get(&key)
                .await
                .with_context(|| format!("cannot get `{key}`"))?
            {
                Some(value) => {
                    use std::io::Write;
                    let mut out = io::stdout().lock();
                    out.write_all(&value)
                        .and_then(|()| out.write_all(b"\n"))
                        .context("cannot write the value")?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("key `{key}` not found");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
