//! [`serve`]: the HTTP server's connections: hyper's HTTP/1 with a bound on
//! how long a client may take to send a request's headers and body, a
//! bound on open connections, and a graceful stop.
//!
//! `axum::serve` sets neither bound: 4,000 connections that sent half a
//! header each stayed open for more than a minute, each holding a socket
//! and a task. Here a connection that has not sent a whole request head
//! within `header_timeout` (which also bounds how long an idle kept-alive
//! connection stays open) is closed; a body not received within
//! `body_timeout` is answered 408; and past `max_connections`, new
//! connections wait in the kernel's accept queue instead of being
//! accepted and held.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

use super::ApiError;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a request's head (request line and headers), and
    /// for the next request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Longest wait for a request's whole body, once its head is in.
    pub body_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `stop` completes, then waits for the
/// requests under way to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        // A slot first, then the connection: past the bound, connections
        // wait in the accept queue, where they cost us nothing.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: pause rather than spin.
                    tracing::warn!("accepting an HTTP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut app = app.clone();
            app.call(request.map(Body::new))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is not our error.
            let _ = connection.await;
            drop(slot);
        });
    }
    graceful.shutdown().await;
}

/// Reads a request's whole body within `timeout` (and `limit` bytes)
/// before the handler runs: a client that sends its body slowly, or never,
/// gets 408 instead of holding the request for good.
pub(crate) async fn read_body_in_time(
    axum::extract::State((timeout, limit)): axum::extract::State<(Duration, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => ApiError::too_large(limit).into_response(),
        Err(_) => ApiError::timeout(format!(
            "the request's body did not arrive within {} ms (http.body_timeout)",
            timeout.as_millis()
        ))
        .into_response(),
    }
}
