//! The scribe's screens (clinicians; RLS decides which patients): a capture's transcript with
//! corrections and their history, a visit's note drafts, and the draft screen — over the API's
//! service steps ([`server::actions::scribe`]: the same store calls, rule checks and audit
//! events as the `/api/v1/…` routes).
//!
//! - **The draft screen** shows every sentence under its SOAP section with links to the
//!   transcript segments it cites (the visit's transcript is on the same page; following a
//!   link highlights the segment, by `:target` in the style sheet, no script), the flags the
//!   evidence check raised with what each means, and for each flagged sentence an "Accept"
//!   button and an edit form: flagged sentences are accepted one by one. "Create note from
//!   draft" makes a draft clinical note of the sentences; signing it is refused (`409`) while
//!   a flagged sentence is unaccepted — decided by the store, not by this page.
//! - **Assistant edits.** The draft screen asks the practice's drafting provider to revise the
//!   draft from an instruction ([`server::actions::assist`]): the proposal page shows the
//!   changes as a word diff against the draft as it stands and the revised sentences with
//!   their flags; "Accept the revision" makes the revised draft (its flagged sentences to
//!   accept one by one), going back discards it.
//! - **Who.** Every route takes [`Clinical`] (reception: `403`, nothing read).
//! - No PHI in URLs: drafts, segments and captures are addressed by id; text travels in
//!   `POST` bodies.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use domain::notes::Template as NoteTemplate;
use domain::{AssistantTurnId, CaptureId, DraftId, PracticeId, SegmentId, VisitId};
use serde::Deserialize;
use server::actions::scribe as actions;
use server::extract::Clinical;
use server::{AppError, AppState};

use super::chart::{DiffRun, diff_runs};
use super::{Chrome, Member, chrome, html, path_id};
use crate::{Assets, WebError, assets};

/// The scribe routes (under `/app`).
pub(crate) fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/practices/{practice_id}/captures/{capture_id}/transcript",
            axum::routing::get(transcript_page),
        )
        .route(
            "/practices/{practice_id}/transcript-segments/{segment_id}",
            axum::routing::get(revisions_page).post(segment_correct),
        )
        .route(
            "/practices/{practice_id}/visits/{visit_id}/drafts",
            axum::routing::get(drafts_page).post(draft_create),
        )
        .route(
            "/practices/{practice_id}/drafts/{draft_id}",
            axum::routing::get(draft_page),
        )
        .route(
            "/practices/{practice_id}/drafts/{draft_id}/sentences/{idx}/accept",
            axum::routing::post(sentence_accept),
        )
        .route(
            "/practices/{practice_id}/drafts/{draft_id}/sentences/{idx}",
            axum::routing::post(sentence_edit),
        )
        .route(
            "/practices/{practice_id}/drafts/{draft_id}/note",
            axum::routing::post(note_create),
        )
        .route(
            "/practices/{practice_id}/drafts/{draft_id}/assist",
            axum::routing::post(draft_assist),
        )
        .route(
            "/practices/{practice_id}/drafts/{draft_id}/assist/{turn_id}/accept",
            axum::routing::post(draft_assist_accept),
        )
}

/// `m:ss` of a time in ms.
fn clock(ms: i64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// A segment as shown.
#[derive(Debug)]
pub(crate) struct SegmentRow {
    id: SegmentId,
    at: String,
    speaker: String,
    text: String,
    revision: i32,
}

impl SegmentRow {
    fn new(id: SegmentId, start_ms: i64, speaker: Option<&str>, text: &str, revision: i32) -> Self {
        Self {
            id,
            at: clock(start_ms),
            speaker: speaker.unwrap_or("").to_owned(),
            text: text.to_owned(),
            revision,
        }
    }
}

/// A capture's transcript.
#[derive(Template)]
#[template(path = "scribe_transcript.html")]
pub(crate) struct TranscriptPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    capture_id: CaptureId,
    visit_id: VisitId,
    pending: i64,
    failed: i64,
    refused: i64,
    segments: Vec<SegmentRow>,
}

/// `GET /app/practices/{practice_id}/captures/{capture_id}/transcript`: the segments in time
/// order, each with a correction form and its history (the API's `transcript.read`).
pub(crate) async fn transcript_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let capture: CaptureId = path_id(&id, "capture")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let t = actions::read_transcript(&mut tx, state.store.keyring()?, capture).await?;
    tx.commit().await?;
    html(&TranscriptPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        capture_id: capture,
        visit_id: t.visit_id,
        pending: t.progress.pending,
        failed: t.progress.failed,
        refused: t.progress.refused,
        segments: t
            .segments
            .iter()
            .map(|s| {
                SegmentRow::new(
                    s.segment_id,
                    s.start_ms,
                    s.speaker.as_deref(),
                    &s.text,
                    s.revision,
                )
            })
            .collect(),
    })
}

/// A correction as the form sends it.
#[derive(Deserialize)]
pub(crate) struct CorrectionForm {
    text: String,
    revision: i32,
    capture_id: String,
}

/// `POST /app/practices/{practice_id}/transcript-segments/{segment_id}`: corrects a segment
/// (the API's `transcript.correct`, refused as stale when it changed since the page was
/// loaded) and goes back to the transcript.
pub(crate) async fn segment_correct(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<CorrectionForm>,
) -> Result<Response, WebError> {
    let segment: SegmentId = path_id(&id, "transcript segment")?;
    let capture: CaptureId = path_id(&form.capture_id, "capture")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    actions::correct_segment(
        &mut tx,
        state.store.keyring()?,
        segment,
        Some(form.revision),
        &form.text,
    )
    .await?;
    tx.commit().await?;
    Ok(super::redirect(&format!(
        "/app/practices/{practice_id}/captures/{capture}/transcript#seg-{segment}"
    )))
}

/// A revision as shown.
#[derive(Debug)]
pub(crate) struct RevisionRow {
    revision: i32,
    text: String,
    by: String,
    at: String,
}

/// A segment's history.
#[derive(Template)]
#[template(path = "scribe_revisions.html")]
pub(crate) struct RevisionsPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    revisions: Vec<RevisionRow>,
}

/// `GET /app/practices/{practice_id}/transcript-segments/{segment_id}`: every text the segment
/// has had, oldest first (the API's `transcript.read`).
pub(crate) async fn revisions_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let segment: SegmentId = path_id(&id, "transcript segment")?;
    let mut tx = ctx.tx;
    let chrome = chrome(&mut tx).await?;
    let h = actions::segment_history(&mut tx, state.store.keyring()?, segment).await?;
    tx.commit().await?;
    html(&RevisionsPage {
        assets: assets(),
        chrome: Some(chrome),
        revisions: h
            .into_iter()
            .map(|r| RevisionRow {
                revision: r.revision,
                text: r.text,
                by: if r.revised_by.is_some() {
                    "a clinician".to_owned()
                } else {
                    "the transcription".to_owned()
                },
                at: r.revised_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            })
            .collect(),
    })
}

/// A draft in the visit's list.
#[derive(Debug)]
pub(crate) struct DraftRow {
    href: String,
    created: String,
    ai_written: bool,
    unreviewed: i64,
    has_note: bool,
}

/// A visit's drafts and the form to make one.
#[derive(Template)]
#[template(path = "scribe_drafts.html")]
pub(crate) struct DraftsPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    action: String,
    drafts: Vec<DraftRow>,
    templates: Vec<(&'static str, &'static str)>,
}

/// `GET /app/practices/{practice_id}/visits/{visit_id}/drafts`: the visit's note drafts, newest
/// first, and the button to draft the note (the API's `note_draft.read`).
pub(crate) async fn drafts_page(
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let visit: VisitId = path_id(&id, "visit")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let list = actions::list_drafts(&mut tx, visit).await?;
    tx.commit().await?;
    html(&DraftsPage {
        assets: assets(),
        chrome: Some(chrome),
        action: format!("/app/practices/{practice_id}/visits/{visit}/drafts"),
        drafts: list
            .into_iter()
            .map(|d| DraftRow {
                href: format!("/app/practices/{practice_id}/drafts/{}", d.draft_id),
                created: d.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                ai_written: d.ai_written,
                unreviewed: d.unreviewed,
                has_note: d.note_id.is_some(),
            })
            .collect(),
        templates: NoteTemplate::ALL
            .iter()
            .map(|t| (t.as_str(), t.title()))
            .collect(),
    })
}

/// The draft form.
#[derive(Deserialize)]
pub(crate) struct DraftForm {
    template: Option<String>,
}

/// `POST /app/practices/{practice_id}/visits/{visit_id}/drafts`: drafts the visit's note (the
/// API's `draft_create`: the drafting provider's turn, or the default draft) and opens it. A
/// failed AI call is committed (its turn stays) and answered with its error.
pub(crate) async fn draft_create(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<DraftForm>,
) -> Result<Response, WebError> {
    let visit: VisitId = path_id(&id, "visit")?;
    let template = match form.template.as_deref().filter(|t| !t.is_empty()) {
        None => NoteTemplate::Free,
        Some(t) => NoteTemplate::parse(t)
            .ok_or_else(|| WebError(AppError::Invalid("template: no such template".into())))?,
    };
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let outcome = actions::create_draft(&mut tx, &state, visit, template).await?;
    tx.commit().await?;
    match outcome {
        actions::DraftOutcome::Created(d) => Ok(super::redirect(&format!(
            "/app/practices/{practice_id}/drafts/{}",
            d.draft_id
        ))),
        actions::DraftOutcome::Failed(e) => Err(WebError(e)),
    }
}

/// A sentence as shown.
#[derive(Debug)]
pub(crate) struct SentenceRow {
    idx: i32,
    text: String,
    /// (`#seg-…` anchor, time label) of each cited segment.
    evidence: Vec<(String, String)>,
    reasons: Vec<&'static str>,
    flagged: bool,
    accepted: bool,
}

/// One SOAP section of the draft.
#[derive(Debug)]
pub(crate) struct SectionRows {
    title: &'static str,
    sentences: Vec<SentenceRow>,
}

/// The draft screen.
#[derive(Template)]
#[template(path = "scribe_draft.html")]
pub(crate) struct DraftPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    base: String,
    label: &'static str,
    ai_written: bool,
    unreviewed: usize,
    note_href: Option<String>,
    locked: bool,
    sections: Vec<SectionRows>,
    segments: Vec<SegmentRow>,
}

/// `GET /app/practices/{practice_id}/drafts/{draft_id}`: the draft's sentences by section,
/// their evidence links and flags, the accept and edit controls, and the visit's transcript
/// (the API's `note_draft.read` and `transcript.read`).
pub(crate) async fn draft_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let draft: DraftId = path_id(&id, "draft")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let keyring = state.store.keyring()?;
    let d = actions::read_draft(&mut tx, keyring, draft).await?;
    let segs = actions::read_visit_transcript(&mut tx, keyring, d.visit_id, d.patient_id).await?;
    tx.commit().await?;
    let at = |id: &SegmentId| {
        segs.iter()
            .find(|s| s.segment_id == *id)
            .map_or_else(|| "unknown segment".to_owned(), |s| clock(s.start_ms))
    };
    let locked = d.note_signed;
    let view = server::actions::scribe::DraftView::from(d);
    let sections = [
        ("subjective", "Subjective"),
        ("objective", "Objective"),
        ("assessment", "Assessment"),
        ("plan", "Plan"),
    ]
    .into_iter()
    .map(|(key, title)| SectionRows {
        title,
        sentences: view
            .sentences
            .iter()
            .filter(|s| s.section == key)
            .map(|s| SentenceRow {
                idx: s.idx,
                text: s.text.clone(),
                evidence: s
                    .evidence
                    .iter()
                    .map(|e| (format!("#seg-{e}"), at(e)))
                    .collect(),
                reasons: s.flag_reasons.clone(),
                flagged: !s.flags.is_empty(),
                accepted: s.accepted_at.is_some(),
            })
            .collect(),
    })
    .collect();
    html(&DraftPage {
        assets: assets(),
        chrome: Some(chrome),
        base: format!("/app/practices/{practice_id}/drafts/{draft}"),
        label: view.label,
        ai_written: view.ai_written,
        unreviewed: view.unreviewed,
        note_href: view
            .note_id
            .map(|n| format!("/app/practices/{practice_id}/notes/{n}")),
        locked,
        sections,
        segments: segs
            .iter()
            .map(|s| {
                SegmentRow::new(
                    s.segment_id,
                    s.start_ms,
                    s.speaker.as_deref(),
                    &s.text,
                    s.revision,
                )
            })
            .collect(),
    })
}

fn sentence_path(idx: &str) -> Result<i32, WebError> {
    idx.parse::<i32>()
        .ok()
        .filter(|i| (0..=9999).contains(i))
        .ok_or(WebError(AppError::NotFound("draft sentence")))
}

/// `POST /app/practices/{practice_id}/drafts/{draft_id}/sentences/{idx}/accept`: accepts one
/// sentence (the API's `note_draft.update`) and goes back to it.
pub(crate) async fn sentence_accept(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id, idx)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let draft: DraftId = path_id(&id, "draft")?;
    let idx = sentence_path(&idx)?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    actions::change_sentence(
        &mut tx,
        state.store.keyring()?,
        draft,
        idx,
        actions::SentenceChange::Accept,
    )
    .await?;
    tx.commit().await?;
    Ok(super::redirect(&format!(
        "/app/practices/{practice_id}/drafts/{draft}#s-{idx}"
    )))
}

/// A sentence's new text.
#[derive(Deserialize)]
pub(crate) struct EditForm {
    text: String,
}

/// `POST /app/practices/{practice_id}/drafts/{draft_id}/sentences/{idx}`: replaces one
/// sentence's text, which accepts it (the API's `note_draft.update`).
pub(crate) async fn sentence_edit(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id, idx)): Path<(String, String, String)>,
    Form(form): Form<EditForm>,
) -> Result<Response, WebError> {
    let draft: DraftId = path_id(&id, "draft")?;
    let idx = sentence_path(&idx)?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    actions::change_sentence(
        &mut tx,
        state.store.keyring()?,
        draft,
        idx,
        actions::SentenceChange::Edit(&form.text),
    )
    .await?;
    tx.commit().await?;
    Ok(super::redirect(&format!(
        "/app/practices/{practice_id}/drafts/{draft}#s-{idx}"
    )))
}

/// `POST /app/practices/{practice_id}/drafts/{draft_id}/note`: makes the draft clinical note
/// from the sentences (the API's `draft_note_create`) and opens it in the chart's editor.
pub(crate) async fn note_create(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let draft: DraftId = path_id(&id, "draft")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let note = actions::note_from_draft(&mut tx, state.store.keyring()?, draft).await?;
    tx.commit().await?;
    Ok(super::redirect(&format!(
        "/app/practices/{practice_id}/notes/{}",
        note.note_id
    )))
}

/// A proposed sentence as shown.
#[derive(Debug)]
pub(crate) struct ProposedRow {
    section: String,
    text: String,
    reasons: Vec<&'static str>,
}

/// A draft edit's proposal: the diff against the draft as it stands, the revised sentences
/// with their flags, accept or go back.
#[derive(Template)]
#[template(path = "scribe_assist.html")]
pub(crate) struct AssistPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    instruction: String,
    back: String,
    accept: String,
    diff: Vec<DiffRun>,
    flagged: usize,
    sentences: Vec<ProposedRow>,
}

/// An instruction as the form sends it.
#[derive(Deserialize)]
pub(crate) struct AssistForm {
    instruction: String,
}

/// `POST /app/practices/{practice_id}/drafts/{draft_id}/assist`: asks the practice's drafting
/// provider to revise the draft as the instruction says (the API's `draft_assist`: one
/// assistant turn, `note_draft.read`) and shows the proposal; the draft does not change. A
/// failed AI call is committed (its turn stays) and answered with its error.
pub(crate) async fn draft_assist(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<AssistForm>,
) -> Result<Response, WebError> {
    let draft: DraftId = path_id(&id, "draft")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let instruction = server::actions::assist::instruction(&form.instruction)?;
    let chrome = chrome(&mut tx).await?;
    let outcome =
        server::actions::assist::propose_draft_edit(&mut tx, &state, draft, &instruction).await?;
    tx.commit().await?;
    let p = outcome.map_err(WebError)?;
    let back = format!("/app/practices/{practice_id}/drafts/{draft}");
    html(&AssistPage {
        assets: assets(),
        chrome: Some(chrome),
        instruction,
        accept: format!("{back}/assist/{}/accept", p.turn_id),
        back,
        diff: diff_runs(&p.diff),
        flagged: p.flagged,
        sentences: p
            .sentences
            .into_iter()
            .map(|s| ProposedRow {
                section: s.section,
                text: s.text,
                reasons: s.flag_reasons,
            })
            .collect(),
    })
}

/// `POST /app/practices/{practice_id}/drafts/{draft_id}/assist/{turn_id}/accept`: accepts the
/// proposal (the API's `draft_assist_accept`: the revised draft, `note_draft.create`) and
/// opens the revised draft.
pub(crate) async fn draft_assist_accept(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id, turn)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let draft: DraftId = path_id(&id, "draft")?;
    let turn: AssistantTurnId = path_id(&turn, "assistant turn")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let d =
        server::actions::assist::accept_draft_edit(&mut tx, state.store.keyring()?, draft, turn)
            .await?;
    tx.commit().await?;
    Ok(super::redirect(&format!(
        "/app/practices/{practice_id}/drafts/{}",
        d.draft_id
    )))
}
