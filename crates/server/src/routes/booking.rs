//! Online booking: the practice's setup (owners and admins), the review of bookings waiting
//! for approval (clinicians and reception), and the public page's API (no session).
//!
//! The public routes answer a practice that does not take online bookings exactly like one
//! that does not exist (404), name no clinician and no other client, and answer a booking the
//! same way whether the client was recognised or not ("received": the confirmation goes to the
//! contact details on the record). They are limited per client address like every public
//! client page ([`crate::extract::PublicClient`]: `429` with `Retry-After`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use domain::booking::{PaymentPolicy, WeeklyHours};
use domain::{BookingId, PracticeId, ServiceId, UserId};
use serde::{Deserialize, Serialize};
use store::booking::{
    BookingRefused, BookingSettings, ClientDetails, OnlineBooking, Service, ServiceInput,
};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Ctx, Manage, Scheduling};
use crate::routes::auth::ReqIdOf;
use crate::{AppError, AppState};

/// The practice's online-booking rules.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/booking/settings", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = BookingSettings)))]
pub(crate) async fn booking_settings_get(
    ctx: Ctx<Manage>,
) -> Result<Json<BookingSettings>, AppError> {
    let mut tx = ctx.tx;
    let s = store::booking::settings(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(s))
}

/// Sets the practice's online-booking rules (switching the public page on or off).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/booking/settings", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid)), request_body = BookingSettings,
    responses((status = 200, body = BookingSettings)))]
pub(crate) async fn booking_settings_put(
    ctx: Ctx<Manage>,
    ApiJson(req): ApiJson<BookingSettings>,
) -> Result<Json<BookingSettings>, AppError> {
    let mut tx = ctx.tx;
    store::booking::put_settings(&mut tx, &req).await?;
    tx.commit().await?;
    Ok(Json(req))
}

/// The practice's services (active or not) and who offers them.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/booking/services", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<Service>)))]
pub(crate) async fn booking_service_list(ctx: Ctx<Manage>) -> Result<Json<Vec<Service>>, AppError> {
    let mut tx = ctx.tx;
    let s = store::booking::services(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(s))
}

/// Adds a service.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/booking/services", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid)), request_body = ServiceInput,
    responses((status = 201, body = ServiceCreated)))]
pub(crate) async fn booking_service_create(
    ctx: Ctx<Manage>,
    ApiJson(req): ApiJson<ServiceInput>,
) -> Result<(StatusCode, Json<ServiceCreated>), AppError> {
    let mut tx = ctx.tx;
    let id = store::booking::put_service(&mut tx, None, &req)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(ServiceCreated { service_id: id })))
}

/// A service's id.
#[derive(Serialize, ToSchema)]
pub(crate) struct ServiceCreated {
    /// Id.
    service_id: ServiceId,
}

/// Replaces a service.
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/booking/services/{service_id}", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), ("service_id" = String, Path, format = Uuid)),
    request_body = ServiceInput, responses((status = 204)))]
pub(crate) async fn booking_service_put(
    ctx: Ctx<Manage>,
    ApiPath((_, service)): ApiPath<(PracticeId, ServiceId)>,
    ApiJson(req): ApiJson<ServiceInput>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    store::booking::put_service(&mut tx, Some(service), &req)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A clinician's weekly hours (the practice's local time).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Hours {
    /// The openings.
    hours: Vec<WeeklyHours>,
}

/// A clinician's weekly hours.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/booking/hours/{user_id}", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Hours)))]
pub(crate) async fn booking_hours_get(
    ctx: Ctx<Manage>,
    ApiPath((_, user)): ApiPath<(PracticeId, UserId)>,
) -> Result<Json<Hours>, AppError> {
    let mut tx = ctx.tx;
    let hours = store::booking::hours(&mut tx, user).await?;
    tx.commit().await?;
    Ok(Json(Hours { hours }))
}

/// Replaces a clinician's weekly hours (at most 28 openings, none overlapping).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/booking/hours/{user_id}", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    request_body = Hours, responses((status = 204)))]
pub(crate) async fn booking_hours_put(
    ctx: Ctx<Manage>,
    ApiPath((_, user)): ApiPath<(PracticeId, UserId)>,
    ApiJson(req): ApiJson<Hours>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    store::booking::put_hours(&mut tx, user, &req.hours).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which bookings to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookingFilter {
    /// `held`, `expired`, `requested`, `booked`, `declined` or `cancelled` (default: all).
    status: Option<String>,
}

/// Online bookings, newest first (at most 200).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/booking/bookings", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), BookingFilter),
    responses((status = 200, body = Vec<OnlineBooking>)))]
pub(crate) async fn booking_list(
    ctx: Ctx<Scheduling>,
    ApiQuery(f): ApiQuery<BookingFilter>,
) -> Result<Json<Vec<OnlineBooking>>, AppError> {
    let mut tx = ctx.tx;
    let rows = store::booking::list(&mut tx, f.status.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// A decision on a requested booking.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    /// Approve (book it) or decline (cancel it).
    approve: bool,
}

/// Approves or declines a booking that waits for the practice.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/booking/bookings/{booking_id}/decision", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), ("booking_id" = String, Path, format = Uuid)),
    request_body = Decision,
    responses((status = 200, body = OnlineBooking), (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn booking_decide(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, booking)): ApiPath<(PracticeId, BookingId)>,
    ApiJson(req): ApiJson<Decision>,
) -> Result<Json<OnlineBooking>, AppError> {
    let mut tx = ctx.tx;
    let keyring = state.store.keyring()?.clone();
    let row = store::booking::decide(&mut tx, &keyring, booking, req.approve)
        .await?
        .ok_or(AppError::NotFound("booking"))?;
    tx.commit().await?;
    Ok(Json(row))
}

/// The payments of an online booking: states, amounts, the processor's ids (no card or
/// client detail is ever held).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/booking/bookings/{booking_id}/payments", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), ("booking_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<store::payments::Payment>), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn booking_payments(
    ctx: Ctx<Scheduling>,
    ApiPath((_, booking)): ApiPath<(PracticeId, BookingId)>,
) -> Result<Json<Vec<store::payments::Payment>>, AppError> {
    let mut tx = ctx.tx;
    let rows = store::payments::for_booking(&mut tx, booking)
        .await?
        .ok_or(AppError::NotFound("booking"))?;
    tx.commit().await?;
    Ok(Json(rows))
}

// ---------------------------------------------------------------------------------------
// The public page's API.
// ---------------------------------------------------------------------------------------

/// A service as the public page shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PublicService {
    /// Id.
    service_id: ServiceId,
    /// Name.
    name: String,
    /// Length in minutes.
    duration_minutes: u32,
    /// What is paid when booking.
    payment: PaymentPolicy,
}

/// The public page's catalogue.
#[derive(Serialize, ToSchema)]
pub(crate) struct Catalogue {
    /// The services.
    services: Vec<PublicService>,
    /// The currency of payments.
    currency: String,
    /// Hours before the start inside which a cancellation is late.
    cancel_window_hours: u32,
    /// The late-cancellation fee, in minor units.
    late_cancel_fee_minor: u32,
    /// The no-show fee, in minor units.
    no_show_fee_minor: u32,
}

async fn enter(
    state: &AppState,
    practice: PracticeId,
    request: domain::RequestId,
) -> Result<store::booking::PublicBooking, AppError> {
    state
        .store
        .online_booking(practice, request, state.clock.now())
        .await?
        .ok_or(AppError::NotFound("practice"))
}

/// What the practice offers online.
#[utoipa::path(get, path = "/api/v1/public/practices/{practice_id}/booking", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid)), security(()),
    responses((status = 200, body = Catalogue), (status = 404, body = crate::views::ErrorBody), (status = 429, body = crate::views::ErrorBody)))]
pub(crate) async fn public_catalogue(
    State(state): State<AppState>,
    _client: crate::extract::PublicClient,
    ReqIdOf(request): ReqIdOf,
    ApiPath(practice): ApiPath<PracticeId>,
) -> Result<Json<Catalogue>, AppError> {
    let mut tx = enter(&state, practice, request).await?;
    let (settings, services) = tx.catalogue().await?;
    tx.commit().await?;
    Ok(Json(Catalogue {
        services: services
            .into_iter()
            .filter(|s| !s.clinicians.is_empty())
            .map(|s| PublicService {
                service_id: s.service_id,
                name: s.name,
                duration_minutes: s.duration_minutes,
                payment: s.payment,
            })
            .collect(),
        currency: settings.currency,
        cancel_window_hours: settings.cancellation.window_hours,
        late_cancel_fee_minor: settings.cancellation.late_cancel_fee_minor,
        no_show_fee_minor: settings.cancellation.no_show_fee_minor,
    }))
}

/// Which slots to show.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlotQuery {
    /// The service.
    service_id: ServiceId,
    /// The first day (the practice's local date; default: today).
    from: Option<NaiveDate>,
    /// How many days (1–14; default 7).
    days: Option<u32>,
}

/// The free start times of a service (no clinician is named).
#[derive(Serialize, ToSchema)]
pub(crate) struct Slots {
    /// Start times, ascending.
    starts: Vec<DateTime<Utc>>,
}

/// The free start times of a service over some days.
#[utoipa::path(get, path = "/api/v1/public/practices/{practice_id}/booking/slots", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), SlotQuery), security(()),
    responses((status = 200, body = Slots), (status = 404, body = crate::views::ErrorBody), (status = 429, body = crate::views::ErrorBody)))]
pub(crate) async fn public_slots(
    State(state): State<AppState>,
    _client: crate::extract::PublicClient,
    ReqIdOf(request): ReqIdOf,
    ApiPath(practice): ApiPath<PracticeId>,
    ApiQuery(q): ApiQuery<SlotQuery>,
) -> Result<Json<Slots>, AppError> {
    let days = q.days.unwrap_or(7);
    if !(1..=14).contains(&days) {
        return Err(AppError::Invalid("days must be between 1 and 14".into()));
    }
    let mut tx = enter(&state, practice, request).await?;
    let tz = tx.time_zone().await?;
    let from = q
        .from
        .unwrap_or_else(|| tx.now().with_timezone(&tz).date_naive());
    let slots = tx
        .availability(q.service_id, tz, from, days)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    tx.commit().await?;
    let mut starts: Vec<DateTime<Utc>> = slots.iter().map(|s| s.starts_at).collect();
    starts.dedup();
    Ok(Json(Slots { starts }))
}

/// A booking request from the public page.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublicBookingRequest {
    /// The service.
    service_id: ServiceId,
    /// A start time the slots route offered.
    starts_at: DateTime<Utc>,
    /// Who is booking.
    client: ClientDetails,
}

/// The answer to a booking: the same whether the client was recognised or not.
#[derive(Serialize, ToSchema)]
pub(crate) struct BookingReceived {
    /// `received`: the confirmation (or, where the practice approves new clients first, the
    /// answer) arrives by email and text message. `payment_required`: the service is paid
    /// for at booking (deposit, prepayment, card on file); the time is held until
    /// `pay_by` while the client pays at `checkout_url`, and the confirmation follows the
    /// payment.
    status: &'static str,
    /// The payment processor's hosted page (only with `payment_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    checkout_url: Option<String>,
    /// When an unpaid hold is released (only with `payment_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pay_by: Option<DateTime<Utc>>,
}

/// Books a slot for a client.
#[utoipa::path(post, path = "/api/v1/public/practices/{practice_id}/booking", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid)), security(()),
    request_body = PublicBookingRequest,
    responses((status = 202, body = BookingReceived), (status = 404, body = crate::views::ErrorBody),
              (status = 409, body = crate::views::ErrorBody), (status = 429, body = crate::views::ErrorBody),
              (status = 503, body = crate::views::ErrorBody)))]
pub(crate) async fn public_book(
    State(state): State<AppState>,
    _client: crate::extract::PublicClient,
    ReqIdOf(request): ReqIdOf,
    ApiPath(practice): ApiPath<PracticeId>,
    ApiJson(req): ApiJson<PublicBookingRequest>,
) -> Result<(StatusCode, Json<BookingReceived>), AppError> {
    let keyring = state.store.keyring()?.clone();
    let mut tx = enter(&state, practice, request).await?;
    let tz = tx.time_zone().await?;
    match tx
        .book(&keyring, req.service_id, tz, req.starts_at, &req.client)
        .await?
    {
        Ok(booked) => {
            let checkout =
                crate::payments::commit_booking(&state, tx, &booked, &req.client, request).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(match checkout {
                    None => BookingReceived {
                        status: "received",
                        checkout_url: None,
                        pay_by: None,
                    },
                    Some(url) => BookingReceived {
                        status: "payment_required",
                        checkout_url: Some(url.to_string()),
                        pay_by: booked.hold.as_ref().map(|h| h.expires_at),
                    },
                }),
            ))
        }
        Err(BookingRefused::NoService) => Err(AppError::NotFound("service")),
        Err(BookingRefused::SlotTaken) => Err(AppError::Conflict(
            "that time is no longer free; choose another".into(),
        )),
    }
}

/// The answer to joining the waitlist: the same whether the client was recognised or not.
#[derive(Serialize, ToSchema)]
pub(crate) struct WaitlistJoined {
    /// `received`: the confirmation, with a link to leave the waitlist, arrives by email and
    /// text message; when a time opens up on one of the days it is offered to the client.
    status: &'static str,
}

/// Puts a client on the practice's waitlist for a service and a range of days (the public
/// page's way when no time suits them). Audited `waitlist.add` (self-joined).
#[utoipa::path(post, path = "/api/v1/public/practices/{practice_id}/waitlist", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid)), security(()),
    request_body = store::waitlist::JoinRequest,
    responses((status = 202, body = WaitlistJoined), (status = 400, body = crate::views::ErrorBody),
              (status = 404, body = crate::views::ErrorBody), (status = 429, body = crate::views::ErrorBody)))]
pub(crate) async fn public_waitlist_join(
    State(state): State<AppState>,
    _client: crate::extract::PublicClient,
    ReqIdOf(request): ReqIdOf,
    ApiPath(practice): ApiPath<PracticeId>,
    ApiJson(req): ApiJson<store::waitlist::JoinRequest>,
) -> Result<(StatusCode, Json<WaitlistJoined>), AppError> {
    let keyring = state.store.keyring()?.clone();
    let mut tx = enter(&state, practice, request).await?;
    let tz = tx.time_zone().await?;
    match tx.join_waitlist(&keyring, tz, &req).await? {
        Ok(_) => {
            tx.commit().await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(WaitlistJoined { status: "received" }),
            ))
        }
        Err(_) => Err(AppError::NotFound("service")),
    }
}
