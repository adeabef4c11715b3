//! Online booking screens: the setup (owners and admins: the rules, the services and who
//! offers them, each clinician's weekly hours) and the requests waiting for approval
//! (clinicians and reception). The same store calls as the API's booking routes, with their
//! refusals and audit events (`booking.setup`, `booking.list`, `booking.decide`).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{NaiveTime, Weekday};
use domain::booking::{CancellationPolicy, PaymentPolicy, WeeklyHours};
use domain::{BookingId, PracticeId, Privilege, RoleSet, ServiceId, UserId};
use serde::Deserialize;
use server::extract::{Manage, Scheduling};
use server::{AppError, AppState};
use store::TenantTx;
use store::booking::{BookingSettings, NewClients, ServiceInput};

use super::{Chrome, Member, chrome, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// A clinician with their hours as text (`Mon 09:00-17:00`, one opening per line).
pub(crate) struct ClinicianHours {
    user_id: UserId,
    name: String,
    hours: String,
}

/// A service row.
pub(crate) struct ServiceRow {
    service_id: ServiceId,
    name: String,
    minutes: u32,
    payment: String,
    active: bool,
    offered_by: String,
}

/// The setup page.
#[derive(Template)]
#[template(path = "booking_setup.html")]
pub(crate) struct SetupPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    settings: BookingSettings,
    approval: bool,
    services: Vec<ServiceRow>,
    clinicians: Vec<ClinicianHours>,
    public_url: String,
    error: Option<String>,
    done: Option<&'static str>,
}

/// `?done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "settings" => Some("Booking rules saved."),
        "service" => Some("Service saved."),
        "hours" => Some("Hours saved."),
        "approved" => Some("Booking approved: the client gets a confirmation."),
        "declined" => Some("Booking declined: the time is free again."),
        _ => None,
    }
}

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    }
}

fn hours_text(hours: &[WeeklyHours]) -> String {
    hours
        .iter()
        .map(|h| {
            format!(
                "{} {}-{}",
                weekday_name(h.weekday),
                h.start.format("%H:%M"),
                h.end.format("%H:%M")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses `Mon 09:00-17:00` lines (at most 28); the error names the line.
fn parse_hours(text: &str) -> Result<Vec<WeeklyHours>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().map(str::trim).enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || format!("Line {}: write it like “Mon 09:00-17:00”.", i + 1);
        let (day, span) = line.split_once(' ').ok_or_else(bad)?;
        let weekday: Weekday = day.trim().parse().map_err(|_| bad())?;
        let (a, b) = span.trim().split_once('-').ok_or_else(bad)?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?;
        out.push(
            WeeklyHours::new(weekday, start, end)
                .map_err(|_| format!("Line {}: the opening must be before the closing.", i + 1))?,
        );
        if out.len() > 28 {
            return Err("At most 28 openings a week.".into());
        }
    }
    Ok(out)
}

fn payment_text(p: PaymentPolicy) -> String {
    match p {
        PaymentPolicy::None => "none".into(),
        PaymentPolicy::Deposit { amount_minor } => format!("deposit {amount_minor}"),
        PaymentPolicy::Prepay { amount_minor } => format!("prepay {amount_minor}"),
        PaymentPolicy::CardOnFile => "card on file".into(),
    }
}

async fn render(
    tx: &mut TenantTx,
    error: Option<String>,
    done: Option<&'static str>,
) -> Result<SetupPage, WebError> {
    let practice_id = tx.practice();
    let chrome = chrome(tx).await?;
    let settings = store::booking::settings(tx).await?;
    let members = store::memberships::list(tx).await?;
    let names: std::collections::HashMap<UserId, String> = members
        .iter()
        .map(|m| (m.user_id, m.display_name.clone()))
        .collect();
    let services = store::booking::services(tx)
        .await?
        .into_iter()
        .map(|s| ServiceRow {
            service_id: s.service_id,
            name: s.name,
            minutes: s.duration_minutes,
            payment: payment_text(s.payment),
            active: s.active,
            offered_by: s
                .clinicians
                .iter()
                .filter_map(|c| names.get(c).cloned())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let mut clinicians = Vec::new();
    for m in members {
        if RoleSet::parse(&m.roles).is_ok_and(|r| Privilege::Clinical.allows(r)) {
            let hours = store::booking::hours(tx, m.user_id).await?;
            clinicians.push(ClinicianHours {
                user_id: m.user_id,
                name: m.display_name,
                hours: hours_text(&hours),
            });
        }
    }
    Ok(SetupPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        approval: settings.new_clients == NewClients::Approval,
        settings,
        services,
        clinicians,
        public_url: format!("/book/{practice_id}"),
        error,
        done,
    })
}

/// `GET /app/practices/{practice_id}/booking`.
pub(crate) async fn setup_page(
    Member(ctx): Member<Manage>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let page = render(&mut tx, None, done_message(q.done.as_deref())).await?;
    tx.commit().await?;
    html(&page)
}

async fn refused(mut tx: TenantTx, message: String) -> Result<Response, WebError> {
    // Refused before any statement ran: the page reads what stands.
    let page = render(&mut tx, Some(message), None).await?;
    tx.commit().await?;
    html_status(axum::http::StatusCode::BAD_REQUEST, &page)
}

/// The rules form.
#[derive(Deserialize, Default)]
pub(crate) struct RulesForm {
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    approval: Option<String>,
    #[serde(default)]
    min_notice_minutes: String,
    #[serde(default)]
    max_days_ahead: String,
    #[serde(default)]
    step_minutes: String,
    #[serde(default)]
    window_hours: String,
    #[serde(default)]
    late_cancel_fee_minor: String,
    #[serde(default)]
    no_show_fee_minor: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    waitlist_offers: String,
}

fn number(s: &str) -> Option<u32> {
    s.trim().parse().ok()
}

/// `POST /app/practices/{practice_id}/booking/settings`.
pub(crate) async fn settings_save(
    Member(ctx): Member<Manage>,
    Form(f): Form<RulesForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let parsed = (|| {
        Some(BookingSettings {
            enabled: f.enabled.is_some(),
            new_clients: if f.approval.is_some() {
                NewClients::Approval
            } else {
                NewClients::Allowed
            },
            min_notice_minutes: number(&f.min_notice_minutes)?,
            max_days_ahead: number(&f.max_days_ahead)?,
            step_minutes: number(&f.step_minutes)?,
            cancellation: CancellationPolicy {
                window_hours: number(&f.window_hours)?,
                late_cancel_fee_minor: number(&f.late_cancel_fee_minor)?,
                no_show_fee_minor: number(&f.no_show_fee_minor)?,
            },
            currency: f.currency.trim().to_lowercase(),
            waitlist_offers: if f.waitlist_offers.trim().is_empty() {
                store::booking::DEFAULT_WAITLIST_OFFERS
            } else {
                number(&f.waitlist_offers)?
            },
        })
    })();
    let Some(settings) = parsed else {
        return refused(tx, "Every number must be a whole number.".into()).await;
    };
    match store::booking::put_settings(&mut tx, &settings).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice}/booking?done=settings"
            )))
        }
        Err(store::StoreError::Invalid(field)) => {
            refused(tx, format!("Not saved: {field} is out of range.")).await
        }
        Err(e) => Err(WebError(e.into())),
    }
}

/// The add-service form (the `clinician` box may repeat).
#[derive(Default)]
pub(crate) struct ServiceForm {
    name: String,
    duration_minutes: String,
    payment: String,
    amount_minor: String,
    clinician: Vec<String>,
}

impl ServiceForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self::default();
        for (k, v) in pairs.into_iter().take(100) {
            match k.as_str() {
                "name" => f.name = v,
                "duration_minutes" => f.duration_minutes = v,
                "payment" => f.payment = v,
                "amount_minor" => f.amount_minor = v,
                "clinician" => f.clinician.push(v),
                _ => {}
            }
        }
        f
    }
}

/// `POST /app/practices/{practice_id}/booking/services`.
pub(crate) async fn service_add(
    Member(ctx): Member<Manage>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let f = ServiceForm::from_pairs(pairs);
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let amount = number(&f.amount_minor).unwrap_or(0);
    let payment = match f.payment.as_str() {
        "deposit" => PaymentPolicy::Deposit {
            amount_minor: amount,
        },
        "prepay" => PaymentPolicy::Prepay {
            amount_minor: amount,
        },
        "card_on_file" => PaymentPolicy::CardOnFile,
        _ => PaymentPolicy::None,
    };
    let clinicians: Option<Vec<UserId>> = f.clinician.iter().map(|c| c.parse().ok()).collect();
    let (Some(minutes), Some(clinicians)) = (number(&f.duration_minutes), clinicians) else {
        return refused(tx, "Length: a whole number of minutes.".into()).await;
    };
    let input = ServiceInput {
        name: f.name,
        duration_minutes: minutes,
        payment,
        active: true,
        clinicians,
    };
    match store::booking::put_service(&mut tx, None, &input).await {
        Ok(_) => {
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice}/booking?done=service"
            )))
        }
        Err(store::StoreError::Invalid(field)) => {
            refused(tx, format!("Not saved: {field} is not valid.")).await
        }
        Err(e) => Err(WebError(e.into())),
    }
}

/// The hours form.
#[derive(Deserialize, Default)]
pub(crate) struct HoursForm {
    #[serde(default)]
    hours: String,
}

/// `POST /app/practices/{practice_id}/booking/hours/{user_id}`.
pub(crate) async fn hours_save(
    Member(ctx): Member<Manage>,
    Path((_, user)): Path<(String, String)>,
    Form(f): Form<HoursForm>,
) -> Result<Response, WebError> {
    let user: UserId = path_id(&user, "member")?;
    let mut tx = ctx.tx;
    let practice = tx.practice();
    if f.hours.len() > 4096 {
        return refused(tx, "Hours: too long.".into()).await;
    }
    let hours = match parse_hours(&f.hours) {
        Ok(h) => h,
        Err(m) => return refused(tx, format!("Hours: {m}")).await,
    };
    match store::booking::put_hours(&mut tx, user, &hours).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice}/booking?done=hours"
            )))
        }
        Err(store::StoreError::Invalid(_)) => {
            refused(
                tx,
                "Hours: openings on one day must not overlap, for a clinician of this practice."
                    .into(),
            )
            .await
        }
        Err(e) => Err(WebError(e.into())),
    }
}

/// A booking waiting for approval.
pub(crate) struct RequestRow {
    booking_id: BookingId,
    when: String,
    service: String,
    clinician: String,
    client_kind: String,
    patient_href: String,
    payment: &'static str,
    due_by: String,
}

/// A booking's payment state, as the practice's screens word it.
fn payment_label(p: &str) -> &'static str {
    match p {
        "none" => "none",
        "pending" => "waiting for payment",
        "paid" => "paid",
        "card_on_file" => "card on file",
        "failed" => "failed",
        "expired" => "not paid in time",
        "refunded" => "refunded",
        _ => "unknown",
    }
}

/// The requests page.
#[derive(Template)]
#[template(path = "booking_requests.html")]
pub(crate) struct RequestsPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    requests: Vec<RequestRow>,
    held: Vec<RequestRow>,
    done: Option<&'static str>,
}

/// `GET /app/practices/{practice_id}/booking/requests`.
pub(crate) async fn requests_page(
    Member(ctx): Member<Scheduling>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let rows = store::booking::list(&mut tx, Some("requested")).await?;
    let held_rows = store::booking::list(&mut tx, Some("held")).await?;
    let services: std::collections::HashMap<ServiceId, String> = store::booking::services(&mut tx)
        .await?
        .into_iter()
        .map(|s| (s.service_id, s.name))
        .collect();
    let names: std::collections::HashMap<UserId, String> = store::memberships::list(&mut tx)
        .await?
        .into_iter()
        .map(|m| (m.user_id, m.display_name))
        .collect();
    tx.commit().await?;
    let row = |b: store::booking::OnlineBooking| RequestRow {
        booking_id: b.booking_id,
        when: b.starts_at.format("%a %-d %b %Y, %H:%M UTC").to_string(),
        service: services.get(&b.service_id).cloned().unwrap_or_default(),
        clinician: names.get(&b.clinician_id).cloned().unwrap_or_default(),
        client_kind: b.client_kind,
        patient_href: format!("/app/practices/{practice_id}/patients/{}", b.patient_id),
        payment: payment_label(&b.payment),
        due_by: b
            .payment_due_by
            .map(|t| t.format("%H:%M UTC").to_string())
            .unwrap_or_default(),
    };
    let requests = rows.into_iter().map(row).collect();
    let held = held_rows.into_iter().map(row).collect();
    html(&RequestsPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        requests,
        held,
        done: done_message(q.done.as_deref()),
    })
}

/// `POST /app/practices/{practice_id}/booking/requests/{booking_id}/{decision}`.
pub(crate) async fn decide(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, booking, decision)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let booking: BookingId = path_id(&booking, "booking")?;
    let approve = match decision.as_str() {
        "approve" => true,
        "decline" => false,
        _ => return Err(WebError(AppError::NotFound("page"))),
    };
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    store::booking::decide(&mut tx, &keyring, booking, approve)
        .await?
        .ok_or(WebError(AppError::NotFound("booking")))?;
    tx.commit().await?;
    let done = if approve { "approved" } else { "declined" };
    Ok(redirect(&format!(
        "/app/practices/{practice}/booking/requests?done={done}"
    )))
}
