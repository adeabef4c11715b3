//! Care team and break-glass: assigning a patient's clinician; opening a patient outside the
//! care team with a reason (time-boxed, every clinical read flagged as emergency access, an
//! alert raised); the owners' review list and acknowledgement.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AuditAction, AuditObject, ObjectKind, PatientId, PracticeId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Clinical, Ctx, Manage, Scheduling};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// Longest break-glass reason, in bytes.
pub const BREAK_GLASS_REASON_MAX: usize = 2 * 1024;
/// Default break-glass window, in minutes.
pub const BREAK_GLASS_DEFAULT_MINUTES: i64 = 60;
use BREAK_GLASS_DEFAULT_MINUTES as DEFAULT_MINUTES;
use BREAK_GLASS_REASON_MAX as REASON_MAX;

/// The break-glass window asked for (`None`: the default), checked: 1 to 240 minutes.
pub fn break_glass_minutes(asked: Option<i64>) -> Result<i64, AppError> {
    let minutes = asked.unwrap_or(DEFAULT_MINUTES);
    if (1..=240).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(AppError::Invalid("minutes: must be 1 to 240".into()))
    }
}

/// The assigned clinician.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignClinician {
    /// A member of the practice with the clinician role; `null` to clear.
    #[schema(value_type = Option<String>, format = Uuid)]
    clinician_id: Option<UserId>,
}

/// Sets (or clears) a patient's assigned clinician, who then sees the patient's clinical
/// records (care team).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/assigned-clinician", tag = "care team",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = AssignClinician,
    responses((status = 204), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 410, body = E)))]
pub(crate) async fn assign_clinician(
    ctx: Ctx<Scheduling>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<AssignClinician>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    if !store::patients::exists(&mut tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    if store::patients::is_deleted(&mut tx, patient).await? {
        return Err(AppError::Gone("patient"));
    }
    if !store::break_glass::assign_clinician(&mut tx, patient, req.clinician_id).await? {
        return Err(AppError::Invalid(
            "clinician_id: must be a member of this practice with the clinician role".into(),
        ));
    }
    tx.audit_details(
        AuditAction::CareTeamAssign,
        Some(patient),
        Some(AuditObject::patient(patient)),
        Some(serde_json::json!({ "clinician_id": req.clinician_id })),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A break-glass request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakGlassOpen {
    /// Why this patient must be opened now (required, at most 2 KiB; reviewed by the owners).
    reason: String,
    /// How long, 1–240 minutes (default 60).
    minutes: Option<i64>,
}

/// A break-glass grant.
#[derive(Serialize, ToSchema)]
#[schema(as = BreakGlassGrantView)]
pub(crate) struct GrantView {
    grant_id: uuid::Uuid,
    user_id: UserId,
    patient_id: PatientId,
    reason: String,
    opened_at: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
    acknowledged_by: Option<UserId>,
    acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<store::break_glass::Grant> for GrantView {
    fn from(g: store::break_glass::Grant) -> Self {
        Self {
            grant_id: g.grant_id,
            user_id: g.user_id,
            patient_id: g.patient_id,
            reason: g.reason,
            opened_at: g.opened_at,
            expires_at: g.expires_at,
            acknowledged_by: g.acknowledged_by,
            acknowledged_at: g.acknowledged_at,
        }
    }
}

/// Break-glass: opens a patient outside the clinician's care team for a limited time. Every
/// clinical access in the window is audited as emergency access; the owners get a review item.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/break-glass", tag = "care team",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = BreakGlassOpen,
    responses((status = 201, body = GrantView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 410, body = E)))]
pub(crate) async fn break_glass_open(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<BreakGlassOpen>,
) -> Result<(StatusCode, Json<GrantView>), AppError> {
    let reason = domain::values::free_text("reason", &req.reason, REASON_MAX)?;
    let minutes = break_glass_minutes(req.minutes)?;
    let mut tx = ctx.tx;
    break_glass_target(&mut tx, patient).await?;
    let g = open_break_glass(&mut tx, state.store.keyring()?, patient, &reason, minutes).await?;
    let practice = tx.practice();
    tx.commit().await?;
    break_glass_alert(practice, &g);
    Ok((StatusCode::CREATED, Json(g.into())))
}

/// Review list filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewQuery {
    /// Only grants not yet acknowledged (default true).
    pending: Option<bool>,
}

/// The practice's break-glass grants awaiting review (or all, `pending=false`).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/break-glass", tag = "care team",
    params(("practice_id" = String, Path, format = Uuid), ReviewQuery),
    responses((status = 200, body = Vec<GrantView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn break_glass_review(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> Result<Json<Vec<GrantView>>, AppError> {
    let mut tx = ctx.tx;
    let grants =
        review_break_glass(&mut tx, state.store.keyring()?, q.pending.unwrap_or(true)).await?;
    tx.commit().await?;
    Ok(Json(grants.into_iter().map(Into::into).collect()))
}

/// Acknowledges a break-glass grant after review.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/break-glass/{grant_id}/acknowledge", tag = "care team",
    params(("practice_id" = String, Path, format = Uuid), ("grant_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn break_glass_acknowledge(
    ctx: Ctx<Manage>,
    ApiPath((_, grant)): ApiPath<(PracticeId, uuid::Uuid)>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    acknowledge_break_glass(&mut tx, grant).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The practice's break-glass grants, newest first (only those awaiting review when
/// `pending_only`), their reasons decrypted, then audited `break_glass.review` with their
/// number: the one path of the API and the web pages. The caller commits.
pub async fn review_break_glass(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    pending_only: bool,
) -> Result<Vec<store::break_glass::Grant>, AppError> {
    let grants = store::break_glass::review_list(tx, keyring, pending_only).await?;
    tx.audit_details(
        AuditAction::BreakGlassReview,
        None,
        None,
        Some(serde_json::json!({ "grants": grants.len() })),
    )
    .await?;
    Ok(grants)
}

/// Acknowledges break-glass `grant` after review and audits `break_glass.acknowledge` naming
/// its patient: the one path of the API and the web pages. `404` for an unknown or already
/// acknowledged grant. The caller commits.
pub async fn acknowledge_break_glass(
    tx: &mut store::TenantTx,
    grant: uuid::Uuid,
) -> Result<PatientId, AppError> {
    let patient = store::break_glass::acknowledge(tx, grant)
        .await?
        .ok_or(AppError::NotFound("break-glass grant awaiting review"))?;
    tx.audit(
        AuditAction::BreakGlassAcknowledge,
        Some(patient),
        Some(AuditObject::new(ObjectKind::BreakGlass, grant)),
    )
    .await?;
    Ok(patient)
}

/// Whether break-glass may be opened on `patient`: `404` for a patient not of this practice,
/// `410` for a deleted one. The first step of the API and the web pages, before any input
/// is refused.
pub async fn break_glass_target(
    tx: &mut store::TenantTx,
    patient: PatientId,
) -> Result<(), AppError> {
    if !store::patients::exists(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    if store::patients::is_deleted(tx, patient).await? {
        return Err(AppError::Gone("patient"));
    }
    Ok(())
}

/// Opens break-glass access to `patient` for `minutes` with `reason` (already checked, the
/// target with [`break_glass_target`]) and audits `break_glass.open` with the window: the
/// one path of the API and the web pages. The caller commits, then raises
/// [`break_glass_alert`].
pub async fn open_break_glass(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
    reason: &str,
    minutes: i64,
) -> Result<store::break_glass::Grant, AppError> {
    let g = store::break_glass::open(tx, keyring, patient, reason, minutes).await?;
    tx.audit_details(
        AuditAction::BreakGlassOpen,
        Some(patient),
        Some(AuditObject::new(ObjectKind::BreakGlass, g.grant_id)),
        Some(serde_json::json!({ "minutes": minutes, "expires_at": g.expires_at })),
    )
    .await?;
    Ok(g)
}

/// The alert hook of an opened break-glass window, once committed: operators route the
/// `chartroom::alert` target to their paging (ids only).
pub fn break_glass_alert(practice: PracticeId, g: &store::break_glass::Grant) {
    tracing::warn!(
        target: "chartroom::alert",
        %practice,
        patient = %g.patient_id,
        grant = %g.grant_id,
        user = %g.user_id,
        "break-glass access opened"
    );
}
