//! Safe by construction: cross-site requests refused, security headers on every answer.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::{Caller, Via};
use crate::error::ConsoleError;

/// The content security policy: nothing from elsewhere, no inline script, no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Refuses a state-changing request that a browser sent from another site.
///
/// A caller placed by a proxy's headers or by a signed-in browser's session cookie is
/// checked, since the browser sends those along with any request: the request must say, by Fetch Metadata (`Sec-Fetch-Site:
/// same-origin`) or else by its `Origin` matching its `Host`, that it came from the
/// console's own pages. A request that says neither is refused. A caller placed by a
/// bearer token is not checked: a browser never adds a token by itself.
pub(crate) fn same_origin(
    caller: &Caller,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ConsoleError> {
    if caller.by == Via::Bearer || matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    from_console(headers)
}

/// Whether a request says it came from the console's own pages: Fetch Metadata
/// (`Sec-Fetch-Site: same-origin`), or else an `Origin` that matches its `Host`.
pub(crate) fn from_console(headers: &HeaderMap) -> Result<(), ConsoleError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" => Ok(()),
            _ => Err(ConsoleError::CrossSite),
        };
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host))
            if origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest == host) =>
        {
            Ok(())
        }
        _ => Err(ConsoleError::CrossSite),
    }
}

/// Adds the security headers to every answer.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
