//! The scribe's transcripts and note drafts (clinical roles; RLS narrows to
//! `app.clinical_visible`).
//!
//! - A capture's transcript: its segments in time order (decrypted, audited
//!   `transcript.read`); a segment corrected by a clinician (a new revision, the earlier text
//!   kept and readable, audited `transcript.correct`).
//! - A visit's note draft: with a drafting provider registered, the drafter gets the template,
//!   the visit's transcript segments (ids and text) and the structured findings (the patient's
//!   latest perio exam summary) and returns sentences per SOAP section citing segment ids;
//!   every sentence goes through the evidence check ([`egress::evidence`]) and is stored with
//!   its flags (req SCR-05). A truncated reply is an error and no draft is made (the turn
//!   stays). With no drafting provider, the default draft: the findings and the transcript
//!   excerpts grouped by section, labelled not AI-written.
//! - Each flagged sentence is accepted (or edited) one by one; "create note from draft" puts
//!   the sentences into a draft clinical note linked to the draft, and signing that note is
//!   refused while any flagged sentence is unaccepted ([`store::notes::sign`]).
//! - The note's changes from the draft: a word diff of the draft as produced against the note
//!   as signed (or as it stands).

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::notes::{NoteContent, Template};
use domain::{
    AssistantTurnId, AuditAction, AuditObject, CaptureId, DraftId, NoteId, PatientId, PracticeId,
    SegmentId, UserId, VisitId,
};
use egress::evidence::{self, Flag};
use egress::{DraftRequest, EgressError};
use serde::{Deserialize, Serialize};
use store::TenantTx;
use store::drafts::{Draft, DraftRefusal, NewDraft, NewSentence};
use store::transcripts::{CorrectionRefusal, Segment};
use store::turns::Purpose;
use utoipa::ToSchema;

use crate::assistant::{TurnSubject, posture, run_turn};
use crate::extract::{ApiJson, ApiPath, Clinical, Ctx};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// Longest corrected segment text (bytes).
pub const SEGMENT_TEXT_MAX: usize = 4096;

/// One transcript segment.
#[derive(Serialize, ToSchema)]
pub struct SegmentView {
    /// Id (what draft sentences cite).
    #[schema(value_type = String, format = Uuid)]
    pub segment_id: SegmentId,
    /// The chunk it came from.
    pub chunk_seq: i32,
    /// Start, ms from the capture's start.
    pub start_ms: i64,
    /// End, ms from the capture's start.
    pub end_ms: i64,
    /// Speaker label (`speaker_0` …), when the provider gave one.
    pub speaker: Option<String>,
    /// Current revision (0: as transcribed).
    pub revision: i32,
    /// Current text.
    pub text: String,
}

impl From<Segment> for SegmentView {
    fn from(s: Segment) -> Self {
        Self {
            segment_id: s.segment_id,
            chunk_seq: s.chunk_seq,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            speaker: s.speaker,
            revision: s.revision,
            text: s.text,
        }
    }
}

/// How far transcription has come: chunks by state.
#[derive(Serialize, ToSchema)]
pub struct ProgressView {
    /// Waiting or to be retried.
    pub pending: i64,
    /// Transcribed with speech.
    pub done: i64,
    /// No speech.
    pub silent: i64,
    /// Given up.
    pub failed: i64,
    /// Refused by the provider gate.
    pub refused: i64,
}

/// A capture's transcript.
#[derive(Serialize, ToSchema)]
pub struct TranscriptView {
    /// The capture.
    #[schema(value_type = String, format = Uuid)]
    pub capture_id: CaptureId,
    /// Its visit.
    #[schema(value_type = String, format = Uuid)]
    pub visit_id: VisitId,
    /// The chunks' transcription states.
    pub progress: ProgressView,
    /// Segments in time order.
    pub segments: Vec<SegmentView>,
}

/// A capture's transcript, decrypted, audited `transcript.read`: the one path of the API and
/// the web pages. `404` when the capture is not visible here. The caller commits.
pub async fn read_transcript(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    capture: CaptureId,
) -> Result<TranscriptView, AppError> {
    let c = store::transcripts::capture(tx, capture)
        .await?
        .ok_or(AppError::NotFound("capture"))?;
    let p = store::transcripts::progress(tx, capture).await?;
    let segments = store::transcripts::segments(tx, keyring, capture).await?;
    tx.audit_details(
        AuditAction::TranscriptRead,
        Some(c.patient_id),
        Some(AuditObject::capture(capture)),
        Some(serde_json::json!({ "segments": segments.len() })),
    )
    .await?;
    Ok(TranscriptView {
        capture_id: capture,
        visit_id: c.visit_id,
        progress: ProgressView {
            pending: p.pending,
            done: p.done,
            silent: p.silent,
            failed: p.failed,
            refused: p.refused,
        },
        segments: segments.into_iter().map(Into::into).collect(),
    })
}

/// A capture's transcript: segments in time order (with speakers where the provider gave
/// them) and how far transcription has come.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/captures/{capture_id}/transcript", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("capture_id" = String, Path, format = Uuid)),
    responses((status = 200, body = TranscriptView), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn transcript_get(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, capture)): ApiPath<(PracticeId, CaptureId)>,
) -> Result<Json<TranscriptView>, AppError> {
    let mut tx = ctx.tx;
    let t = read_transcript(&mut tx, state.store.keyring()?, capture).await?;
    tx.commit().await?;
    Ok(Json(t))
}

/// The transcript of every capture of `visit` (of `patient`), decrypted, audited
/// `transcript.read` (with the visit): the one path of the draft screens. The caller commits.
pub async fn read_visit_transcript(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    visit: VisitId,
    patient: PatientId,
) -> Result<Vec<Segment>, AppError> {
    let segments = store::transcripts::visit_segments(tx, keyring, visit).await?;
    tx.audit_details(
        AuditAction::TranscriptRead,
        Some(patient),
        Some(AuditObject::visit(visit)),
        Some(serde_json::json!({ "segments": segments.len() })),
    )
    .await?;
    Ok(segments)
}

/// A correction of a segment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentCorrection {
    /// The corrected text (at most 4 KiB).
    pub text: String,
    /// The revision the correction was made against (412 when it is no longer current).
    pub revision: Option<i32>,
}

/// The corrected segment's new revision.
#[derive(Serialize, ToSchema)]
pub struct CorrectedView {
    /// The segment.
    #[schema(value_type = String, format = Uuid)]
    pub segment_id: SegmentId,
    /// Its new revision.
    pub revision: i32,
}

/// Corrects segment `id` with `text` (checked here) against `expected`, audited
/// `transcript.correct` with the new revision: the one path of the API and the web pages.
/// The caller commits.
pub async fn correct_segment(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: SegmentId,
    expected: Option<i32>,
    text: &str,
) -> Result<i32, AppError> {
    let text = domain::values::free_text("text", text, SEGMENT_TEXT_MAX)?;
    let (patient, _) = store::transcripts::segment_owner(tx, id)
        .await?
        .ok_or(AppError::NotFound("transcript segment"))?;
    let revision = match store::transcripts::correct(tx, keyring, id, expected, &text).await? {
        Ok(r) => r,
        Err(CorrectionRefusal::NotFound) => return Err(AppError::NotFound("transcript segment")),
        Err(CorrectionRefusal::Stale) => return Err(AppError::PreconditionFailed),
    };
    tx.audit_details(
        AuditAction::TranscriptCorrect,
        Some(patient),
        Some(AuditObject::transcript_segment(id)),
        Some(serde_json::json!({ "revision": revision })),
    )
    .await?;
    Ok(revision)
}

/// Corrects a transcript segment: a new revision; the earlier text is kept (see
/// `…/revisions`).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/transcript-segments/{segment_id}", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("segment_id" = String, Path, format = Uuid)),
    request_body = SegmentCorrection,
    responses((status = 200, body = CorrectedView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 412, body = E)))]
pub(crate) async fn segment_correct(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, SegmentId)>,
    ApiJson(req): ApiJson<SegmentCorrection>,
) -> Result<Json<CorrectedView>, AppError> {
    let mut tx = ctx.tx;
    let revision =
        correct_segment(&mut tx, state.store.keyring()?, id, req.revision, &req.text).await?;
    tx.commit().await?;
    Ok(Json(CorrectedView {
        segment_id: id,
        revision,
    }))
}

/// One revision of a segment.
#[derive(Serialize, ToSchema)]
pub struct RevisionView {
    /// The revision (0: as transcribed).
    pub revision: i32,
    /// Its text.
    pub text: String,
    /// Who corrected it (`null`: the transcription).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub revised_by: Option<UserId>,
    /// When.
    pub revised_at: chrono::DateTime<chrono::Utc>,
}

/// Every revision of segment `id`, oldest first, audited `transcript.read`: the one path of
/// the API and the web pages. The caller commits.
pub async fn segment_history(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: SegmentId,
) -> Result<Vec<RevisionView>, AppError> {
    let (patient, _) = store::transcripts::segment_owner(tx, id)
        .await?
        .ok_or(AppError::NotFound("transcript segment"))?;
    let h = store::transcripts::history(tx, keyring, id).await?;
    tx.audit_details(
        AuditAction::TranscriptRead,
        Some(patient),
        Some(AuditObject::transcript_segment(id)),
        Some(serde_json::json!({ "history": true })),
    )
    .await?;
    Ok(h.into_iter()
        .map(|r| RevisionView {
            revision: r.revision,
            text: r.text,
            revised_by: r.revised_by,
            revised_at: r.revised_at,
        })
        .collect())
}

/// A segment's history: every text it has had, oldest first.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/transcript-segments/{segment_id}/revisions", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("segment_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<RevisionView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn segment_revisions(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, SegmentId)>,
) -> Result<Json<Vec<RevisionView>>, AppError> {
    let mut tx = ctx.tx;
    let h = segment_history(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    Ok(Json(h))
}

/// One sentence of a draft.
#[derive(Serialize, ToSchema)]
pub struct SentenceView {
    /// Its place in the draft.
    pub idx: i32,
    /// `subjective`, `objective`, `assessment` or `plan`.
    pub section: String,
    /// The sentence.
    pub text: String,
    /// The transcript segments it cites.
    #[schema(value_type = Vec<String>)]
    pub evidence: Vec<SegmentId>,
    /// The evidence check's flags (`no_evidence`, `number`, `tooth`, `drug`, `negation`,
    /// `unknown_segment`).
    pub flags: Vec<String>,
    /// What each flag means, for the clinician.
    pub flag_reasons: Vec<&'static str>,
    /// Whether a clinician must still accept (or edit) it.
    pub needs_review: bool,
    /// Who accepted it.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub accepted_by: Option<UserId>,
    /// When.
    pub accepted_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A note draft.
#[derive(Serialize, ToSchema)]
pub struct DraftView {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub draft_id: DraftId,
    /// The visit.
    #[schema(value_type = String, format = Uuid)]
    pub visit_id: VisitId,
    /// The patient.
    pub patient_id: PatientId,
    /// The note made from it, if any.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub note_id: Option<NoteId>,
    /// The drafting turn (`null` for the default draft).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub turn_id: Option<AssistantTurnId>,
    /// Whether a model wrote it; `false`: the default draft (findings and transcript
    /// excerpts).
    pub ai_written: bool,
    /// What it is, in words.
    pub label: &'static str,
    /// The template.
    pub template: Template,
    /// Sentences in order.
    pub sentences: Vec<SentenceView>,
    /// Flagged sentences still to accept.
    pub unreviewed: usize,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The label of an AI-written draft.
pub const AI_LABEL: &str = "AI-written draft: check every sentence against its evidence";
/// The label of the default draft.
pub const DEFAULT_LABEL: &str = "Default draft, not AI-written: the structured findings and transcript excerpts grouped by section";

impl From<Draft> for DraftView {
    fn from(d: Draft) -> Self {
        let sentences: Vec<SentenceView> = d
            .sentences
            .into_iter()
            .map(|s| SentenceView {
                needs_review: s.needs_review(),
                flag_reasons: s
                    .flags
                    .iter()
                    .filter_map(|f| Flag::parse(f))
                    .map(Flag::explain)
                    .collect(),
                idx: s.idx,
                section: s.section,
                text: s.text,
                evidence: s.evidence,
                flags: s.flags,
                accepted_by: s.accepted_by,
                accepted_at: s.accepted_at,
            })
            .collect();
        Self {
            unreviewed: sentences.iter().filter(|s| s.needs_review).count(),
            draft_id: d.draft_id,
            visit_id: d.visit_id,
            patient_id: d.patient_id,
            note_id: d.note_id,
            turn_id: d.turn_id,
            ai_written: d.ai_written,
            label: if d.ai_written {
                AI_LABEL
            } else {
                DEFAULT_LABEL
            },
            template: d.template,
            sentences,
            created_at: d.created_at,
        }
    }
}

/// A draft to make.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DraftCreate {
    /// The note template (default `free`).
    #[serde(default)]
    pub template: Option<Template>,
}

/// The section a transcript excerpt most likely belongs to (the default draft's grouping):
/// plan words, then assessment words, then findings words; else what the patient said.
#[must_use]
pub fn excerpt_section(text: &str) -> &'static str {
    const PLAN: &[&str] = &[
        "recall",
        "follow up",
        "follow-up",
        "schedule",
        "next visit",
        "recommend",
        "prescri",
        "refer",
        "return in",
        "come back",
        "see you",
        "continue",
        "home care",
        "floss",
        "brush",
    ];
    const ASSESSMENT: &[&str] = &[
        "diagnos",
        "gingivitis",
        "periodontitis",
        "caries",
        "impression",
        "consistent with",
        "stable",
        "healthy",
        "inflamm",
        "likely",
    ];
    const OBJECTIVE: &[&str] = &[
        "probing",
        "depth",
        "bleeding",
        " mm",
        "millimet",
        "mobility",
        "furcation",
        "recession",
        "plaque",
        "calculus",
        "tooth",
        "teeth",
        "pocket",
        "x-ray",
        "radiograph",
        "tender",
        "palpat",
        "blood pressure",
    ];
    let t = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(PLAN) {
        "plan"
    } else if has(ASSESSMENT) {
        "assessment"
    } else if has(OBJECTIVE) {
        "objective"
    } else {
        "subjective"
    }
}

/// The structured findings of `patient`: the latest perio exam's summary, one line per fact
/// (the exam's read is audited `perio_exam.read`). Empty without an exam.
pub(crate) async fn findings(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
) -> Result<Vec<String>, AppError> {
    let Some(latest) = store::perio::list_for_patient(tx, patient)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(Vec::new());
    };
    let exam = crate::routes::perio::read_exam(tx, keyring, patient, latest.exam_id).await?;
    let s = exam.session.summary();
    let mut out = vec![format!(
        "Perio exam of {}: bleeding on probing {}; {} sites with probing depth of 4 mm or more; {} sites of 6 mm or more.",
        latest.created_at.format("%Y-%m-%d"),
        s.bop_percent
            .map_or_else(|| "not recorded".to_owned(), |p| format!("{p}%")),
        s.sites_pd_ge_4,
        s.sites_pd_ge_6
    )];
    for t in s.teeth.iter().filter(|t| {
        t.max_pd.is_some_and(|d| d >= 4) || t.mobility.is_some() || t.max_furcation.is_some()
    }) {
        let mut line = format!("Tooth {}:", t.tooth);
        if let Some(pd) = t.max_pd {
            let _ = write!(line, " deepest probing depth {pd} mm");
        }
        if t.bleeding_sites > 0 {
            let _ = write!(line, ", {} bleeding sites", t.bleeding_sites);
        }
        if let Some(m) = t.mobility {
            let _ = write!(line, ", mobility grade {m}");
        }
        if let Some(f) = t.max_furcation {
            let _ = write!(line, ", furcation grade {f}");
        }
        line.push('.');
        out.push(line);
        if out.len() > 40 {
            break;
        }
    }
    Ok(out)
}

/// The default draft's sentences: the findings (objective), then each transcript segment as
/// an excerpt in its likely section, citing itself. Nothing is invented, so nothing is
/// flagged.
#[must_use]
pub fn default_sentences(findings: &[String], segments: &[Segment]) -> Vec<NewSentence> {
    let mut by_section: Vec<NewSentence> = findings
        .iter()
        .map(|f| NewSentence {
            section: "objective",
            text: f.clone(),
            evidence: Vec::new(),
            flags: Vec::new(),
        })
        .collect();
    for s in segments.iter().filter(|s| !s.text.trim().is_empty()) {
        by_section.push(NewSentence {
            section: excerpt_section(&s.text),
            text: format!("\u{201c}{}\u{201d}", s.text.trim()),
            evidence: vec![s.segment_id],
            flags: Vec::new(),
        });
    }
    let order = |s: &str| {
        store::drafts::SECTIONS
            .iter()
            .position(|x| *x == s)
            .unwrap_or(0)
    };
    by_section.sort_by_key(|s| order(s.section));
    by_section.truncate(store::drafts::SENTENCES_MAX);
    by_section
}

/// The content a draft's sentences make.
pub(crate) fn content_of(sentences: &[NewSentence]) -> NoteContent {
    let mut c = NoteContent::default();
    for s in sentences {
        let target = match s.section {
            "subjective" => &mut c.subjective,
            "objective" => &mut c.objective,
            "assessment" => &mut c.assessment,
            _ => &mut c.plan,
        };
        if !target.is_empty() {
            target.push(' ');
        }
        target.push_str(&s.text);
    }
    c
}

/// A failed drafting call (a draft or an assistant edit) as the caller's error: nothing of it
/// was saved but its turn.
pub(crate) fn drafting_error(e: &EgressError) -> AppError {
    match e {
        EgressError::Refused(_) => AppError::AiRefused(
            "the practice's drafting provider is not allowed (a vendor needs a BAA on record and training disabled); nothing was sent — an owner can fix its registration",
        ),
        EgressError::Truncated => AppError::AiFailed(
            "the drafting provider's reply was cut short at its token limit: nothing was saved; try again",
        ),
        EgressError::RateLimited { .. } => AppError::AiFailed(
            "the drafting provider is rate limiting: nothing was saved; try again in a moment",
        ),
        _ => AppError::AiFailed("the drafting provider failed: nothing was saved; try again"),
    }
}

/// How [`create_draft`] ended: a draft, or a failed AI call whose turn must still be committed.
#[derive(Debug)]
pub enum DraftOutcome {
    /// The draft (read back).
    Created(Box<Draft>),
    /// The drafting call failed (refused, truncated, rate limited, error): its turn was
    /// recorded and audited; commit, then answer the error. No draft was made.
    Failed(AppError),
}

/// The visit's patient, if visible here and not deleted.
pub(crate) async fn visit_patient(
    tx: &mut TenantTx,
    visit: VisitId,
) -> Result<PatientId, AppError> {
    let patient = store::drafts::visit_patient(tx, visit)
        .await?
        .ok_or(AppError::NotFound("visit"))?;
    if store::patients::is_deleted(tx, patient).await? {
        return Err(AppError::Gone("patient"));
    }
    Ok(patient)
}

/// The drafting provider's sentences, each through the evidence check, with the drafting
/// turn (recorded and audited in `tx`); `Err` inside: the call failed (its turn stays).
async fn ai_sentences(
    tx: &mut TenantTx,
    state: &AppState,
    p: &store::turns::RegisteredProvider,
    subject: TurnSubject,
    template: Template,
    segments: &[Segment],
    findings: &[String],
) -> Result<Result<(Vec<NewSentence>, AssistantTurnId), AppError>, AppError> {
    let keyring = state.store.keyring()?;
    let drafter = state.assistant.adapters.drafter(p);
    let posture = posture(p);
    let pairs: Vec<(SegmentId, String)> = segments
        .iter()
        .map(|s| (s.segment_id, s.text.clone()))
        .collect();
    let request = DraftRequest {
        template: template.as_str().to_owned(),
        segments: pairs.clone(),
        findings: findings.to_vec(),
        edit: None,
    };
    let prompt = serde_json::to_vec(&serde_json::json!({
        "template": request.template,
        "segments": pairs.iter().map(|(id, t)| serde_json::json!({"id": id, "text": t})).collect::<Vec<_>>(),
        "findings": request.findings,
    }))
    .unwrap_or_default();
    let called = run_turn(
        tx,
        keyring,
        &state.assistant.operator_hosts,
        subject,
        &posture,
        &prompt,
        |cleared| async move {
            match drafter {
                Some(d) => d.draft(&cleared, request).await,
                None => Err(EgressError::Malformed(
                    "no adapter for this provider's kind in this installation".into(),
                )),
            }
        },
    )
    .await?;
    let reply = match called.result {
        Ok(r) => r,
        Err(e) => return Ok(Err(drafting_error(&e))),
    };
    Ok(Ok((
        checked_sentences(&reply.sentences, &pairs),
        called.turn,
    )))
}

/// A provider's sentences as a draft stores them, each through the evidence check against
/// `pairs` (the visit's segments: id and text) — the one check of drafts and assistant edits
/// (req SCR-05). Empty sentences are dropped; at most [`store::drafts::SENTENCES_MAX`].
#[must_use]
pub fn checked_sentences(
    sentences: &[egress::DraftSentence],
    pairs: &[(SegmentId, String)],
) -> Vec<NewSentence> {
    sentences
        .iter()
        .filter(|s| !s.text.trim().is_empty())
        .take(store::drafts::SENTENCES_MAX)
        .map(|s| NewSentence {
            section: egress::draft::section_name(s.section),
            text: s.text.trim().to_owned(),
            evidence: s.evidence.clone(),
            flags: evidence::check(&s.text, &s.evidence, pairs)
                .into_iter()
                .map(Flag::as_str)
                .collect(),
        })
        .collect()
}

/// Makes a note draft of `template` for `visit`: through the practice's drafting provider when
/// one is registered (one assistant turn), else the default draft; every sentence checked
/// against its evidence; audited `note_draft.create` (and the findings' `perio_exam.read`):
/// the one path of the API and the web pages. The caller commits in both outcomes.
pub async fn create_draft(
    tx: &mut TenantTx,
    state: &AppState,
    visit: VisitId,
    template: Template,
) -> Result<DraftOutcome, AppError> {
    let keyring = state.store.keyring()?;
    let patient = visit_patient(tx, visit).await?;
    let segments = store::transcripts::visit_segments(tx, keyring, visit).await?;
    let findings = findings(tx, keyring, patient).await?;
    let capture = segments.last().map(|s| s.capture_id);
    let provider = store::turns::provider_for(tx, keyring, "drafting").await?;
    let (sentences, turn) = match provider {
        None => (default_sentences(&findings, &segments), None),
        Some(p) => {
            let subject = TurnSubject {
                patient,
                visit: Some(visit),
                capture,
                purpose: Purpose::Drafting,
            };
            match ai_sentences(tx, state, &p, subject, template, &segments, &findings).await? {
                Ok((sentences, turn)) => (sentences, Some(turn)),
                Err(e) => return Ok(DraftOutcome::Failed(e)),
            }
        }
    };
    let content = content_of(&sentences);
    let id = store::drafts::create(
        tx,
        keyring,
        &NewDraft {
            visit,
            patient,
            capture,
            turn,
            template,
            content: &content,
            sentences: &sentences,
        },
    )
    .await?;
    // Read back (decrypted) before the audit event, which covers it.
    let d = store::drafts::get(tx, keyring, id)
        .await?
        .ok_or(AppError::Internal("a draft vanished after insert".into()))?;
    tx.audit_details(
        AuditAction::NoteDraftCreate,
        Some(patient),
        Some(AuditObject::note_draft(id)),
        Some(serde_json::json!({
            "visit_id": visit,
            "ai_written": turn.is_some(),
            "assistant_turn_id": turn,
            "sentences": sentences.len(),
            "flagged": sentences.iter().filter(|s| !s.flags.is_empty()).count(),
        })),
    )
    .await?;
    Ok(DraftOutcome::Created(Box::new(d)))
}

/// Drafts the visit's note: through the practice's drafting provider (sentences citing
/// transcript segments, each checked against its evidence and flagged where unsupported), or,
/// with none, the default draft (not AI-written). `502 AI-0001` when the provider fails or its
/// reply is truncated (no draft; the assistant turn is kept); `409 AI-0002` when the provider
/// gate refuses the provider.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/visits/{visit_id}/drafts", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("visit_id" = String, Path, format = Uuid)),
    request_body = DraftCreate,
    responses((status = 201, body = DraftView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E),
              (status = 409, body = E), (status = 410, body = E), (status = 502, body = E)))]
pub(crate) async fn draft_create(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, visit)): ApiPath<(PracticeId, VisitId)>,
    ApiJson(req): ApiJson<DraftCreate>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let template = req.template.unwrap_or(Template::Free);
    let outcome = create_draft(&mut tx, &state, visit, template).await?;
    tx.commit().await?;
    match outcome {
        DraftOutcome::Created(d) => {
            Ok((StatusCode::CREATED, Json(DraftView::from(*d))).into_response())
        }
        DraftOutcome::Failed(e) => Err(e),
    }
}

/// A draft in a list.
#[derive(Serialize, ToSchema)]
pub struct DraftSummaryView {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub draft_id: DraftId,
    /// Whether a model wrote it.
    pub ai_written: bool,
    /// The note made from it.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub note_id: Option<NoteId>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Flagged sentences still to accept.
    pub unreviewed: i64,
}

/// The drafts of `visit`, newest first (ids and counts; nothing decrypted), audited
/// `note_draft.read`: the one path of the API and the web pages. The caller commits.
pub async fn list_drafts(
    tx: &mut TenantTx,
    visit: VisitId,
) -> Result<Vec<DraftSummaryView>, AppError> {
    let patient = store::drafts::visit_patient(tx, visit)
        .await?
        .ok_or(AppError::NotFound("visit"))?;
    let list = store::drafts::list_for_visit(tx, visit).await?;
    tx.audit_details(
        AuditAction::NoteDraftRead,
        Some(patient),
        Some(AuditObject::visit(visit)),
        Some(serde_json::json!({ "list": true })),
    )
    .await?;
    Ok(list
        .into_iter()
        .map(|d| DraftSummaryView {
            draft_id: d.draft_id,
            ai_written: d.ai_written,
            note_id: d.note_id,
            created_at: d.created_at,
            unreviewed: d.unreviewed,
        })
        .collect())
}

/// A visit's note drafts, newest first.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/visits/{visit_id}/drafts", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("visit_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<DraftSummaryView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn draft_list(
    ctx: Ctx<Clinical>,
    ApiPath((_, visit)): ApiPath<(PracticeId, VisitId)>,
) -> Result<Json<Vec<DraftSummaryView>>, AppError> {
    let mut tx = ctx.tx;
    let list = list_drafts(&mut tx, visit).await?;
    tx.commit().await?;
    Ok(Json(list))
}

/// Draft `id` with its sentences, audited `note_draft.read`: the one path of the API and the
/// web pages. The caller commits.
pub async fn read_draft(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: DraftId,
) -> Result<Draft, AppError> {
    let d = store::drafts::get(tx, keyring, id)
        .await?
        .ok_or(AppError::NotFound("draft"))?;
    tx.audit(
        AuditAction::NoteDraftRead,
        Some(d.patient_id),
        Some(AuditObject::note_draft(id)),
    )
    .await?;
    Ok(d)
}

/// A note draft: its sentences, the segments each cites, the flags and who accepted them.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/drafts/{draft_id}", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("draft_id" = String, Path, format = Uuid)),
    responses((status = 200, body = DraftView), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn draft_get(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, DraftId)>,
) -> Result<Json<DraftView>, AppError> {
    let mut tx = ctx.tx;
    let d = read_draft(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    Ok(Json(d.into()))
}

fn draft_refusal(r: DraftRefusal) -> AppError {
    match r {
        DraftRefusal::NotFound => AppError::NotFound("draft sentence"),
        DraftRefusal::Locked => {
            AppError::Locked("the note made from this draft is signed: the draft no longer changes")
        }
    }
}

/// A change of one sentence: accept it as it stands, or replace its text.
#[derive(Debug, Clone)]
pub enum SentenceChange<'a> {
    /// Accept it.
    Accept,
    /// Replace its text (which accepts it).
    Edit(&'a str),
}

/// Accepts or edits sentence `idx` of draft `id` as the signed-in clinician, audited
/// `note_draft.update` (which sentence and which change; never the text): the one path of the
/// API and the web pages. The caller commits.
pub async fn change_sentence(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: DraftId,
    idx: i32,
    change: SentenceChange<'_>,
) -> Result<(), AppError> {
    let (patient, what) = match change {
        SentenceChange::Accept => (
            store::drafts::accept(tx, id, idx)
                .await?
                .map_err(draft_refusal)?,
            "accept",
        ),
        SentenceChange::Edit(text) => {
            let text = domain::values::free_text("text", text, store::drafts::SENTENCE_MAX)?;
            (
                store::drafts::edit(tx, keyring, id, idx, &text)
                    .await?
                    .map_err(draft_refusal)?,
                "edit",
            )
        }
    };
    tx.audit_details(
        AuditAction::NoteDraftUpdate,
        Some(patient),
        Some(AuditObject::note_draft(id)),
        Some(serde_json::json!({ "sentence": idx, "change": what })),
    )
    .await?;
    Ok(())
}

/// Accepts a (flagged) sentence as it stands; a flagged sentence must be accepted or edited
/// before the note made from the draft can be signed.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/drafts/{draft_id}/sentences/{idx}/accept", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("draft_id" = String, Path, format = Uuid), ("idx" = i32, Path)),
    responses((status = 200, body = DraftView), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn sentence_accept(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id, idx)): ApiPath<(PracticeId, DraftId, i32)>,
) -> Result<Json<DraftView>, AppError> {
    let mut tx = ctx.tx;
    let keyring = state.store.keyring()?;
    change_sentence(&mut tx, keyring, id, idx, SentenceChange::Accept).await?;
    let d = read_draft(&mut tx, keyring, id).await?;
    tx.commit().await?;
    Ok(Json(d.into()))
}

/// A sentence's new text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SentenceEdit {
    /// The text (at most 4 KiB).
    pub text: String,
}

/// Replaces a sentence's text with the clinician's (which accepts it; its flags stay as the
/// record of what was checked).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/drafts/{draft_id}/sentences/{idx}", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("draft_id" = String, Path, format = Uuid), ("idx" = i32, Path)),
    request_body = SentenceEdit,
    responses((status = 200, body = DraftView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn sentence_edit(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id, idx)): ApiPath<(PracticeId, DraftId, i32)>,
    ApiJson(req): ApiJson<SentenceEdit>,
) -> Result<Json<DraftView>, AppError> {
    let mut tx = ctx.tx;
    let keyring = state.store.keyring()?;
    change_sentence(&mut tx, keyring, id, idx, SentenceChange::Edit(&req.text)).await?;
    let d = read_draft(&mut tx, keyring, id).await?;
    tx.commit().await?;
    Ok(Json(d.into()))
}

/// Makes a draft clinical note from draft `id` (its sentences as they stand, section by
/// section; the visit's patient and template), links the draft to it, and audits
/// `note.create` and `note_draft.update`: the one path of the API and the web pages. `409`
/// when the draft already has a note. The caller commits.
pub async fn note_from_draft(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: DraftId,
) -> Result<store::notes::Note, AppError> {
    let d = store::drafts::get(tx, keyring, id)
        .await?
        .ok_or(AppError::NotFound("draft"))?;
    if d.note_id.is_some() {
        return Err(AppError::Conflict(
            "a note was already made from this draft: open it from the visit".into(),
        ));
    }
    let content = d.current_content();
    content.validate(d.template).map_err(AppError::from)?;
    let note = crate::routes::notes::start_note(
        tx,
        keyring,
        d.patient_id,
        d.template,
        Some(d.visit_id),
        &content,
    )
    .await?;
    store::drafts::link_note(tx, id, note.note_id).await?;
    tx.audit_details(
        AuditAction::NoteDraftUpdate,
        Some(d.patient_id),
        Some(AuditObject::note_draft(id)),
        Some(serde_json::json!({ "change": "note", "note_id": note.note_id })),
    )
    .await?;
    Ok(note)
}

/// Creates a draft clinical note from the draft's sentences; signing it is refused (409)
/// while any flagged sentence of the draft is unaccepted.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/drafts/{draft_id}/note", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("draft_id" = String, Path, format = Uuid)),
    responses((status = 201, body = crate::views::NoteView), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn draft_note_create(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, DraftId)>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let note = note_from_draft(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    let v = note.version;
    Ok(crate::etag::with_etag(
        v,
        (
            StatusCode::CREATED,
            Json(crate::views::NoteView::from(note)),
        ),
    ))
}

/// What the clinician changed from the draft a note was made from.
#[derive(Serialize, ToSchema)]
pub struct DraftChangesView {
    /// The note.
    pub note_id: NoteId,
    /// The draft.
    #[schema(value_type = String, format = Uuid)]
    pub draft_id: DraftId,
    /// Whether a model wrote the draft.
    pub ai_written: bool,
    /// The drafting turn.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub turn_id: Option<AssistantTurnId>,
    /// Whether the note compared is the signed version (else the current draft).
    pub signed: bool,
    /// Word diff from the draft as produced to the note (`equal`, `insert`, `delete`).
    pub diff: Vec<domain::notes::DiffOp>,
}

/// The word diff from the draft note `n` (already read) was made from to the note as signed
/// (or as it stands), audited `note_draft.read`: the one path of the API and the note page.
/// `None` when the note was not made from a draft. The caller commits.
pub async fn changes_from_draft(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    n: &store::notes::Note,
) -> Result<Option<DraftChangesView>, AppError> {
    let Some(d) = store::drafts::draft_of_note(tx, keyring, n.note_id).await? else {
        return Ok(None);
    };
    tx.audit(
        AuditAction::NoteDraftRead,
        Some(d.patient_id),
        Some(AuditObject::note_draft(d.draft_id)),
    )
    .await?;
    let signed = n.status == domain::notes::NoteStatus::Signed;
    let note_content = n.signed_content.as_ref().unwrap_or(&n.content);
    Ok(Some(DraftChangesView {
        note_id: n.note_id,
        draft_id: d.draft_id,
        ai_written: d.ai_written,
        turn_id: d.turn_id,
        signed,
        diff: domain::notes::word_diff(&d.content.render_text(), &note_content.render_text()),
    }))
}

/// [`changes_from_draft`] of note `id`, read and audited `note.read` first. The caller
/// commits.
pub async fn draft_changes(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: NoteId,
) -> Result<Option<DraftChangesView>, AppError> {
    let n = crate::routes::notes::read_note(
        tx,
        keyring,
        id,
        Some(serde_json::json!({ "draft_changes": true })),
    )
    .await?;
    changes_from_draft(tx, keyring, &n).await
}

/// What the clinician changed from the (AI) draft the note was made from: a word diff of the
/// draft as produced against the note as signed. 404 when the note was not made from a draft.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/notes/{note_id}/draft-changes", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid)),
    responses((status = 200, body = DraftChangesView), (status = 403, body = E), (status = 404, body = E), (status = 410, body = E)))]
pub(crate) async fn note_draft_changes(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
) -> Result<Json<DraftChangesView>, AppError> {
    let mut tx = ctx.tx;
    let c = draft_changes(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    c.map(Json).ok_or(AppError::NotFound("draft of this note"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_go_to_their_likely_section() {
        let cases = [
            ("My gums bleed when I brush... sometimes.", "plan"),
            ("It hurts on the left side.", "subjective"),
            ("Probing depth five on fourteen.", "objective"),
            ("Looks like localized gingivitis.", "assessment"),
            ("Let's schedule a recall in six months.", "plan"),
        ];
        for (t, want) in cases {
            assert_eq!(excerpt_section(t), want, "{t}");
        }
    }
}
