//! [`stopped`]: the signals that stop the service, SIGTERM (what process
//! managers and Kubernetes send) and Ctrl-C (SIGINT).

use tokio::signal::unix::{SignalKind, signal};

/// Waits for SIGTERM or SIGINT and names the one that came.
pub(crate) async fn stopped() -> &'static str {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops the service");
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}
