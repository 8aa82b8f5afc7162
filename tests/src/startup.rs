//! [`wait_started`]: waits for a server process the harness started to
//! answer, failing with its log if it exits or never does.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Polls `ready` until it holds, for up to `within`. Panics with the log
/// file `log` if `child` exits first or time runs out; `what` names the
/// server in the message.
pub(crate) fn wait_started(
    child: &mut Child,
    what: &str,
    log: &Path,
    within: Duration,
    mut ready: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + within;
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) at start:\n{}", log());
        }
        if ready() {
            return;
        }
        if Instant::now() > deadline {
            panic!("{what} not ready after {within:?}:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
