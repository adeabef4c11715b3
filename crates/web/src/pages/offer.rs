//! The waitlist offer's public page (`/offer/{token}`, the path [`outbound::OpaqueLink`]
//! builds for an offer link): the practice, the time and the service (no other client's data,
//! no other PHI), and an Accept button. Accepting books the slot through the online booking's
//! slot claim ([`store::waitlist::OfferHolder::accept`]): the first client to accept gets it,
//! the others read that the time has been taken. No session, no script, the strict CSP of
//! every page, the public client pages' limit per address. A link that does not work (unknown,
//! expired, used, another purpose) gets the same generic page as every client link.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use domain::RequestId;
use server::{AppError, AppState};
use store::waitlist::{AcceptOutcome, OfferHolder};

use super::intake::{MessagePage, link_not_working};
use super::{Chrome, html, html_status};
use crate::{Assets, WebError, assets};

async fn enter(state: &AppState, token: &str) -> Result<Option<OfferHolder>, WebError> {
    let Ok(token) = outbound::LinkToken::parse(token) else {
        return Ok(None);
    };
    Ok(state
        .store
        .offer_link(&token, RequestId::new(), state.clock.now())
        .await
        .map_err(AppError::from)?)
}

/// The offer page.
#[derive(Template)]
#[template(path = "offer.html")]
pub(crate) struct OfferPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_name: String,
    when: String,
    service: String,
    open: bool,
    base: String,
}

/// A time as the offer shows it, in the practice's zone.
fn when(at: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz)
        .format("%A %-d %B %Y, %H:%M")
        .to_string()
}

fn taken() -> Result<Response, WebError> {
    html_status(
        StatusCode::CONFLICT,
        &MessagePage::new(
            "Time taken",
            "This time has been taken",
            "Another client accepted it first. You stay on the practice's waitlist unless you booked another way.",
            "taken",
        ),
    )
}

/// `GET /offer/{token}`: the offer, or that the time has been taken. Changes nothing.
pub(crate) async fn offer_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let Some(o) = tx.offer().await.map_err(AppError::from)? else {
        return link_not_working();
    };
    tx.commit().await.map_err(AppError::from)?;
    html(&OfferPage {
        assets: assets(),
        chrome: None,
        practice_name: o.practice_name,
        when: when(o.starts_at, o.tz),
        service: o.service,
        open: o.open,
        base: format!("/offer/{token}"),
    })
}

/// `POST /offer/{token}/accept` (`waitlist.accept`, and `booking.create` when booked or
/// held): the answer page; the link is used up either way. An offer of a service paid for at
/// booking is held, and the page sends the client to its Checkout as `/book` does; when the
/// processor cannot be used nothing is held, the link still works, and the answer is `503`.
pub(crate) async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let Some(view) = tx.offer().await.map_err(AppError::from)? else {
        return link_not_working();
    };
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    let request = RequestId::new();
    let outcome = tx.accept(&keyring).await.map_err(AppError::from)?;
    match outcome {
        AcceptOutcome::Booked(_) => {
            tx.commit().await.map_err(AppError::from)?;
            html(&MessagePage::new(
                "Booked",
                "You are booked",
                "The time is yours. A confirmation with a link to manage your appointment is on its way.",
                "booked",
            ))
        }
        AcceptOutcome::Requested(_) => {
            tx.commit().await.map_err(AppError::from)?;
            html(&MessagePage::new(
                "Requested",
                "Your request is with the practice",
                "The time is kept for you while the practice confirms new clients' bookings. Its answer comes by email and text message.",
                "requested",
            ))
        }
        AcceptOutcome::Held(held) => {
            let url = server::payments::commit_held(&state, tx, &held.hold, &held.client, request)
                .await?;
            html(&super::pay::PayNowPage::new(
                view.practice_name,
                view.service,
                when(view.starts_at, view.tz),
                &held.hold,
                view.tz,
                url.as_str(),
            ))
        }
        AcceptOutcome::Taken => {
            tx.commit().await.map_err(AppError::from)?;
            taken()
        }
    }
}
