//! The JSON Lines source: commits read from a file or standard input, one
//! per line, for `invalidator apply` and `invalidator serve`. It has
//! nothing to acknowledge: its input is read once, and what was handed
//! over is the pipeline's to apply.

use std::io::{BufRead, Write};

use tokio::sync::watch;

use super::{Intake, Source, SourceReport};
use crate::commit::for_each_commit;

/// Commits handed over together: the queue is taken once per chunk, and a
/// chunk is small enough that the pipeline starts on the first commits at
/// once.
const CHUNK: usize = 256;

/// The input and where its malformed lines are reported.
type Input = (Box<dyn BufRead + Send>, Box<dyn Write + Send>);

/// A JSON Lines input, read once.
pub struct LinesSource {
    input: Input,
}

impl LinesSource {
    /// The commits of `input`; malformed lines are reported on
    /// `diagnostics` as `error: line N: ...` and skipped.
    pub fn new(
        input: impl BufRead + Send + 'static,
        diagnostics: impl Write + Send + 'static,
    ) -> Self {
        Self {
            input: (Box::new(input), Box::new(diagnostics)),
        }
    }
}

/// Hands every commit of `input` to `intake`, in order, a chunk at a time.
/// Returns how many lines were malformed; an input that cannot be read
/// (a broken pipe, invalid UTF-8) is reported on `diagnostics` and ends
/// the reading, counted as one malformed line.
pub fn read_into(input: impl BufRead, mut diagnostics: impl Write, intake: &Intake) -> u64 {
    let mut chunk = Vec::with_capacity(CHUNK);
    let read = for_each_commit(input, &mut diagnostics, |commit| {
        chunk.push(commit);
        if chunk.len() == CHUNK {
            intake.hand_over_all(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
        }
        Ok(())
    });
    intake.hand_over_all(chunk);
    read.unwrap_or_else(|e| {
        let _ = writeln!(diagnostics, "error: reading the commits: {e}");
        1
    })
}

impl Source for LinesSource {
    fn name(&self) -> &'static str {
        "lines"
    }

    /// Reads to the end of the input, or until `stop`; a stop leaves the
    /// rest of the input unread.
    async fn run(self, intake: Intake, mut stop: watch::Receiver<bool>) -> SourceReport {
        let (input, diagnostics) = self.input;
        // Reading blocks: on a thread of its own.
        let reading = tokio::task::spawn_blocking(move || read_into(input, diagnostics, &intake));
        tokio::select! {
            read = reading => SourceReport {
                malformed: read.unwrap_or(1),
                ended: true,
            },
            _ = stop.wait_for(|&s| s) => SourceReport::default(),
        }
    }
}
