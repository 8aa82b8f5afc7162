//! [`ApiError`]: every error the HTTP API answers, in one stable JSON
//! shape: `{"error": {"code": "...", "message": "..."}}`. Clients branch on
//! `code`, which never changes meaning; `message` is for people and names
//! the offending input.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer: a status, a stable code and a message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_json`: the body is not JSON.
    pub(crate) fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_json", message)
    }

    /// 400 `invalid_request`: JSON, but not what the endpoint takes.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400 `invalid_commit`: JSON, but not a valid commit.
    pub(crate) fn invalid_commit(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_commit", message)
    }

    /// 401 `unauthorized`: the bearer token is missing or wrong.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`: refused whoever asks this way (a request from
    /// another site).
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409 `conflict`: the request cannot be done in the present state
    /// (a rollback with no earlier version); the message says why.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 404 `not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405 `method_not_allowed`.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take this method",
        )
    }

    /// 413 `too_large`: the body is over the limit.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body over the limit of {limit} bytes (http.body_limit_bytes)"),
        )
    }

    /// 408 `timeout`: the client took too long to send its request.
    pub(crate) fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "timeout", message)
    }

    /// 500 `internal`: a bug of ours (a task that panicked).
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503 `not_ready`.
    pub(crate) fn not_ready(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
    }

    /// 503 `stopping`: the service is shutting down and takes no new work.
    pub(crate) fn stopping() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the service is shutting down and takes no new work",
        )
    }

    /// 504 `not_applied_yet`: `?wait=true` gave up waiting.
    pub(crate) fn not_applied_yet(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "not_applied_yet", message)
    }

    /// 502 `not_applied`: the store refused invalidations of this work
    /// for good; retrying the request will not help until the store is
    /// fixed (an ACL, a value of the wrong type).
    pub(crate) fn not_applied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "not_applied", message)
    }

    /// 502 `store_error`: the cache store failed.
    pub(crate) fn store(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "store_error", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The body of a request, or the error naming why it could not be read
/// (413 past `limit`).
pub(crate) fn read_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid(format!("cannot read the request body: {e}"))
        }
    })
}
