//! [`for_each_commit`]: the commits of a JSON Lines stream, as every
//! command that reads them needs them.

use std::io::{self, BufRead, Write};

use super::{Commit, parse_json};

/// Calls `f` with each commit of `input` (JSON Lines; blank lines are
/// skipped). A line that is not a valid commit is reported on
/// `diagnostics` as `error: line N: ...` and skipped. Returns how many
/// lines were malformed.
pub fn for_each_commit(
    input: impl BufRead,
    mut diagnostics: impl Write,
    mut f: impl FnMut(Commit) -> io::Result<()>,
) -> io::Result<u64> {
    let mut malformed = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_json(&line) {
            Ok(commit) => f(commit)?,
            Err(e) => {
                malformed += 1;
                writeln!(diagnostics, "error: line {}: {e}", i + 1)?;
            }
        }
    }
    Ok(malformed)
}
