//! Voice perio over the API: one dictated clip for a periodontal exam, recognized and either
//! charted (exactly as the same final typed) or held for the clinician's confirmation.
//!
//! `POST …/perio-exams/{exam_id}/voice` takes a short WAV clip (16 kHz mono 16-bit PCM, at most
//! [`VOICE_MAX_BYTES`] and [`VOICE_MAX_MS`]) and runs the one voice pipeline
//! ([`crate::voice::recognize`]) on the exam's session, through the practice's enabled
//! transcription provider from the registry or, with none, the installation's local default.
//!
//! # Guarantees
//! - **Same rules as a typed final.** Clinicians only (`Ctx<Clinical>`), patients
//!   `app.clinical_visible` lets them see (`404` otherwise), `If-Match` on the exam's version
//!   (`409`); a final that is not held is applied by [`super::perio::change_exam`], the typed
//!   route's own step (same events, audit event and `ETag`).
//! - **Refused before anything is sent.** A body that is not such a WAV clip answers `422` and
//!   nothing is read or sent; with no recognizer (none registered, no local default, or the
//!   local default not ready) `503 AI-0003` and nothing changes.
//! - **One turn per recognizer call.** Every call (a clip is heard once, or twice when a
//!   charting final is cross-checked) goes through [`crate::assistant::run_turn`]: the provider
//!   gate first, then exactly one `assistant_turn` (purpose `perio_voice`, prompt and output
//!   sealed) with its `assistant.turn` audit event, kept even when the call failed.
//! - **In order.** The exam row is locked from before the clip is heard until the request
//!   commits, so the final is decided on the session it applies to; finals on one exam
//!   apply one after the other, as typed ones do.
//! - **A held final charts nothing**: the answer carries what was heard, the final, the reasons
//!   and the engine's preview; the clinician confirms by sending the shown final through the
//!   typed-final route, or discards it.
//! - Nothing heard, no value and no tooth is logged or audited outside the sealed turn.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use domain::{AssistantTurnId, PatientId, PerioExamId, PracticeId};
use egress::{EgressError, ProviderPosture, Transcriber, TranscriptionRequest};
use perio::voice::{Heard, Policy, VoiceFinal};
use serde::Serialize;
use serde_json::Value;
use store::TenantTx;
use store::perio::Exam;
use store::turns::Purpose;
use utoipa::ToSchema;

use super::perio::{Change, Changed, change_exam, check_version};
use crate::assistant::{Assistant, TurnSubject, posture, run_turn};
use crate::etag::{IfMatch, with_etag};
use crate::extract::{ApiPath, Clinical, Ctx};
use crate::views::ErrorBody as E;
use crate::voice::{Ear, Recognized, heard_from_reply, recognize};
use crate::{AppError, AppState};

/// Largest clip body accepted (bytes).
pub const VOICE_MAX_BYTES: usize = 1024 * 1024;

/// Longest clip accepted (milliseconds).
pub const VOICE_MAX_MS: u32 = 15_000;

/// Reads a clip body of at most [`VOICE_MAX_BYTES`] (`413` otherwise).
pub async fn clip_body(body: Body) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, VOICE_MAX_BYTES)
        .await
        .map_err(|_| AppError::TooLarge)
}

/// Checks a clip: 16 kHz mono 16-bit PCM WAV ([`store::capture::parse_wav`], the capture
/// path's own check), at most [`VOICE_MAX_MS`]; `422` otherwise (the message says what was
/// expected, never echoes bytes).
pub fn check_clip(wav: &[u8]) -> Result<store::capture::WavInfo, AppError> {
    let too_long = || {
        AppError::BadAudio(format!(
            "audio: a dictated clip holds 1 ms to {} s",
            VOICE_MAX_MS / 1000
        ))
    };
    let info = store::capture::parse_wav(wav).map_err(|e| match e {
        store::capture::WavError::Length => too_long(),
        other => AppError::BadAudio(format!("audio: {other}")),
    })?;
    if info.duration_ms > VOICE_MAX_MS {
        return Err(too_long());
    }
    Ok(info)
}

/// The recognizer a practice's dictation goes to: its enabled transcription provider from the
/// registry (as the transcription job chooses) or the installation's local default; `503
/// AI-0003` with neither (or the local default not ready).
async fn recognizer(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    assistant: &Assistant,
) -> Result<(ProviderPosture, Option<Arc<dyn Transcriber>>), AppError> {
    if let Some(p) = store::turns::provider_for(tx, keyring, "transcription").await? {
        return Ok((posture(&p), assistant.adapters.transcriber(&p)));
    }
    let Some(local) = &assistant.local_transcription else {
        return Err(AppError::AiUnavailable(
            "dictation needs a speech recognizer: this installation runs no local transcription and the practice has no transcription provider; nothing changed",
        ));
    };
    match local.posture().await {
        Some(p) => Ok((p, Some(local.transcriber.clone()))),
        None => Err(AppError::AiUnavailable(
            "the local speech recognizer is not ready; try again in a moment (nothing changed)",
        )),
    }
}

/// The state an [`Ear`] of a request keeps: its transaction (every call's turn goes in it),
/// the turns recorded, and a store error that stopped it.
struct EarState<'a> {
    tx: &'a mut TenantTx,
    turns: Vec<AssistantTurnId>,
    failed: Option<store::StoreError>,
}

/// The perio page's ear: each call is one assistant turn ([`run_turn`]) in the request's
/// transaction.
struct TurnEar<'a> {
    state: tokio::sync::Mutex<EarState<'a>>,
    keyring: &'a store::crypto::Keyring,
    hosts: &'a crate::assistant::OperatorHosts,
    subject: TurnSubject,
    posture: ProviderPosture,
    transcriber: Option<Arc<dyn Transcriber>>,
}

#[async_trait::async_trait]
impl Ear for TurnEar<'_> {
    async fn hear(&self, wav: &Bytes, prompt: &str) -> Result<Heard, EgressError> {
        let mut st = self.state.lock().await;
        if st.failed.is_some() {
            return Err(EgressError::Malformed(
                "the previous turn was not recorded".into(),
            ));
        }
        let sealed = serde_json::to_vec(&serde_json::json!({
            "prompt": prompt,
            "audio_bytes": wav.len(),
            "language": "en",
        }))
        .unwrap_or_default();
        let request = TranscriptionRequest {
            wav: wav.clone(),
            prompt: Some(prompt.to_owned()),
            language: Some("en".into()),
        };
        let transcriber = self.transcriber.clone();
        let called = run_turn(
            &mut *st.tx,
            self.keyring,
            self.hosts,
            self.subject,
            &self.posture,
            &sealed,
            |cleared| async move {
                match transcriber {
                    Some(t) => t.transcribe(&cleared, request).await,
                    None => Err(EgressError::Malformed(
                        "no adapter for this provider's kind in this installation".into(),
                    )),
                }
            },
        )
        .await;
        match called {
            Ok(c) => {
                st.turns.push(c.turn);
                c.result.map(|reply| heard_from_reply(&reply))
            }
            Err(e) => {
                st.failed = Some(e);
                Err(EgressError::Malformed(
                    "the assistant turn could not be recorded".into(),
                ))
            }
        }
    }
}

fn recognizer_error(e: &EgressError) -> AppError {
    match e {
        EgressError::Refused(_) => AppError::AiRefused(
            "the practice's transcription provider is not allowed (a vendor needs a BAA on record and training disabled); nothing was sent or charted — an owner can fix its registration",
        ),
        EgressError::RateLimited { .. } => AppError::AiFailed(
            "the speech recognizer is rate limiting: nothing was charted; dictate again in a moment",
        ),
        _ => AppError::AiFailed("the speech recognizer failed: nothing was charted; dictate again"),
    }
}

/// What one dictated clip did.
#[derive(Debug)]
pub enum VoiceResult {
    /// The final was applied as a typed final.
    Applied(Box<Changed>),
    /// The final was held for confirmation: nothing was charted (the exam as it is).
    Held(Exam),
}

/// A dictated clip, recognized and applied or held.
#[derive(Debug)]
pub struct Dictated {
    /// The decision and the readings it rests on.
    pub recognized: Recognized,
    /// The assistant turns recorded, one per recognizer call, in order.
    pub turns: Vec<AssistantTurnId>,
    /// What happened to the exam.
    pub result: VoiceResult,
}

impl Dictated {
    /// The decided final.
    #[must_use]
    pub fn voice(&self) -> &VoiceFinal {
        &self.recognized.voice
    }
}

/// Dictates `wav` on exam `exam` of `patient`: the one path of the API's voice route and the
/// perio page's dictation control. Checks the clip (`422`), loads the exam locked (`404`),
/// checks `expected` (`409`), picks the recognizer (`503` with none) — all before anything is
/// sent or written —; then recognizes the clip with one assistant turn per recognizer call and
/// applies the final through [`change_exam`] unless it is held. `Ok(Err(e))`: the recognizer
/// failed, or the final was refused by the typed-final rules, after turns were recorded; the
/// caller commits (the turns must stay), then answers `e`. The caller commits in every `Ok` case.
pub async fn dictate(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    assistant: &Assistant,
    patient: PatientId,
    exam: PerioExamId,
    expected: Option<i64>,
    wav: &Bytes,
) -> Result<Result<Dictated, AppError>, AppError> {
    check_clip(wav)?;
    let e = store::perio::get_for_update(tx, keyring, patient, exam)
        .await?
        .ok_or(AppError::NotFound("perio exam"))?;
    check_version(&e.info, expected)?;
    let (posture, transcriber) = recognizer(tx, keyring, assistant).await?;
    let ear = TurnEar {
        state: tokio::sync::Mutex::new(EarState {
            tx: &mut *tx,
            turns: Vec::new(),
            failed: None,
        }),
        keyring,
        hosts: &assistant.operator_hosts,
        subject: TurnSubject {
            patient,
            visit: None,
            capture: None,
            purpose: Purpose::PerioVoice,
        },
        posture,
        transcriber,
    };
    let heard = recognize(&ear, &e.session, wav, &Policy::default()).await;
    let st = ear.state.into_inner();
    if let Some(err) = st.failed {
        return Err(err.into());
    }
    let turns = st.turns;
    let recognized = match heard {
        Ok(r) => r,
        Err(err) => return Ok(Err(recognizer_error(&err))),
    };
    if recognized.voice.held() {
        return Ok(Ok(Dictated {
            recognized,
            turns,
            result: VoiceResult::Held(e),
        }));
    }
    let final_ = Change::Final {
        text: &recognized.voice.text,
        lexical: None,
    };
    match change_exam(tx, keyring, patient, exam, Some(e.info.version), final_).await {
        Ok(c) => Ok(Ok(Dictated {
            recognized,
            turns,
            result: VoiceResult::Applied(Box::new(c)),
        })),
        Err(err @ (AppError::Invalid(_) | AppError::Conflict(_))) => Ok(Err(err)),
        Err(other) => Err(other),
    }
}

/// One change made to what was heard.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VoiceEditView {
    /// What the recognizer said.
    from: String,
    /// What the final says instead.
    to: String,
    /// Its cost (0 certain; a phonetic snap costs its normalized distance).
    cost: f64,
}

/// What a dictated clip did: the read-back, and the outcome or the held final.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PerioVoiceView {
    /// The exam.
    exam_id: PerioExamId,
    /// The exam's version afterwards (also the `ETag`; unchanged when held).
    version: i64,
    /// Whether the final is held for confirmation: nothing was charted; confirm it by
    /// sending `text` to the `finals` route, or discard it.
    held: bool,
    /// Why it is held (`low_confidence`, `no_speech`, `far_snap`, `ambiguous`,
    /// `disagreement`); empty when applied.
    reasons: Vec<String>,
    /// What was heard (normalized), for the read-back.
    heard: String,
    /// The final (what was heard, snapped onto the perio lexicon).
    text: String,
    /// Every change from `heard` to `text`.
    edits: Vec<VoiceEditView>,
    /// Confidence in `[0, 1]`.
    confidence: f64,
    /// Other readings that would chart differently (when ambiguous).
    alternatives: Vec<String>,
    /// What the engine would do with `text` (SPEC §4 outcome), when held.
    #[schema(value_type = Option<Object>)]
    preview: Option<Value>,
    /// Recognizer calls made (each one assistant turn).
    readings: usize,
    /// The assistant turns recorded, in order.
    turns: Vec<AssistantTurnId>,
    /// Whether the session changed (false when held).
    changed: bool,
    /// Whether a final is now held by the engine (a deep pocket or a bulk flag, as typed).
    pending: bool,
    /// The engine's outcome of the applied final (SPEC §4), when applied.
    #[schema(value_type = Option<Object>)]
    outcome: Option<Value>,
}

impl PerioVoiceView {
    fn new(exam_id: PerioExamId, d: &Dictated) -> Self {
        let v = d.voice();
        let (version, changed, pending, outcome, preview) = match &d.result {
            VoiceResult::Applied(c) => (
                c.info.version,
                c.changed,
                c.session.pending().is_some(),
                Some(c.outcome.to_json()),
                None,
            ),
            VoiceResult::Held(e) => (
                e.info.version,
                false,
                e.session.pending().is_some(),
                None,
                Some(v.preview.to_json()),
            ),
        };
        Self {
            exam_id,
            version,
            held: matches!(d.result, VoiceResult::Held(_)),
            reasons: v.hold.iter().map(|r| r.name().to_owned()).collect(),
            heard: v.heard.clone(),
            text: v.text.clone(),
            edits: v
                .edits
                .iter()
                .map(|e| VoiceEditView {
                    from: e.from.clone(),
                    to: e.to.clone(),
                    cost: e.cost,
                })
                .collect(),
            confidence: v.confidence,
            alternatives: v.alternatives.clone(),
            preview,
            readings: d.recognized.readings.len(),
            turns: d.turns.clone(),
            changed,
            pending,
            outcome,
        }
    }
}

/// Dictates one short clip to the exam: a WAV body (16 kHz mono 16-bit PCM, at most 1 MiB and
/// 15 s). The clip is recognized with the perio engine's vocabulary as prompt and snapped
/// onto its lexicon; a confident final is applied exactly as the same typed final (`held`
/// false, `outcome` as the `finals` route answers it); a final of low confidence is held
/// (`held` true, nothing charted: confirm it by sending `text` to `finals`). Each recognizer
/// call is an assistant turn (`purpose` `perio_voice`). `422` for a body that is not such a
/// clip, `503 AI-0003` with no recognizer (nothing changed), `502`/`409 AI-…` when the
/// recognizer failed or was refused (its turn kept, nothing charted).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/voice", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), ("exam_id" = String, Path, format = Uuid),
        ("if-match" = Option<String>, Header, description = "Apply only to this version (the exam's ETag)")),
    request_body(content = Vec<u8>, content_type = "audio/wav"),
    responses((status = 200, body = PerioVoiceView, headers(("etag" = String, description = "The exam's version"))), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E), (status = 413, body = E), (status = 422, body = E), (status = 502, body = E), (status = 503, body = E)))]
pub(crate) async fn perio_voice_create(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient, exam)): ApiPath<(PracticeId, PatientId, PerioExamId)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let expected = IfMatch::from_headers(&headers, "exam")?.version();
    let wav = clip_body(body).await?;
    let keyring = state.store.keyring()?;
    let mut tx = ctx.tx;
    let outcome = dictate(
        &mut tx,
        keyring,
        &state.assistant,
        patient,
        exam,
        expected,
        &wav,
    )
    .await?;
    tx.commit().await?;
    let d = outcome?;
    let view = PerioVoiceView::new(exam, &d);
    Ok(with_etag(view.version, Json(view)))
}
