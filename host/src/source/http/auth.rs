//! Who may change things: the bearer token of the mutating endpoints, and
//! the rule that a service reachable from other machines has one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::source::SourceError;

/// Lets a request through when no token is configured, or when it carries
/// `Authorization: Bearer TOKEN` with the right token.
pub(crate) async fn require_token(
    State(token): State<Arc<Option<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        // Compared in constant time, so the answer's timing tells nothing
        // about how much of a guess was right.
        Some(given) if constant_time_eq::constant_time_eq(given.as_bytes(), token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::unauthorized("wrong bearer token").into_response(),
        None => ApiError::unauthorized(
            "this endpoint changes things and needs `Authorization: Bearer TOKEN`",
        )
        .into_response(),
    }
}

/// Refuses to serve beyond this machine without a token: anyone who can
/// reach the port could otherwise invalidate the whole cache.
pub(crate) fn check_exposure(addr: SocketAddr, token: Option<&str>) -> Result<(), SourceError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(SourceError::Exposed { addr });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_go_without_a_token() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let local6: SocketAddr = "[::1]:8080".parse().unwrap();
        let err = check_exposure(any, None).unwrap_err().to_string();
        assert!(err.contains("0.0.0.0:8080"), "{err}");
        assert!(check_exposure(any, Some("t")).is_ok());
        assert!(check_exposure(local, None).is_ok());
        assert!(check_exposure(local6, None).is_ok());
    }
}
