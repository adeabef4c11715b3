//! The payment pages of the public booking flow: the page after a booking of a paid service
//! (a plain link to the processor's hosted page: a form post may not redirect off-site under
//! `form-action 'self'`), and the return page (`/pay/{token}`, where the processor sends the
//! client back, paid or not), which shows how the payment stands. No session, no script; the
//! return link opens its own payment only (`app.enter_link`, purpose `booking_pay`).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use server::{AppError, AppState};
use store::payments::{PayStatus, PaymentKind};

use super::intake::link_not_working;
use super::{Chrome, html};
use crate::{Assets, WebError, assets};

fn money(minor: u32, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        minor / 100,
        minor % 100,
        currency.to_uppercase()
    )
}

fn what(kind: PaymentKind, minor: u32, currency: &str) -> String {
    match kind {
        PaymentKind::Deposit => format!("a deposit of {}", money(minor, currency)),
        PaymentKind::Prepay => format!("payment in advance of {}", money(minor, currency)),
        PaymentKind::CardOnFile => "a card saved for the practice's cancellation fees".to_owned(),
        PaymentKind::LateCancelFee | PaymentKind::NoShowFee => {
            format!("a fee of {}", money(minor, currency))
        }
        PaymentKind::Refund => format!("a refund of {}", money(minor, currency)),
    }
}

/// The page after a booking that waits for its payment.
#[derive(Template)]
#[template(path = "book_pay.html")]
pub(crate) struct PayNowPage {
    pub(crate) assets: &'static Assets,
    pub(crate) chrome: Option<Chrome>,
    pub(crate) practice_name: String,
    pub(crate) service_name: String,
    pub(crate) when: String,
    pub(crate) what: String,
    pub(crate) until: String,
    pub(crate) checkout: String,
}

impl PayNowPage {
    /// The page for a hold of `kind` released at `until` (shown in `tz`).
    pub(crate) fn new(
        practice_name: String,
        service_name: String,
        when: String,
        hold: &store::payments::Hold,
        tz: chrono_tz::Tz,
        checkout: &str,
    ) -> Self {
        Self {
            assets: assets(),
            chrome: None,
            practice_name,
            service_name,
            when,
            what: what(hold.kind, hold.amount_minor, &hold.currency),
            until: hold
                .expires_at
                .with_timezone(&tz)
                .format("%H:%M")
                .to_string(),
            checkout: checkout.to_owned(),
        }
    }
}

/// The return page.
#[derive(Template)]
#[template(path = "pay.html")]
pub(crate) struct PayPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_name: String,
    what: String,
    state_id: &'static str,
    message: String,
    refresh: Option<String>,
}

fn message(s: &PayStatus, now: DateTime<Utc>) -> (&'static str, String) {
    let next = if s.needs_approval {
        "The practice confirms new clients' bookings first; its answer comes by email and text message."
    } else {
        "Your confirmation comes by email and text message, with a link to confirm, cancel or reschedule."
    };
    match s.state.as_str() {
        "paid" | "card_saved" => ("paid", format!("Thank you: payment received. {next}")),
        "pending" if s.hold_expires_at.is_some_and(|t| t > now) => (
            "pending",
            "We are waiting for the payment processor to confirm your payment. If you did not finish paying, your time is held until the hold runs out.".to_owned(),
        ),
        "paid_after_release" => (
            "late",
            "Your payment arrived after your time was released. The practice will refund it; please book again.".to_owned(),
        ),
        _ => (
            "released",
            "No payment was received in time, so your time was released. You can book again.".to_owned(),
        ),
    }
}

/// `GET /pay/{token}`.
pub(crate) async fn pay_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Ok(parsed) = outbound::LinkToken::parse(&token) else {
        return link_not_working();
    };
    let now = state.clock.now();
    let Some(mut tx) = state
        .store
        .pay_link(&parsed, now)
        .await
        .map_err(AppError::from)?
    else {
        return link_not_working();
    };
    let Some(s) = tx.status().await.map_err(AppError::from)? else {
        return link_not_working();
    };
    tx.commit().await.map_err(AppError::from)?;
    let (state_id, message) = message(&s, now);
    html(&PayPage {
        assets: assets(),
        chrome: None,
        practice_name: s.practice_name.clone(),
        what: what(s.kind, s.amount_minor, &s.currency),
        state_id,
        message,
        refresh: (state_id == "pending").then(|| format!("/pay/{token}")),
    })
}
