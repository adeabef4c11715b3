//! Disclosures outside the practice and the patient's accounting of disclosures
//! (HIPAA 164.528): clinician or reception.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use domain::{AuditAction, AuditObject, ObjectKind, PatientId, PracticeId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Ctx, Scheduling};
use crate::{AppError, AppState};

const KINDS: [&str; 4] = ["export", "sharing", "support_access", "other"];

/// A disclosure to record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisclosureCreate {
    /// When the information was disclosed (default: now).
    disclosed_at: Option<DateTime<Utc>>,
    /// To whom: name, and address if known (1–200 characters).
    recipient: String,
    /// What was disclosed (1–1000 characters).
    description: String,
    /// Why (1–200 characters).
    purpose: String,
    /// For treatment, payment or health-care operations (not listed in the accounting).
    #[serde(default)]
    tpo: bool,
    /// `export`, `sharing`, `support_access` or `other` (default).
    kind: Option<String>,
}

/// A disclosure.
#[derive(Serialize, ToSchema)]
pub(crate) struct DisclosureView {
    /// Id.
    disclosure_id: uuid::Uuid,
    /// The patient.
    patient_id: PatientId,
    /// When.
    disclosed_at: DateTime<Utc>,
    /// To whom.
    recipient: String,
    /// What.
    description: String,
    /// Why.
    purpose: String,
    /// TPO.
    tpo: bool,
    /// Kind.
    kind: String,
    /// Recorded by.
    recorded_by: Option<UserId>,
}

impl From<store::disclosures::Disclosure> for DisclosureView {
    fn from(d: store::disclosures::Disclosure) -> Self {
        Self {
            disclosure_id: d.disclosure_id,
            patient_id: d.patient_id,
            disclosed_at: d.disclosed_at,
            recipient: d.recipient,
            description: d.description,
            purpose: d.purpose,
            tpo: d.tpo,
            kind: d.kind,
            recorded_by: d.recorded_by,
        }
    }
}

/// Checks a disclosure to record (shared with the web pages, [`crate::rules::disclosures`]):
/// a kind of `export`, `sharing`, `support_access` or `other` (default), a time not in the
/// future (default `now`), a one-line recipient and purpose of at most 200 characters, a
/// description of at most 1000 bytes.
pub fn disclosure_input(
    disclosed_at: Option<DateTime<Utc>>,
    recipient: &str,
    description: &str,
    purpose: &str,
    tpo: bool,
    kind: Option<String>,
    now: DateTime<Utc>,
) -> Result<store::disclosures::NewDisclosure, AppError> {
    let kind = kind.unwrap_or_else(|| "other".into());
    if !KINDS.contains(&kind.as_str()) {
        return Err(AppError::Invalid(
            "kind: must be export, sharing, support_access or other".into(),
        ));
    }
    let disclosed_at = disclosed_at.unwrap_or(now);
    if disclosed_at > now + Duration::minutes(5) {
        return Err(AppError::Invalid(
            "disclosed_at: must not be in the future".into(),
        ));
    }
    Ok(store::disclosures::NewDisclosure {
        disclosed_at,
        recipient: domain::values::single_line("recipient", recipient, 200)?,
        description: domain::values::free_text("description", description, 1000)?,
        purpose: domain::values::single_line("purpose", purpose, 200)?,
        tpo,
        kind,
    })
}

/// Records a disclosure of the patient's information outside the practice.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/disclosures", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = DisclosureCreate,
    responses((status = 201, body = DisclosureView), (status = 400, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn disclosure_create(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<DisclosureCreate>,
) -> Result<(StatusCode, Json<DisclosureView>), AppError> {
    let now = ctx.tx.now();
    let new = disclosure_input(
        req.disclosed_at,
        &req.recipient,
        &req.description,
        &req.purpose,
        req.tpo,
        req.kind,
        now,
    )?;
    let mut tx = ctx.tx;
    let d = record_disclosure(&mut tx, state.store.keyring()?, patient, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

/// Records a disclosure of `patient`'s information (checked with [`disclosure_input`]) and
/// audits `disclosure.create`: the one path of the API and the web pages. `404` for a patient
/// not visible here. The caller commits.
pub async fn record_disclosure(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
    new: &store::disclosures::NewDisclosure,
) -> Result<store::disclosures::Disclosure, AppError> {
    if !store::patients::exists(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let d = store::disclosures::create(tx, keyring, patient, new).await?;
    tx.audit(
        AuditAction::DisclosureCreate,
        Some(patient),
        Some(AuditObject::new(ObjectKind::Disclosure, d.disclosure_id)),
    )
    .await?;
    Ok(d)
}

/// `patient`'s disclosures from `from` to `to` without treatment, payment and operations, in
/// time order, decrypted, then audited `disclosure.report`: the one path of the API and the
/// web pages (the accounting of disclosures). `404` for a patient not visible here. The
/// caller checks the window and commits.
pub async fn disclosure_accounting(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<store::disclosures::Disclosure>, AppError> {
    if !store::patients::exists(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let list = store::disclosures::list(tx, keyring, patient, from, to, false).await?;
    tx.audit(
        AuditAction::DisclosureReport,
        Some(patient),
        Some(AuditObject::patient(patient)),
    )
    .await?;
    Ok(list)
}

/// Accounting window.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountingQuery {
    /// From (default: six years before `to`, the HIPAA 164.528 window).
    from: Option<DateTime<Utc>>,
    /// To (default: now).
    to: Option<DateTime<Utc>>,
}

/// Repeated disclosures to one recipient for one purpose, summarized (164.528(b)(3)).
#[derive(Debug, Serialize, ToSchema)]
pub struct DisclosureSummary {
    /// Recipient.
    pub recipient: String,
    /// Purpose.
    pub purpose: String,
    /// How many times.
    pub count: usize,
    /// First.
    pub first: DateTime<Utc>,
    /// Last.
    pub last: DateTime<Utc>,
}

/// The repeated disclosures of an accounting (same recipient and purpose, more than once),
/// summarized (164.528(b)(3)); `list` is in time order. Shared with the web pages.
#[must_use]
pub fn accounting_summary(list: &[store::disclosures::Disclosure]) -> Vec<DisclosureSummary> {
    let mut summary: Vec<DisclosureSummary> = Vec::new();
    for d in list {
        if let Some(s) = summary
            .iter_mut()
            .find(|s| s.recipient == d.recipient && s.purpose == d.purpose)
        {
            s.count += 1;
            s.last = d.disclosed_at;
        } else {
            summary.push(DisclosureSummary {
                recipient: d.recipient.clone(),
                purpose: d.purpose.clone(),
                count: 1,
                first: d.disclosed_at,
                last: d.disclosed_at,
            });
        }
    }
    summary.retain(|s| s.count > 1);
    summary
}

/// A patient's accounting of disclosures.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accounting {
    /// The patient.
    patient_id: PatientId,
    /// Window start.
    from: DateTime<Utc>,
    /// Window end.
    to: DateTime<Utc>,
    /// Every non-TPO disclosure in the window: date, recipient, description, purpose.
    disclosures: Vec<DisclosureView>,
    /// Repeated disclosures to the same recipient for the same purpose.
    summary: Vec<DisclosureSummary>,
}

/// The accounting of disclosures for a patient over a window (default the last six years),
/// excluding treatment, payment and operations. The report is itself audited.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/disclosures", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), AccountingQuery),
    responses((status = 200, body = Accounting), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn disclosure_report(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiQuery(q): ApiQuery<AccountingQuery>,
) -> Result<Json<Accounting>, AppError> {
    let to = q.to.unwrap_or_else(|| ctx.tx.now());
    let from = q.from.unwrap_or(to - Duration::days(6 * 365 + 2));
    if from >= to {
        return Err(AppError::Invalid("from must be before to".into()));
    }
    let mut tx = ctx.tx;
    let list = disclosure_accounting(&mut tx, state.store.keyring()?, patient, from, to).await?;
    tx.commit().await?;
    let summary = accounting_summary(&list);
    Ok(Json(Accounting {
        patient_id: patient,
        from,
        to,
        disclosures: list.into_iter().map(Into::into).collect(),
        summary,
    }))
}
