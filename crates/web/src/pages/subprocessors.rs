//! The subprocessor registry in the web app: the public page `/subprocessors` (every vendor
//! with its role, data, PHI, BAA, posture, location and status, and the dated history of
//! changes), and the owners' notices (`/app/practices/{practice_id}/notices`, and on the home
//! page): every change with its effective date.
//!
//! Both read [`server::subprocessors::published`], the same facts as
//! `/.well-known/subprocessors.json`: installation-level, public, never a secret or a URL.
//! The notices screen is for owners and admins ([`Manage`]: session, second factor,
//! membership → 404, role → 403); since the facts are public, reading them is not audited.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use server::AppState;
use server::extract::Manage;
use server::subprocessors::{CACHE_CONTROL, PublishedChange, PublishedEntry};

use super::{Chrome, Member, chrome, html};
use crate::{Assets, WebError, assets};

/// Changes shown on the home page: those recorded within this many days, or not yet in effect.
pub(crate) const HOME_NOTICE_DAYS: i64 = 90;

/// `/subprocessors`.
#[derive(Template)]
#[template(path = "subprocessors.html")]
pub(crate) struct SubprocessorsPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    entries: Vec<PublishedEntry>,
    changes: Vec<PublishedChange>,
    notice_days: u16,
}

/// The owners' notices screen.
#[derive(Template)]
#[template(path = "notices.html")]
pub(crate) struct NoticesPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    changes: Vec<PublishedChange>,
    notice_days: u16,
}

/// `GET /subprocessors` (public; cacheable like the JSON document).
pub(crate) async fn public_page(State(state): State<AppState>) -> Result<Response, WebError> {
    let doc = server::subprocessors::published(&state, state.clock.now()).await?;
    let mut res = html(&SubprocessorsPage {
        assets: assets(),
        chrome: None,
        entries: doc.subprocessors,
        changes: doc.changes,
        notice_days: doc.notice_days,
    })?;
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(res)
}

/// `GET /app/practices/{practice_id}/notices` (owners and admins): every registry change,
/// newest first, with its effective date.
pub(crate) async fn notices_page(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let chrome = chrome(&mut tx).await?;
    tx.commit().await?;
    let doc = server::subprocessors::published(&state, state.clock.now()).await?;
    html(&NoticesPage {
        assets: assets(),
        chrome: Some(chrome),
        changes: doc.changes,
        notice_days: doc.notice_days,
    })
}

/// The notices for an owner's home page: changes recorded in the last [`HOME_NOTICE_DAYS`]
/// days or not yet in effect, newest first (at most 20).
pub(crate) async fn home_notices(state: &AppState) -> Result<Vec<PublishedChange>, WebError> {
    let now = state.clock.now();
    let since = now - chrono::Duration::days(HOME_NOTICE_DAYS);
    let changes = state.store.subprocessor_changes(20).await?;
    Ok(changes
        .into_iter()
        .filter(|c| c.recorded_at >= since || c.effective_at > now)
        .map(|c| server::subprocessors::published_change(c, now))
        .collect())
}

/// The notices route of the web app (under `/app`).
pub(crate) fn router() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/practices/{practice_id}/notices",
        axum::routing::get(notices_page),
    )
}
