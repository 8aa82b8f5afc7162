//! The `invalidator` command: parses the arguments and calls the command
//! ([`cli`]).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use invalidator::serve::LogFormat;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // `serve` reads its log format from its configuration.
    // `test` prints each failure itself, expected fallbacks included; the
    // log's warnings about them would only repeat it.
    match cli.command {
        cli::Command::Serve(_) => {}
        cli::Command::Test { .. } => cli::init_logging(LogFormat::Text, "error"),
        _ => cli::init_logging(LogFormat::Text, "warn"),
    }
    match cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // The whole chain: what was being done, then why.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
