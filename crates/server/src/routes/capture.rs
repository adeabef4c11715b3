//! The scribe's capture path (clinicians only, and only for visits `app.clinical_visible`
//! lets them see): recording consent per visit, captures with their state on the server
//! (live, paused, stopped), audio chunks uploaded in order into encrypted blobs, the live
//! indicator's state, and the practice's scribe policy (owners and admins set it).
//!
//! - **Consent first** (req SCR-01): a capture starts only under the visit's consent in force
//!   (`409` otherwise); withdrawing it stops the visit's open capture at once
//!   (`consent_withdrawn`) and deletes that capture's audio, in one transaction, all audited.
//! - **Chunks**: `PUT …/captures/{capture_id}/chunks/{seq}` with a WAV body (16 kHz mono
//!   16-bit PCM, at most [`store::capture::CHUNK_MAX_BYTES`]): the next `seq` is stored
//!   (`201`), an accepted `seq` with the same bytes answers `200` and changes nothing (resume
//!   after a network drop), different bytes for an accepted `seq`, a gap, or a capture that is
//!   paused or stopped answer `409`. A chunk past the longest capture stops it
//!   (`max_duration`).
//! - Every state change is audited in its transaction (`recording_consent.record` /
//!   `.withdraw`, `capture.start` / `.pause` / `.resume` / `.stop` / `.chunk`,
//!   `capture.audio_purge`), naming the patient and the object, with closed-vocabulary details
//!   (reasons, sequence numbers, sizes): never audio, words or names.
//! - The live indicator's state (`GET …/me/capture`) is ids, a state and times: it is not
//!   clinical content and is not audited (it is polled every second by every open page).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditObject, CaptureId, ConsentId, PracticeId, VisitId};
use serde::{Deserialize, Serialize};
use store::TenantTx;
use store::capture::{
    Capture, CaptureState, ChunkRefused, ChunkStored, Consent, ConsentMethod, ConsentRule,
    ConsentedBy, Policy, PurgeReason, StopReason,
};
use store::crypto::BlobStore;
use utoipa::ToSchema;

use crate::extract::{AnyMember, ApiJson, ApiPath, Clinical, Ctx, Manage};
use crate::views::ErrorBody as E;
use crate::{AppError, AppState};

// ----------------------------------------------------------------------------------------
// Views

/// A recording consent.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsentView {
    /// Id.
    consent_id: ConsentId,
    /// The visit.
    visit_id: VisitId,
    /// The patient.
    patient_id: domain::PatientId,
    /// `patient` or `guardian`.
    consented_by: &'static str,
    /// `verbal`, `written` or `form`.
    method: &'static str,
    /// The practice's rule when it was recorded: `all_party` or `one_party`.
    consent_rule: &'static str,
    /// The clinician who recorded it.
    recorded_by: domain::UserId,
    /// When.
    recorded_at: DateTime<Utc>,
    /// When it was withdrawn (null while in force).
    withdrawn_at: Option<DateTime<Utc>>,
    /// Who withdrew it.
    withdrawn_by: Option<domain::UserId>,
}

impl From<&Consent> for ConsentView {
    fn from(c: &Consent) -> Self {
        Self {
            consent_id: c.consent_id,
            visit_id: c.visit_id,
            patient_id: c.patient_id,
            consented_by: c.consented_by.as_str(),
            method: c.method.as_str(),
            consent_rule: c.consent_rule.as_str(),
            recorded_by: c.recorded_by,
            recorded_at: c.recorded_at,
            withdrawn_at: c.withdrawn.map(|w| w.0),
            withdrawn_by: c.withdrawn.map(|w| w.1),
        }
    }
}

/// A capture and its state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CaptureView {
    /// Id.
    capture_id: CaptureId,
    /// The visit.
    visit_id: VisitId,
    /// The patient.
    patient_id: domain::PatientId,
    /// The consent it runs under.
    consent_id: ConsentId,
    /// The clinician recording.
    clinician_id: domain::UserId,
    /// `live`, `paused` or `stopped`.
    state: &'static str,
    /// Why it stopped: `clinician`, `consent_withdrawn`, `max_duration`, `abandoned`.
    stop_reason: Option<&'static str>,
    /// Started.
    started_at: DateTime<Utc>,
    /// Stopped.
    stopped_at: Option<DateTime<Utc>>,
    /// Recorded time so far (ms), live stretches only.
    elapsed_ms: i64,
    /// The longest capture (ms).
    max_ms: i64,
    /// Chunks accepted; also the next `seq` to upload.
    chunks: i32,
    /// Audio bytes accepted.
    audio_bytes: i64,
    /// When its audio was deleted.
    audio_purged_at: Option<DateTime<Utc>>,
    /// Why: `retention`, `consent_withdrawn`, `patient_deleted`.
    audio_purge_reason: Option<&'static str>,
}

impl CaptureView {
    pub(crate) fn new(c: &Capture, now: DateTime<Utc>) -> Self {
        Self {
            capture_id: c.capture_id,
            visit_id: c.visit_id,
            patient_id: c.patient_id,
            consent_id: c.consent_id,
            clinician_id: c.clinician_id,
            state: c.state.as_str(),
            stop_reason: c.stop_reason.map(StopReason::as_str),
            started_at: c.started_at,
            stopped_at: c.stopped_at,
            elapsed_ms: c.elapsed_ms_at(now),
            max_ms: c.max_ms(),
            chunks: c.chunks,
            audio_bytes: c.audio_bytes,
            audio_purged_at: c.audio_purged.map(|p| p.0),
            audio_purge_reason: c.audio_purged.map(|p| p.1.as_str()),
        }
    }
}

/// A stored chunk.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChunkView {
    /// The capture.
    capture_id: CaptureId,
    /// Its place.
    seq: i32,
    /// WAV bytes.
    bytes: i32,
    /// Audio duration (ms).
    duration_ms: i32,
    /// Where it starts in the capture's audio (ms).
    offset_ms: i64,
    /// Whether this was a resend of an accepted chunk (nothing changed).
    repeat: bool,
    /// The capture after the chunk (its state, and the next `seq` in `chunks`).
    capture: CaptureView,
}

/// What the live indicator shows: the caller's open capture in this practice, if any.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IndicatorView {
    /// The open capture, or null when nothing is being recorded.
    capture: Option<IndicatorCapture>,
}

/// An open capture as the indicator shows it (no patient).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IndicatorCapture {
    /// Id.
    capture_id: CaptureId,
    /// The visit.
    visit_id: VisitId,
    /// `live` or `paused`.
    state: &'static str,
    /// Recorded time so far (ms).
    elapsed_ms: i64,
    /// The longest capture (ms).
    max_ms: i64,
}

/// The practice's scribe policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyView {
    /// `all_party` or `one_party`.
    consent_rule: String,
    /// Days audio is kept after the visit's note is signed (0–3650).
    audio_retention_days: i32,
    /// The longest capture in seconds (60–14400).
    max_capture_seconds: i32,
}

impl From<Policy> for PolicyView {
    fn from(p: Policy) -> Self {
        Self {
            consent_rule: p.consent_rule.as_str().to_owned(),
            audio_retention_days: p.audio_retention_days,
            max_capture_seconds: p.max_capture_seconds,
        }
    }
}

/// A new consent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentCreate {
    /// `patient` or `guardian`.
    consented_by: String,
    /// `verbal`, `written` or `form`.
    method: String,
}

/// What a consent withdrawal did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WithdrawalView {
    /// The consent, withdrawn.
    consent: ConsentView,
    /// The capture it stopped, if one was open.
    stopped: Option<CaptureView>,
    /// Captures whose audio was deleted.
    purged_captures: usize,
    /// Audio blobs deleted.
    purged_blobs: u64,
}

// ----------------------------------------------------------------------------------------
// Rules shared with the web pages

/// Parses who consented and how; messages name the field and the allowed values.
pub fn consent_input(by: &str, method: &str) -> Result<(ConsentedBy, ConsentMethod), AppError> {
    let by = ConsentedBy::parse(by.trim())
        .ok_or_else(|| AppError::Invalid("consented_by: must be `patient` or `guardian`".into()))?;
    let method = ConsentMethod::parse(method.trim())
        .ok_or_else(|| AppError::Invalid("method: must be `verbal`, `written` or `form`".into()))?;
    Ok((by, method))
}

/// Parses a scribe policy; messages name the field and its range.
pub fn policy_input(rule: &str, retention_days: i64, max_seconds: i64) -> Result<Policy, AppError> {
    let consent_rule = ConsentRule::parse(rule.trim()).ok_or_else(|| {
        AppError::Invalid("consent_rule: must be `all_party` or `one_party`".into())
    })?;
    let audio_retention_days = i32::try_from(retention_days)
        .ok()
        .filter(|d| (0..=3650).contains(d))
        .ok_or_else(|| AppError::Invalid("audio_retention_days: must be 0 to 3650".into()))?;
    let max_capture_seconds = i32::try_from(max_seconds)
        .ok()
        .filter(|s| (60..=14_400).contains(s))
        .ok_or_else(|| AppError::Invalid("max_capture_seconds: must be 60 to 14400".into()))?;
    Ok(Policy {
        consent_rule,
        audio_retention_days,
        max_capture_seconds,
    })
}

fn blobs(state: &AppState) -> Result<&BlobStore, AppError> {
    state
        .blobs
        .as_deref()
        .ok_or_else(|| AppError::Internal("no blob store is configured".into()))
}

// ----------------------------------------------------------------------------------------
// Actions: the one path of the API and the web pages (the caller commits)

async fn visit_patient(tx: &mut TenantTx, visit: VisitId) -> Result<domain::PatientId, AppError> {
    store::capture::visit_patient(tx, visit)
        .await?
        .ok_or(AppError::NotFound("visit"))
}

/// Records the recording consent for `visit` by the signed-in clinician under the practice's
/// consent rule, audited `recording_consent.record` (who and how as closed words). `404` for
/// a visit not visible here; `409` when the visit has a consent in force.
pub async fn record_consent(
    tx: &mut TenantTx,
    visit: VisitId,
    by: ConsentedBy,
    method: ConsentMethod,
) -> Result<Consent, AppError> {
    let patient = visit_patient(tx, visit).await?;
    let c = store::capture::record_consent(tx, visit, patient, by, method).await?;
    tx.audit_details(
        AuditAction::RecordingConsentRecord,
        Some(patient),
        Some(AuditObject::recording_consent(c.consent_id)),
        Some(serde_json::json!({
            "visit_id": visit,
            "consented_by": by.as_str(),
            "method": method.as_str(),
            "consent_rule": c.consent_rule.as_str(),
        })),
    )
    .await?;
    Ok(c)
}

/// The consents of `visit`, newest first. `404` for a visit not visible here. Not audited
/// separately: ids, roles and times only (the visit page's read is audited as the visit's).
pub async fn list_consents(tx: &mut TenantTx, visit: VisitId) -> Result<Vec<Consent>, AppError> {
    visit_patient(tx, visit).await?;
    Ok(store::capture::consents(tx, visit).await?)
}

/// What [`withdraw_consent`] did.
#[derive(Debug)]
pub struct Withdrawn {
    /// The consent, withdrawn.
    pub consent: Consent,
    /// The capture it stopped, if one was open.
    pub stopped: Option<Capture>,
    /// Captures whose audio was deleted.
    pub purged: Vec<CaptureId>,
    /// Blobs deleted.
    pub blobs: u64,
}

/// Withdraws `visit`'s consent `consent` (req SCR-01): marks it withdrawn (audited
/// `recording_consent.withdraw`), stops the visit's open capture at once with
/// `consent_withdrawn` (audited `capture.stop`), and deletes the audio of every capture taken
/// under it (audited `capture.audio_purge` each). `404` when the consent is not this visit's;
/// `409` when it was withdrawn already.
pub async fn withdraw_consent(
    tx: &mut TenantTx,
    blobs: &BlobStore,
    visit: VisitId,
    consent: ConsentId,
) -> Result<Withdrawn, AppError> {
    let patient = visit_patient(tx, visit).await?;
    let Some(active) = store::capture::active_consent(tx, visit).await? else {
        return Err(withdrawn_or_missing(tx, visit, consent).await?);
    };
    if active.consent_id != consent {
        return Err(withdrawn_or_missing(tx, visit, consent).await?);
    }
    store::capture::withdraw_consent(tx, consent).await?;
    tx.audit_details(
        AuditAction::RecordingConsentWithdraw,
        Some(patient),
        Some(AuditObject::recording_consent(consent)),
        Some(serde_json::json!({ "visit_id": visit })),
    )
    .await?;
    let mut stopped = None;
    if let Some(open) = store::capture::open_for_visit(tx, visit).await? {
        let s = store::capture::stop(tx, &open, StopReason::ConsentWithdrawn).await?;
        audit_stop(tx, &s, StopReason::ConsentWithdrawn).await?;
        stopped = Some(s);
    }
    let mut purged = Vec::new();
    let mut total = 0;
    for c in store::capture::list_for_visit(tx, visit).await? {
        if c.consent_id != consent || c.audio_purged.is_some() {
            continue;
        }
        let n = store::capture::purge_audio(tx, blobs, c.capture_id, PurgeReason::ConsentWithdrawn)
            .await?;
        tx.audit_details(
            AuditAction::CaptureAudioPurge,
            Some(c.patient_id),
            Some(AuditObject::capture(c.capture_id)),
            Some(serde_json::json!({
                "reason": PurgeReason::ConsentWithdrawn.as_str(),
                "blobs": n,
            })),
        )
        .await?;
        purged.push(c.capture_id);
        total += n;
    }
    let consent = store::capture::consents(tx, visit)
        .await?
        .into_iter()
        .find(|c| c.consent_id == consent)
        .ok_or(AppError::NotFound("consent"))?;
    Ok(Withdrawn {
        consent,
        stopped: stopped.map(|s| Capture {
            audio_purged: None,
            ..s
        }),
        purged,
        blobs: total,
    })
}

async fn withdrawn_or_missing(
    tx: &mut TenantTx,
    visit: VisitId,
    consent: ConsentId,
) -> Result<AppError, AppError> {
    let known = store::capture::consents(tx, visit)
        .await?
        .iter()
        .any(|c| c.consent_id == consent);
    Ok(if known {
        AppError::Conflict("this consent was withdrawn already".into())
    } else {
        AppError::NotFound("consent")
    })
}

async fn audit_stop(tx: &mut TenantTx, c: &Capture, reason: StopReason) -> Result<(), AppError> {
    tx.audit_details(
        AuditAction::CaptureStop,
        Some(c.patient_id),
        Some(AuditObject::capture(c.capture_id)),
        Some(serde_json::json!({
            "reason": reason.as_str(),
            "elapsed_ms": c.elapsed_ms,
            "chunks": c.chunks,
        })),
    )
    .await?;
    Ok(())
}

/// Starts a live capture of `visit` by the signed-in clinician (req SCR-01): refused with
/// `409` unless the visit has a consent in force, and when it has an open capture already.
/// Audited `capture.start`. `404` for a visit not visible here.
pub async fn start_capture(tx: &mut TenantTx, visit: VisitId) -> Result<Capture, AppError> {
    let patient = visit_patient(tx, visit).await?;
    let Some(consent) = store::capture::active_consent(tx, visit).await? else {
        return Err(AppError::Conflict(
            "record the recording consent for this visit before starting a capture".into(),
        ));
    };
    if store::capture::open_for_visit(tx, visit).await?.is_some() {
        return Err(AppError::Conflict(
            "this visit is being recorded already: pause, resume or stop that capture".into(),
        ));
    }
    let c = store::capture::start(tx, &consent).await?;
    tx.audit_details(
        AuditAction::CaptureStart,
        Some(patient),
        Some(AuditObject::capture(c.capture_id)),
        Some(serde_json::json!({
            "visit_id": visit,
            "consent_id": consent.consent_id,
            "max_seconds": c.max_seconds,
        })),
    )
    .await?;
    Ok(c)
}

/// The captures of `visit`, newest first. `404` for a visit not visible here.
pub async fn list_captures(tx: &mut TenantTx, visit: VisitId) -> Result<Vec<Capture>, AppError> {
    visit_patient(tx, visit).await?;
    Ok(store::capture::list_for_visit(tx, visit).await?)
}

/// One capture, audited `capture.read`. `404` when not visible here.
pub async fn read_capture(tx: &mut TenantTx, capture: CaptureId) -> Result<Capture, AppError> {
    let c = store::capture::get(tx, capture)
        .await?
        .ok_or(AppError::NotFound("capture"))?;
    tx.audit(
        AuditAction::CaptureRead,
        Some(c.patient_id),
        Some(AuditObject::capture(capture)),
    )
    .await?;
    Ok(c)
}

/// A change of a capture's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Live → paused.
    Pause,
    /// Paused → live.
    Resume,
    /// Live or paused → stopped (by the clinician).
    Stop,
}

/// Applies `change` to `capture` (locked): pause a live capture, resume a paused one (`409`
/// past its longest duration), stop an open one; audited `capture.pause` / `.resume` /
/// `.stop`. A change that does not apply to the state (pausing a paused capture, anything on
/// a stopped one) is `409`. Only the clinician recording may change it (`403` for another
/// clinician who can see the visit). `404` when not visible here.
pub async fn change_capture(
    tx: &mut TenantTx,
    capture: CaptureId,
    change: Change,
) -> Result<Capture, AppError> {
    let c = store::capture::get_for_update(tx, capture)
        .await?
        .ok_or(AppError::NotFound("capture"))?;
    if c.clinician_id != tx.actor() {
        return Err(AppError::Forbidden);
    }
    let now = tx.now();
    let (next, action) = match (change, c.state) {
        (Change::Pause, CaptureState::Live) => {
            (store::capture::paused(&c, now), AuditAction::CapturePause)
        }
        (Change::Resume, CaptureState::Paused) => {
            if c.elapsed_ms >= c.max_ms() {
                return Err(AppError::Conflict(
                    "the capture reached its maximum duration: stop it and start another".into(),
                ));
            }
            (store::capture::resumed(&c, now), AuditAction::CaptureResume)
        }
        (Change::Stop, CaptureState::Live | CaptureState::Paused) => (
            store::capture::stopped(&c, now, StopReason::Clinician),
            AuditAction::CaptureStop,
        ),
        (_, state) => {
            return Err(AppError::Conflict(format!(
                "the capture is {}: it cannot be {}",
                state.as_str(),
                match change {
                    Change::Pause => "paused",
                    Change::Resume => "resumed",
                    Change::Stop => "stopped",
                }
            )));
        }
    };
    store::capture::set_state(tx, &next).await?;
    if action == AuditAction::CaptureStop {
        audit_stop(tx, &next, StopReason::Clinician).await?;
    } else {
        tx.audit_details(
            action,
            Some(c.patient_id),
            Some(AuditObject::capture(capture)),
            Some(serde_json::json!({ "elapsed_ms": next.elapsed_ms_at(now) })),
        )
        .await?;
    }
    Ok(next)
}

/// What [`upload_chunk`] did.
#[derive(Debug)]
pub struct Uploaded {
    /// The chunk stored (or found stored: a resend).
    pub stored: ChunkStored,
    /// The capture afterwards.
    pub capture: Capture,
}

/// Stores chunk `seq` of `capture` ([`store::capture::store_chunk`]): only by the clinician
/// recording (`403` otherwise), audited `capture.chunk` (seq, bytes, duration, whether a
/// resend). A chunk that crosses the longest capture is stored and the capture stopped
/// (`max_duration`, audited). Refusals: `400` for a body that is not 16 kHz mono 16-bit PCM
/// WAV; `409` for a paused or stopped capture, a gap, different bytes for an accepted `seq`,
/// or a capture at its longest — in that last case the stop is written and audited and the
/// caller must commit before answering (`Err` is returned inside `Ok`).
pub async fn upload_chunk(
    tx: &mut TenantTx,
    blobs: &BlobStore,
    capture: CaptureId,
    seq: i32,
    wav: &[u8],
) -> Result<Result<Uploaded, AppError>, AppError> {
    let c = store::capture::get_for_update(tx, capture)
        .await?
        .ok_or(AppError::NotFound("capture"))?;
    if c.clinician_id != tx.actor() {
        return Err(AppError::Forbidden);
    }
    let stored = match store::capture::store_chunk(tx, blobs, &c, seq, wav).await {
        Ok(s) => s,
        Err(ChunkRefused::MaxDuration) => {
            let s = store::capture::stopped(&c, tx.now(), StopReason::MaxDuration);
            audit_stop(tx, &s, StopReason::MaxDuration).await?;
            return Ok(Err(AppError::Conflict(
                "the capture reached its maximum duration and was stopped".into(),
            )));
        }
        Err(ChunkRefused::Store(e)) => return Err(e.into()),
        Err(ChunkRefused::Wav(e)) => return Err(AppError::Invalid(format!("audio: {e}"))),
        Err(e) => return Err(AppError::Conflict(e.to_string())),
    };
    let ch = stored.chunk();
    tx.audit_details(
        AuditAction::CaptureChunk,
        Some(c.patient_id),
        Some(AuditObject::capture(capture)),
        Some(serde_json::json!({
            "seq": seq,
            "bytes": ch.bytes,
            "duration_ms": ch.duration_ms,
            "repeat": matches!(stored, ChunkStored::Repeat(_)),
        })),
    )
    .await?;
    let mut after = store::capture::get(tx, capture)
        .await?
        .ok_or(AppError::NotFound("capture"))?;
    if matches!(stored, ChunkStored::New(_))
        && after.state == CaptureState::Live
        && ch.offset_ms + i64::from(ch.duration_ms) >= after.max_ms()
    {
        after = store::capture::stop(tx, &after, StopReason::MaxDuration).await?;
        audit_stop(tx, &after, StopReason::MaxDuration).await?;
    }
    Ok(Ok(Uploaded {
        stored,
        capture: after,
    }))
}

/// The signed-in user's open capture in this practice (the live indicator's state). Not
/// audited: ids, a state and times, no clinical content.
pub async fn live_capture(tx: &mut TenantTx) -> Result<Option<Capture>, AppError> {
    Ok(store::capture::open_for_actor(tx).await?)
}

/// The practice's scribe policy (any member).
pub async fn read_policy(tx: &mut TenantTx) -> Result<Policy, AppError> {
    Ok(store::capture::policy(tx).await?)
}

/// Sets the practice's scribe policy (owners and admins), audited `scribe_policy.update`
/// with the new values (closed words and numbers).
pub async fn set_policy(tx: &mut TenantTx, p: &Policy) -> Result<(), AppError> {
    store::capture::set_policy(tx, p).await?;
    let practice = tx.practice();
    tx.audit_details(
        AuditAction::ScribePolicyUpdate,
        None,
        Some(AuditObject::practice(practice)),
        Some(serde_json::json!({
            "consent_rule": p.consent_rule.as_str(),
            "audio_retention_days": p.audio_retention_days,
            "max_capture_seconds": p.max_capture_seconds,
        })),
    )
    .await?;
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Handlers

/// Records the recording consent of a visit.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/visits/{visit_id}/consents", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("visit_id" = String, Path, format = Uuid)), request_body = ConsentCreate,
    responses((status = 201, body = ConsentView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn consent_create(
    ctx: Ctx<Clinical>,
    ApiPath((_, visit)): ApiPath<(PracticeId, VisitId)>,
    ApiJson(req): ApiJson<ConsentCreate>,
) -> Result<Response, AppError> {
    let (by, method) = consent_input(&req.consented_by, &req.method)?;
    let mut tx = ctx.tx;
    let c = record_consent(&mut tx, visit, by, method).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(ConsentView::from(&c))).into_response())
}

/// The recording consents of a visit, newest first.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/visits/{visit_id}/consents", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("visit_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<ConsentView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn consent_list(
    ctx: Ctx<Clinical>,
    ApiPath((_, visit)): ApiPath<(PracticeId, VisitId)>,
) -> Result<Json<Vec<ConsentView>>, AppError> {
    let mut tx = ctx.tx;
    let list = list_consents(&mut tx, visit).await?;
    tx.commit().await?;
    Ok(Json(list.iter().map(Into::into).collect()))
}

/// Withdraws a visit's recording consent: its open capture stops at once and the audio taken
/// under the consent is deleted.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/visits/{visit_id}/consents/{consent_id}/withdraw", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("visit_id" = String, Path, format = Uuid), ("consent_id" = String, Path, format = Uuid)),
    responses((status = 200, body = WithdrawalView), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn consent_withdraw(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, visit, consent)): ApiPath<(PracticeId, VisitId, ConsentId)>,
) -> Result<Json<WithdrawalView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let w = withdraw_consent(&mut tx, blobs(&state)?, visit, consent).await?;
    tx.commit().await?;
    Ok(Json(WithdrawalView {
        consent: (&w.consent).into(),
        stopped: w.stopped.as_ref().map(|c| CaptureView::new(c, now)),
        purged_captures: w.purged.len(),
        purged_blobs: w.blobs,
    }))
}

/// Starts a capture (recording) of a visit: `409` without a consent in force.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/visits/{visit_id}/captures", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("visit_id" = String, Path, format = Uuid)),
    responses((status = 201, body = CaptureView), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn capture_create(
    ctx: Ctx<Clinical>,
    ApiPath((_, visit)): ApiPath<(PracticeId, VisitId)>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let c = start_capture(&mut tx, visit).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CaptureView::new(&c, now))).into_response())
}

/// The captures of a visit, newest first.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/visits/{visit_id}/captures", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("visit_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<CaptureView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn capture_list(
    ctx: Ctx<Clinical>,
    ApiPath((_, visit)): ApiPath<(PracticeId, VisitId)>,
) -> Result<Json<Vec<CaptureView>>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let list = list_captures(&mut tx, visit).await?;
    tx.commit().await?;
    Ok(Json(
        list.iter().map(|c| CaptureView::new(c, now)).collect(),
    ))
}

/// One capture and its state.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/captures/{capture_id}", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("capture_id" = String, Path, format = Uuid)),
    responses((status = 200, body = CaptureView), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn capture_get(
    ctx: Ctx<Clinical>,
    ApiPath((_, capture)): ApiPath<(PracticeId, CaptureId)>,
) -> Result<Json<CaptureView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let c = read_capture(&mut tx, capture).await?;
    tx.commit().await?;
    Ok(Json(CaptureView::new(&c, now)))
}

async fn change_route(
    ctx: Ctx<Clinical>,
    capture: CaptureId,
    change: Change,
) -> Result<Json<CaptureView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let c = change_capture(&mut tx, capture, change).await?;
    tx.commit().await?;
    Ok(Json(CaptureView::new(&c, now)))
}

/// Pauses a live capture.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/captures/{capture_id}/pause", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("capture_id" = String, Path, format = Uuid)),
    responses((status = 200, body = CaptureView), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn capture_pause(
    ctx: Ctx<Clinical>,
    ApiPath((_, capture)): ApiPath<(PracticeId, CaptureId)>,
) -> Result<Json<CaptureView>, AppError> {
    change_route(ctx, capture, Change::Pause).await
}

/// Resumes a paused capture.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/captures/{capture_id}/resume", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("capture_id" = String, Path, format = Uuid)),
    responses((status = 200, body = CaptureView), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn capture_resume(
    ctx: Ctx<Clinical>,
    ApiPath((_, capture)): ApiPath<(PracticeId, CaptureId)>,
) -> Result<Json<CaptureView>, AppError> {
    change_route(ctx, capture, Change::Resume).await
}

/// Stops a capture (for good).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/captures/{capture_id}/stop", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("capture_id" = String, Path, format = Uuid)),
    responses((status = 200, body = CaptureView), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn capture_stop(
    ctx: Ctx<Clinical>,
    ApiPath((_, capture)): ApiPath<(PracticeId, CaptureId)>,
) -> Result<Json<CaptureView>, AppError> {
    change_route(ctx, capture, Change::Stop).await
}

/// Reads a chunk body of at most [`store::capture::CHUNK_MAX_BYTES`] (`413` otherwise).
pub async fn chunk_body(body: Body) -> Result<axum::body::Bytes, AppError> {
    axum::body::to_bytes(body, store::capture::CHUNK_MAX_BYTES)
        .await
        .map_err(|_| AppError::TooLarge)
}

/// Uploads audio chunk `seq` of a live capture: a WAV body, 16 kHz mono 16-bit PCM, at most
/// 1 MiB. `201` for a new chunk; `200` for a resend of an accepted one with the same bytes.
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/captures/{capture_id}/chunks/{seq}", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("capture_id" = String, Path, format = Uuid), ("seq" = i32, Path)),
    request_body(content = Vec<u8>, content_type = "audio/wav"),
    responses((status = 201, body = ChunkView), (status = 200, body = ChunkView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E), (status = 413, body = E)))]
pub(crate) async fn chunk_put(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, capture, seq)): ApiPath<(PracticeId, CaptureId, i32)>,
    body: Body,
) -> Result<Response, AppError> {
    let wav = chunk_body(body).await?;
    if seq < 0 {
        return Err(AppError::Invalid("seq: must be 0 or more".into()));
    }
    let mut tx = ctx.tx;
    let now = tx.now();
    let outcome = upload_chunk(&mut tx, blobs(&state)?, capture, seq, &wav).await?;
    tx.commit().await?;
    let u = outcome?;
    let ch = u.stored.chunk();
    let status = match u.stored {
        ChunkStored::New(_) => StatusCode::CREATED,
        ChunkStored::Repeat(_) => StatusCode::OK,
    };
    Ok((
        status,
        Json(ChunkView {
            capture_id: capture,
            seq: ch.seq,
            bytes: ch.bytes,
            duration_ms: ch.duration_ms,
            offset_ms: ch.offset_ms,
            repeat: matches!(u.stored, ChunkStored::Repeat(_)),
            capture: CaptureView::new(&u.capture, now),
        }),
    )
        .into_response())
}

/// The live indicator's state: the caller's open capture in this practice, or null.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/me/capture", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = IndicatorView), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn my_capture(ctx: Ctx<Clinical>) -> Result<Json<IndicatorView>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let c = live_capture(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(IndicatorView {
        capture: c.map(|c| IndicatorCapture {
            capture_id: c.capture_id,
            visit_id: c.visit_id,
            state: c.state.as_str(),
            elapsed_ms: c.elapsed_ms_at(now),
            max_ms: c.max_ms(),
        }),
    }))
}

/// The practice's scribe policy (any member).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/scribe-policy", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PolicyView), (status = 404, body = E)))]
pub(crate) async fn policy_get(ctx: Ctx<AnyMember>) -> Result<Json<PolicyView>, AppError> {
    let mut tx = ctx.tx;
    let p = read_policy(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(p.into()))
}

/// Sets the practice's scribe policy (owners and admins).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/scribe-policy", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid)), request_body = PolicyView,
    responses((status = 200, body = PolicyView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn policy_put(
    ctx: Ctx<Manage>,
    ApiJson(req): ApiJson<PolicyView>,
) -> Result<Json<PolicyView>, AppError> {
    let p = policy_input(
        &req.consent_rule,
        i64::from(req.audio_retention_days),
        i64::from(req.max_capture_seconds),
    )?;
    let mut tx = ctx.tx;
    set_policy(&mut tx, &p).await?;
    tx.commit().await?;
    Ok(Json(p.into()))
}
