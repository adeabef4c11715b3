//! The practice's public booking page (no session): choose a service, a time, enter one's
//! details, book. Plain forms, no script; the same store calls as the public API
//! (`/api/v1/public/practices/{id}/booking`), so the same entry (`app.enter_online_booking`),
//! rules, refusals and audit event.
//!
//! A practice that does not take online bookings is a 404 like one that does not exist; no
//! clinician or other client is named; the answer to a booking is the same whether the client
//! was recognised or not.
//!
//! A client who finds no time that suits them (or prefers to wait) joins the practice's
//! waitlist for the service and a range of days on the same page
//! (`/book/{practice_id}/services/{service_id}/waitlist`,
//! [`store::booking::PublicBooking::join_waitlist`]): the same entry, the same new-or-existing
//! client handling and the same answer either way.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::{PracticeId, RequestId, ServiceId};
use serde::Deserialize;
use server::{AppError, AppState};
use store::booking::{BookingRefused, ClientDetails, PublicBooking};
use store::waitlist::JoinRequest;

use super::{html, html_status, path_id};
use crate::{Assets, WebError, assets};

/// How many days one page of times shows.
const DAYS_PER_PAGE: u32 = 7;

async fn enter(state: &AppState, practice: PracticeId) -> Result<PublicBooking, WebError> {
    state
        .store
        .online_booking(practice, RequestId::new(), state.clock.now())
        .await
        .map_err(AppError::from)?
        .ok_or(WebError(AppError::NotFound("practice")))
}

async fn tz(tx: &mut PublicBooking) -> Result<chrono_tz::Tz, WebError> {
    Ok(tx.time_zone().await.map_err(AppError::from)?)
}

fn when(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%a %-d %b, %H:%M").to_string()
}

fn money(minor: u32, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        minor / 100,
        minor % 100,
        currency.to_uppercase()
    )
}

/// A service on the page.
pub(crate) struct ServiceRow {
    href: String,
    name: String,
    minutes: u32,
    payment: String,
}

/// The services page.
#[derive(Template)]
#[template(path = "book_services.html")]
pub(crate) struct ServicesPage {
    assets: &'static Assets,
    chrome: Option<super::Chrome>,
    practice_name: String,
    services: Vec<ServiceRow>,
    policy: String,
}

/// `GET /book/{practice_id}`.
pub(crate) async fn services_page(
    State(state): State<AppState>,
    Path(practice): Path<String>,
) -> Result<Response, WebError> {
    let practice: PracticeId = path_id(&practice, "practice")?;
    let mut tx = enter(&state, practice).await?;
    let practice_name = tx.practice_name().await.map_err(AppError::from)?;
    let (settings, services) = tx.catalogue().await.map_err(AppError::from)?;
    tx.commit().await.map_err(AppError::from)?;
    let currency = settings.currency.clone();
    let c = settings.cancellation;
    let mut policy = format!(
        "Cancel or reschedule free of charge up to {} hours before your appointment.",
        c.window_hours
    );
    if c.late_cancel_fee_minor > 0 {
        policy += " A later cancellation costs ";
        policy += &money(c.late_cancel_fee_minor, &currency);
        policy += ".";
    }
    if c.no_show_fee_minor > 0 {
        policy += " Missing the appointment costs ";
        policy += &money(c.no_show_fee_minor, &currency);
        policy += ".";
    }
    html(&ServicesPage {
        assets: assets(),
        chrome: None,
        practice_name,
        services: services
            .into_iter()
            .filter(|s| !s.clinicians.is_empty())
            .map(|s| ServiceRow {
                href: format!("/book/{practice}/services/{}", s.service_id),
                name: s.name,
                minutes: s.duration_minutes,
                payment: match s.payment {
                    domain::booking::PaymentPolicy::None => String::new(),
                    domain::booking::PaymentPolicy::Deposit { amount_minor } => {
                        format!("Deposit {} when booking", money(amount_minor, &currency))
                    }
                    domain::booking::PaymentPolicy::Prepay { amount_minor } => {
                        format!("Paid in advance: {}", money(amount_minor, &currency))
                    }
                    domain::booking::PaymentPolicy::CardOnFile => {
                        "A card is kept on file for late-cancellation fees".to_owned()
                    }
                },
            })
            .collect(),
        policy,
    })
}

/// A day of free times.
pub(crate) struct Day {
    label: String,
    times: Vec<(String, String)>,
}

/// The times page.
#[derive(Template)]
#[template(path = "book_times.html")]
pub(crate) struct TimesPage {
    assets: &'static Assets,
    chrome: Option<super::Chrome>,
    practice_name: String,
    service_name: String,
    days: Vec<Day>,
    back: String,
    earlier: Option<String>,
    later: String,
    waitlist: String,
}

/// `?from=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FromQuery {
    from: Option<NaiveDate>,
}

/// `GET /book/{practice_id}/services/{service_id}`.
pub(crate) async fn times_page(
    State(state): State<AppState>,
    Path((practice, service)): Path<(String, String)>,
    Query(q): Query<FromQuery>,
) -> Result<Response, WebError> {
    let practice: PracticeId = path_id(&practice, "practice")?;
    let service: ServiceId = path_id(&service, "service")?;
    let mut tx = enter(&state, practice).await?;
    let tz = tz(&mut tx).await?;
    let today = tx.now().with_timezone(&tz).date_naive();
    let from = q.from.unwrap_or(today).max(today);
    let practice_name = tx.practice_name().await.map_err(AppError::from)?;
    let (_, services) = tx.catalogue().await.map_err(AppError::from)?;
    let service_name = services
        .iter()
        .find(|s| s.service_id == service)
        .map(|s| s.name.clone())
        .ok_or(WebError(AppError::NotFound("service")))?;
    let slots = tx
        .availability(service, tz, from, DAYS_PER_PAGE)
        .await
        .map_err(AppError::from)?
        .ok_or(WebError(AppError::NotFound("service")))?;
    tx.commit().await.map_err(AppError::from)?;
    let mut days: Vec<Day> = Vec::new();
    let mut last: Option<DateTime<Utc>> = None;
    for s in &slots {
        if last == Some(s.starts_at) {
            continue;
        }
        last = Some(s.starts_at);
        let local = s.starts_at.with_timezone(&tz);
        let label = local.format("%A %-d %B").to_string();
        let time = (
            local.format("%H:%M").to_string(),
            format!(
                "/book/{practice}/services/{service}/at/{}",
                s.starts_at.timestamp()
            ),
        );
        match days.last_mut() {
            Some(d) if d.label == label => d.times.push(time),
            _ => days.push(Day {
                label,
                times: vec![time],
            }),
        }
    }
    let page = |d: NaiveDate| format!("/book/{practice}/services/{service}?from={d}");
    html(&TimesPage {
        assets: assets(),
        chrome: None,
        practice_name,
        service_name,
        days,
        back: format!("/book/{practice}"),
        earlier: (from > today)
            .then(|| page((from - Duration::days(i64::from(DAYS_PER_PAGE))).max(today))),
        later: page(from + Duration::days(i64::from(DAYS_PER_PAGE))),
        waitlist: format!("/book/{practice}/services/{service}/waitlist"),
    })
}

/// The details form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct DetailsForm {
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    date_of_birth: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
}

/// The details page.
#[derive(Template)]
#[template(path = "book_details.html")]
pub(crate) struct DetailsPage {
    assets: &'static Assets,
    chrome: Option<super::Chrome>,
    practice_name: String,
    service_name: String,
    when: String,
    action: String,
    back: String,
    form: DetailsForm,
    error: Option<String>,
}

/// The booking received page.
#[derive(Template)]
#[template(path = "book_done.html")]
pub(crate) struct DonePage {
    assets: &'static Assets,
    chrome: Option<super::Chrome>,
    practice_name: String,
    service_name: String,
    when: String,
}

fn start_of(raw: &str) -> Result<DateTime<Utc>, WebError> {
    raw.parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or(WebError(AppError::NotFound("time")))
}

async fn names(tx: &mut PublicBooking, service: ServiceId) -> Result<(String, String), WebError> {
    let practice_name = tx.practice_name().await.map_err(AppError::from)?;
    let (_, services) = tx.catalogue().await.map_err(AppError::from)?;
    let service_name = services
        .iter()
        .find(|s| s.service_id == service)
        .map(|s| s.name.clone())
        .ok_or(WebError(AppError::NotFound("service")))?;
    Ok((practice_name, service_name))
}

/// `GET /book/{practice_id}/services/{service_id}/at/{start}`.
pub(crate) async fn details_page(
    State(state): State<AppState>,
    Path((practice, service, start)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let practice: PracticeId = path_id(&practice, "practice")?;
    let service: ServiceId = path_id(&service, "service")?;
    let starts = start_of(&start)?;
    let mut tx = enter(&state, practice).await?;
    let tz = tz(&mut tx).await?;
    let (practice_name, service_name) = names(&mut tx, service).await?;
    tx.commit().await.map_err(AppError::from)?;
    html(&DetailsPage {
        assets: assets(),
        chrome: None,
        practice_name,
        service_name,
        when: when(starts, tz),
        action: format!("/book/{practice}/services/{service}/at/{start}"),
        back: format!("/book/{practice}/services/{service}"),
        form: DetailsForm::default(),
        error: None,
    })
}

/// `POST /book/{practice_id}/services/{service_id}/at/{start}`: books it.
pub(crate) async fn book(
    State(state): State<AppState>,
    Path((practice, service, start)): Path<(String, String, String)>,
    Form(form): Form<DetailsForm>,
) -> Result<Response, WebError> {
    let practice: PracticeId = path_id(&practice, "practice")?;
    let service: ServiceId = path_id(&service, "service")?;
    let starts = start_of(&start)?;
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    let mut tx = enter(&state, practice).await?;
    let tz = tz(&mut tx).await?;
    let (practice_name, service_name) = names(&mut tx, service).await?;
    let refused = |tx: PublicBooking, form: DetailsForm, message: String| {
        drop(tx);
        html_status(
            StatusCode::BAD_REQUEST,
            &DetailsPage {
                assets: assets(),
                chrome: None,
                practice_name: practice_name.clone(),
                service_name: service_name.clone(),
                when: when(starts, tz),
                action: format!("/book/{practice}/services/{service}/at/{start}"),
                back: format!("/book/{practice}/services/{service}"),
                form,
                error: Some(message),
            },
        )
    };
    let Ok(date_of_birth) = form.date_of_birth.trim().parse::<NaiveDate>() else {
        return refused(tx, form, "Date of birth: enter it as YYYY-MM-DD.".into());
    };
    let client = ClientDetails {
        given_name: form.given_name.clone(),
        family_name: form.family_name.clone(),
        date_of_birth,
        phone: form.phone.clone(),
        email: form.email.clone(),
    };
    match tx.book(&keyring, service, tz, starts, &client).await {
        Ok(Ok(booked)) => {
            let checkout =
                server::payments::commit_booking(&state, tx, &booked, &client, RequestId::new())
                    .await?;
            if let (Some(url), Some(hold)) = (checkout, booked.hold.as_ref()) {
                return html(&super::pay::PayNowPage::new(
                    practice_name,
                    service_name,
                    when(starts, tz),
                    hold,
                    tz,
                    url.as_str(),
                ));
            }
            html(&DonePage {
                assets: assets(),
                chrome: None,
                practice_name,
                service_name,
                when: when(starts, tz),
            })
        }
        Ok(Err(BookingRefused::SlotTaken)) => refused(
            tx,
            form,
            "That time is no longer free. Go back and choose another.".into(),
        ),
        Ok(Err(BookingRefused::NoService)) => Err(WebError(AppError::NotFound("service"))),
        Err(store::StoreError::Invalid(field)) => {
            let label = match field.as_str() {
                "client.given_name" => "Given name: fill it in (at most 100 characters).",
                "client.family_name" => "Family name: fill it in (at most 100 characters).",
                "client.date_of_birth" => "Date of birth: not a valid date of birth.",
                "client.phone" => "Mobile number: not a valid phone number.",
                "client.email" => "Email: not a valid email address.",
                _ => "A value is not valid.",
            };
            refused(tx, form, label.into())
        }
        Err(e) => Err(WebError(e.into())),
    }
}

/// The waitlist form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct WaitlistForm {
    #[serde(default)]
    first_day: String,
    #[serde(default)]
    last_day: String,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    date_of_birth: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
}

/// The waitlist form page.
#[derive(Template)]
#[template(path = "book_waitlist.html")]
pub(crate) struct WaitlistPage {
    assets: &'static Assets,
    chrome: Option<super::Chrome>,
    practice_name: String,
    service_name: String,
    action: String,
    back: String,
    today: NaiveDate,
    horizon: NaiveDate,
    form: WaitlistForm,
    error: Option<String>,
}

/// The "you are on the waitlist" page.
#[derive(Template)]
#[template(path = "book_waitlist_done.html")]
pub(crate) struct WaitlistDonePage {
    assets: &'static Assets,
    chrome: Option<super::Chrome>,
    practice_name: String,
    service_name: String,
    days: String,
}

/// The practice's and the service's names, today and the last day it books, in `tz`.
async fn waitlist_context(
    tx: &mut PublicBooking,
    service: ServiceId,
    tz: chrono_tz::Tz,
) -> Result<(String, String, NaiveDate, NaiveDate), WebError> {
    let (practice_name, service_name) = names(tx, service).await?;
    let (settings, _) = tx.catalogue().await.map_err(AppError::from)?;
    let today = tx.now().with_timezone(&tz).date_naive();
    let horizon = today + Duration::days(i64::from(settings.max_days_ahead));
    Ok((practice_name, service_name, today, horizon))
}

/// `GET /book/{practice_id}/services/{service_id}/waitlist`: the form. Changes nothing.
pub(crate) async fn waitlist_page(
    State(state): State<AppState>,
    Path((practice, service)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let practice: PracticeId = path_id(&practice, "practice")?;
    let service: ServiceId = path_id(&service, "service")?;
    let mut tx = enter(&state, practice).await?;
    let tz = tz(&mut tx).await?;
    let (practice_name, service_name, today, horizon) =
        waitlist_context(&mut tx, service, tz).await?;
    tx.commit().await.map_err(AppError::from)?;
    html(&WaitlistPage {
        assets: assets(),
        chrome: None,
        practice_name,
        service_name,
        action: format!("/book/{practice}/services/{service}/waitlist"),
        back: format!("/book/{practice}/services/{service}"),
        today,
        horizon,
        form: WaitlistForm::default(),
        error: None,
    })
}

/// `POST /book/{practice_id}/services/{service_id}/waitlist` (`waitlist.add`, self-joined):
/// the client is on the waitlist and their confirmation is queued; the same page whether they
/// were recognised or not. A refused form is a `400` saying what to correct (nothing stored).
pub(crate) async fn waitlist_join(
    State(state): State<AppState>,
    Path((practice, service)): Path<(String, String)>,
    Form(form): Form<WaitlistForm>,
) -> Result<Response, WebError> {
    let practice: PracticeId = path_id(&practice, "practice")?;
    let service: ServiceId = path_id(&service, "service")?;
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    let mut tx = enter(&state, practice).await?;
    let tz = tz(&mut tx).await?;
    let (practice_name, service_name, today, horizon) =
        waitlist_context(&mut tx, service, tz).await?;
    let refused = |tx: PublicBooking, form: WaitlistForm, message: &str| {
        drop(tx);
        html_status(
            StatusCode::BAD_REQUEST,
            &WaitlistPage {
                assets: assets(),
                chrome: None,
                practice_name: practice_name.clone(),
                service_name: service_name.clone(),
                action: format!("/book/{practice}/services/{service}/waitlist"),
                back: format!("/book/{practice}/services/{service}"),
                today,
                horizon,
                form,
                error: Some(message.to_owned()),
            },
        )
    };
    let date = |raw: &str| NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok();
    let Some(first_day) = date(&form.first_day) else {
        return refused(tx, form, "First day: enter it as YYYY-MM-DD.");
    };
    let Some(last_day) = date(&form.last_day) else {
        return refused(tx, form, "Last day: enter it as YYYY-MM-DD.");
    };
    let Some(date_of_birth) = date(&form.date_of_birth) else {
        return refused(tx, form, "Date of birth: enter it as YYYY-MM-DD.");
    };
    let join = JoinRequest {
        service_id: service,
        first_day,
        last_day,
        client: ClientDetails {
            given_name: form.given_name.clone(),
            family_name: form.family_name.clone(),
            date_of_birth,
            phone: form.phone.clone(),
            email: form.email.clone(),
        },
    };
    match tx.join_waitlist(&keyring, tz, &join).await {
        Ok(Ok(_)) => {
            tx.commit().await.map_err(AppError::from)?;
            let day = |d: NaiveDate| d.format("%a %-d %b %Y").to_string();
            html(&WaitlistDonePage {
                assets: assets(),
                chrome: None,
                practice_name,
                service_name,
                days: if first_day == last_day {
                    day(first_day)
                } else {
                    format!("{} to {}", day(first_day), day(last_day))
                },
            })
        }
        Ok(Err(_)) => Err(WebError(AppError::NotFound("service"))),
        Err(store::StoreError::Invalid(field)) => {
            let label = match field.as_str() {
                "waitlist.first_day" => {
                    "First day: choose today or a later day the practice books online."
                }
                "waitlist.last_day" => {
                    "Last day: choose the first day or a later day the practice books online."
                }
                "client.given_name" => "Given name: fill it in (at most 100 characters).",
                "client.family_name" => "Family name: fill it in (at most 100 characters).",
                "client.date_of_birth" => "Date of birth: not a valid date of birth.",
                "client.phone" => "Mobile number: not a valid phone number.",
                "client.email" => "Email: not a valid email address.",
                _ => "A value is not valid.",
            };
            refused(tx, form, label)
        }
        Err(e) => Err(WebError(e.into())),
    }
}
