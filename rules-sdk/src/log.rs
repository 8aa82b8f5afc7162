//! Logging from inside a rule to the host's log.

use crate::Level;

/// Writes `message` to the host's log at `level`, tagged with the rule's
/// name. Natively (in a rule crate's own tests) it goes to standard error.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::invalidator::rules::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    std::eprintln!("[{level:?}] {message}");
}
