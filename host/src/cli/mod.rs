//! The commands of the `invalidator` binary, one file each; `main.rs` only
//! parses the arguments and calls [`run`]. Errors are `anyhow` errors with
//! the context of what was being done.

mod apply;
mod args;
mod cache;
mod check;
mod diff;
mod dry_run;
mod explain;
mod log_fields;
mod mysql;
mod new;
mod postgres;
mod serve;
mod test;

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use invalidator::escape::escape;
use invalidator::serve::LogFormat;
use invalidator::targets::Target;

pub(crate) use args::{Cli, Command};

/// Runs the command `cli` names.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            rules,
            events,
            sandbox,
        } => dry_run::run(&rules, &events, &sandbox),
        Command::Apply {
            rules,
            events,
            redis,
            give_up_after,
            sandbox,
        } => apply::run(&rules, &events, &redis, give_up_after, &sandbox),
        Command::Cache { command } => tokio_runtime()?.block_on(cache::run(command)),
        Command::Serve(args) => serve::run(&args),
        Command::Diff {
            old,
            new,
            events,
            sandbox,
        } => Ok(diff::run(&old, &new, &events, &sandbox)),
        Command::Check { path, sandbox } => check::run(&path, &sandbox),
        Command::Explain {
            server,
            key,
            token,
            limit,
            json,
        } => tokio_runtime()?.block_on(explain::run(&server, &key, token, limit, json)),
        Command::Postgres { command } => postgres::run(command),
        Command::Mysql { command } => mysql::run(command),
        Command::Test {
            rule,
            fixtures,
            sandbox,
        } => test::run(&rule, fixtures.as_deref(), &sandbox),
        Command::New {
            name,
            lang,
            dir,
            sdk,
        } => new::run(&name, lang, dir.as_deref(), sdk.as_deref()),
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default: `default`).
pub(crate) fn init_logging(format: LogFormat, default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let logs = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.fmt_fields(log_fields::QuotedFields).init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// The commits to read: standard input for `-`, else the file.
fn open_events(events: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if events.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file = File::open(events).with_context(|| format!("cannot open `{}`", events.display()))?;
    Ok(Box::new(BufReader::new(file)))
}

/// The runtime for commands that talk to Redis: small, since the rules run
/// on a thread of their own.
fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A target for people: its text is the rule's, so it is shown escaped.
fn show_target(t: &Target) -> String {
    format!("{} {}", t.kind(), escape(t.text()))
}
