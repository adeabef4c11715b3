//! The page of a client's own place on the waitlist (`/waitlist/{token}`, the path
//! [`outbound::OpaqueLink`] builds for a `waitlist` link, sent in the `waitlist_joined`
//! confirmation): the practice, the service, the days and the state (no other PHI), and a
//! button to leave ([`store::waitlist::WaitlistHolder::leave`], audited `waitlist.remove`).
//! No session, no script, the strict CSP of every page, the public client pages' limit per
//! address. A link that does not work (unknown, expired, used, another purpose) gets the same
//! generic page as every client link.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use domain::RequestId;
use server::{AppError, AppState};
use store::waitlist::WaitlistHolder;

use super::intake::{MessagePage, link_not_working};
use super::{Chrome, html};
use crate::{Assets, WebError, assets};

async fn enter(state: &AppState, token: &str) -> Result<Option<WaitlistHolder>, WebError> {
    let Ok(token) = outbound::LinkToken::parse(token) else {
        return Ok(None);
    };
    Ok(state
        .store
        .waitlist_link(&token, RequestId::new(), state.clock.now())
        .await
        .map_err(AppError::from)?)
}

/// The entry page.
#[derive(Template)]
#[template(path = "waitlist_link.html")]
pub(crate) struct EntryPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_name: String,
    service: String,
    days: String,
    state: &'static str,
    waiting: bool,
    base: String,
}

/// `GET /waitlist/{token}`: the entry. Changes nothing.
pub(crate) async fn entry_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let Some(e) = tx.entry().await.map_err(AppError::from)? else {
        return link_not_working();
    };
    tx.commit().await.map_err(AppError::from)?;
    let day = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&e.tz).format("%a %-d %b %Y").to_string()
    };
    // The window ends at midnight after its last day.
    let last = e.latest - chrono::Duration::seconds(1);
    html(&EntryPage {
        assets: assets(),
        chrome: None,
        practice_name: e.practice_name.clone(),
        service: e.service.clone(),
        days: format!("{} to {}", day(e.earliest), day(last)),
        state: match e.state.as_str() {
            "waiting" => "Waiting for a time",
            "booked" => "Booked: an offered time was accepted",
            _ => "Not on the waitlist",
        },
        waiting: e.state == "waiting",
        base: format!("/waitlist/{token}"),
    })
}

/// `POST /waitlist/{token}/leave` (`waitlist.remove`): the client is off the waitlist and the
/// link is used up. An entry no longer waiting (booked, removed) changes nothing.
pub(crate) async fn leave(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let left = tx.leave().await.map_err(AppError::from)?;
    tx.commit().await.map_err(AppError::from)?;
    html(&if left {
        MessagePage::new(
            "Off the waitlist",
            "You have left the waitlist",
            "You will not be sent any more times for this request.",
            "left",
        )
    } else {
        MessagePage::new(
            "Not on the waitlist",
            "You are not waiting any more",
            "This place on the waitlist was already booked or closed; nothing changed.",
            "not-waiting",
        )
    })
}
