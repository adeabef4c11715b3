//! The live trust page `/trust` (public, no PHI): the facts of [`server::trust::document`],
//! the same as `/trust.json` — the running build's evidence pack (each requirement with its
//! status and tests, and plainly what is not done), the subprocessors and their dated
//! changes, the security contact and policy, the installation log's latest signed
//! checkpoint, backup and restore recency, and the changelog. Cacheable like the JSON.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use server::AppState;
use server::trust::{CACHE_CONTROL, TrustDoc};

use super::{Chrome, html};
use crate::{Assets, WebError, assets};

/// `/trust`.
#[derive(Template)]
#[template(path = "trust.html")]
pub(crate) struct TrustPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    doc: TrustDoc,
}

/// `GET /trust` (public).
pub(crate) async fn public_page(State(state): State<AppState>) -> Result<Response, WebError> {
    let doc = server::trust::document(&state, state.clock.now()).await?;
    let mut res = html(&TrustPage {
        assets: assets(),
        chrome: None,
        doc,
    })?;
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(res)
}
