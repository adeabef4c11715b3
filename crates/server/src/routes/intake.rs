//! Intake forms for staff (clinicians and reception), as JSON: request a form for a patient
//! (its link is queued to the patient's contacts in the same transaction), the review queue,
//! one submitted form (its sealed answers opened), accept or reject; and a patient's client
//! links, with revocation.
//!
//! The same store calls and audit events as the web screens (`/app/practices/{p}/intake`):
//! `intake.request`, `intake.list`, `intake.read` (decrypts, through the one append),
//! `intake.decide`, `client_link.revoke`. The link's token is never returned, stored or
//! logged: it lives only in the sealed messages the outbox sends. Another practice's request,
//! patient or link is `404`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{ClientLinkId, IntakeRequestId, PatientId, PracticeId};
use serde::{Deserialize, Serialize};
use store::intake::{Decision, RequestRow, Review, Status};
use store::links::LinkRow;
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, Ctx, Scheduling};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// A form to request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IntakeRequestCreate {
    /// The form's id in the catalogue (`dental_health_history`, `massage_intake`,
    /// `consent_to_treatment`); its newest version is sent.
    form_id: String,
}

/// A request just made.
#[derive(Serialize, ToSchema)]
pub(crate) struct IntakeRequestCreated {
    /// The request.
    request_id: IntakeRequestId,
    /// How many messages carrying its link were queued (email and SMS; `0` when the chart has
    /// no usable contact: the request waits, and nothing reached the patient).
    messages_queued: usize,
}

/// Requests an intake form from a patient: makes the request and its link (live for 14 days,
/// usable once) and queues the link to the patient's email and mobile number in the same
/// transaction (`intake.request`).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/intake-requests",
    tag = "intake",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    request_body = IntakeRequestCreate,
    responses((status = 201, body = IntakeRequestCreated), (status = 400, body = E), (status = 404, body = E)))]
pub(crate) async fn intake_request_create(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<IntakeRequestCreate>,
) -> Result<(StatusCode, Json<IntakeRequestCreated>), AppError> {
    let form_id = req.form_id.trim();
    if form_id.is_empty() || form_id.len() > 64 {
        return Err(AppError::Invalid(
            "form_id: name one of the intake forms".into(),
        ));
    }
    let mut tx = ctx.tx;
    let keyring = state.store.keyring()?.clone();
    let made = match store::intake::request_and_send(&mut tx, &keyring, patient, form_id).await {
        Ok(m) => m,
        Err(store::StoreError::Invalid(_)) => {
            return Err(AppError::Invalid(
                "form_id: name one of the intake forms".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let (request_id, messages_queued) = made.ok_or(AppError::NotFound("patient"))?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(IntakeRequestCreated {
            request_id,
            messages_queued,
        }),
    ))
}

/// The review queue: forms waiting for review (oldest first), then the latest decided
/// (`intake.list`, naming each patient listed). Nothing decrypted.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/intake-requests", tag = "intake",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<RequestRow>)))]
pub(crate) async fn intake_queue(ctx: Ctx<Scheduling>) -> Result<Json<Vec<RequestRow>>, AppError> {
    let mut tx = ctx.tx;
    let rows = store::intake::queue(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// One submitted (or decided) form: the answers and the typed signature decrypted, the
/// evidence hash recomputed (`intake.read`). `404` for a request not submitted yet.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/intake-requests/{request_id}",
    tag = "intake",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Review), (status = 404, body = E)))]
pub(crate) async fn intake_response_get(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, request)): ApiPath<(PracticeId, IntakeRequestId)>,
) -> Result<Json<Review>, AppError> {
    let mut tx = ctx.tx;
    let review = store::intake::open(&mut tx, state.store.keyring()?, request)
        .await?
        .ok_or(AppError::NotFound("intake form"))?;
    tx.commit().await?;
    Ok(Json(review))
}

/// A decision's outcome.
#[derive(Serialize, ToSchema)]
pub(crate) struct IntakeDecided {
    /// The request.
    request_id: IntakeRequestId,
    /// `accepted` or `rejected`.
    status: Status,
}

/// A rejection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IntakeReject {
    /// Why (1–500 characters; sealed at rest, never in the audit log).
    reason: String,
}

async fn decide(
    state: &AppState,
    ctx: Ctx<Scheduling>,
    request: IntakeRequestId,
    decision: &Decision,
) -> Result<Json<IntakeDecided>, AppError> {
    let mut tx = ctx.tx;
    let status =
        match store::intake::decide(&mut tx, state.store.keyring()?, request, decision).await {
            Ok(s) => s.ok_or(AppError::NotFound("intake form"))?,
            Err(store::StoreError::Invalid(_)) => {
                return Err(AppError::Invalid(format!(
                    "reason: give a reason of 1 to {} characters",
                    store::intake::MAX_REASON_CHARS
                )));
            }
            Err(store::StoreError::Conflict(_)) => {
                return Err(AppError::Conflict(
                    "this intake form is not waiting for review".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
    tx.commit().await?;
    Ok(Json(IntakeDecided {
        request_id: request,
        status,
    }))
}

/// Accepts a submitted form onto the patient's chart (`intake.decide`). `409` when it is not
/// waiting for review.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/intake-requests/{request_id}/accept",
    tag = "intake",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)),
    responses((status = 200, body = IntakeDecided), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn intake_accept(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, request)): ApiPath<(PracticeId, IntakeRequestId)>,
) -> Result<Json<IntakeDecided>, AppError> {
    decide(&state, ctx, request, &Decision::Accept).await
}

/// Rejects a submitted form with a reason (`intake.decide`): nothing reaches the chart. `400`
/// without a reason, `409` when it is not waiting for review; nothing changes then.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/intake-requests/{request_id}/reject",
    tag = "intake",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)),
    request_body = IntakeReject,
    responses((status = 200, body = IntakeDecided), (status = 400, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn intake_reject(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, request)): ApiPath<(PracticeId, IntakeRequestId)>,
    ApiJson(req): ApiJson<IntakeReject>,
) -> Result<Json<IntakeDecided>, AppError> {
    decide(&state, ctx, request, &Decision::Reject(req.reason)).await
}

/// A patient's client links (intake, booking manage), newest first: what each opens and
/// whether it still works; never a token or its digest. Nothing is decrypted (ids, purposes
/// and times only), so it appends no audit event of its own.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/client-links",
    tag = "intake",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<LinkRow>), (status = 404, body = E)))]
pub(crate) async fn client_link_list(
    ctx: Ctx<Scheduling>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
) -> Result<Json<Vec<LinkRow>>, AppError> {
    let mut tx = ctx.tx;
    if !store::patients::exists(&mut tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let rows = store::links::for_patient(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// Revokes an outstanding client link (`client_link.revoke`): it stops working at once, and
/// the client gets the same page as for an expired link; nothing it opened changes. `409`
/// when it was already used, revoked or expired.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/client-links/{link_id}/revoke",
    tag = "intake",
    params(("practice_id" = String, Path, format = Uuid), ("link_id" = String, Path, format = Uuid)),
    responses((status = 200, body = LinkRow), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn client_link_revoke(
    ctx: Ctx<Scheduling>,
    ApiPath((_, link)): ApiPath<(PracticeId, ClientLinkId)>,
) -> Result<Json<LinkRow>, AppError> {
    let mut tx = ctx.tx;
    let row = revoke_link(&mut tx, link).await?;
    tx.commit().await?;
    Ok(Json(row))
}

/// Revokes `link` ([`store::links::revoke`]) with the API's answers: the one path of the API
/// and the web pages. The caller commits.
///
/// # Errors
/// `404` for no such link, `409` when it is not outstanding.
pub async fn revoke_link(
    tx: &mut store::TenantTx,
    link: ClientLinkId,
) -> Result<LinkRow, AppError> {
    match store::links::revoke(tx, link).await {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(AppError::NotFound("client link")),
        Err(store::StoreError::Conflict(_)) => Err(AppError::Conflict(
            "this link no longer works already (used, revoked or expired)".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
