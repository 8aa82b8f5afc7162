//! Refusing cross-site requests: a web page an operator happens to visit
//! must not be able to make their browser invalidate, reload or write
//! through the service on their machine.
//!
//! A browser marks every request with where it comes from: `Sec-Fetch-Site`
//! (all current browsers) and, on a `POST` from another origin, `Origin`.
//! A request that says it comes from another site, or from an origin other
//! than the service's own host, is refused. Programs (curl, the clients,
//! the application's hooks) send neither header, and pass as before. The
//! bearer token, when one is configured, already protects (a page cannot
//! make a browser add it); this also covers a service on loopback with no
//! token.

use axum::extract::Request;
use axum::http::header::{HOST, ORIGIN};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Lets the request through unless a browser says it comes from
/// elsewhere.
pub(crate) async fn refuse_cross_site(request: Request, next: Next) -> Response {
    match cross_site(&request) {
        Some(why) => ApiError::forbidden(format!(
            "refused a request from another site ({why}); this endpoint changes things and \
             answers only the service's own page and programs"
        ))
        .into_response(),
        None => next.run(request).await,
    }
}

/// Why `request` looks cross-site, if it does.
fn cross_site(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("Sec-Fetch-Site: {site}"));
    }
    let origin = headers.get(ORIGIN)?.to_str().unwrap_or("(not text)");
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest == host);
    (!own).then(|| format!("Origin: {origin}, Host: {host}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::post("/v1/invalidate");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn programs_and_the_own_page_pass_other_sites_do_not() {
        assert_eq!(cross_site(&request(&[("host", "127.0.0.1:8080")])), None);
        let own = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(cross_site(&request(&own)), None);
        let evil = [
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ];
        assert!(
            cross_site(&request(&evil))
                .unwrap()
                .contains("evil.example")
        );
        let sibling = [("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-site")];
        assert!(
            cross_site(&request(&sibling))
                .unwrap()
                .contains("same-site")
        );
        let null = [("host", "127.0.0.1:8080"), ("origin", "null")];
        assert!(cross_site(&request(&null)).is_some());
    }
}
