//! The perio page's dictation control: `POST …/perio/{exam_id}/voice?version=…&previous=…`
//! with a WAV clip body (sent by `static/js/perio.js`), through the API's voice step
//! ([`server::actions::perio::dictate`]: the same clip check, recognizer choice, assistant
//! turns, typed-final rules and audit events as `POST …/perio-exams/{exam_id}/voice`).
//!
//! The answer is the exam region with the read-back: what was heard and, when the final was
//! applied, the engine's message; when it is held, the question "Chart “…”?" whose button
//! sends the shown final through the typed-final form (`…/finals`), and Discard. A refused
//! clip (`413`, `422`, `409`, `503`, a failed recognizer) answers the exam as it is with the
//! reason; nothing was charted. The version and the previous exam travel in the query (ids
//! and a number only; what was said never reaches a URL).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use perio::voice::HoldReason;
use serde::Deserialize;
use server::actions::perio as actions;
use server::extract::Clinical;
use server::{AppError, AppState};
use store::perio::Exam;

use super::{ExamRegion, Message, exams_href, ids, message, version, view};
use crate::WebError;
use crate::pages::{Member, filled, html_status, path_id};

/// The form fields of the page that travel with a clip.
#[derive(Deserialize)]
pub(crate) struct VoiceQuery {
    #[serde(default)]
    version: String,
    #[serde(default)]
    previous: String,
}

/// The read-back of a dictated clip, shown in the exam region.
#[derive(Debug)]
pub(crate) struct VoiceBack {
    /// What was heard (normalized).
    pub(super) heard: String,
    /// The final (what was heard, snapped onto the perio lexicon).
    pub(super) text: String,
    /// Held for confirmation: nothing charted.
    pub(super) held: bool,
    /// Applied with status ok.
    pub(super) charted: bool,
    /// Why it is held, in words.
    pub(super) reasons: String,
    /// What the engine would chart (held), in words.
    pub(super) preview: String,
    /// The final, then the other readings that would chart differently (each a "Chart" button
    /// when held).
    pub(super) finals: Vec<String>,
    /// The words changed from what was heard (`from → to`, …).
    pub(super) edits: String,
    /// Confidence in percent.
    pub(super) confidence: String,
}

fn reason_words(r: HoldReason) -> &'static str {
    match r {
        HoldReason::LowConfidence => "the recognizer was unsure",
        HoldReason::NoSpeech => "it may have heard no speech",
        HoldReason::FarSnap => "words had to be guessed",
        HoldReason::Ambiguous => "“tooth” and “two” read differently",
        HoldReason::Disagreement => "a second hearing differed",
    }
}

fn read_back(d: &actions::Dictated) -> VoiceBack {
    let v = d.voice();
    let (charted, numbering) = match &d.result {
        actions::VoiceResult::Applied(c) => (
            c.outcome.status == perio::Status::Ok,
            c.session.settings().numbering,
        ),
        actions::VoiceResult::Held(e) => (false, e.session.settings().numbering),
    };
    VoiceBack {
        heard: v.heard.clone(),
        text: v.text.clone(),
        held: v.held(),
        charted,
        reasons: v
            .hold
            .iter()
            .map(|r| reason_words(*r))
            .collect::<Vec<_>>()
            .join("; "),
        preview: v
            .preview
            .events
            .iter()
            .map(|e| e.describe(numbering))
            .collect::<Vec<_>>()
            .join("; "),
        finals: std::iter::once(v.text.clone())
            .chain(v.alternatives.iter().cloned())
            .collect(),
        edits: v
            .edits
            .iter()
            .map(|e| format!("{} → {}", e.from, e.to))
            .collect::<Vec<_>>()
            .join(", "),
        confidence: format!("{:.0} %", v.confidence * 100.0),
    }
}

/// Whether a refusal is answered with the exam as it is (nothing was charted).
fn shown(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Invalid(_)
            | AppError::Conflict(_)
            | AppError::TooLarge
            | AppError::BadAudio(_)
            | AppError::AiUnavailable(_)
            | AppError::AiFailed(_)
            | AppError::AiRefused(_)
    )
}

/// `POST …/perio/{exam_id}/voice`: one dictated clip (see the module docs).
pub(crate) async fn dictate(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, patient, exam)): Path<(String, String, String)>,
    Query(q): Query<VoiceQuery>,
    body: Body,
) -> Result<Response, WebError> {
    let (patient, exam) = ids(&patient, &exam)?;
    let keyring = state.store.keyring()?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let result = match (version(&q.version), actions::clip_body(body).await) {
        (Ok(expected), Ok(wav)) => {
            actions::dictate(
                &mut tx,
                keyring,
                &state.assistant,
                patient,
                exam,
                expected,
                &wav,
            )
            .await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let refused = |err: &AppError| Message {
        kind: "error",
        text: format!("Nothing charted: {err}."),
    };
    let (e, msg, back, status) = match result {
        Ok(Ok(d)) => {
            let back = read_back(&d);
            match d.result {
                actions::VoiceResult::Applied(c) => {
                    let c = *c;
                    (
                        Exam {
                            info: c.info,
                            session: c.session,
                        },
                        message(&c.outcome),
                        Some(back),
                        StatusCode::OK,
                    )
                }
                actions::VoiceResult::Held(_) => (
                    // Shown as read: nothing changed, so no update event audits the showing.
                    actions::read_exam(&mut tx, keyring, patient, exam).await?,
                    Message {
                        kind: "held",
                        text: "Not charted yet: confirm what was heard below, or discard it."
                            .to_owned(),
                    },
                    Some(back),
                    StatusCode::OK,
                ),
            }
        }
        Ok(Err(err)) | Err(err) if shown(&err) => {
            let e = actions::read_exam(&mut tx, keyring, patient, exam).await?;
            (e, refused(&err), None, err.status())
        }
        Ok(Err(other)) | Err(other) => return Err(other.into()),
    };
    let prev = match filled(&q.previous).map(|p| path_id::<domain::PerioExamId>(p, "perio exam")) {
        Some(Ok(prev)) => Some(actions::read_exam(&mut tx, keyring, patient, prev).await?),
        Some(Err(err)) => return Err(err),
        None => None,
    };
    tx.commit().await?;
    let mut x = view(
        exams_href(practice_id, patient),
        &e,
        prev.as_ref(),
        Some(msg),
    );
    x.voice = back;
    html_status(status, &ExamRegion { x })
}
