//! Who may change things, and who may read the cache: the bearer token of
//! the mutating endpoints (and of cache reads), an optional read-only
//! token, and the rule that a service reachable from other machines has a
//! token worth the name.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::ListenError;

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
    match check(&request, &[token], "changes things") {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Lets a cache read through when no token is configured, or when it
/// carries the token or the read token: a cached value is the
/// application's data, as private as the database row it came from.
pub(crate) async fn require_read_token(
    State(tokens): State<Arc<(Option<String>, Option<String>)>>,
    request: Request,
    next: Next,
) -> Response {
    let accepted: Vec<&str> = [tokens.0.as_deref(), tokens.1.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if accepted.is_empty() {
        return next.run(request).await;
    }
    match check(&request, &accepted, "reads the cache") {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Whether `request` carries exactly one `Authorization: Bearer` header
/// with one of `accepted`. Two headers are refused outright: proxies and
/// servers disagree on which one counts, and that disagreement is how a
/// check gets bypassed.
fn check(request: &Request, accepted: &[&str], what: &str) -> Result<(), ApiError> {
    let mut headers = request.headers().get_all(AUTHORIZATION).iter();
    let (first, second) = (headers.next(), headers.next());
    if second.is_some() {
        return Err(ApiError::invalid(
            "more than one `Authorization` header: send exactly one",
        ));
    }
    let given = first
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(given) = given else {
        return Err(ApiError::unauthorized(format!(
            "this endpoint {what} and needs `Authorization: Bearer TOKEN`"
        )));
    };
    // Compared in constant time, so the answer's timing tells nothing
    // about how much of a guess was right; every token is compared, so
    // neither does which one matched.
    let matched = accepted.iter().fold(false, |found, token| {
        constant_time_eq::constant_time_eq(given.as_bytes(), token.as_bytes()) | found
    });
    if matched {
        Ok(())
    } else {
        Err(ApiError::unauthorized("wrong bearer token"))
    }
}

/// The shortest token accepted on an address beyond loopback, in bytes.
pub const MIN_PUBLIC_TOKEN_LEN: usize = 16;

/// Refuses to serve beyond this machine without a token worth the name:
/// anyone who can reach the port could otherwise invalidate the whole
/// cache, or guess a short token.
pub(crate) fn check_exposure(addr: SocketAddr, token: Option<&str>) -> Result<(), ListenError> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    match token {
        None => Err(ListenError::Exposed { addr }),
        Some(t) if t.len() < MIN_PUBLIC_TOKEN_LEN => {
            Err(ListenError::WeakToken { addr, len: t.len() })
        }
        Some(_) => Ok(()),
    }
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
        let err = check_exposure(any, Some("short-token-15b"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("15 bytes") && err.contains("16"), "{err}");
        assert!(check_exposure(any, Some("a-token-of-16-by")).is_ok());
        assert!(check_exposure(local, Some("t")).is_ok());
        assert!(check_exposure(local, None).is_ok());
        assert!(check_exposure(local6, None).is_ok());
    }
}
