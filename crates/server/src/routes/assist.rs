//! Assistant edits (clinical roles; RLS narrows to `app.clinical_visible`): the practice's
//! drafting provider revises a note draft, or proposes an amendment of a signed note, on the
//! clinician's instruction (at most [`INSTRUCTION_MAX`] bytes: "shorter", "add the home-care
//! advice").
//!
//! - **A draft edit** (`POST …/drafts/{draft_id}/assist`): the drafter gets the visit's
//!   transcript segments, the findings, the draft's sentences as they stand (with the
//!   segments each cites) and the instruction, and answers with the whole revised draft in the
//!   drafting schema, every sentence citing segments; each goes through the evidence check
//!   ([`egress::evidence`], req SCR-05). The answer is a proposal — the sentences with their
//!   flags and a word diff against the draft as it stands — and nothing of the draft changes:
//!   the proposal lives only in its assistant turn (purpose `draft_edit`, output sealed).
//!   Accepting it (`POST …/drafts/{draft_id}/assist/{turn_id}/accept`) makes a new draft of
//!   the visit from the turn's output, checked again against the transcript as it is now,
//!   whose flagged sentences must be accepted one by one before its note can be signed, like
//!   any draft; its turn is the edit's turn, so the note's "changes from the AI draft" start
//!   from the revision the clinician accepted. Not accepting discards it: the draft stays as
//!   it was. A draft a note was made from is not revised (`409`): the note is edited instead.
//! - **An amendment edit** (`POST …/notes/{note_id}/assist`): on a signed note, the drafter
//!   gets the note's current text section by section, the visit's transcript and findings and
//!   the instruction, and proposes amended content (purpose `amendment_edit`): the sentences
//!   with their flags, the content, and a word diff against the current text. The clinician
//!   edits it and signs the amendment through `…/amendments` with `ai_assisted` and this
//!   turn's id; the note then shows the amendment's diff against the signed text, marked
//!   AI-assisted with its turn (req SCR-04).
//! - Every AI call goes through [`run_turn`]: the provider gate first (a refusal opens no
//!   connection and is a `refused` turn, `409 AI-0002`), exactly one assistant turn and one
//!   `assistant.turn` audit event, committed also when the call failed; a truncated reply is
//!   `502 AI-0001` and nothing but the turn is written. With no drafting provider registered,
//!   `409` and nothing is called.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::notes::{DiffOp, NoteContent, NoteStatus, Template};
use domain::{
    AssistantTurnId, AuditAction, AuditObject, DraftId, NoteId, PatientId, PracticeId, SegmentId,
    VisitId,
};
use egress::draft::EditRequest;
use egress::evidence::Flag;
use egress::{DraftReply, DraftRequest, DraftSection, DraftSentence, EgressError, Usage};
use serde::{Deserialize, Serialize};
use store::TenantTx;
use store::drafts::{Draft, NewDraft, NewSentence};
use store::transcripts::Segment;
use store::turns::{Purpose, TurnOutcome};
use utoipa::ToSchema;

use crate::assistant::{Reply, TurnSubject, posture, run_turn};
use crate::extract::{ApiJson, ApiPath, Clinical, Ctx};
use crate::routes::scribe::{DraftView, checked_sentences, content_of, findings, visit_patient};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// The longest instruction accepted (bytes; the adapters send at most
/// [`egress::draft::MAX_INSTRUCTION_CHARS`] characters of it).
pub const INSTRUCTION_MAX: usize = egress::draft::MAX_INSTRUCTION_CHARS;

/// What the clinician asks the assistant to do.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistRequest {
    /// The instruction (at most 500 bytes), e.g. "shorter" or "add the home-care advice".
    pub instruction: String,
}

/// Checks an instruction: not empty, at most [`INSTRUCTION_MAX`] bytes, no control
/// characters.
pub fn instruction(s: &str) -> Result<String, AppError> {
    Ok(
        domain::values::free_text("instruction", s, INSTRUCTION_MAX)?
            .trim()
            .to_owned(),
    )
}

/// One sentence of a proposal.
#[derive(Serialize, ToSchema)]
pub struct ProposedSentenceView {
    /// `subjective`, `objective`, `assessment` or `plan`.
    pub section: String,
    /// The sentence.
    pub text: String,
    /// The transcript segments it cites.
    #[schema(value_type = Vec<String>)]
    pub evidence: Vec<SegmentId>,
    /// The evidence check's flags.
    pub flags: Vec<String>,
    /// What each flag means, for the clinician.
    pub flag_reasons: Vec<&'static str>,
}

fn proposed(sentences: &[NewSentence]) -> Vec<ProposedSentenceView> {
    sentences
        .iter()
        .map(|s| ProposedSentenceView {
            section: s.section.to_owned(),
            text: s.text.clone(),
            evidence: s.evidence.clone(),
            flags: s.flags.iter().map(|f| (*f).to_owned()).collect(),
            flag_reasons: s
                .flags
                .iter()
                .filter_map(|f| Flag::parse(f))
                .map(Flag::explain)
                .collect(),
        })
        .collect()
}

/// A proposed revision of a draft (nothing changed yet).
#[derive(Serialize, ToSchema)]
pub struct DraftProposalView {
    /// The assistant turn that holds the proposal (accept it by this id).
    #[schema(value_type = String, format = Uuid)]
    pub turn_id: AssistantTurnId,
    /// The draft it revises.
    #[schema(value_type = String, format = Uuid)]
    pub draft_id: DraftId,
    /// The revised sentences in order, with the evidence check's flags.
    pub sentences: Vec<ProposedSentenceView>,
    /// How many are flagged (each must be accepted once the revision is a draft).
    pub flagged: usize,
    /// Word diff from the draft as it stands to the proposal (`equal`, `insert`, `delete`).
    pub diff: Vec<DiffOp>,
}

/// A proposed amendment of a signed note (nothing signed yet).
#[derive(Serialize, ToSchema)]
pub struct AmendmentProposalView {
    /// The assistant turn: name it as `assistant_turn_id` (with `ai_assisted`) when signing
    /// the amendment.
    #[schema(value_type = String, format = Uuid)]
    pub turn_id: AssistantTurnId,
    /// The note.
    pub note_id: NoteId,
    /// Its patient.
    pub patient_id: PatientId,
    /// Its template.
    pub template: Template,
    /// The note's version the proposal was made against (`If-Match` of the amendment).
    pub version: i32,
    /// The proposed content (the current template fields kept).
    pub content: NoteContent,
    /// The proposed sentences, with the evidence check's flags.
    pub sentences: Vec<ProposedSentenceView>,
    /// How many are flagged.
    pub flagged: usize,
    /// Word diff from the note's current text to the proposal.
    pub diff: Vec<DiffOp>,
}

/// A revision as its turn stores it: what it revises and the sentences the model gave.
struct Revision {
    revises: uuid::Uuid,
    reply: DraftReply,
}

impl Reply for Revision {
    fn output(&self) -> Vec<u8> {
        let s: Vec<serde_json::Value> = self
            .reply
            .sentences
            .iter()
            .map(|s| serde_json::json!({"section": s.section, "text": s.text, "evidence": s.evidence}))
            .collect();
        serde_json::to_vec(&serde_json::json!({ "revises": self.revises, "sentences": s }))
            .unwrap_or_default()
    }
    fn usage(&self) -> Usage {
        self.reply.usage
    }
}

fn section_of(name: &str) -> DraftSection {
    match name {
        "subjective" => DraftSection::Subjective,
        "objective" => DraftSection::Objective,
        "assessment" => DraftSection::Assessment,
        _ => DraftSection::Plan,
    }
}

/// What one edit call needs.
struct EditCall<'a> {
    subject: TurnSubject,
    revises: uuid::Uuid,
    template: Template,
    segments: &'a [Segment],
    findings: Vec<String>,
    current: Vec<DraftSentence>,
    instruction: &'a str,
}

/// One assistant edit through the practice's drafting provider: the turn (recorded and
/// audited in `tx`) and the revised sentences through the evidence check; `Err` inside: the
/// call failed (its turn stays; commit, then answer the error).
async fn revise(
    tx: &mut TenantTx,
    state: &AppState,
    call: EditCall<'_>,
) -> Result<Result<(Vec<NewSentence>, AssistantTurnId), AppError>, AppError> {
    let keyring = state.store.keyring()?;
    let Some(p) = store::turns::provider_for(tx, keyring, "drafting").await? else {
        return Err(AppError::Conflict(
            "the practice has no drafting provider: an owner can register one on the AI providers page".into(),
        ));
    };
    let drafter = state.assistant.adapters.drafter(&p);
    let posture = posture(&p);
    let pairs: Vec<(SegmentId, String)> = call
        .segments
        .iter()
        .map(|s| (s.segment_id, s.text.clone()))
        .collect();
    let prompt = serde_json::to_vec(&serde_json::json!({
        "revises": call.revises,
        "template": call.template.as_str(),
        "segments": pairs.iter().map(|(id, t)| serde_json::json!({"id": id, "text": t})).collect::<Vec<_>>(),
        "findings": call.findings,
        "current": call.current.iter().map(|s| serde_json::json!({"section": s.section, "text": s.text, "evidence": s.evidence})).collect::<Vec<_>>(),
        "instruction": call.instruction,
    }))
    .unwrap_or_default();
    let request = DraftRequest {
        template: call.template.as_str().to_owned(),
        segments: pairs.clone(),
        findings: call.findings,
        edit: Some(EditRequest {
            current: call.current,
            instruction: call.instruction.to_owned(),
        }),
    };
    let revises = call.revises;
    let called = run_turn(
        tx,
        keyring,
        &state.assistant.operator_hosts,
        call.subject,
        &posture,
        &prompt,
        |cleared| async move {
            match drafter {
                Some(d) => d
                    .draft(&cleared, request)
                    .await
                    .map(|reply| Revision { revises, reply }),
                None => Err(EgressError::Malformed(
                    "no adapter for this provider's kind in this installation".into(),
                )),
            }
        },
    )
    .await?;
    match called.result {
        Ok(r) => Ok(Ok((
            checked_sentences(&r.reply.sentences, &pairs),
            called.turn,
        ))),
        Err(e) => Ok(Err(crate::routes::scribe::drafting_error(&e))),
    }
}

/// The content `sentences` make, with `fields` (the template's) kept.
fn proposal_content(sentences: &[NewSentence], fields: &NoteContent) -> NoteContent {
    let mut c = content_of(sentences);
    c.fields = fields.fields.clone();
    c
}

/// Asks the practice's drafting provider to revise draft `id` as `instruction` says (checked
/// by [`instruction`]): the proposal with its flags and diff, held in the turn; the draft does
/// not change. Reads the draft (audited `note_draft.read`), the visit's transcript and the
/// findings; one assistant turn (`draft_edit`). The one path of the API and the web pages;
/// the caller commits in both outcomes (`Err` inside: the failed call's error, after its turn).
pub async fn propose_draft_edit(
    tx: &mut TenantTx,
    state: &AppState,
    id: DraftId,
    instruction: &str,
) -> Result<Result<DraftProposalView, AppError>, AppError> {
    let keyring = state.store.keyring()?;
    let d = crate::routes::scribe::read_draft(tx, keyring, id).await?;
    if d.note_id.is_some() {
        return Err(made_note());
    }
    let patient = visit_patient(tx, d.visit_id).await?;
    let segments = store::transcripts::visit_segments(tx, keyring, d.visit_id).await?;
    let findings = findings(tx, keyring, patient).await?;
    let current = d
        .sentences
        .iter()
        .map(|s| DraftSentence {
            section: section_of(&s.section),
            text: s.text.clone(),
            evidence: s.evidence.clone(),
        })
        .collect();
    let call = EditCall {
        subject: TurnSubject {
            patient,
            visit: Some(d.visit_id),
            capture: d.capture_id,
            purpose: Purpose::DraftEdit,
        },
        revises: id.as_uuid(),
        template: d.template,
        segments: &segments,
        findings,
        current,
        instruction,
    };
    let (sentences, turn) = match revise(tx, state, call).await? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let proposal = proposal_content(&sentences, &d.content);
    Ok(Ok(DraftProposalView {
        turn_id: turn,
        draft_id: id,
        flagged: sentences.iter().filter(|s| !s.flags.is_empty()).count(),
        diff: domain::notes::word_diff(&d.current_content().render_text(), &proposal.render_text()),
        sentences: proposed(&sentences),
    }))
}

fn made_note() -> AppError {
    AppError::Conflict(
        "a note was already made from this draft: change the note instead (or amend it once signed)"
            .into(),
    )
}

/// Accepts the proposal of turn `turn` for draft `id`: a new draft of the visit from the
/// turn's output (sentences checked again against the transcript as it is; flagged ones to
/// accept one by one), its turn the edit's, audited `note_draft.create` (with the draft it
/// revises). `404` when the turn is not a successful draft edit of this draft; `409` when a
/// note was made from the draft or the proposal was accepted already. The one path of the API
/// and the web pages; the caller commits.
pub async fn accept_draft_edit(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: DraftId,
    turn: AssistantTurnId,
) -> Result<Draft, AppError> {
    let base = store::drafts::get(tx, keyring, id)
        .await?
        .ok_or(AppError::NotFound("draft"))?;
    if base.note_id.is_some() {
        return Err(made_note());
    }
    let t = store::turns::get(tx, turn)
        .await?
        .filter(|t| {
            t.purpose == Purpose::DraftEdit
                && t.outcome == TurnOutcome::Ok
                && t.patient_id == base.patient_id
                && t.visit_id == Some(base.visit_id)
        })
        .ok_or(AppError::NotFound("assistant turn"))?;
    if store::drafts::made_by_turn(tx, t.turn_id).await?.is_some() {
        return Err(AppError::Conflict(
            "this proposal was accepted already: open the revised draft from the visit".into(),
        ));
    }
    let output = store::turns::output(tx, keyring, turn)
        .await?
        .ok_or(AppError::NotFound("assistant turn"))?;
    let stored: serde_json::Value = serde_json::from_slice(&output)
        .map_err(|_| AppError::Internal("a draft edit's stored output is not JSON".into()))?;
    if stored.get("revises").and_then(serde_json::Value::as_str)
        != Some(id.as_uuid().to_string().as_str())
    {
        return Err(AppError::NotFound("assistant turn"));
    }
    let replied = egress::draft::parse_sentences(
        &serde_json::json!({ "sentences": stored.get("sentences").cloned().unwrap_or_default() }),
    )
    .map_err(|_| AppError::Internal("a draft edit's stored output does not parse".into()))?;
    let segments = store::transcripts::visit_segments(tx, keyring, base.visit_id).await?;
    let pairs: Vec<(SegmentId, String)> = segments
        .iter()
        .map(|s| (s.segment_id, s.text.clone()))
        .collect();
    let sentences = checked_sentences(&replied, &pairs);
    let content = proposal_content(&sentences, &base.content);
    let new_id = store::drafts::create(
        tx,
        keyring,
        &NewDraft {
            visit: base.visit_id,
            patient: base.patient_id,
            capture: base.capture_id,
            turn: Some(turn),
            template: base.template,
            content: &content,
            sentences: &sentences,
        },
    )
    .await?;
    let d = store::drafts::get(tx, keyring, new_id)
        .await?
        .ok_or(AppError::Internal("a draft vanished after insert".into()))?;
    tx.audit_details(
        AuditAction::NoteDraftCreate,
        Some(base.patient_id),
        Some(AuditObject::note_draft(new_id)),
        Some(serde_json::json!({
            "visit_id": base.visit_id,
            "ai_written": true,
            "assistant_turn_id": turn,
            "revises": id,
            "sentences": sentences.len(),
            "flagged": sentences.iter().filter(|s| !s.flags.is_empty()).count(),
        })),
    )
    .await?;
    Ok(d)
}

/// Asks the practice's drafting provider for an amendment of signed note `id` as
/// `instruction` says: the proposed content with its flags and diff against the current text,
/// held in the turn (`amendment_edit`); nothing is signed. Reads the note (audited
/// `note.read`), the visit's transcript and the findings. `409` for a note not signed (a draft
/// is edited, not amended). The one path of the API and the web pages; the caller commits in
/// both outcomes.
pub async fn propose_amendment(
    tx: &mut TenantTx,
    state: &AppState,
    id: NoteId,
    instruction: &str,
) -> Result<Result<AmendmentProposalView, AppError>, AppError> {
    let keyring = state.store.keyring()?;
    let n = crate::routes::notes::read_note(
        tx,
        keyring,
        id,
        Some(serde_json::json!({ "assist": true })),
    )
    .await?;
    if n.status != NoteStatus::Signed {
        return Err(AppError::Conflict(
            "only a signed note is amended: a draft note is edited".into(),
        ));
    }
    let segments = match n.visit_id {
        Some(v) => visit_segments(tx, keyring, v).await?,
        None => Vec::new(),
    };
    let findings = findings(tx, keyring, n.patient_id).await?;
    let current: Vec<DraftSentence> = [
        (DraftSection::Subjective, &n.content.subjective),
        (DraftSection::Objective, &n.content.objective),
        (DraftSection::Assessment, &n.content.assessment),
        (DraftSection::Plan, &n.content.plan),
    ]
    .into_iter()
    .filter(|(_, t)| !t.trim().is_empty())
    .map(|(section, text)| DraftSentence {
        section,
        text: text.clone(),
        evidence: Vec::new(),
    })
    .collect();
    let call = EditCall {
        subject: TurnSubject {
            patient: n.patient_id,
            visit: n.visit_id,
            capture: None,
            purpose: Purpose::AmendmentEdit,
        },
        revises: n.note_id.as_uuid(),
        template: n.template,
        segments: &segments,
        findings,
        current,
        instruction,
    };
    let (sentences, turn) = match revise(tx, state, call).await? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let content = proposal_content(&sentences, &n.content);
    Ok(Ok(AmendmentProposalView {
        turn_id: turn,
        note_id: id,
        patient_id: n.patient_id,
        template: n.template,
        version: n.version,
        flagged: sentences.iter().filter(|s| !s.flags.is_empty()).count(),
        diff: domain::notes::word_diff(&n.content.render_text(), &content.render_text()),
        sentences: proposed(&sentences),
        content,
    }))
}

/// The visit's segments (the note's visit may have no transcript: none).
async fn visit_segments(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    visit: VisitId,
) -> Result<Vec<Segment>, AppError> {
    Ok(store::transcripts::visit_segments(tx, keyring, visit).await?)
}

/// Asks the practice's drafting provider to revise a draft as the instruction says. The
/// answer is a proposal (the revised sentences with the evidence check's flags and a word diff
/// against the draft as it stands), held in its assistant turn; the draft does not change.
/// `409` when a note was made from the draft or no drafting provider is registered;
/// `409 AI-0002` when the provider gate refuses the provider (nothing sent); `502 AI-0001`
/// when the provider fails or its reply is truncated (the turn is kept, nothing else).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/drafts/{draft_id}/assist", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("draft_id" = String, Path, format = Uuid)),
    request_body = AssistRequest,
    responses((status = 200, body = DraftProposalView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E),
              (status = 409, body = E), (status = 410, body = E), (status = 502, body = E)))]
pub(crate) async fn draft_assist(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, DraftId)>,
    ApiJson(req): ApiJson<AssistRequest>,
) -> Result<Json<DraftProposalView>, AppError> {
    let instruction = instruction(&req.instruction)?;
    let mut tx = ctx.tx;
    let outcome = propose_draft_edit(&mut tx, &state, id, &instruction).await?;
    tx.commit().await?;
    outcome.map(Json)
}

/// Accepts a draft edit's proposal: a new draft of the visit with the revised sentences
/// (flags recomputed against the transcript; flagged ones must be accepted one by one before
/// the note made from it can be signed). `404` when the turn is not a successful edit of this
/// draft; `409` when a note was made from the draft or the proposal was accepted already.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/drafts/{draft_id}/assist/{turn_id}/accept", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("draft_id" = String, Path, format = Uuid),
           ("turn_id" = String, Path, format = Uuid)),
    responses((status = 201, body = DraftView), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E)))]
pub(crate) async fn draft_assist_accept(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id, turn)): ApiPath<(PracticeId, DraftId, AssistantTurnId)>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let d = accept_draft_edit(&mut tx, state.store.keyring()?, id, turn).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(DraftView::from(d))).into_response())
}

/// Asks the practice's drafting provider for an amendment of a signed note as the instruction
/// says: the proposed content (sentences with the evidence check's flags) and a word diff
/// against the current text, held in its assistant turn; nothing is signed. Sign it (edited or
/// not) through `…/amendments` with `ai_assisted: true` and `assistant_turn_id` the answer's
/// `turn_id`. `409` for a note not signed or without a drafting provider; `409 AI-0002` when
/// the gate refuses the provider; `502 AI-0001` when the provider fails or truncates.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/notes/{note_id}/assist", tag = "scribe",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid)),
    request_body = AssistRequest,
    responses((status = 200, body = AmendmentProposalView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E),
              (status = 409, body = E), (status = 410, body = E), (status = 502, body = E)))]
pub(crate) async fn note_assist(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
    ApiJson(req): ApiJson<AssistRequest>,
) -> Result<Json<AmendmentProposalView>, AppError> {
    let instruction = instruction(&req.instruction)?;
    let mut tx = ctx.tx;
    let outcome = propose_amendment(&mut tx, &state, id, &instruction).await?;
    tx.commit().await?;
    outcome.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_are_bounded_and_plain() {
        assert_eq!(instruction("  shorter ").unwrap(), "shorter");
        for bad in [
            String::new(),
            "   ".to_owned(),
            "x".repeat(INSTRUCTION_MAX + 1),
            "a\u{0}b".to_owned(),
        ] {
            assert!(instruction(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_revision_stores_what_it_revises() {
        let id = uuid::Uuid::new_v4();
        let seg = SegmentId::new();
        let r = Revision {
            revises: id,
            reply: DraftReply {
                sentences: vec![DraftSentence {
                    section: DraftSection::Plan,
                    text: "Floss daily.".into(),
                    evidence: vec![seg],
                }],
                usage: Usage::default(),
            },
        };
        let v: serde_json::Value = serde_json::from_slice(&r.output()).unwrap();
        assert_eq!(v["revises"], id.to_string());
        let back =
            egress::draft::parse_sentences(&serde_json::json!({"sentences": v["sentences"]}))
                .unwrap();
        assert_eq!(back, r.reply.sentences);
    }
}
