//! Security incidents and breach clocks (owners and admins; req IR-01, IR-02, IR-03): record an
//! incident, see every clock computed from its discovery time, move it through its lifecycle,
//! record the four-factor risk assessment, scope the affected patients from the audit log,
//! track notification letters, and close it as a breach or not. And the patient's state of
//! residence (clinician or reception), which the per-state counts read.
//!
//! Every step appends an `incident.*` event to the practice's audit chain in the same
//! transaction. The sealed notes (description, response, outcome, the four factors) are
//! decrypted only for the detail view, which is audited `incident.read`. Audit details carry
//! ids, states, counts and clock names only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::incident::{self, Assessment, Deadline, Status, Terms};
use domain::{AuditAction, AuditObject, IncidentId, ObjectKind, PatientId, PracticeId, UserId};
use serde::{Deserialize, Serialize};
use store::incidents::{Refusal, ScopeKind};
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, Ctx, Manage, Scheduling};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// Longest description, note or factor, in bytes.
const MAX_TEXT: usize = 4000;
/// The default BAA notice period: 60 days, the legal maximum (164.410(b)).
pub const DEFAULT_BAA_NOTICE_HOURS: u32 = incident::MAX_BAA_NOTICE_HOURS;

/// An incident to record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncidentCreate {
    /// When it was discovered (default: now; not in the future). Every clock starts here.
    discovered_at: Option<DateTime<Utc>>,
    /// How it was detected: `staff_report`, `audit_review`, `patient_report`, `vendor_notice`,
    /// `automated_alert`, `law_enforcement` or `other`.
    detection_source: String,
    /// What happened (1–4000 bytes; sealed at rest).
    description: String,
    /// Hours the business associate agreement gives to notify the practice (1–1440; default
    /// 1440, the legal 60 days).
    baa_notice_hours: Option<u32>,
    /// Whether GDPR applies (the supervisory authority is owed notice within 72 hours).
    #[serde(default)]
    gdpr: bool,
}

/// Checks an incident to record (shared with the web pages).
pub fn incident_input(
    discovered_at: Option<DateTime<Utc>>,
    detection_source: &str,
    description: &str,
    baa_notice_hours: Option<u32>,
    gdpr: bool,
    now: DateTime<Utc>,
) -> Result<store::incidents::NewIncident, AppError> {
    if !incident::DETECTION_SOURCES.contains(&detection_source) {
        return Err(AppError::Invalid(format!(
            "detection_source: must be one of {}",
            incident::DETECTION_SOURCES.join(", ")
        )));
    }
    let discovered_at = discovered_at.unwrap_or(now);
    if discovered_at > now + Duration::minutes(5) {
        return Err(AppError::Invalid(
            "discovered_at: must not be in the future".into(),
        ));
    }
    let hours = baa_notice_hours.unwrap_or(DEFAULT_BAA_NOTICE_HOURS);
    if !(1..=incident::MAX_BAA_NOTICE_HOURS).contains(&hours) {
        return Err(AppError::Invalid(
            "baa_notice_hours: must be between 1 and 1440".into(),
        ));
    }
    Ok(store::incidents::NewIncident {
        discovered_at,
        detection_source: detection_source.to_owned(),
        description: domain::values::free_text("description", description, MAX_TEXT)?,
        terms: Terms {
            baa_notice_hours: hours,
            gdpr,
        },
    })
}

/// One clock of an incident.
#[derive(Serialize, ToSchema)]
pub(crate) struct ClockView {
    /// Which: `contingency_notice`, `baa_notice`, `restoration_target`, `gdpr_authority`,
    /// `individuals`, `hhs` or `media`.
    clock: &'static str,
    /// When it is due.
    due: DateTime<Utc>,
    /// Whether it is past due now.
    overdue: bool,
}

fn clock_views(clocks: Vec<Deadline>, now: DateTime<Utc>) -> Vec<ClockView> {
    clocks
        .into_iter()
        .map(|c| ClockView {
            clock: c.kind.as_str(),
            due: c.due,
            overdue: c.due <= now,
        })
        .collect()
}

/// An incident in the list.
#[derive(Serialize, ToSchema)]
pub(crate) struct IncidentSummaryView {
    /// Id.
    incident_id: IncidentId,
    /// Discovered.
    discovered_at: DateTime<Utc>,
    /// Detection source.
    detection_source: String,
    /// `open`, `assessing`, `contained`, `closed_breach` or `closed_not_breach`.
    status: Status,
    /// Affected individuals, once scoped.
    affected: Option<u64>,
    /// Every clock (open incidents only; empty once closed).
    clocks: Vec<ClockView>,
    /// The next clock not yet due, if any.
    next_due: Option<DateTime<Utc>>,
}

fn summary_view(s: &store::incidents::IncidentSummary, now: DateTime<Utc>) -> IncidentSummaryView {
    let clocks = if s.status.is_closed() {
        Vec::new()
    } else {
        incident::clocks(s.discovered_at, s.terms(), s.affected.as_ref())
    };
    IncidentSummaryView {
        incident_id: s.incident_id,
        discovered_at: s.discovered_at,
        detection_source: s.detection_source.clone(),
        status: s.status,
        affected: s.affected.as_ref().map(|a| a.total),
        next_due: clocks.iter().map(|c| c.due).find(|d| *d > now),
        clocks: clock_views(clocks, now),
    }
}

/// The practice's incidents.
#[derive(Serialize, ToSchema)]
pub(crate) struct IncidentList {
    /// Open ones first, then newest first.
    items: Vec<IncidentSummaryView>,
}

/// The four-factor risk assessment (164.402(2)).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssessmentBody {
    /// (i) Nature and extent of the PHI involved (1–4000 bytes).
    nature: String,
    /// (ii) The unauthorized person who used it or to whom it was disclosed.
    person: String,
    /// (iii) Whether it was actually acquired or viewed.
    acquired: String,
    /// (iv) How far the risk has been mitigated.
    mitigation: String,
    /// The conclusion: a low probability that the PHI was compromised.
    low_probability: bool,
}

/// One affected patient.
#[derive(Serialize, ToSchema)]
pub(crate) struct AffectedView {
    /// The patient.
    patient_id: PatientId,
    /// State of residence when scoped (two letters), if recorded.
    state: Option<String>,
    /// Audit events of the subject naming the patient in the window.
    events: u32,
}

/// A scoping result.
#[derive(Serialize, ToSchema)]
pub(crate) struct ScopeView {
    /// `user`, `session` or `support_grant`.
    kind: String,
    /// The user, session or grant id.
    subject: uuid::Uuid,
    /// Window start (inclusive).
    from: DateTime<Utc>,
    /// Window end (exclusive).
    to: DateTime<Utc>,
    /// When it ran.
    scoped_at: DateTime<Utc>,
    /// How many patients.
    total: usize,
    /// Affected patients per state of residence (`unknown`: none recorded).
    per_state: std::collections::BTreeMap<String, u64>,
    /// States with more than 500 affected residents (media notice owed).
    media_states: Vec<String>,
    /// Whether HHS is owed notice within 60 days (500 or more affected).
    hhs_within_60_days: bool,
    /// The patients.
    patients: Vec<AffectedView>,
}

impl From<store::incidents::Scope> for ScopeView {
    fn from(s: store::incidents::Scope) -> Self {
        let a = s.affected();
        Self {
            kind: s.kind.as_str().to_owned(),
            subject: s.subject,
            from: s.from,
            to: s.to,
            scoped_at: s.scoped_at,
            total: s.patients.len(),
            media_states: incident::media_states(&a)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            hhs_within_60_days: a.total >= incident::HHS_THRESHOLD,
            per_state: s.per_state,
            patients: s
                .patients
                .into_iter()
                .map(|p| AffectedView {
                    patient_id: p.patient_id,
                    state: p.state,
                    events: p.events,
                })
                .collect(),
        }
    }
}

/// A notification letter recorded.
#[derive(Serialize, ToSchema)]
pub(crate) struct LetterView {
    /// Id.
    letter_id: uuid::Uuid,
    /// To whom (a kind).
    recipient_kind: String,
    /// Sent.
    sent_on: NaiveDate,
    /// How many letters.
    letters: u32,
    /// Recorded by.
    recorded_by: Option<UserId>,
}

/// An alert raised for a clock.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertView {
    /// The clock or schedule point.
    clock: String,
    /// When it was due.
    due_at: DateTime<Utc>,
}

/// An incident with its notes, clocks, assessment, scope and letters.
#[derive(Serialize, ToSchema)]
pub(crate) struct IncidentView {
    #[serde(flatten)]
    summary: IncidentSummaryView,
    /// BAA notice period (hours).
    baa_notice_hours: u32,
    /// Whether GDPR applies.
    gdpr: bool,
    /// What happened.
    description: String,
    /// The response.
    response: Option<String>,
    /// The outcome.
    outcome: Option<String>,
    /// The four-factor assessment, once recorded.
    assessment: Option<AssessmentBody>,
    /// When it was assessed.
    assessed_at: Option<DateTime<Utc>>,
    /// Whether it may close as "not a breach" now.
    may_close_not_a_breach: bool,
    /// The last scoping run.
    scope: Option<ScopeView>,
    /// Letters recorded.
    letters: Vec<LetterView>,
    /// Alerts raised so far.
    alerts: Vec<AlertView>,
    /// Closed.
    closed_at: Option<DateTime<Utc>>,
    /// Recorded by.
    created_by: Option<UserId>,
}

/// Builds the detail view of `i` at `now` (shared with the web pages).
fn incident_view(i: store::incidents::Incident, now: DateTime<Utc>) -> IncidentView {
    let may = i
        .assessment
        .as_ref()
        .is_some_and(|(a, _)| a.permits_not_a_breach());
    IncidentView {
        summary: summary_view(&i.summary, now),
        baa_notice_hours: i.summary.baa_notice_hours,
        gdpr: i.summary.gdpr,
        description: i.description,
        response: i.response,
        outcome: i.outcome,
        assessed_at: i.assessment.as_ref().map(|(_, at)| *at),
        assessment: i.assessment.map(|(a, _)| AssessmentBody {
            nature: a.nature,
            person: a.person,
            acquired: a.acquired,
            mitigation: a.mitigation,
            low_probability: a.low_probability,
        }),
        may_close_not_a_breach: may,
        scope: i.scope.map(Into::into),
        letters: i
            .letters
            .into_iter()
            .map(|l| LetterView {
                letter_id: l.letter_id,
                recipient_kind: l.recipient_kind,
                sent_on: l.sent_on,
                letters: l.letters,
                recorded_by: l.recorded_by,
            })
            .collect(),
        alerts: i
            .alerts
            .into_iter()
            .map(|(clock, due_at)| AlertView { clock, due_at })
            .collect(),
        closed_at: i.summary.closed_at,
        created_by: i.created_by,
    }
}

fn object(id: IncidentId) -> AuditObject {
    AuditObject::new(ObjectKind::Incident, id.as_uuid())
}

fn refused(r: Refusal) -> AppError {
    match r {
        Refusal::NotFound => AppError::NotFound("incident"),
        Refusal::Closed => AppError::Conflict("INCIDENT-0001: the incident is closed".into()),
        Refusal::Lifecycle(from, to) => AppError::Conflict(format!(
            "INCIDENT-0002: an incident cannot move from {} to {} (forward only; close only after assessing)",
            from.as_str(),
            to.as_str()
        )),
        Refusal::AssessmentMissing => AppError::Conflict(
            "INCIDENT-0003: closing as not a breach needs the four-factor risk assessment recorded, concluding a low probability of compromise"
                .into(),
        ),
    }
}

/// Records an incident and audits `incident.create`: the one path of the API and the web
/// pages. The caller commits.
pub async fn create_incident(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    new: &store::incidents::NewIncident,
) -> Result<IncidentId, AppError> {
    let id = store::incidents::create(tx, keyring, new).await?;
    tx.audit_details(
        AuditAction::IncidentCreate,
        None,
        Some(object(id)),
        Some(serde_json::json!({
            "detection_source": new.detection_source,
            "baa_notice_hours": new.terms.baa_notice_hours,
            "gdpr": new.terms.gdpr,
        })),
    )
    .await?;
    Ok(id)
}

/// Lists the practice's incidents (nothing decrypted) and audits `incident.list`: the one
/// path of the API and the web pages. The caller commits.
pub async fn list_incidents(
    tx: &mut store::TenantTx,
) -> Result<Vec<store::incidents::IncidentSummary>, AppError> {
    let list = store::incidents::list(tx).await?;
    tx.audit_details(
        AuditAction::IncidentList,
        None,
        None,
        Some(serde_json::json!({ "count": list.len() })),
    )
    .await?;
    Ok(list)
}

/// Reads incident `id` (sealed notes decrypted) and audits `incident.read`: the one path of
/// the API and the web pages. `404` when not visible here. The caller commits.
pub async fn read_incident(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: IncidentId,
) -> Result<store::incidents::Incident, AppError> {
    let i = store::incidents::get(tx, keyring, id)
        .await?
        .ok_or(AppError::NotFound("incident"))?;
    tx.audit(AuditAction::IncidentRead, None, Some(object(id)))
        .await?;
    Ok(i)
}

/// Changes incident `id`'s status (not to a closed one) and notes, audited `incident.update`
/// with the new status: the one path of the API and the web pages. The caller commits.
pub async fn update_incident(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: IncidentId,
    status: Option<&str>,
    response: Option<&str>,
    outcome: Option<&str>,
) -> Result<Status, AppError> {
    let to = match status {
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            AppError::Invalid("status: must be open, assessing or contained".into())
        })?),
        None => None,
    };
    if to.is_some_and(Status::is_closed) {
        return Err(AppError::Invalid(
            "status: close an incident with its close action".into(),
        ));
    }
    let response = response
        .map(|r| domain::values::free_text("response", r, MAX_TEXT))
        .transpose()?;
    let outcome = outcome
        .map(|o| domain::values::free_text("outcome", o, MAX_TEXT))
        .transpose()?;
    let s = store::incidents::update(tx, keyring, id, to, response.as_deref(), outcome.as_deref())
        .await?
        .map_err(refused)?;
    tx.audit_details(
        AuditAction::IncidentUpdate,
        None,
        Some(object(id)),
        Some(serde_json::json!({
            "status": s.as_str(),
            "response": response.is_some(),
            "outcome": outcome.is_some(),
        })),
    )
    .await?;
    Ok(s)
}

/// Records the four-factor assessment of incident `id` (each factor checked: 1–4000 bytes,
/// not blank), audited `incident.assess` with its conclusion: the one path of the API and the
/// web pages. The caller commits.
pub async fn assess_incident(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: IncidentId,
    typed: &Assessment,
) -> Result<(), AppError> {
    let a = Assessment {
        nature: domain::values::free_text("nature", &typed.nature, MAX_TEXT)?,
        person: domain::values::free_text("person", &typed.person, MAX_TEXT)?,
        acquired: domain::values::free_text("acquired", &typed.acquired, MAX_TEXT)?,
        mitigation: domain::values::free_text("mitigation", &typed.mitigation, MAX_TEXT)?,
        low_probability: typed.low_probability,
    };
    store::incidents::assess(tx, keyring, id, &a)
        .await?
        .map_err(refused)?;
    tx.audit_details(
        AuditAction::IncidentAssess,
        None,
        Some(object(id)),
        Some(serde_json::json!({ "low_probability": a.low_probability })),
    )
    .await?;
    Ok(())
}

/// Scopes incident `id` from the audit log and audits `incident.scope` with the counts: the
/// one path of the API and the web pages. The caller commits.
pub async fn scope_incident(
    tx: &mut store::TenantTx,
    id: IncidentId,
    kind: &str,
    subject: uuid::Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<store::incidents::Scope, AppError> {
    let kind = ScopeKind::parse(kind)
        .ok_or_else(|| AppError::Invalid("kind: must be user, session or support_grant".into()))?;
    if from >= to {
        return Err(AppError::Invalid("from: must be before to".into()));
    }
    if to - from > Duration::days(6 * 366) {
        return Err(AppError::Invalid(
            "to: the window may be at most six years".into(),
        ));
    }
    let s = store::incidents::scope(tx, id, kind, subject, from, to)
        .await?
        .map_err(|r| match r {
            Refusal::NotFound => AppError::NotFound("incident or session"),
            other => refused(other),
        })?;
    let a = s.affected();
    tx.audit_details(
        AuditAction::IncidentScope,
        None,
        Some(object(id)),
        Some(serde_json::json!({
            "kind": kind.as_str(),
            "subject": subject,
            "patients": a.total,
            "states": a.per_state.len(),
        })),
    )
    .await?;
    Ok(s)
}

/// Records a notification letter for incident `id`, audited `incident.letter`: the one path
/// of the API and the web pages. The caller commits.
pub async fn record_letter(
    tx: &mut store::TenantTx,
    id: IncidentId,
    recipient_kind: &str,
    sent_on: NaiveDate,
    letters: u32,
) -> Result<uuid::Uuid, AppError> {
    if !incident::RECIPIENT_KINDS.contains(&recipient_kind) {
        return Err(AppError::Invalid(format!(
            "recipient_kind: must be one of {}",
            incident::RECIPIENT_KINDS.join(", ")
        )));
    }
    if !(1..=10_000_000).contains(&letters) {
        return Err(AppError::Invalid(
            "letters: must be between 1 and 10000000".into(),
        ));
    }
    if sent_on > tx.now().date_naive() + chrono::Days::new(1) {
        return Err(AppError::Invalid(
            "sent_on: must not be in the future".into(),
        ));
    }
    let letter = store::incidents::add_letter(tx, id, recipient_kind, sent_on, letters)
        .await?
        .map_err(refused)?;
    tx.audit_details(
        AuditAction::IncidentLetter,
        None,
        Some(object(id)),
        Some(serde_json::json!({ "recipient_kind": recipient_kind, "letters": letters })),
    )
    .await?;
    Ok(letter)
}

/// Closes incident `id` as a breach or not, audited `incident.close` with which: the one path
/// of the API and the web pages. `409 INCIDENT-0003` for "not a breach" without the four
/// factors concluding a low probability (req IR-02). The caller commits.
pub async fn close_incident(
    tx: &mut store::TenantTx,
    id: IncidentId,
    breach: bool,
) -> Result<Status, AppError> {
    let s = store::incidents::close(tx, id, breach)
        .await?
        .map_err(refused)?;
    tx.audit_details(
        AuditAction::IncidentClose,
        None,
        Some(object(id)),
        Some(serde_json::json!({ "status": s.as_str() })),
    )
    .await?;
    Ok(s)
}

/// Records `patient`'s state of residence, audited `patient.residence_update`: the one path
/// of the API and the web pages. The caller commits.
pub async fn set_residence(
    tx: &mut store::TenantTx,
    patient: PatientId,
    state: &str,
) -> Result<(), AppError> {
    let state = state.trim().to_ascii_uppercase();
    if !incident::is_state_code(&state) {
        return Err(AppError::Invalid(
            "state: must be a two-letter state code".into(),
        ));
    }
    if !store::incidents::set_residence(tx, patient, &state).await? {
        return Err(AppError::NotFound("patient"));
    }
    tx.audit_details(
        AuditAction::PatientResidenceUpdate,
        Some(patient),
        Some(AuditObject::patient(patient)),
        Some(serde_json::json!({ "state": state })),
    )
    .await?;
    Ok(())
}

/// Lists the practice's incidents with their clocks.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/incidents", tag = "incidents",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = IncidentList), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn incident_list(
    ctx: Ctx<Manage>,
    ApiPath(_): ApiPath<PracticeId>,
) -> Result<Json<IncidentList>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let list = list_incidents(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(IncidentList {
        items: list.iter().map(|s| summary_view(s, now)).collect(),
    }))
}

/// Records a security incident; its clocks start at the discovery time.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/incidents", tag = "incidents",
    params(("practice_id" = String, Path, format = Uuid)), request_body = IncidentCreate,
    responses((status = 201, body = IncidentSummaryView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn incident_create(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath(_): ApiPath<PracticeId>,
    ApiJson(req): ApiJson<IncidentCreate>,
) -> Result<(StatusCode, Json<IncidentSummaryView>), AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let new = incident_input(
        req.discovered_at,
        &req.detection_source,
        &req.description,
        req.baa_notice_hours,
        req.gdpr,
        now,
    )?;
    let id = create_incident(&mut tx, state.store.keyring()?, &new).await?;
    tx.commit().await?;
    let summary = store::incidents::IncidentSummary {
        incident_id: id,
        discovered_at: new.discovered_at,
        detection_source: new.detection_source,
        status: Status::Open,
        baa_notice_hours: new.terms.baa_notice_hours,
        gdpr: new.terms.gdpr,
        affected: None,
        closed_at: None,
    };
    Ok((StatusCode::CREATED, Json(summary_view(&summary, now))))
}

/// An incident with its clocks, notes, assessment, scope, letters and alerts.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/incidents/{incident_id}", tag = "incidents",
    params(("practice_id" = String, Path, format = Uuid), ("incident_id" = String, Path, format = Uuid)),
    responses((status = 200, body = IncidentView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn incident_get(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath((_, id)): ApiPath<(PracticeId, IncidentId)>,
) -> Result<Json<IncidentView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let i = read_incident(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    Ok(Json(incident_view(i, now)))
}

/// A change to an incident.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncidentPatch {
    /// `assessing` or `contained` (forward only; close with `/close`).
    status: Option<String>,
    /// The response so far (replaces the earlier text; sealed).
    response: Option<String>,
    /// The outcome (replaces the earlier text; sealed).
    outcome: Option<String>,
}

/// An incident's new status.
#[derive(Serialize, ToSchema)]
pub(crate) struct IncidentStatusView {
    /// Id.
    incident_id: IncidentId,
    /// Its status now.
    status: Status,
}

/// Moves an incident forward (`assessing`, `contained`) and records response and outcome notes.
#[utoipa::path(patch, path = "/api/v1/practices/{practice_id}/incidents/{incident_id}", tag = "incidents",
    params(("practice_id" = String, Path, format = Uuid), ("incident_id" = String, Path, format = Uuid)), request_body = IncidentPatch,
    responses((status = 200, body = IncidentStatusView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn incident_update(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath((_, id)): ApiPath<(PracticeId, IncidentId)>,
    ApiJson(req): ApiJson<IncidentPatch>,
) -> Result<Json<IncidentStatusView>, AppError> {
    let mut tx = ctx.tx;
    let status = update_incident(
        &mut tx,
        state.store.keyring()?,
        id,
        req.status.as_deref(),
        req.response.as_deref(),
        req.outcome.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(IncidentStatusView {
        incident_id: id,
        status,
    }))
}

/// Records (or replaces) the four-factor risk assessment.
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/incidents/{incident_id}/assessment", tag = "incidents",
    params(("practice_id" = String, Path, format = Uuid), ("incident_id" = String, Path, format = Uuid)), request_body = AssessmentBody,
    responses((status = 204), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn incident_assess(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath((_, id)): ApiPath<(PracticeId, IncidentId)>,
    ApiJson(req): ApiJson<AssessmentBody>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    let typed = Assessment {
        nature: req.nature,
        person: req.person,
        acquired: req.acquired,
        mitigation: req.mitigation,
        low_probability: req.low_probability,
    };
    assess_incident(&mut tx, state.store.keyring()?, id, &typed).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What to scope an incident by.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeBody {
    /// `user` (a principal), `session`, or `support_grant`.
    kind: String,
    /// The user, session or support grant id.
    subject: uuid::Uuid,
    /// Window start (inclusive).
    from: DateTime<Utc>,
    /// Window end (exclusive).
    to: DateTime<Utc>,
}

/// Finds, from the practice's audit log, every patient the subject touched (read or write)
/// in the window, with counts per state of residence, and stores the result with the
/// incident (replacing an earlier one).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/incidents/{incident_id}/scope", tag = "incidents",
    params(("practice_id" = String, Path, format = Uuid), ("incident_id" = String, Path, format = Uuid)), request_body = ScopeBody,
    responses((status = 200, body = ScopeView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn incident_scope(
    ctx: Ctx<Manage>,
    ApiPath((_, id)): ApiPath<(PracticeId, IncidentId)>,
    ApiJson(req): ApiJson<ScopeBody>,
) -> Result<Json<ScopeView>, AppError> {
    let mut tx = ctx.tx;
    let s = scope_incident(&mut tx, id, &req.kind, req.subject, req.from, req.to).await?;
    tx.commit().await?;
    Ok(Json(s.into()))
}

/// A notification letter (or batch) sent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LetterBody {
    /// `individual`, `next_of_kin`, `practice`, `hhs`, `media`, `state_attorney_general` or
    /// `supervisory_authority`.
    recipient_kind: String,
    /// When sent.
    sent_on: NaiveDate,
    /// How many letters (default 1).
    letters: Option<u32>,
}

/// A letter recorded.
#[derive(Serialize, ToSchema)]
pub(crate) struct LetterCreated {
    /// Id.
    letter_id: uuid::Uuid,
}

/// Records notification letters sent (who and when; never contact details or text).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/incidents/{incident_id}/letters", tag = "incidents",
    params(("practice_id" = String, Path, format = Uuid), ("incident_id" = String, Path, format = Uuid)), request_body = LetterBody,
    responses((status = 201, body = LetterCreated), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn incident_letter(
    ctx: Ctx<Manage>,
    ApiPath((_, id)): ApiPath<(PracticeId, IncidentId)>,
    ApiJson(req): ApiJson<LetterBody>,
) -> Result<(StatusCode, Json<LetterCreated>), AppError> {
    let mut tx = ctx.tx;
    let letter_id = record_letter(
        &mut tx,
        id,
        &req.recipient_kind,
        req.sent_on,
        req.letters.unwrap_or(1),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(LetterCreated { letter_id })))
}

/// How an incident closes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloseBody {
    /// `breach` or `not_a_breach` (needs the four-factor assessment concluding a low
    /// probability of compromise).
    outcome: String,
}

/// Closes an incident as a breach or not a breach.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/incidents/{incident_id}/close", tag = "incidents",
    params(("practice_id" = String, Path, format = Uuid), ("incident_id" = String, Path, format = Uuid)), request_body = CloseBody,
    responses((status = 200, body = IncidentStatusView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn incident_close(
    ctx: Ctx<Manage>,
    ApiPath((_, id)): ApiPath<(PracticeId, IncidentId)>,
    ApiJson(req): ApiJson<CloseBody>,
) -> Result<Json<IncidentStatusView>, AppError> {
    let breach = match req.outcome.as_str() {
        "breach" => true,
        "not_a_breach" => false,
        _ => {
            return Err(AppError::Invalid(
                "outcome: must be breach or not_a_breach".into(),
            ));
        }
    };
    let mut tx = ctx.tx;
    let status = close_incident(&mut tx, id, breach).await?;
    tx.commit().await?;
    Ok(Json(IncidentStatusView {
        incident_id: id,
        status,
    }))
}

/// A patient's state of residence.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResidenceBody {
    /// Two-letter state code (e.g. `CA`).
    state: String,
}

/// Records a patient's state of residence (for breach counts per state).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/residence", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = ResidenceBody,
    responses((status = 204), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn residence_put(
    ctx: Ctx<Scheduling>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<ResidenceBody>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    set_residence(&mut tx, patient, &req.state).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
