//! The manage link's public page (`/manage/{token}`, the path [`outbound::OpaqueLink`] builds
//! for a booking link): the appointment's time and practice (no other PHI), and confirm,
//! cancel (inside the cancellation window it is recorded as late, and the page says so first)
//! or reschedule to another free time of the same service. No session, no script, the strict
//! CSP of every page, the public client pages' limit per address. A link that does not work
//! gets the same generic page as an intake link that does not.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::RequestId;
use serde::Deserialize;
use server::{AppError, AppState};
use store::booking::{BookingRefused, ManageBooking, ManageOutcome, ManagedAppointment};

use super::intake::{MessagePage, link_not_working};
use super::{Chrome, html, html_status, redirect};
use crate::{Assets, WebError, assets};

/// How many days one page of times shows.
const DAYS_PER_PAGE: u32 = 7;

async fn enter(state: &AppState, token: &str) -> Result<Option<ManageBooking>, WebError> {
    let Ok(token) = outbound::LinkToken::parse(token) else {
        return Ok(None);
    };
    Ok(state
        .store
        .manage_link(&token, RequestId::new(), state.clock.now())
        .await
        .map_err(AppError::from)?)
}

fn when(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz)
        .format("%A %-d %B %Y, %H:%M")
        .to_string()
}

/// The manage page.
#[derive(Template)]
#[template(path = "manage.html")]
pub(crate) struct ManagePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_name: String,
    when: String,
    service: String,
    status: &'static str,
    confirmed: bool,
    changeable: bool,
    late_warning: Option<String>,
    policy: String,
    base: String,
    can_reschedule: bool,
    done: Option<&'static str>,
}

fn status_label(s: &str) -> &'static str {
    match s {
        "held" => "Held while the payment is made",
        "requested" => "Waiting for the practice to confirm",
        "booked" => "Booked",
        "cancelled" => "Cancelled",
        "arrived" | "completed" => "Attended",
        "no_show" => "Missed",
        _ => "Unknown",
    }
}

fn page(
    a: &ManagedAppointment,
    now: DateTime<Utc>,
    token: &str,
    done: Option<&'static str>,
) -> ManagePage {
    let c = a.cancellation;
    let changeable = a.changeable(now);
    ManagePage {
        assets: assets(),
        chrome: None,
        practice_name: a.practice_name.clone(),
        when: when(a.starts_at, a.tz),
        service: a.service.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        status: status_label(&a.status),
        confirmed: a.client_confirmed_at.is_some(),
        changeable,
        late_warning: (changeable && a.cancel_is_late(now)).then(|| {
            format!(
                "Your appointment is less than {} hours away: cancelling now is a late cancellation, and the practice records it as such.",
                c.window_hours
            )
        }),
        policy: format!(
            "Cancel or reschedule free of charge up to {} hours before your appointment.",
            c.window_hours
        ),
        base: format!("/manage/{token}"),
        can_reschedule: changeable && a.service.is_some(),
        done,
    }
}

/// `?done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
    from: Option<NaiveDate>,
}

/// `GET /manage/{token}`.
pub(crate) async fn manage_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let now = tx.now();
    let Some(a) = tx.appointment().await.map_err(AppError::from)? else {
        return link_not_working();
    };
    tx.commit().await.map_err(AppError::from)?;
    let done = match q.done.as_deref() {
        Some("confirmed") => Some("Thank you: your appointment is confirmed."),
        Some("rescheduled") => Some("Your appointment was moved."),
        _ => None,
    };
    html(&page(&a, now, &token, done))
}

fn refused(message: &str) -> Result<Response, WebError> {
    html_status(
        StatusCode::CONFLICT,
        &MessagePage::new(
            "Not changed",
            "Your appointment was not changed",
            message,
            "not-changed",
        ),
    )
}

/// `POST /manage/{token}/confirm` (`booking.manage`): `303` back.
pub(crate) async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    match tx.confirm().await.map_err(AppError::from)? {
        ManageOutcome::Confirmed => {
            tx.commit().await.map_err(AppError::from)?;
            Ok(redirect(&format!("/manage/{token}?done=confirmed")))
        }
        _ => refused("This appointment can no longer be confirmed. Please call the practice."),
    }
}

/// `POST /manage/{token}/cancel` (`booking.manage`, late or not): the answer page; the link is
/// used up.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    match tx.cancel(&keyring).await.map_err(AppError::from)? {
        ManageOutcome::Cancelled { late } => {
            tx.commit().await.map_err(AppError::from)?;
            let message = if late {
                "Your appointment is cancelled. It was inside the cancellation window, so it is recorded as a late cancellation."
            } else {
                "Your appointment is cancelled."
            };
            html(&MessagePage::new(
                "Cancelled",
                "Cancelled",
                message,
                "cancelled",
            ))
        }
        _ => refused("This appointment can no longer be cancelled here. Please call the practice."),
    }
}

/// A day of free times.
pub(crate) struct Day {
    label: String,
    times: Vec<(String, i64)>,
}

/// The reschedule page.
#[derive(Template)]
#[template(path = "manage_times.html")]
pub(crate) struct TimesPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_name: String,
    when: String,
    days: Vec<Day>,
    action: String,
    back: String,
    later: String,
}

/// `GET /manage/{token}/reschedule?from=`: free times of the same service.
pub(crate) async fn times_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let Some(a) = tx.appointment().await.map_err(AppError::from)? else {
        return link_not_working();
    };
    let today = tx.now().with_timezone(&a.tz).date_naive();
    let from = q.from.unwrap_or(today).max(today);
    let Some((tz, slots)) = tx
        .availability(from, DAYS_PER_PAGE)
        .await
        .map_err(AppError::from)?
    else {
        return refused("This appointment can no longer be moved here. Please call the practice.");
    };
    tx.commit().await.map_err(AppError::from)?;
    let mut days: Vec<Day> = Vec::new();
    let mut last = None;
    for s in slots {
        if last == Some(s.starts_at) {
            continue;
        }
        last = Some(s.starts_at);
        let local = s.starts_at.with_timezone(&tz);
        let label = local.format("%A %-d %B").to_string();
        let time = (local.format("%H:%M").to_string(), s.starts_at.timestamp());
        match days.last_mut() {
            Some(d) if d.label == label => d.times.push(time),
            _ => days.push(Day {
                label,
                times: vec![time],
            }),
        }
    }
    html(&TimesPage {
        assets: assets(),
        chrome: None,
        practice_name: a.practice_name.clone(),
        when: when(a.starts_at, a.tz),
        days,
        action: format!("/manage/{token}/reschedule"),
        back: format!("/manage/{token}"),
        later: format!(
            "/manage/{token}/reschedule?from={}",
            from + Duration::days(i64::from(DAYS_PER_PAGE))
        ),
    })
}

/// The chosen time.
#[derive(Deserialize)]
pub(crate) struct RescheduleForm {
    #[serde(default)]
    starts: String,
}

/// `POST /manage/{token}/reschedule` (`booking.manage`): `303` back, or `409` when the time
/// was taken meanwhile (nothing changed).
pub(crate) async fn reschedule(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<RescheduleForm>,
) -> Result<Response, WebError> {
    let Some(starts) = form
        .starts
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
    else {
        return Err(WebError(AppError::Invalid("Choose a time.".into())));
    };
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    match tx.reschedule(starts).await.map_err(AppError::from)? {
        ManageOutcome::Rescheduled(_) => {
            tx.commit().await.map_err(AppError::from)?;
            Ok(redirect(&format!("/manage/{token}?done=rescheduled")))
        }
        ManageOutcome::Refused(BookingRefused::SlotTaken) => {
            refused("That time is no longer free. Go back and choose another.")
        }
        _ => refused("This appointment can no longer be moved here. Please call the practice."),
    }
}
