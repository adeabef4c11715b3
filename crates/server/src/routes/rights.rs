//! Patients' right of access (HIPAA 164.524; req PR-01, PR-02): right-of-access requests with
//! their 30-day deadline and at most one 30-day extension, and the export of a patient's
//! designated record set ([`crate::export`]).
//!
//! Who: owners, admins and clinicians track requests (record, list, read, extend, deny) —
//! the privacy officer's work and the clinicians'; reception does not (a denial's reason may
//! rest on clinical judgement, 164.524(a)(3)). Producing the copy reads clinical records, so
//! the export and fulfilling a request are for clinicians who may see the patient's clinical
//! records (owners and admins hold no clinical access, req AC-08).
//!
//! Every step appends its `access_request.*` event in the same transaction; the export
//! appends `patient.export`; a copy sent to a third party is recorded as a disclosure
//! (`disclosure.create`). Audit details carry ids, states, forms and counts only: the
//! recipient and the written reasons are sealed with the request.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use domain::rights::{self, Status};
use domain::{
    AccessRequestId, AuditAction, AuditObject, ObjectKind, PatientId, PracticeId, UserId,
};
use serde::{Deserialize, Serialize};
use store::rights::Refusal;
use utoipa::{IntoParams, ToSchema};

use crate::export::{self, Format};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Clinical, ClinicalOrManage, Ctx};
use crate::routes::requests::{self, Step};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// Longest written reason or recipient, in bytes.
const MAX_TEXT: usize = 2000;

fn object(id: AccessRequestId) -> AuditObject {
    AuditObject::new(ObjectKind::AccessRequest, id.as_uuid())
}

fn refused(r: Refusal) -> AppError {
    match r {
        Refusal::NotFound => AppError::NotFound("access request"),
        Refusal::Lifecycle(l) => lifecycle_refused(rights::RequestKind::Access, l),
    }
}

/// How a refused step of a patient-rights request answers (access and amendment requests):
/// `409 RIGHTS-0001` for a second extension, `409 RIGHTS-0002` after the first deadline,
/// `409 RIGHTS-0003` once closed, `400` without a written reason.
#[must_use]
pub fn lifecycle_refused(kind: rights::RequestKind, r: rights::Refusal) -> AppError {
    let section = match kind {
        rights::RequestKind::Access => "164.524(b)(2)(iii)",
        rights::RequestKind::Amendment => "164.526(b)(2)(ii)",
    };
    match r {
        rights::Refusal::AlreadyExtended => AppError::Conflict(format!(
            "RIGHTS-0001: the request was already extended once; a second extension is not allowed ({section})"
        )),
        rights::Refusal::TooLateToExtend => AppError::Conflict(format!(
            "RIGHTS-0002: the {}-day deadline has passed; an extension must be given before it",
            kind.days()
        )),
        rights::Refusal::Closed => {
            AppError::Conflict("RIGHTS-0003: the request is already granted or denied".into())
        }
        rights::Refusal::ReasonRequired => {
            AppError::Invalid("reason: a written reason is required".into())
        }
    }
}

/// A request to record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessRequestCreate {
    /// The patient.
    patient_id: PatientId,
    /// When the request was received (default: now; not in the future, at most a year ago).
    /// The 30-day deadline runs from here.
    received_at: Option<DateTime<Utc>>,
    /// The form asked for: `fhir_json`, `html` or `paper`.
    form: String,
    /// A third party the copy is to go to (name and address, 1–2000 bytes; sealed), when the
    /// patient directs it outside the practice; absent: the patient.
    recipient: Option<String>,
}

/// A request in a list.
#[derive(Serialize, ToSchema)]
pub(crate) struct AccessRequestSummaryView {
    /// Id.
    request_id: AccessRequestId,
    /// The patient.
    patient_id: PatientId,
    /// Received.
    received_at: DateTime<Utc>,
    /// `fhir_json`, `html` or `paper`.
    form: String,
    /// Whether a third party is to receive the copy.
    third_party: bool,
    /// `open`, `extended`, `granted` or `denied`.
    status: Status,
    /// The deadline: 30 days after receipt, 60 once extended.
    due_at: DateTime<Utc>,
    /// Whether it is past due and still open or extended.
    overdue: bool,
    /// Whether the one extension may still be given (open, before the first deadline).
    may_extend: bool,
    /// When it was extended.
    extended_at: Option<DateTime<Utc>>,
    /// When it was granted or denied.
    closed_at: Option<DateTime<Utc>>,
    /// The disclosure recorded when the copy went to a third party.
    disclosure_id: Option<uuid::Uuid>,
    /// When the overdue alert was raised.
    overdue_alerted_at: Option<DateTime<Utc>>,
}

fn summary_view(
    s: &store::rights::AccessRequestSummary,
    now: DateTime<Utc>,
) -> AccessRequestSummaryView {
    AccessRequestSummaryView {
        request_id: s.request_id,
        patient_id: s.patient_id,
        received_at: s.received_at,
        form: s.form.clone(),
        third_party: s.third_party,
        status: s.status,
        due_at: s.due_at,
        overdue: rights::is_overdue(s.status, s.due_at, now),
        may_extend: rights::may_extend(rights::RequestKind::Access, s.received_at, s.status, now),
        extended_at: s.extended_at,
        closed_at: s.closed_at,
        disclosure_id: s.disclosure_id,
        overdue_alerted_at: s.overdue_alerted_at,
    }
}

/// The practice's requests.
#[derive(Serialize, ToSchema)]
pub(crate) struct AccessRequestList {
    /// Open ones first (soonest due first), then the newest closed ones.
    items: Vec<AccessRequestSummaryView>,
}

/// A request with its recipient and written reasons.
#[derive(Serialize, ToSchema)]
pub(crate) struct AccessRequestView {
    #[serde(flatten)]
    summary: AccessRequestSummaryView,
    /// The third-party recipient, if any.
    recipient: Option<String>,
    /// Why it was extended.
    extension_reason: Option<String>,
    /// Why it was denied.
    denial_reason: Option<String>,
    /// Recorded by.
    created_by: Option<UserId>,
    /// Granted or denied by.
    closed_by: Option<UserId>,
}

/// When a request was received: `received_at` (default `now`), not in the future, at most a
/// year ago (the deadline runs from here).
pub(crate) fn received_input(
    received_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, AppError> {
    let received_at = received_at.unwrap_or(now);
    if received_at > now + Duration::minutes(5) {
        return Err(AppError::Invalid(
            "received_at: must not be in the future".into(),
        ));
    }
    if received_at < now - Duration::days(366) {
        return Err(AppError::Invalid(
            "received_at: must be within the last year".into(),
        ));
    }
    Ok(received_at)
}

/// Checks a request to record (shared with the web pages).
pub fn access_request_input(
    patient_id: PatientId,
    received_at: Option<DateTime<Utc>>,
    form: &str,
    recipient: Option<&str>,
    now: DateTime<Utc>,
) -> Result<store::rights::NewAccessRequest, AppError> {
    if !rights::ACCESS_FORMS.contains(&form) {
        return Err(AppError::Invalid(
            "form: must be fhir_json, html or paper".into(),
        ));
    }
    let received_at = received_input(received_at, now)?;
    Ok(store::rights::NewAccessRequest {
        patient_id,
        received_at,
        form: form.to_owned(),
        recipient: recipient
            .map(|r| domain::values::free_text("recipient", r, MAX_TEXT))
            .transpose()?,
    })
}

/// Records a request and audits `access_request.create` (form, third party or not): the one
/// path of the API and the web pages. `404` for an unknown patient. The caller commits.
pub async fn create_access_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    new: &store::rights::NewAccessRequest,
) -> Result<AccessRequestId, AppError> {
    let id = store::rights::create(tx, keyring, new)
        .await?
        .ok_or(AppError::NotFound("patient"))?;
    tx.audit_details(
        AuditAction::AccessRequestCreate,
        Some(new.patient_id),
        Some(object(id)),
        Some(serde_json::json!({
            "form": new.form,
            "third_party": new.recipient.is_some(),
        })),
    )
    .await?;
    Ok(id)
}

/// Lists the practice's requests (nothing decrypted), audited `access_request.list`.
pub async fn list_access_requests(
    tx: &mut store::TenantTx,
) -> Result<Vec<store::rights::AccessRequestSummary>, AppError> {
    let list = store::rights::list(tx).await?;
    tx.audit_details(
        AuditAction::AccessRequestList,
        None,
        None,
        Some(serde_json::json!({ "count": list.len() })),
    )
    .await?;
    Ok(list)
}

/// Reads request `id` (recipient and reasons decrypted), audited `access_request.read`.
pub async fn read_access_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AccessRequestId,
) -> Result<store::rights::AccessRequest, AppError> {
    let r = store::rights::get(tx, keyring, id)
        .await?
        .ok_or(AppError::NotFound("access request"))?;
    tx.audit(
        AuditAction::AccessRequestRead,
        Some(r.summary.patient_id),
        Some(object(id)),
    )
    .await?;
    Ok(r)
}

/// A written reason, checked (1–2000 bytes of text).
pub(crate) fn reason_input(reason: &str) -> Result<String, AppError> {
    domain::values::free_text("reason", reason, MAX_TEXT).map_err(Into::into)
}

/// Right-of-access requests in the shared lifecycle ([`requests::Kind`]).
pub(crate) struct Access;

impl requests::Kind for Access {
    type Id = AccessRequestId;
    type Summary = store::rights::AccessRequestSummary;
    type Refusal = Refusal;
    type View = AccessRequestSummaryView;
    const EXTEND: AuditAction = AuditAction::AccessRequestExtend;
    const DENY: AuditAction = AuditAction::AccessRequestDeny;

    async fn step(
        tx: &mut store::TenantTx,
        keyring: &store::crypto::Keyring,
        id: AccessRequestId,
        step: Step,
        reason: &str,
    ) -> Result<Result<Self::Summary, Refusal>, store::StoreError> {
        match step {
            Step::Extend => store::rights::extend(tx, keyring, id, reason).await,
            Step::Deny => store::rights::deny(tx, keyring, id, reason).await,
        }
    }

    fn refused(r: Refusal) -> AppError {
        refused(r)
    }

    fn event(s: &Self::Summary) -> (PatientId, AuditObject, serde_json::Value) {
        (
            s.patient_id,
            object(s.request_id),
            serde_json::json!({ "status": s.status.as_str() }),
        )
    }

    fn view(s: &Self::Summary, now: DateTime<Utc>) -> AccessRequestSummaryView {
        summary_view(s, now)
    }
}

/// Extends request `id` once by 30 days with the written reason, audited
/// `access_request.extend`: the one path of the API and the web pages. `409 RIGHTS-0001` for
/// a second extension. The caller commits.
pub async fn extend_access_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AccessRequestId,
    reason: &str,
) -> Result<store::rights::AccessRequestSummary, AppError> {
    requests::step::<Access>(tx, keyring, id, Step::Extend, reason).await
}

/// Denies request `id` with the written reason, audited `access_request.deny`: the one path
/// of the API and the web pages. The caller commits.
pub async fn deny_access_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AccessRequestId,
    reason: &str,
) -> Result<store::rights::AccessRequestSummary, AppError> {
    requests::step::<Access>(tx, keyring, id, Step::Deny, reason).await
}

/// Fulfils request `id`: produces the copy in the form asked for ([`export::export`], audited
/// `patient.export`), records it as a disclosure when it goes to a third party
/// (`disclosure.create`), marks the request granted and audits `access_request.fulfil`. The
/// caller commits.
pub async fn fulfil_access_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AccessRequestId,
) -> Result<
    (
        store::rights::AccessRequest,
        Format,
        String,
        Option<uuid::Uuid>,
    ),
    AppError,
> {
    let r = store::rights::to_grant(tx, keyring, id)
        .await?
        .map_err(refused)?;
    // The form asked for: `fhir_json` is the Bundle; `html` and `paper` (printed) the rendering.
    let format = if r.summary.form == "fhir_json" {
        Format::Fhir
    } else {
        Format::Html
    };
    let patient = r.summary.patient_id;
    let (set, body) = export::export(tx, keyring, patient, format).await?;
    let disclosure = match &r.recipient {
        Some(recipient) => {
            let d = store::disclosures::NewDisclosure {
                disclosed_at: tx.now(),
                recipient: recipient.clone(),
                description: format!(
                    "Copy of the designated record set ({}): {} notes, {} visits, {} appointments, {} perio exams, {} intake forms, {} recording consents, {} amendment documents",
                    format.as_str(),
                    set.notes.len(),
                    set.visits.len(),
                    set.appointments.len(),
                    set.exams.len(),
                    set.intakes.len(),
                    set.consents.len(),
                    set.amendment_documents()
                ),
                purpose: "At the patient's direction (right of access, 164.524(c)(3)(ii))".into(),
                tpo: false,
                kind: "export".into(),
            };
            Some(
                crate::routes::disclosures::record_disclosure(tx, keyring, patient, &d)
                    .await?
                    .disclosure_id,
            )
        }
        None => None,
    };
    store::rights::mark_granted(tx, id, disclosure).await?;
    tx.audit_details(
        AuditAction::AccessRequestFulfil,
        Some(patient),
        Some(object(id)),
        Some(serde_json::json!({
            "format": format.as_str(),
            "third_party": disclosure.is_some(),
        })),
    )
    .await?;
    Ok((r, format, body, disclosure))
}

/// Lists the practice's right-of-access requests with their deadlines.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/access-requests", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = AccessRequestList), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn access_request_list(
    ctx: Ctx<ClinicalOrManage>,
    ApiPath(_): ApiPath<PracticeId>,
) -> Result<Json<AccessRequestList>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let list = list_access_requests(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(AccessRequestList {
        items: list.iter().map(|s| summary_view(s, now)).collect(),
    }))
}

/// Records a patient's right-of-access request; its 30-day deadline runs from the receipt.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/access-requests", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid)), request_body = AccessRequestCreate,
    responses((status = 201, body = AccessRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn access_request_create(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath(_): ApiPath<PracticeId>,
    ApiJson(req): ApiJson<AccessRequestCreate>,
) -> Result<(StatusCode, Json<AccessRequestSummaryView>), AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let new = access_request_input(
        req.patient_id,
        req.received_at,
        &req.form,
        req.recipient.as_deref(),
        now,
    )?;
    let id = create_access_request(&mut tx, state.store.keyring()?, &new).await?;
    tx.commit().await?;
    let received = audit::event::truncate_to_micros(new.received_at);
    let s = store::rights::AccessRequestSummary {
        request_id: id,
        patient_id: new.patient_id,
        received_at: received,
        form: new.form,
        third_party: new.recipient.is_some(),
        status: Status::Open,
        due_at: rights::due(rights::RequestKind::Access, received, false),
        extended_at: None,
        closed_at: None,
        disclosure_id: None,
        overdue_alerted_at: None,
    };
    Ok((StatusCode::CREATED, Json(summary_view(&s, now))))
}

fn detail_view(r: store::rights::AccessRequest, now: DateTime<Utc>) -> AccessRequestView {
    AccessRequestView {
        summary: summary_view(&r.summary, now),
        recipient: r.recipient,
        extension_reason: r.extension_reason,
        denial_reason: r.denial_reason,
        created_by: r.created_by,
        closed_by: r.closed_by,
    }
}

/// A request with its deadline, recipient and written reasons.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/access-requests/{request_id}", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)),
    responses((status = 200, body = AccessRequestView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn access_request_get(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, AccessRequestId)>,
) -> Result<Json<AccessRequestView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let r = read_access_request(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    Ok(Json(detail_view(r, now)))
}

/// A written reason.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    /// The written reason (1–2000 bytes; sealed, never logged).
    pub(crate) reason: String,
}

/// Extends the deadline once by 30 days, with the written reason given to the patient
/// (164.524(b)(2)(iii)); a second extension → 409.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/access-requests/{request_id}/extend", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)), request_body = ReasonBody,
    responses((status = 200, body = AccessRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn access_request_extend(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, AccessRequestId)>,
    ApiJson(req): ApiJson<ReasonBody>,
) -> Result<Json<AccessRequestSummaryView>, AppError> {
    requests::answer::<Access, _>(&state, ctx, id, Step::Extend, &req.reason).await
}

/// Denies the request with the written reason (164.524(d)(2)).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/access-requests/{request_id}/deny", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)), request_body = ReasonBody,
    responses((status = 200, body = AccessRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn access_request_deny(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, AccessRequestId)>,
    ApiJson(req): ApiJson<ReasonBody>,
) -> Result<Json<AccessRequestSummaryView>, AppError> {
    requests::answer::<Access, _>(&state, ctx, id, Step::Deny, &req.reason).await
}

/// The format of an export.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// `fhir_json` (default: a FHIR R4 Bundle) or `html` (the human-readable rendering).
    format: Option<String>,
}

fn format_of(s: Option<&str>) -> Result<Format, AppError> {
    match s {
        None | Some("fhir_json") => Ok(Format::Fhir),
        Some("html") => Ok(Format::Html),
        Some(_) => Err(AppError::Invalid(
            "format: must be fhir_json or html".into(),
        )),
    }
}

fn document(format: Format, body: String) -> Response {
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match format {
            Format::Fhir => "application/fhir+json",
            Format::Html => "text/html; charset=utf-8",
        }),
    );
    res
}

/// Fulfils the request: produces the copy (the form asked for: `fhir_json` gives the FHIR R4
/// Bundle, `html` and `paper` the HTML rendering), records a disclosure when a third party
/// receives it, and marks the request granted. Clinicians who may see the patient's clinical
/// records.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/access-requests/{request_id}/fulfil", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)),
    responses((status = 200, content_type = "application/fhir+json", body = Object,
        description = "The copy: a FHIR R4 `Bundle` (type `collection`), or for the forms `html` and `paper` its HTML rendering (`text/html`)"),
        (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn access_request_fulfil(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, AccessRequestId)>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let (_, format, body, _) = fulfil_access_request(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    Ok(document(format, body))
}

/// Exports the patient's designated record set: a FHIR R4 `Bundle` (type `collection`) of
/// `Patient`, `Appointment`, `Encounter`, `DocumentReference` per signed note version with a
/// `Provenance` per signature, perio `Observation`s, `QuestionnaireResponse` per accepted
/// intake form and `Consent` per recording consent; or its HTML rendering. Clinicians who may
/// see the patient's clinical records; counts against the member's export quota (429
/// `RATE-0001` past it).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/export", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), ExportQuery),
    responses((status = 200, content_type = "application/fhir+json", body = Object,
        description = "A FHIR R4 `Bundle` (type `collection`), or with `format=html` its HTML rendering (`text/html`)"),
        (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E),
        (status = 429, body = E)))]
pub(crate) async fn patient_export(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, AppError> {
    let format = format_of(q.format.as_deref())?;
    let mut tx = ctx.tx;
    crate::identity::admit_quota(&state, &tx, crate::identity::QuotaKind::RecordExport).await?;
    let (_, body) = export::export(&mut tx, state.store.keyring()?, patient, format).await?;
    tx.commit().await?;
    Ok(document(format, body))
}
