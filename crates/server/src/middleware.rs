//! The request frame: request id, access log line, security headers, and JSON error bodies;
//! and the request timeout inside it.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::RequestId;

use crate::error::ErrorPayload;
use crate::extract::ReqId;

const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    // Two years, subdomains included (req TX-01); browsers ignore it over plain HTTP.
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// Wraps every request: assigns a fresh request id (ignoring any the client sent), refuses
/// tokens in the query string, logs one line without PHI (method, route template, status,
/// duration), adds the security headers, and renders every error as the JSON error body with
/// the request id. [`crate::app`] puts it around every route; it is public so that a router
/// composed outside this crate can pass the same frame.
pub async fn request_frame(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = RequestId::new();
    req.extensions_mut().insert(ReqId(id));
    let method = req.method().clone();
    // Paths carry ids only (never PHI, by API design); cap the length anyway.
    let path: String = req.uri().path().chars().take(200).collect();
    let token_in_query = req.uri().query().is_some_and(|q| {
        q.split('&').any(|kv| {
            let k = kv.split('=').next().unwrap_or("").to_ascii_lowercase();
            k.contains("token") || k == "session" || k == crate::extract::SESSION_COOKIE
        })
    });
    let mut res = if token_in_query {
        // req: AU-08, OPS-05 — credentials never travel in URLs.
        crate::AppError::Unauthenticated.into_response()
    } else {
        next.run(req).await
    };
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        let payload = res
            .extensions()
            .get::<ErrorPayload>()
            .cloned()
            .unwrap_or_else(|| ErrorPayload {
                code: if status.as_u16() == 405 {
                    "METHOD-NOT-ALLOWED"
                } else {
                    "HTTP-ERROR"
                },
                message: if status.as_u16() == 405 {
                    "this method is not allowed on this route".to_owned()
                } else {
                    status.canonical_reason().unwrap_or("error").to_lowercase()
                },
            });
        let body = serde_json::json!({
            "error": { "code": payload.code, "message": payload.message, "request_id": id.to_string() }
        });
        let headers = std::mem::take(res.headers_mut());
        res = Response::builder()
            .status(status)
            .body(Body::from(body.to_string()))
            .unwrap_or_default();
        for (k, v) in &headers {
            if k != header::CONTENT_LENGTH && k != header::CONTENT_TYPE {
                res.headers_mut().append(k, v.clone());
            }
        }
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let h = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    // `no-store` unless a public document set its own (only a success may keep it).
    if !(status.is_success() && h.contains_key(header::CACHE_CONTROL)) {
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
        "request"
    );
    res
}

/// Answers `503` `TIMEOUT` ([`crate::AppError::Timeout`]) when the rest of the stack has not
/// answered within `limit`; the handler's future is dropped, so a transaction it holds and has
/// not committed rolls back. Inside [`request_frame`], which adds the request id.
pub(crate) async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => crate::AppError::Timeout(limit.as_secs()).into_response(),
    }
}
