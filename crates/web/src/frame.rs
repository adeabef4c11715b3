//! The frame every web request passes: request id, the cross-site check on state changes,
//! the request timeout, error pages, the security headers and one access-log line.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::RequestId;
use server::extract::ReqId;

use crate::error::PageError;
use crate::pages::ErrorPage;

/// The Content-Security-Policy of every web response (CSP Level 3; Trusted Types, W3C).
/// Scripts and styles come only from this origin (scripts also pinned by SRI), nothing inline;
/// the only Trusted Types policy allowed is htmx's `default` one (see the crate docs).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; form-action 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
    trusted-types default; report-uri /app/csp-report; report-to csp";

const SECURITY_HEADERS: [(HeaderName, &str); 8] = [
    // Two years, subdomains included (req TX-01), as the API.
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (
        HeaderName::from_static("reporting-endpoints"),
        "csp=\"/app/csp-report\"",
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
];

pub use server::extract::same_origin_request;

/// Whether a page could answer `method` at all: TRACE, TRACK, CONNECT and extension methods
/// are refused before anything else (req OPS-03).
fn served_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::OPTIONS
    )
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn token_in_query(req: &Request) -> bool {
    req.uri().query().is_some_and(|q| {
        q.split('&').any(|kv| {
            let k = kv.split('=').next().unwrap_or("").to_ascii_lowercase();
            k.contains("token") || k == "session" || k == server::extract::SESSION_COOKIE
        })
    })
}

fn page_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    let mut res = status.into_response();
    res.extensions_mut().insert(PageError {
        code,
        message: message.to_owned(),
    });
    res
}

/// Wraps every web request (see the module docs). Reports to the CSP endpoint are exempt from
/// the cross-site check: browsers send them on their own, and the endpoint only logs.
pub(crate) async fn frame(
    State(limits): State<server::Limits>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = RequestId::new();
    req.extensions_mut().insert(ReqId(id));
    let method = req.method().clone();
    // Paths carry ids only (searches are POST bodies); cap the length anyway.
    let path: String = req.uri().path().chars().take(200).collect();
    let mut res = if !served_method(&method) {
        page_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD-NOT-ALLOWED",
            "method not allowed",
        )
    } else if token_in_query(&req) {
        // req: AU-08, OPS-05 — credentials never travel in URLs.
        page_error(
            StatusCode::BAD_REQUEST,
            "INPUT-0001",
            "credentials never go in a link; sign in instead",
        )
    } else if changes_state(&method)
        && path != crate::CSP_REPORT_PATH
        && !same_origin_request(req.headers())
    {
        tracing::warn!(request_id = %id, %method, %path, "cross-site request refused");
        page_error(
            StatusCode::FORBIDDEN,
            "CSRF-0001",
            "this form was sent from another site, so nothing was changed; use Chartroom's own pages",
        )
    } else {
        match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
            Ok(res) => res,
            Err(_) => crate::WebError(server::AppError::Timeout(limits.request_timeout.as_secs()))
                .into_response(),
        }
    };
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        let is_html = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
        // The passkey ceremony routes answer their refusals as JSON, for the script that
        // posted them (see `pages::passkeys`); everything else gets the error page.
        let is_json = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let error = res.extensions().get::<PageError>().cloned();
        if error.is_some() || !(is_html || is_json) {
            let error = error.unwrap_or_else(|| PageError {
                code: if status == StatusCode::METHOD_NOT_ALLOWED {
                    "METHOD-NOT-ALLOWED"
                } else {
                    "HTTP-ERROR"
                },
                message: status.canonical_reason().unwrap_or("error").to_lowercase(),
            });
            let headers = std::mem::take(res.headers_mut());
            res = render_error(status, &error, id);
            for (k, v) in &headers {
                if k != header::CONTENT_LENGTH && k != header::CONTENT_TYPE {
                    res.headers_mut().append(k, v.clone());
                }
            }
        }
    }
    let h = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    tracing::info!(
        request_id = %id,
        %method,
        %path,
        status = status.as_u16(),
        ms = started.elapsed().as_millis(),
        "page"
    );
    res
}

fn render_error(status: StatusCode, error: &PageError, id: RequestId) -> Response {
    let page = ErrorPage {
        assets: crate::assets(),
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error"),
        code: error.code,
        message: &error.message,
        request_id: id.to_string(),
        chrome: None,
    };
    let body = askama::Template::render(&page).unwrap_or_else(|_| {
        format!(
            "<!doctype html><html lang=\"en\"><title>Error</title><p>Error {}. Request id {id}.</p></html>",
            status.as_u16()
        )
    });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Body::from(body))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    // issue 17 — a state change must come from this origin.
    #[test]
    fn cross_site_requests_are_recognized() {
        for (pairs, ok) in [
            (vec![("sec-fetch-site", "same-origin")], true),
            (vec![("sec-fetch-site", "same-site")], false),
            (vec![("sec-fetch-site", "cross-site")], false),
            (vec![("sec-fetch-site", "none")], false),
            (
                vec![
                    ("sec-fetch-site", "cross-site"),
                    ("host", "a.test"),
                    ("origin", "https://a.test"),
                ],
                false,
            ),
            (
                vec![("host", "a.test:8443"), ("origin", "https://a.test:8443")],
                true,
            ),
            (
                vec![("host", "a.test:8443"), ("origin", "https://evil.test")],
                false,
            ),
            (vec![("host", "a.test"), ("origin", "null")], false),
            (vec![("host", "a.test")], false),
            (vec![], false),
        ] {
            assert_eq!(same_origin_request(&headers(&pairs)), ok, "{pairs:?}");
        }
    }

    // issue 17 — the policy holds the directives the issue asks for, and nothing unsafe.
    #[test]
    fn csp_is_strict() {
        for d in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "require-trusted-types-for 'script'",
            "report-uri /app/csp-report",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(d), "{d}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }
}
