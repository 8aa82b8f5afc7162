//! `invalidator serve`: the long-running service, configured by defaults,
//! a TOML file, `INVALIDATOR_*` variables and flags.

use std::process::ExitCode;

use anyhow::Context;
use invalidator::serve::{ServeConfig, serve};
use invalidator::source::lines::LinesSource;

use super::args::ServeArgs;
use super::{init_logging, open_events, tokio_runtime};

/// Serves until stopped; fails (exit 1) if work was left unapplied.
pub(super) fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::load(args.config.as_deref(), args.overrides())?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    // pg_walstream narrates every query and reconnect at `info`; its
    // warnings are what an operator needs, and the source logs the rest.
    // Its retry module logs each failed attempt of an outage as an error;
    // the source logs the outage once, when it starts and when it ends.
    init_logging(
        config.log_format,
        "info,pg_walstream=warn,pg_walstream::retry=off",
    );
    for name in ServeConfig::unknown_env_vars() {
        tracing::warn!("ignoring environment variable `{name}`: it names no setting");
    }
    let input = match config.events_input() {
        Some(events) => Some(LinesSource::new(open_events(&events)?, std::io::stderr())),
        None => None,
    };
    let rt = tokio_runtime()?;
    let summary = rt.block_on(serve(config, input, |addr| {
        // A fixed line on standard error, whatever the log settings: with
        // port 0 it is how a caller learns the port.
        eprintln!("listening on http://{addr}");
    }));
    // After a signal the thread reading standard input may still be blocked
    // in a read: do not wait for it.
    rt.shutdown_background();
    let summary = summary.context("cannot serve")?;
    println!(
        "{}",
        serde_json::to_string(&summary).expect("summary serializes")
    );
    Ok(if summary.applied.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
