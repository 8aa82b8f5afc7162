//! The `invalidator` command: parses flags and calls the library.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use invalidator::dry_run::dry_run;
use invalidator::rules::{RuleSet, Runtime, SandboxConfig};
use invalidator::targets::Target;

/// Cache-invalidation rules engine: turns committed transactions into the
/// cache keys, patterns and tags to invalidate, with sandboxed Wasm rules.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dry run: print the targets of each commit of a JSON Lines file.
    Run {
        /// A rule `.wasm` file, or a folder of them.
        #[arg(long)]
        rules: PathBuf,
        /// The commits, one JSON object per line; `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Validate rule components and print what they say about themselves.
    Check {
        /// A rule `.wasm` file, or a folder of them.
        path: PathBuf,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
}

/// Limits of every rule call.
#[derive(Args)]
struct SandboxArgs {
    /// Time one rule call may take, in milliseconds.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    time_limit_ms: u64,
    /// Memory one rule instance may use, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    memory_limit_mib: usize,
}

impl SandboxArgs {
    fn runtime(&self) -> Result<Runtime, String> {
        Runtime::new(SandboxConfig {
            time_limit: Duration::from_millis(self.time_limit_ms),
            memory_limit: self.memory_limit_mib << 20,
            ..SandboxConfig::default()
        })
        .map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Run {
            rules,
            events,
            sandbox,
        } => {
            let runtime = sandbox.runtime()?;
            let rules = RuleSet::load(&runtime, &rules).map_err(|e| e.to_string())?;
            let stdout = io::stdout().lock();
            let summary = if events.as_os_str() == "-" {
                dry_run(&rules, io::stdin().lock(), stdout, io::stderr())
            } else {
                let file = File::open(&events)
                    .map_err(|e| format!("cannot open `{}`: {e}", events.display()))?;
                dry_run(&rules, BufReader::new(file), stdout, io::stderr())
            }
            .map_err(|e| format!("cannot read `{}`: {e}", events.display()))?;
            Ok(if summary.malformed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Check { path, sandbox } => {
            let runtime = sandbox.runtime()?;
            let rules = RuleSet::load(&runtime, &path).map_err(|e| e.to_string())?;
            for rule in rules.rules() {
                let info = rule.info();
                println!(
                    "ok: `{}` is rule {} {}",
                    rule.path().display(),
                    info.name,
                    info.version
                );
                let tables = if info.tables.is_empty() {
                    "(all)".to_owned()
                } else {
                    info.tables.join(", ")
                };
                println!("  tables:   {tables}");
                let fallback: Vec<String> = info.fallback.iter().map(show_target).collect();
                let fallback = if fallback.is_empty() {
                    "(none)".to_owned()
                } else {
                    fallback.join(", ")
                };
                println!("  fallback: {fallback}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show_target(t: &Target) -> String {
    match t {
        Target::Key(k) => format!("key {k}"),
        Target::Pattern(p) => format!("pattern {p}"),
        Target::Tag(t) => format!("tag {t}"),
    }
}
