//! Appointments (clinician or reception).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use domain::values::ValueError;
use domain::{AppointmentId, AuditAction, AuditObject, PatientId, PracticeId, UserId};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Ctx, Scheduling};
use crate::views::AppointmentView;
use crate::{AppError, AppState};

/// The statuses an appointment can have.
pub const STATUSES: [&str; 5] = ["booked", "arrived", "completed", "cancelled", "no_show"];
/// The status of a cancelled appointment.
pub const CANCELLED: &str = "cancelled";
/// The status of an appointment the client did not come to.
pub const NO_SHOW: &str = "no_show";
/// Longest appointment.
pub const LONGEST: Duration = Duration::hours(24);

/// An appointment's times: the end after the start, at most [`LONGEST`] later (the field
/// named is `ends_at`).
pub fn appointment_times(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> Result<(), ValueError> {
    if ends_at <= starts_at || ends_at - starts_at > LONGEST {
        return Err(ValueError::new(
            "ends_at",
            "must be after starts_at, at most 24 hours later",
        ));
    }
    Ok(())
}

/// A time window.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Window {
    /// Start of the window (RFC 3339; default: now).
    from: Option<DateTime<Utc>>,
    /// End of the window (RFC 3339; default: `from` + 7 days; at most 93 days after `from`).
    to: Option<DateTime<Utc>>,
}

/// Appointments starting in a window, by start time (at most 200). Every patient shown is
/// audited.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/appointments", tag = "appointments",
    params(("practice_id" = String, Path, format = Uuid), Window),
    responses((status = 200, body = Vec<AppointmentView>), (status = 401, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn appointment_list(
    ctx: Ctx<Scheduling>,
    ApiQuery(w): ApiQuery<Window>,
) -> Result<Json<Vec<AppointmentView>>, AppError> {
    let from = w.from.unwrap_or_else(|| ctx.tx.now());
    let to = w.to.unwrap_or(from + Duration::days(7));
    if to <= from || to - from > Duration::days(93) {
        return Err(AppError::Invalid(
            "to must be after from, at most 93 days later".into(),
        ));
    }
    let mut tx = ctx.tx;
    let (items, ()) = list_appointments(&mut tx, None, from, to, 200, async |_, _| Ok(())).await?;
    tx.commit().await?;
    Ok(Json(items.into_iter().map(Into::into).collect()))
}

/// A new appointment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppointmentCreate {
    /// The patient (of this practice).
    patient_id: PatientId,
    /// The clinician (a member of this practice).
    clinician_id: UserId,
    /// Start (RFC 3339).
    starts_at: DateTime<Utc>,
    /// End (RFC 3339), after the start, at most 24 hours later.
    ends_at: DateTime<Utc>,
}

/// Books an appointment.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/appointments", tag = "appointments",
    params(("practice_id" = String, Path, format = Uuid)), request_body = AppointmentCreate,
    responses((status = 201, body = AppointmentView), (status = 400, body = crate::views::ErrorBody), (status = 409, body = crate::views::ErrorBody), (status = 410, body = crate::views::ErrorBody)))]
pub(crate) async fn appointment_create(
    ctx: Ctx<Scheduling>,
    ApiJson(req): ApiJson<AppointmentCreate>,
) -> Result<(StatusCode, Json<AppointmentView>), AppError> {
    appointment_times(req.starts_at, req.ends_at)
        .map_err(|e| AppError::Invalid(format!("{} {}", e.field, e.rule)))?;
    let mut tx = ctx.tx;
    let new = store::appointments::NewAppointment {
        patient_id: req.patient_id,
        clinician_id: req.clinician_id,
        starts_at: req.starts_at,
        ends_at: req.ends_at,
    };
    let a = book(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(a.into())))
}

/// The appointments starting in `[from, to)` (of `clinician` only when one is named), by
/// start time, at most `limit` ≤ 200, auditing `appointment.list` naming every patient shown:
/// the one path of the API and the web pages (window already checked). `shown` runs before
/// the audit event, so that event covers what it reads (a page decrypting patient names);
/// its answer comes back with the appointments. The caller commits.
pub async fn list_appointments<T>(
    tx: &mut store::TenantTx,
    clinician: Option<UserId>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    shown: impl AsyncFnOnce(
        &mut store::TenantTx,
        &[store::appointments::Appointment],
    ) -> Result<T, AppError>,
) -> Result<(Vec<store::appointments::Appointment>, T), AppError> {
    let items = match clinician {
        Some(c) => store::appointments::list_for_clinician(tx, c, from, to, limit).await?,
        None => store::appointments::list(tx, from, to, limit).await?,
    };
    let extra = shown(tx, &items).await?;
    tx.audit_patients(
        AuditAction::AppointmentList,
        items.iter().map(|a| a.patient_id),
    )
    .await?;
    Ok((items, extra))
}

/// Appointment `id`, audited `appointment.read`: the one path of the API and the web pages.
/// `404` when unknown. `shown` runs before the audit event, so that event covers what it
/// reads (a page decrypting the patient's name); its answer comes back with the appointment.
/// The caller commits.
pub async fn read_appointment<T>(
    tx: &mut store::TenantTx,
    id: AppointmentId,
    shown: impl AsyncFnOnce(
        &mut store::TenantTx,
        &store::appointments::Appointment,
    ) -> Result<T, AppError>,
) -> Result<(store::appointments::Appointment, T), AppError> {
    let a = store::appointments::get(tx, id)
        .await?
        .ok_or(AppError::NotFound("appointment"))?;
    let extra = shown(tx, &a).await?;
    tx.audit(
        AuditAction::AppointmentRead,
        Some(a.patient_id),
        Some(AuditObject::appointment(id)),
    )
    .await?;
    Ok((a, extra))
}

/// Books `new` and audits `appointment.create`: the one path of the API and the web pages
/// (times already checked with [`appointment_times`]). A deleted patient is `410`, as every
/// other route naming one. The caller commits.
pub async fn book(
    tx: &mut store::TenantTx,
    new: &store::appointments::NewAppointment,
) -> Result<store::appointments::Appointment, AppError> {
    if store::patients::is_deleted(tx, new.patient_id).await? {
        return Err(AppError::Gone("patient"));
    }
    let a = store::appointments::create(tx, new).await?;
    tx.audit(
        AuditAction::AppointmentCreate,
        Some(a.patient_id),
        Some(AuditObject::appointment(a.appointment_id)),
    )
    .await?;
    Ok(a)
}

/// Applies `patch` to appointment `id` and audits `appointment.update`: the one path of the
/// API and the web pages (move, cancel). A cancellation of an online booking cancels the
/// booking and queues the refund, in full, of what the client paid for it (the practice
/// cancelled: [`store::payments::practice_cancelled`], worked by the payments job; the audit
/// event then says `{"refund": "practice_cancelled"}`), and offers the freed slot to the
/// waitlist in the same transaction ([`store::waitlist::offer_cancelled_slot`]); marking an online
/// booking a no-show queues the practice's no-show fee, charged off session with the card
/// saved at booking by the payments job ([`store::payments::record_no_show`]). `404` when there is
/// no such appointment. The caller commits.
pub async fn change(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AppointmentId,
    patch: &store::appointments::AppointmentPatch,
) -> Result<store::appointments::Appointment, AppError> {
    // A change into `cancelled` offers the slot; into `no_show`, queues the no-show fee.
    let entering = |status: &str| patch.status.as_deref() == Some(status);
    let before = if entering(CANCELLED) || entering(NO_SHOW) {
        store::appointments::get(tx, id).await?.map(|a| a.status)
    } else {
        None
    };
    let cancelling = entering(CANCELLED) && before.as_deref().is_some_and(|s| s != CANCELLED);
    let no_show = entering(NO_SHOW) && before.as_deref().is_some_and(|s| s != NO_SHOW);
    let a = store::appointments::update(tx, id, patch)
        .await?
        .ok_or(AppError::NotFound("appointment"))?;
    let refund = cancelling && store::payments::practice_cancelled(tx, id).await?;
    tx.audit_details(
        AuditAction::AppointmentUpdate,
        Some(a.patient_id),
        Some(AuditObject::appointment(id)),
        refund.then(|| serde_json::json!({"refund": "practice_cancelled"})),
    )
    .await?;
    if cancelling {
        store::waitlist::offer_cancelled_slot(tx, keyring, id).await?;
    }
    if no_show {
        store::payments::record_no_show(tx, id).await?;
    }
    Ok(a)
}

/// One appointment.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/appointments/{appointment_id}", tag = "appointments",
    params(("practice_id" = String, Path, format = Uuid), ("appointment_id" = String, Path, format = Uuid)),
    responses((status = 200, body = AppointmentView), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn appointment_get(
    ctx: Ctx<Scheduling>,
    ApiPath((_, id)): ApiPath<(PracticeId, AppointmentId)>,
) -> Result<Json<AppointmentView>, AppError> {
    let mut tx = ctx.tx;
    let (a, ()) = read_appointment(&mut tx, id, async |_, _| Ok(())).await?;
    tx.commit().await?;
    Ok(Json(a.into()))
}

/// Changes to an appointment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppointmentUpdate {
    /// New start.
    starts_at: Option<DateTime<Utc>>,
    /// New end.
    ends_at: Option<DateTime<Utc>>,
    /// New status: `booked`, `arrived`, `completed`, `cancelled` or `no_show`.
    status: Option<String>,
    /// New clinician.
    clinician_id: Option<UserId>,
}

/// Reschedules an appointment, changes its status or its clinician.
#[utoipa::path(patch, path = "/api/v1/practices/{practice_id}/appointments/{appointment_id}", tag = "appointments",
    params(("practice_id" = String, Path, format = Uuid), ("appointment_id" = String, Path, format = Uuid)), request_body = AppointmentUpdate,
    responses((status = 200, body = AppointmentView), (status = 400, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn appointment_update(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, id)): ApiPath<(PracticeId, AppointmentId)>,
    ApiJson(req): ApiJson<AppointmentUpdate>,
) -> Result<Json<AppointmentView>, AppError> {
    if let Some(s) = &req.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(AppError::Invalid(
            "status: must be one of booked, arrived, completed, cancelled, no_show".into(),
        ));
    }
    let mut tx = ctx.tx;
    let patch = store::appointments::AppointmentPatch {
        starts_at: req.starts_at,
        ends_at: req.ends_at,
        status: req.status,
        clinician_id: req.clinician_id,
    };
    let keyring = state.store.keyring()?.clone();
    let a = change(&mut tx, &keyring, id, &patch).await?;
    tx.commit().await?;
    Ok(Json(a.into()))
}
