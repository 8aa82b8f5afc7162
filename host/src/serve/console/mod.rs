//! The operator's console: one page at `/`, served from the binary (HTML,
//! CSS and a little JavaScript, embedded at build time: no CDN, no build
//! step, nothing fetched from the internet). The page reads the same
//! read-only API an operator's script would (`/v1/rules`, `/v1/stats`)
//! and refreshes itself every second, so a rule swapped on disk shows as
//! its new version without reloading the page.
//!
//! The page needs no token, like the read-only API it reads; its script
//! builds every element with `textContent`, never from markup, and the
//! responses forbid inline script and framing (`Content-Security-Policy`),
//! so nothing a rule or a commit names can run in an operator's browser.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_FRAME_OPTIONS};
use axum::response::IntoResponse;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Only our own script and style, no framing by another site.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, POLICY),
            (X_FRAME_OPTIONS, "DENY"),
            // A new binary brings a new page: never run yesterday's.
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

/// `GET /`: the page.
pub(crate) async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /console.js`.
pub(crate) async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /console.css`.
pub(crate) async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
