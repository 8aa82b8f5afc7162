//! `invalidator postgres`: the Postgres source's setup, seen from the
//! command line.
//!
//! - `check` prints the SQL that readies a database for `serve` as the
//!   address's role, for the rules of a folder: statements, and what is
//!   not SQL as `--` comments, so that an administrator can pipe it to
//!   `psql` as it is. Exit status 0: nothing to do; 1: statements printed;
//!   2: trouble.
//! - `slots` lists the server's replication slots and the WAL each holds.
//! - `drop-slot NAME` drops one, refusing one in use.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use invalidator::reload::RuleFolder;
use invalidator::source::postgres::{self, PostgresConfig, RuleTables};

use super::args::{PostgresCommand, SandboxArgs};
use super::tokio_runtime;

/// Runs `command`.
pub(super) fn run(command: PostgresCommand) -> anyhow::Result<ExitCode> {
    match command {
        PostgresCommand::Check {
            postgres,
            rules,
            publication,
            slot,
            sandbox,
        } => {
            // Exit status 1 means "statements to run": trouble is 2.
            match check(&postgres, &rules, publication, slot, &sandbox) {
                Ok(code) => Ok(code),
                Err(error) => {
                    eprintln!("error: {error:#}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        PostgresCommand::Slots { postgres } => {
            let slots = tokio_runtime()?
                .block_on(postgres::slots(&postgres))
                .context("cannot list the replication slots")?;
            if slots.is_empty() {
                println!("no replication slot");
            }
            for s in slots {
                println!(
                    "{}\t{}\t{}\t{}\t{}\tholds {}",
                    s.name,
                    s.kind,
                    s.plugin.as_deref().unwrap_or("-"),
                    s.database.as_deref().unwrap_or("-"),
                    if s.active { "active" } else { "inactive" },
                    bytes(s.retained_bytes)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PostgresCommand::DropSlot { postgres, name } => {
            tokio_runtime()?
                .block_on(postgres::drop_slot(&postgres, &name))
                .with_context(|| format!("cannot drop replication slot `{name}`"))?;
            println!("dropped replication slot `{name}`");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints what the database at `url` needs for the rules in `rules`.
fn check(
    url: &str,
    rules: &Path,
    publication: Option<String>,
    slot: Option<String>,
    sandbox: &SandboxArgs,
) -> anyhow::Result<ExitCode> {
    if !rules.is_dir() {
        anyhow::bail!("rules folder `{}` is not a folder", rules.display());
    }
    let runtime = sandbox.runtime(&[rules])?;
    let mut catalog = RuleFolder::new(runtime, rules);
    let found = catalog.refresh();
    if let Some((path, reason)) = found.rejected.first() {
        anyhow::bail!("rule file `{}` is refused: {reason}", path.display());
    }
    let Some(set) = found.set else {
        anyhow::bail!("rules folder `{}` holds no rule", rules.display());
    };
    let tables = RuleTables::of(&set, found.shadows.as_deref());
    let defaults = PostgresConfig::default();
    let config = PostgresConfig {
        url: Some(url.to_owned()),
        publication: publication.unwrap_or(defaults.publication.clone()),
        slot: slot.unwrap_or(defaults.slot.clone()),
        ..defaults
    };
    if let Some(problem) = config.problem() {
        anyhow::bail!("{problem}");
    }
    let (script, needed) = tokio_runtime()?
        .block_on(postgres::check(&config, &tables))
        .context("cannot check the database")?;
    print!("{script}");
    Ok(if needed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `n` bytes for people.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
