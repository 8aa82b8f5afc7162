//! [`HttpCounters`]: requests the HTTP listener answered, by the class of
//! their answer, counted by a middleware around every route (the intake's
//! and the operations API's alike), for the console and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

/// Requests answered since the start, by class.
#[derive(Debug, Default)]
pub struct HttpCounters {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
}

/// A snapshot of [`HttpCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HttpStats {
    /// Requests answered, of every status.
    pub requests: u64,
    /// Answered 4xx: refused tokens, malformed commits, unknown paths.
    pub client_errors: u64,
    /// Answered 5xx: the service could not do what was asked (not ready,
    /// the store failed, a wait timed out).
    pub server_errors: u64,
}

impl HttpCounters {
    /// The counts now.
    pub fn snapshot(&self) -> HttpStats {
        HttpStats {
            requests: self.requests.load(Relaxed),
            client_errors: self.client_errors.load(Relaxed),
            server_errors: self.server_errors.load(Relaxed),
        }
    }

    fn count(&self, status: u16) {
        self.requests.fetch_add(1, Relaxed);
        match status {
            400..=499 => self.client_errors.fetch_add(1, Relaxed),
            500..=599 => self.server_errors.fetch_add(1, Relaxed),
            _ => 0,
        };
    }
}

/// The middleware: counts each answer once it is made. (A server-sent
/// events stream counts when it starts, with its 200.)
pub(crate) async fn count_requests(
    State(counters): State<Arc<HttpCounters>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    counters.count(response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_class() {
        let counters = HttpCounters::default();
        for status in [200, 202, 204, 304, 400, 401, 404, 500, 503] {
            counters.count(status);
        }
        assert_eq!(
            counters.snapshot(),
            HttpStats {
                requests: 9,
                client_errors: 3,
                server_errors: 2
            }
        );
    }
}
