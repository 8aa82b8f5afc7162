//! `invalidator mysql`: the MySQL source's setup, seen from the command
//! line.
//!
//! - `check` prints what the server at the address must change for `serve
//!   --mysql` to read its binary log: SQL, and what is not SQL as `--`
//!   comments, so that an administrator can pipe it to the `mariadb`
//!   (or `mysql`) client as it is. Exit status 0: nothing to do; 1: statements printed;
//!   2: trouble.

use std::process::ExitCode;

use invalidator::source::mysql;

use super::args::MysqlCommand;
use super::tokio_runtime;

/// Runs `command`.
pub(super) fn run(command: MysqlCommand) -> anyhow::Result<ExitCode> {
    match command {
        MysqlCommand::Check { mysql: url } => {
            let found = tokio_runtime()?.block_on(mysql::check(&url));
            match found {
                Ok(problems) if problems.is_empty() => {
                    println!("-- {}: ready for `serve --mysql`", mysql::redact(&url));
                    Ok(ExitCode::SUCCESS)
                }
                Ok(problems) => {
                    println!("-- {}: to run as an administrator", mysql::redact(&url));
                    for problem in problems {
                        println!("-- {}\n{}", problem.what, problem.fix);
                    }
                    Ok(ExitCode::from(1))
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
