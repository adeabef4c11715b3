//! Retention and legal hold (owners and admins, req INT-02): the practice's retention windows
//! and legal holds, and placing or releasing a hold on a patient. A hold stops the retention
//! job (`chartroom retention run`) from purging anything of the patient, deleted or not. The
//! windows themselves are the operator's to change (`chartroom retention set`).
//!
//! A hold records who placed it, when, and a category code — never a typed reason, which
//! could be PHI. Owners and admins see no patient data here: ids only.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditObject, PatientId, PracticeId, UserId};
use serde::{Deserialize, Serialize};
use store::retention::HoldCategory;
use utoipa::ToSchema;

use crate::AppError;
use crate::extract::{ApiJson, ApiPath, Ctx, Manage};

type E = crate::views::ErrorBody;

/// Why a patient is under legal hold.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Category {
    /// Litigation, pending or reasonably anticipated.
    Litigation,
    /// An investigation (regulator, board, insurer, internal).
    Investigation,
    /// A regulatory or statutory obligation to keep the record.
    Regulatory,
    /// A records request (subpoena, patient or authorized request) being fulfilled.
    RecordsRequest,
    /// Anything else (details kept outside the chart).
    Other,
}

impl From<Category> for HoldCategory {
    fn from(c: Category) -> Self {
        match c {
            Category::Litigation => HoldCategory::Litigation,
            Category::Investigation => HoldCategory::Investigation,
            Category::Regulatory => HoldCategory::Regulatory,
            Category::RecordsRequest => HoldCategory::RecordsRequest,
            Category::Other => HoldCategory::Other,
        }
    }
}

impl From<HoldCategory> for Category {
    fn from(c: HoldCategory) -> Self {
        match c {
            HoldCategory::Litigation => Category::Litigation,
            HoldCategory::Investigation => Category::Investigation,
            HoldCategory::Regulatory => Category::Regulatory,
            HoldCategory::RecordsRequest => Category::RecordsRequest,
            HoldCategory::Other => Category::Other,
        }
    }
}

/// A legal hold on one patient.
#[derive(Serialize, ToSchema)]
pub(crate) struct LegalHoldView {
    patient_id: PatientId,
    category: Category,
    /// Who placed it (or last changed its category).
    placed_by: UserId,
    placed_at: DateTime<Utc>,
}

impl From<store::retention::LegalHold> for LegalHoldView {
    fn from(h: store::retention::LegalHold) -> Self {
        Self {
            patient_id: h.patient_id,
            category: h.category.into(),
            placed_by: h.placed_by,
            placed_at: h.placed_at,
        }
    }
}

/// The practice's retention windows and legal holds.
#[derive(Serialize, ToSchema)]
pub(crate) struct RetentionView {
    /// Days a deleted patient or draft note is kept before the retention job purges it.
    deleted_retention_days: i32,
    /// Years signed notes are kept, from their newest signed version (the state
    /// record-keeping rule).
    record_keeping_years: i32,
    /// Patients under legal hold (nothing of theirs is purged).
    legal_holds: Vec<LegalHoldView>,
}

/// The practice's retention windows and legal holds (owners and admins).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/retention", tag = "retention",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = RetentionView), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn retention_get(
    ctx: Ctx<Manage>,
    ApiPath(_): ApiPath<PracticeId>,
) -> Result<Json<RetentionView>, AppError> {
    let mut tx = ctx.tx;
    let (settings, holds) = read_retention(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(RetentionView {
        deleted_retention_days: settings.deleted_retention_days,
        record_keeping_years: settings.record_keeping_years,
        legal_holds: holds.into_iter().map(Into::into).collect(),
    }))
}

/// A legal hold to place.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LegalHoldPut {
    /// Why (a category; keep any details outside the chart).
    category: Category,
}

/// Places a legal hold on a patient (deleted or not), or changes its category: the retention
/// job purges nothing of the patient while it holds.
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/legal-hold", tag = "retention",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = LegalHoldPut,
    responses((status = 200, body = LegalHoldView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn legal_hold_put(
    ctx: Ctx<Manage>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<LegalHoldPut>,
) -> Result<Json<LegalHoldView>, AppError> {
    let mut tx = ctx.tx;
    let h = place_legal_hold(&mut tx, patient, req.category.into()).await?;
    tx.commit().await?;
    Ok(Json(h.into()))
}

/// Releases a patient's legal hold (204 also when there was none): the retention job may
/// then purge the patient's records once their windows have passed.
#[utoipa::path(delete, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/legal-hold", tag = "retention",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn legal_hold_delete(
    ctx: Ctx<Manage>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    release_legal_hold(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads the practice's retention windows and legal holds and audits `retention.read` with
/// the number of holds: the one path of the API and the web pages. The caller commits.
pub async fn read_retention(
    tx: &mut store::TenantTx,
) -> Result<
    (
        store::retention::RetentionSettings,
        Vec<store::retention::LegalHold>,
    ),
    AppError,
> {
    let settings = store::retention::settings(tx).await?;
    let holds = store::retention::list_holds(tx).await?;
    tx.audit_details(
        AuditAction::RetentionRead,
        None,
        None,
        Some(serde_json::json!({ "legal_holds": holds.len() })),
    )
    .await?;
    Ok((settings, holds))
}

/// Places a legal hold of `category` on `patient` (deleted or not), or changes its category,
/// and audits `legal_hold.place` with the category: the one path of the API and the web
/// pages. `404` for a patient not of this practice; nothing placed. The caller commits.
pub async fn place_legal_hold(
    tx: &mut store::TenantTx,
    patient: PatientId,
    category: HoldCategory,
) -> Result<store::retention::LegalHold, AppError> {
    if !store::retention::hold_target(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let h = store::retention::place_hold(tx, patient, category).await?;
    tx.audit_details(
        AuditAction::LegalHoldPlace,
        Some(patient),
        Some(AuditObject::legal_hold(patient)),
        Some(serde_json::json!({ "category": h.category.as_str() })),
    )
    .await?;
    Ok(h)
}

/// Releases `patient`'s legal hold, if any, and audits `legal_hold.release` saying whether
/// there was one (and its category): the one path of the API and the web pages. `404` for a
/// patient not of this practice. The caller commits.
pub async fn release_legal_hold(
    tx: &mut store::TenantTx,
    patient: PatientId,
) -> Result<Option<store::retention::LegalHold>, AppError> {
    if !store::retention::hold_target(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let released = store::retention::release_hold(tx, patient).await?;
    tx.audit_details(
        AuditAction::LegalHoldRelease,
        Some(patient),
        Some(AuditObject::legal_hold(patient)),
        Some(serde_json::json!({
            "released": released.is_some(),
            "category": released.as_ref().map(|h| h.category.as_str()),
        })),
    )
    .await?;
    Ok(released)
}
