//! Patients' right to amend (HIPAA 164.526; req SIG-07, SIG-08): amendment requests with
//! their 60-day deadline and at most one 30-day extension, accepted (the change lands on the
//! note as a signed amendment or addendum through the notes' own path,
//! [`crate::routes::notes::amend_note`] and [`crate::routes::notes::add_addendum`]) or denied
//! with a written reason, then the patient's statement of disagreement and the practice's
//! rebuttal — all linked to the record: a note lists its requests, and the record export
//! ([`crate::export`]) carries every request and statement with the note it names, so a later
//! copy or disclosure of the record carries them too (164.526(d)(4)–(5)).
//!
//! Who: owners, admins and clinicians track requests (record, list, read, extend, deny, link
//! the statements), as right-of-access requests ([`crate::routes::rights`]); reception does
//! not. Accepting changes the record, so it is for clinicians who may see the patient's
//! clinical records; when the change lands on a note it is signed, so it needs a fresh second
//! factor (step-up), as every amendment does.
//!
//! Every step appends its `amendment_request.*` event in the same transaction (an accepted
//! note change also its `note.amend` or `note.addendum`). Audit details carry ids, kinds,
//! states and versions only: the change asked for and every written statement are sealed
//! with the request.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use domain::notes::{ADDENDUM_MAX, NoteContent, REASON_MAX};
use domain::rights::{self, RequestKind, Status};
use domain::{
    AmendmentRequestId, AuditAction, AuditObject, NoteId, ObjectKind, PatientId, PracticeId, UserId,
};
use serde::{Deserialize, Serialize};
use store::amendments::{Missing, Refusal};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Clinical, ClinicalOrManage, Ctx};
use crate::routes::requests::{self, Step};
use crate::routes::rights::{ReasonBody, lifecycle_refused, received_input};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// Longest change asked for, statement of disagreement or rebuttal, in bytes.
pub const MAX_STATEMENT: usize = 16 * 1024;

fn object(id: AmendmentRequestId) -> AuditObject {
    AuditObject::new(ObjectKind::AmendmentRequest, id.as_uuid())
}

fn refused(r: Refusal) -> AppError {
    match r {
        Refusal::NotFound => AppError::NotFound("amendment request"),
        Refusal::Lifecycle(l) => lifecycle_refused(RequestKind::Amendment, l),
        Refusal::NotDenied => AppError::Conflict(
            "RIGHTS-0004: a statement of disagreement answers a denial; this request is not denied"
                .into(),
        ),
        Refusal::NoDisagreement => AppError::Conflict(
            "RIGHTS-0005: a rebuttal answers the patient's statement of disagreement; none is linked yet"
                .into(),
        ),
        Refusal::AlreadyLinked => AppError::Conflict(
            "RIGHTS-0006: this statement is already linked to the request".into(),
        ),
    }
}

/// An amendment request to record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AmendmentRequestCreate {
    /// The patient.
    patient_id: PatientId,
    /// When the request was received (default: now; not in the future, at most a year ago).
    /// The 60-day deadline runs from here.
    received_at: Option<DateTime<Utc>>,
    /// The kind of record: `note`, `demographics`, `appointment`, `perio_exam`, `intake` or
    /// `other`.
    record_kind: String,
    /// The note (exactly when `record_kind` is `note`): one of the patient's notes.
    #[schema(value_type = Option<String>, format = Uuid)]
    note_id: Option<NoteId>,
    /// The note version the patient read (optional; only with `note_id`).
    note_version: Option<i32>,
    /// What the patient asks to change, and why (1–16384 bytes; sealed, never logged).
    requested_change: String,
}

/// An amendment request in a list.
#[derive(Serialize, ToSchema)]
pub(crate) struct AmendmentRequestSummaryView {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    request_id: AmendmentRequestId,
    /// The patient.
    patient_id: PatientId,
    /// Received.
    received_at: DateTime<Utc>,
    /// The kind of record it names.
    record_kind: String,
    /// The note it names.
    #[schema(value_type = Option<String>, format = Uuid)]
    note_id: Option<NoteId>,
    /// The note version the patient read.
    note_version: Option<i32>,
    /// `open`, `extended`, `granted` (accepted) or `denied`.
    status: Status,
    /// The deadline: 60 days after receipt, 90 once extended.
    due_at: DateTime<Utc>,
    /// Whether it is past due and still open or extended.
    overdue: bool,
    /// Whether the one extension may still be given (open, before the first deadline).
    may_extend: bool,
    /// When it was extended.
    extended_at: Option<DateTime<Utc>>,
    /// When it was accepted or denied.
    closed_at: Option<DateTime<Utc>>,
    /// The note version that carries the accepted change.
    landed_version: Option<i32>,
    /// `amendment` or `addendum`.
    landed_kind: Option<String>,
    /// When the patient's statement of disagreement was linked.
    disagreement_at: Option<DateTime<Utc>>,
    /// When the practice's rebuttal was linked.
    rebuttal_at: Option<DateTime<Utc>>,
    /// When the overdue alert was raised.
    overdue_alerted_at: Option<DateTime<Utc>>,
}

/// The view of a request in a list at `now` (shared with the web pages).
pub(crate) fn summary_view(
    s: &store::amendments::AmendmentRequestSummary,
    now: DateTime<Utc>,
) -> AmendmentRequestSummaryView {
    AmendmentRequestSummaryView {
        request_id: s.request_id,
        patient_id: s.patient_id,
        received_at: s.received_at,
        record_kind: s.record_kind.clone(),
        note_id: s.note_id,
        note_version: s.note_version,
        status: s.status,
        due_at: s.due_at,
        overdue: rights::is_overdue(s.status, s.due_at, now),
        may_extend: rights::may_extend(RequestKind::Amendment, s.received_at, s.status, now),
        extended_at: s.extended_at,
        closed_at: s.closed_at,
        landed_version: s.landed_version,
        landed_kind: s.landed_kind.clone(),
        disagreement_at: s.disagreement_at,
        rebuttal_at: s.rebuttal_at,
        overdue_alerted_at: s.overdue_alerted_at,
    }
}

/// The practice's amendment requests.
#[derive(Serialize, ToSchema)]
pub(crate) struct AmendmentRequestList {
    /// Open ones first (soonest due first), then the newest closed ones.
    items: Vec<AmendmentRequestSummaryView>,
}

/// An amendment request with the change asked for and every written statement.
#[derive(Serialize, ToSchema)]
pub(crate) struct AmendmentRequestView {
    #[serde(flatten)]
    summary: AmendmentRequestSummaryView,
    /// What the patient asked to change.
    requested_change: String,
    /// Why it was extended.
    extension_reason: Option<String>,
    /// Why it was denied.
    denial_reason: Option<String>,
    /// The patient's statement of disagreement.
    disagreement: Option<String>,
    /// The practice's rebuttal.
    rebuttal: Option<String>,
    /// Who linked the rebuttal (absent for a rebuttal linked before its author was recorded).
    rebuttal_by: Option<UserId>,
    /// Recorded by.
    created_by: Option<UserId>,
    /// Accepted or denied by.
    closed_by: Option<UserId>,
}

/// Checks an amendment request to record (shared with the web pages).
pub fn amendment_request_input(
    patient_id: PatientId,
    received_at: Option<DateTime<Utc>>,
    record_kind: &str,
    note: Option<(NoteId, Option<i32>)>,
    requested_change: &str,
    now: DateTime<Utc>,
) -> Result<store::amendments::NewAmendmentRequest, AppError> {
    if !store::amendments::RECORD_KINDS.contains(&record_kind) {
        return Err(AppError::Invalid(
            "record_kind: must be note, demographics, appointment, perio_exam, intake or other"
                .into(),
        ));
    }
    if (record_kind == "note") != note.is_some() {
        return Err(AppError::Invalid(
            "note_id: name the note exactly when record_kind is note".into(),
        ));
    }
    if note.and_then(|(_, v)| v).is_some_and(|v| v < 1) {
        return Err(AppError::Invalid(
            "note_version: must be a version number (1 or more)".into(),
        ));
    }
    Ok(store::amendments::NewAmendmentRequest {
        patient_id,
        received_at: received_input(received_at, now)?,
        record_kind: record_kind.to_owned(),
        note,
        requested_change: domain::values::free_text(
            "requested_change",
            requested_change,
            MAX_STATEMENT,
        )?,
    })
}

/// Records an amendment request and audits `amendment_request.create` (the kind of record,
/// the note id): the one path of the API and the web pages. `404` for an unknown patient, or
/// a note that is not that patient's. The caller commits.
pub async fn create_amendment_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    new: &store::amendments::NewAmendmentRequest,
) -> Result<store::amendments::AmendmentRequestSummary, AppError> {
    let s = store::amendments::create(tx, keyring, new)
        .await?
        .map_err(|m| match m {
            Missing::Patient => AppError::NotFound("patient"),
            Missing::Note => AppError::NotFound("note"),
        })?;
    tx.audit_details(
        AuditAction::AmendmentRequestCreate,
        Some(new.patient_id),
        Some(object(s.request_id)),
        Some(serde_json::json!({
            "record_kind": new.record_kind,
            "note_id": new.note.map(|(n, _)| n),
        })),
    )
    .await?;
    Ok(s)
}

/// Lists the practice's amendment requests (of `patient` only, when named; nothing
/// decrypted), audited `amendment_request.list`.
pub async fn list_amendment_requests(
    tx: &mut store::TenantTx,
    patient: Option<PatientId>,
) -> Result<Vec<store::amendments::AmendmentRequestSummary>, AppError> {
    let list = store::amendments::list(tx, patient).await?;
    tx.audit_details(
        AuditAction::AmendmentRequestList,
        patient,
        None,
        Some(serde_json::json!({ "count": list.len() })),
    )
    .await?;
    Ok(list)
}

/// Reads request `id` (the change asked for and the statements decrypted), audited
/// `amendment_request.read`.
pub async fn read_amendment_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AmendmentRequestId,
) -> Result<store::amendments::AmendmentRequest, AppError> {
    let r = store::amendments::get(tx, keyring, id)
        .await?
        .ok_or(AppError::NotFound("amendment request"))?;
    tx.audit(
        AuditAction::AmendmentRequestRead,
        Some(r.summary.patient_id),
        Some(object(id)),
    )
    .await?;
    Ok(r)
}

/// The details of a step's audit event on request `s`: its status and the landed version,
/// if any (ids, states and versions only).
fn event_details(s: &store::amendments::AmendmentRequestSummary) -> serde_json::Value {
    serde_json::json!({
        "status": s.status.as_str(),
        "landed_version": s.landed_version,
        "landed_kind": s.landed_kind,
    })
}

/// Audits `action` on request `s` with its status (and the landed version, if any).
async fn audit_step(
    tx: &mut store::TenantTx,
    action: AuditAction,
    s: &store::amendments::AmendmentRequestSummary,
) -> Result<(), AppError> {
    tx.audit_details(
        action,
        Some(s.patient_id),
        Some(object(s.request_id)),
        Some(event_details(s)),
    )
    .await?;
    Ok(())
}

/// Amendment requests in the shared lifecycle ([`requests::Kind`]).
pub(crate) struct Amendment;

impl requests::Kind for Amendment {
    type Id = AmendmentRequestId;
    type Summary = store::amendments::AmendmentRequestSummary;
    type Refusal = Refusal;
    type View = AmendmentRequestSummaryView;
    const EXTEND: AuditAction = AuditAction::AmendmentRequestExtend;
    const DENY: AuditAction = AuditAction::AmendmentRequestDeny;

    async fn step(
        tx: &mut store::TenantTx,
        keyring: &store::crypto::Keyring,
        id: AmendmentRequestId,
        step: Step,
        reason: &str,
    ) -> Result<Result<Self::Summary, Refusal>, store::StoreError> {
        match step {
            Step::Extend => store::amendments::extend(tx, keyring, id, reason).await,
            Step::Deny => store::amendments::deny(tx, keyring, id, reason).await,
        }
    }

    fn refused(r: Refusal) -> AppError {
        refused(r)
    }

    fn event(s: &Self::Summary) -> (PatientId, AuditObject, serde_json::Value) {
        (s.patient_id, object(s.request_id), event_details(s))
    }

    fn view(s: &Self::Summary, now: DateTime<Utc>) -> AmendmentRequestSummaryView {
        summary_view(s, now)
    }
}

/// Extends request `id` once by 30 days with the written reason, audited
/// `amendment_request.extend`: the one path of the API and the web pages. `409 RIGHTS-0001`
/// for a second extension. The caller commits.
pub async fn extend_amendment_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AmendmentRequestId,
    reason: &str,
) -> Result<store::amendments::AmendmentRequestSummary, AppError> {
    requests::step::<Amendment>(tx, keyring, id, Step::Extend, reason).await
}

/// Denies request `id` with the written reason (164.526(d)(1)), audited
/// `amendment_request.deny`: the one path of the API and the web pages. The caller commits.
pub async fn deny_amendment_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AmendmentRequestId,
    reason: &str,
) -> Result<store::amendments::AmendmentRequestSummary, AppError> {
    requests::step::<Amendment>(tx, keyring, id, Step::Deny, reason).await
}

/// Where an accepted change lands on the note the request names.
#[derive(Debug)]
pub enum NoteChange {
    /// A signed amendment: the note's new content, and why.
    Amendment {
        /// The full amended content.
        content: NoteContent,
        /// Why (checked).
        reason: String,
    },
    /// A signed addendum: the appended text, and why.
    Addendum {
        /// The appended text (checked).
        text: String,
        /// Why (checked).
        reason: String,
    },
}

/// Accepts request `id`: for a request that names a note, `change` lands on that note as a
/// signed amendment or addendum through the notes' own path (`note.amend` or
/// `note.addendum`, against the note version `expected` when given) and the request names
/// the version; for another kind of record no change may be given here (it is made through
/// that record's own route). Audits `amendment_request.accept`. The caller checks step-up
/// (when a change is given) and commits.
pub async fn accept_amendment_request(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AmendmentRequestId,
    change: Option<&NoteChange>,
    expected: Option<i32>,
) -> Result<store::amendments::AmendmentRequestSummary, AppError> {
    let s = store::amendments::decide(tx, id, rights::Action::Grant, None)
        .await?
        .map_err(refused)?;
    let landed = match (s.note_id, change) {
        (Some(note), Some(NoteChange::Amendment { content, reason })) => {
            let n = crate::routes::notes::amend_note(
                tx,
                keyring,
                note,
                expected,
                &store::notes::AmendmentInput {
                    content,
                    reason,
                    ai_assisted: false,
                    assistant_turn_id: None,
                },
            )
            .await?;
            Some((n.version, "amendment"))
        }
        (Some(note), Some(NoteChange::Addendum { text, reason })) => {
            let n = crate::routes::notes::add_addendum(tx, keyring, note, expected, text, reason)
                .await?;
            Some((n.version, "addendum"))
        }
        (Some(_), None) => {
            return Err(AppError::Invalid(
                "amendment: the request names a note; give the amendment or the addendum that makes the change"
                    .into(),
            ));
        }
        (None, Some(_)) => {
            return Err(AppError::Invalid(
                "amendment: the request names no note; make the change through the record's own route and accept without one"
                    .into(),
            ));
        }
        (None, None) => None,
    };
    let s = store::amendments::mark_accepted(tx, id, landed).await?;
    audit_step(tx, AuditAction::AmendmentRequestAccept, &s).await?;
    Ok(s)
}

/// Links the patient's statement of disagreement (`disagreement`) or the practice's rebuttal
/// (`rebuttal`) to request `id`, audited `amendment_request.disagreement` or
/// `amendment_request.rebuttal`: the one path of the API and the web pages. `409` when the
/// request is not denied, before a statement for a rebuttal, or when already linked. The
/// caller commits.
pub async fn link_statement(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: AmendmentRequestId,
    rebuttal: bool,
    text: &str,
) -> Result<store::amendments::AmendmentRequestSummary, AppError> {
    let text = domain::values::free_text("text", text, MAX_STATEMENT)?;
    let (s, action) = if rebuttal {
        (
            store::amendments::add_rebuttal(tx, keyring, id, &text).await?,
            AuditAction::AmendmentRequestRebuttal,
        )
    } else {
        (
            store::amendments::add_disagreement(tx, keyring, id, &text).await?,
            AuditAction::AmendmentRequestDisagreement,
        )
    };
    let s = s.map_err(refused)?;
    audit_step(tx, action, &s).await?;
    Ok(s)
}

/// Which requests to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this patient's requests.
    patient_id: Option<uuid::Uuid>,
}

/// Lists the practice's amendment requests with their deadlines (of one patient with
/// `patient_id`).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/amendment-requests", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = AmendmentRequestList), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn amendment_request_list(
    ctx: Ctx<ClinicalOrManage>,
    ApiPath(_): ApiPath<PracticeId>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<AmendmentRequestList>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let patient = q.patient_id.map(PatientId::from_uuid);
    let list = list_amendment_requests(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(Json(AmendmentRequestList {
        items: list.iter().map(|s| summary_view(s, now)).collect(),
    }))
}

/// Records a patient's amendment request (164.526(b)); its 60-day deadline runs from the
/// receipt.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/amendment-requests", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid)), request_body = AmendmentRequestCreate,
    responses((status = 201, body = AmendmentRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn amendment_request_create(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath(_): ApiPath<PracticeId>,
    ApiJson(req): ApiJson<AmendmentRequestCreate>,
) -> Result<(StatusCode, Json<AmendmentRequestSummaryView>), AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    if req.note_version.is_some() && req.note_id.is_none() {
        return Err(AppError::Invalid("note_version: only with note_id".into()));
    }
    let new = amendment_request_input(
        req.patient_id,
        req.received_at,
        &req.record_kind,
        req.note_id.map(|n| (n, req.note_version)),
        &req.requested_change,
        now,
    )?;
    let s = create_amendment_request(&mut tx, state.store.keyring()?, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(summary_view(&s, now))))
}

/// An amendment request with its deadline, the change asked for and every written statement.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/amendment-requests/{request_id}", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)),
    responses((status = 200, body = AmendmentRequestView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn amendment_request_get(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, AmendmentRequestId)>,
) -> Result<Json<AmendmentRequestView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let r = read_amendment_request(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    Ok(Json(AmendmentRequestView {
        summary: summary_view(&r.summary, now),
        requested_change: r.requested_change,
        extension_reason: r.extension_reason,
        denial_reason: r.denial_reason,
        disagreement: r.disagreement,
        rebuttal: r.rebuttal,
        rebuttal_by: r.rebuttal_by,
        created_by: r.created_by,
        closed_by: r.closed_by,
    }))
}

/// Extends the deadline once by 30 days, with the written reason given to the patient
/// (164.526(b)(2)(ii)); a second extension → 409.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/extend", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)), request_body = ReasonBody,
    responses((status = 200, body = AmendmentRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn amendment_request_extend(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, AmendmentRequestId)>,
    ApiJson(req): ApiJson<ReasonBody>,
) -> Result<Json<AmendmentRequestSummaryView>, AppError> {
    requests::answer::<Amendment, _>(&state, ctx, id, Step::Extend, &req.reason).await
}

/// Denies the request with the written reason (164.526(d)(1)); the patient may then file a
/// statement of disagreement.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/deny", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)), request_body = ReasonBody,
    responses((status = 200, body = AmendmentRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn amendment_request_deny(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, AmendmentRequestId)>,
    ApiJson(req): ApiJson<ReasonBody>,
) -> Result<Json<AmendmentRequestSummaryView>, AppError> {
    requests::answer::<Amendment, _>(&state, ctx, id, Step::Deny, &req.reason).await
}

/// The amendment that makes an accepted change to a note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptedAmendment {
    /// The note's full amended content.
    content: NoteContent,
    /// Why (required, at most 2 KiB).
    reason: String,
}

/// The addendum that makes an accepted change to a note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptedAddendum {
    /// The appended text (at most 16 KiB).
    text: String,
    /// Why (required, at most 2 KiB).
    reason: String,
}

/// How an accepted request changes the record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptBody {
    /// For a request that names a note: the signed amendment that makes the change (or
    /// `addendum`; exactly one).
    amendment: Option<AcceptedAmendment>,
    /// For a request that names a note: the signed addendum that makes the change.
    addendum: Option<AcceptedAddendum>,
}

fn change_input(body: AcceptBody) -> Result<Option<NoteChange>, AppError> {
    match (body.amendment, body.addendum) {
        (Some(_), Some(_)) => Err(AppError::Invalid(
            "amendment: give the amendment or the addendum, not both".into(),
        )),
        (Some(a), None) => Ok(Some(NoteChange::Amendment {
            reason: domain::values::free_text("reason", &a.reason, REASON_MAX)?,
            content: a.content,
        })),
        (None, Some(a)) => Ok(Some(NoteChange::Addendum {
            text: domain::values::free_text("text", &a.text, ADDENDUM_MAX)?,
            reason: domain::values::free_text("reason", &a.reason, REASON_MAX)?,
        })),
        (None, None) => Ok(None),
    }
}

/// Accepts the request (164.526(c)): for a note, the change lands as a signed amendment or
/// addendum of that note (step-up required; `If-Match` names the note version seen) and the
/// request names the version; for another kind of record, the change is made through that
/// record's own route and the request is accepted without one.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/accept", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "the note's ETag as seen (412 if it is no longer current)")), request_body = AcceptBody,
    responses((status = 200, body = AmendmentRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E),
              (status = 404, body = E), (status = 409, body = E), (status = 412, body = E)))]
pub(crate) async fn amendment_request_accept(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, AmendmentRequestId)>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AcceptBody>,
) -> Result<Json<AmendmentRequestSummaryView>, AppError> {
    let change = change_input(req)?;
    if change.is_some() {
        ctx.require_step_up(&state)?;
    }
    let expected = crate::routes::notes::if_match(&headers)?;
    let mut tx = ctx.tx;
    let now = tx.now();
    let s = accept_amendment_request(
        &mut tx,
        state.store.keyring()?,
        id,
        change.as_ref(),
        expected,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(summary_view(&s, now)))
}

/// A written statement.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatementBody {
    /// The statement (1–16384 bytes; sealed, never logged).
    text: String,
}

/// Links the patient's statement of disagreement with the denial (164.526(d)(1)(iii)).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/disagreement", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)), request_body = StatementBody,
    responses((status = 200, body = AmendmentRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn amendment_request_disagreement(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, AmendmentRequestId)>,
    ApiJson(req): ApiJson<StatementBody>,
) -> Result<Json<AmendmentRequestSummaryView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let s = link_statement(&mut tx, state.store.keyring()?, id, false, &req.text).await?;
    tx.commit().await?;
    Ok(Json(summary_view(&s, now)))
}

/// Links the practice's rebuttal of the patient's statement of disagreement (164.526(d)(3)).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/rebuttal", tag = "patient rights",
    params(("practice_id" = String, Path, format = Uuid), ("request_id" = String, Path, format = Uuid)), request_body = StatementBody,
    responses((status = 200, body = AmendmentRequestSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn amendment_request_rebuttal(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, AmendmentRequestId)>,
    ApiJson(req): ApiJson<StatementBody>,
) -> Result<Json<AmendmentRequestSummaryView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let s = link_statement(&mut tx, state.store.keyring()?, id, true, &req.text).await?;
    tx.commit().await?;
    Ok(Json(summary_view(&s, now)))
}
