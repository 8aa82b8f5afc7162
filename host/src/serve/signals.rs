//! [`Signals`]: the signals that stop the service, SIGTERM (what process
//! managers and Kubernetes send) and Ctrl-C (SIGINT).
//!
//! They are listened for from the start of `serve`, before any source
//! runs or the API says where it listens: a signal that came before the
//! listening began would otherwise take the default action and kill the
//! process, with nothing drained, acknowledged or summarised (a test that
//! stopped `serve` as soon as its Postgres source streamed saw this).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The stopping signals, listened for since [`Signals::listen`].
pub(crate) struct Signals {
    term: Option<Signal>,
    interrupt: Option<Signal>,
}

impl Signals {
    /// Starts listening for SIGTERM and SIGINT. A signal that cannot be
    /// listened for is warned of; the other still stops the service.
    pub(crate) fn listen() -> Self {
        let open = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for {name} ({e}); it will not stop the service");
                None
            }
        };
        Self {
            term: open(SignalKind::terminate(), "SIGTERM"),
            interrupt: open(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Waits for SIGTERM or SIGINT and names the one that came.
    pub(crate) async fn stopped(&mut self) -> &'static str {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => "interrupted",
            () = next(&mut self.term) => "terminated",
        }
    }
}
