//! Chartroom's HTTP JSON API (axum): router, extractors, handlers, views and the OpenAPI 3.1
//! document generated from the same route registrations.
//!
//! # Guarantees
//! - Deny by default: every route under `/api/v1` except sign-in and the OpenAPI document
//!   needs a session; every practice route states the [`domain::Privilege`] it needs in its
//!   handler signature ([`extract::Ctx`]), checked after the session and the membership.
//! - Another practice's object, or a practice the caller does not belong to, is `404`, never
//!   `403`: nothing reveals that it exists.
//! - Handlers reach tenant data only through the [`store::TenantTx`] their [`extract::Ctx`]
//!   holds, and every success on a practice route appends its audit event in the same
//!   transaction before the response is sent.
//! - Errors are JSON `{"error": {"code", "message", "request_id"}}` with a stable code; 5xx
//!   bodies say only "internal error"; no message echoes a submitted value.
//! - Every response carries `x-request-id`, `Cache-Control: no-store`, `X-Content-Type-Options:
//!   nosniff`, `Referrer-Policy: no-referrer` and a CSP that forbids scripts and framing.
//!
//! # Example
//! ```no_run
//! # async fn f(state: server::AppState) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, server::app(state)).await
//! # }
//! ```

pub mod error;
pub mod extract;
pub mod fhir;
mod middleware;
pub mod password;
mod routes;
pub mod sealer;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use domain::Clock;
use store::{SessionPolicy, Store};

pub use error::AppError;
pub use routes::openapi;

/// Largest accepted request body (bytes). Bigger bodies get `413` before any parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database, as the runtime role.
    pub store: Store,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Session timeouts.
    pub sessions: SessionPolicy,
    /// Password hashing on a bounded blocking pool.
    pub passwords: password::Hasher,
    /// Whether session cookies get the `Secure` attribute (true unless explicitly serving
    /// plain HTTP on loopback).
    pub secure_cookies: bool,
    /// The signed audit checkpoints (read by the proof routes), when configured.
    pub checkpoints: Option<audit::store::DirStore>,
}

/// The whole application: routes, the OpenAPI document, and the layers every request passes.
pub fn app(state: AppState) -> Router {
    let (api, doc) = routes::router().split_for_parts();
    let doc = Arc::new(doc);
    Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&doc);
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(|| async { AppError::NotFound("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(middleware::request_frame))
        .with_state(state)
}
