//! Waiting for a condition in a test: polled, bounded, and failing with a
//! message that names what was awaited.

use std::time::{Duration, Instant};

/// Polls `done` every 20 ms until it holds; after `within`, fails naming
/// `what`.
#[track_caller]
pub fn wait_until(what: &str, within: Duration, done: impl FnMut() -> bool) {
    wait_or(what, within, done, String::new);
}

/// [`wait_until`], adding `context()` (a process's log, say) to the
/// failure.
#[track_caller]
pub(crate) fn wait_or(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            panic!("timed out waiting until {what}{}", context());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
