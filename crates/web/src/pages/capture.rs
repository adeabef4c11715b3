//! The visit page and the scribe's capture screens (issue 18), over the API's capture actions
//! (`server::actions::capture::…`): the same store calls, refusals and audit events.
//!
//! - **The visit page** (clinicians; RLS decides which visits): the recording consent (record
//!   it: who and how; withdraw it, which stops the visit's capture at once and deletes its
//!   audio), and the recorder (`static/js/recorder.js`: microphone → 16 kHz mono 16-bit WAV
//!   chunks uploaded to the API's chunk route in order, with retry). The chart panels the
//!   clinician needs while recording (notes, perio exams) open in place (htmx fragment swaps),
//!   so looking at the chart does not leave the page and does not stop the recorder.
//! - **The status page** for a second screen the patient can see: "Recording", "Paused" or
//!   "Not recording" and the elapsed time, from the server's state; no patient name or other
//!   patient data, no menu.
//! - **The scribe policy** (owners and admins): consent rule, audio retention days, longest
//!   capture.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use domain::{CaptureId, ConsentId, PracticeId, VisitId};
use serde::Deserialize;
use server::AppState;
use server::actions::capture as actions;
use server::extract::{Clinical, Manage};
use store::capture::{Capture, Consent, ConsentRule, Policy};

use super::{Chrome, Fragment, Member, chrome, clock, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// The routes (under `/app`).
pub(crate) fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/practices/{practice_id}/visits/{visit_id}",
            get(visit_page),
        )
        .route(
            "/practices/{practice_id}/visits/{visit_id}/consents",
            post(consent_create),
        )
        .route(
            "/practices/{practice_id}/visits/{visit_id}/consents/{consent_id}/withdraw",
            post(consent_withdraw),
        )
        .route(
            "/practices/{practice_id}/visits/{visit_id}/panels/{panel}",
            get(panel),
        )
        .route(
            "/practices/{practice_id}/captures/{capture_id}/status",
            get(status_page),
        )
        .route(
            "/practices/{practice_id}/scribe",
            get(policy_page).post(policy_update),
        )
}

fn visit_href(practice: PracticeId, visit: VisitId) -> String {
    format!("/app/practices/{practice}/visits/{visit}")
}

fn utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A consent as shown.
pub(crate) struct ConsentRow {
    id: ConsentId,
    by: &'static str,
    method: &'static str,
    rule: &'static str,
    at: String,
    withdrawn: Option<String>,
}

impl From<&Consent> for ConsentRow {
    fn from(c: &Consent) -> Self {
        Self {
            id: c.consent_id,
            by: match c.consented_by {
                store::capture::ConsentedBy::Patient => "the patient",
                store::capture::ConsentedBy::Guardian => "a guardian",
            },
            method: c.method.as_str(),
            rule: rule_label(c.consent_rule),
            at: utc(c.recorded_at),
            withdrawn: c.withdrawn.map(|w| utc(w.0)),
        }
    }
}

fn rule_label(r: ConsentRule) -> &'static str {
    match r {
        ConsentRule::AllParty => "all-party consent",
        ConsentRule::OneParty => "one-party consent",
    }
}

/// A capture as shown.
pub(crate) struct CaptureRow {
    id: CaptureId,
    state: &'static str,
    reason: &'static str,
    started: String,
    elapsed: String,
    chunks: i32,
    purged: bool,
}

impl CaptureRow {
    fn new(c: &Capture, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            id: c.capture_id,
            state: c.state.as_str(),
            reason: c.stop_reason.map_or("", store::capture::StopReason::as_str),
            started: utc(c.started_at),
            elapsed: clock(c.elapsed_ms_at(now)),
            chunks: c.chunks,
            purged: c.audio_purged.is_some(),
        }
    }
}

/// The open capture, as the recorder starts from it.
pub(crate) struct OpenCapture {
    id: CaptureId,
    state: &'static str,
    next_seq: i32,
    elapsed_ms: i64,
}

/// The visit page.
#[derive(Template)]
#[template(path = "visit.html")]
pub(crate) struct VisitPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    visit_id: VisitId,
    patient_id: domain::PatientId,
    patient: String,
    started: String,
    rule: &'static str,
    active: Option<ConsentRow>,
    consents: Vec<ConsentRow>,
    captures: Vec<CaptureRow>,
    open: Option<OpenCapture>,
    done: Option<&'static str>,
    error: Option<String>,
    by: String,
    method: String,
}

/// `?done=`.
#[derive(Deserialize)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

/// The consent form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct ConsentForm {
    #[serde(default)]
    consented_by: String,
    #[serde(default)]
    method: String,
}

#[allow(
    clippy::too_many_arguments,
    reason = "the page's parts, read in one transaction by the callers"
)]
async fn render_visit(
    state: &AppState,
    ctx: server::extract::Ctx<Clinical>,
    visit: VisitId,
    done: Option<&'static str>,
    error: Option<String>,
    form: &ConsentForm,
    status: StatusCode,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let now = tx.now();
    let chrome = chrome(&mut tx).await?;
    let v = store::capture::visit_patient(&mut tx, visit)
        .await?
        .ok_or(WebError(server::AppError::NotFound("visit")))?;
    let started: Option<chrono::DateTime<chrono::Utc>> = server::actions::list_visits(&mut tx, v)
        .await?
        .iter()
        .find(|x| x.visit_id == visit)
        .map(|x| x.started_at);
    let p = super::patients::read_patient(state, &mut tx, v).await?;
    let consents = actions::list_consents(&mut tx, visit).await?;
    let captures = actions::list_captures(&mut tx, visit).await?;
    let policy = actions::read_policy(&mut tx).await?;
    tx.commit().await?;
    let open = captures
        .iter()
        .find(|c| c.state != store::capture::CaptureState::Stopped)
        .map(|c| OpenCapture {
            id: c.capture_id,
            state: c.state.as_str(),
            next_seq: c.chunks,
            elapsed_ms: c.elapsed_ms_at(now),
        });
    html_status(
        status,
        &VisitPage {
            assets: assets(),
            chrome: Some(chrome),
            practice_id,
            visit_id: visit,
            patient_id: v,
            patient: super::chart::patient_name(&p),
            started: started.map_or_else(String::new, utc),
            rule: rule_label(policy.consent_rule),
            active: consents
                .iter()
                .find(|c| c.withdrawn.is_none())
                .map(Into::into),
            consents: consents.iter().map(Into::into).collect(),
            captures: captures.iter().map(|c| CaptureRow::new(c, now)).collect(),
            open,
            done,
            error,
            by: form.consented_by.clone(),
            method: form.method.clone(),
        },
    )
}

/// `GET /app/practices/{practice_id}/visits/{visit_id}`: the visit's consent and recorder.
pub(crate) async fn visit_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let visit: VisitId = path_id(&id, "visit")?;
    let done = match q.done.as_deref() {
        Some("consent") => Some("Recording consent recorded."),
        Some("withdrawn") => Some(
            "Consent withdrawn: any recording of this visit was stopped and its audio deleted.",
        ),
        _ => None,
    };
    render_visit(
        &state,
        ctx,
        visit,
        done,
        None,
        &ConsentForm::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST …/visits/{visit_id}/consents`: records the consent (as the API's `consent_create`,
/// audited `recording_consent.record`); back to the visit page. A refused form answers `400`
/// with the page and the message; nothing changed.
pub(crate) async fn consent_create(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<ConsentForm>,
) -> Result<Response, WebError> {
    let visit: VisitId = path_id(&id, "visit")?;
    let (by, method) = match actions::consent_input(&form.consented_by, &form.method) {
        Ok(v) => v,
        Err(e) => {
            return render_visit(
                &state,
                ctx,
                visit,
                None,
                Some(e.to_string()),
                &form,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let mut tx = ctx.tx;
    let practice = tx.practice();
    actions::record_consent(&mut tx, visit, by, method).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "{}?done=consent",
        visit_href(practice, visit)
    )))
}

/// `POST …/visits/{visit_id}/consents/{consent_id}/withdraw`: withdraws it (as the API's
/// `consent_withdraw`): the open capture stops, its audio is deleted, all audited.
pub(crate) async fn consent_withdraw(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id, consent)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let visit: VisitId = path_id(&id, "visit")?;
    let consent: ConsentId = path_id(&consent, "consent")?;
    let blobs = state
        .blobs
        .as_deref()
        .ok_or_else(|| WebError(server::AppError::Internal("no blob store".into())))?;
    let mut tx = ctx.tx;
    let practice = tx.practice();
    actions::withdraw_consent(&mut tx, blobs, visit, consent).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "{}?done=withdrawn",
        visit_href(practice, visit)
    )))
}

/// A note in the notes panel.
pub(crate) struct PanelNote {
    href: String,
    title: &'static str,
    status: &'static str,
    created: String,
}

/// A perio exam in the perio panel.
pub(crate) struct PanelExam {
    href: String,
    created: String,
}

/// A chart panel, swapped into the visit page.
#[derive(Template)]
#[template(path = "visit_panel.html")]
pub(crate) struct PanelFragment {
    title: &'static str,
    notes: Vec<PanelNote>,
    exams: Vec<PanelExam>,
    notes_panel: bool,
}

/// `GET …/visits/{visit_id}/panels/{panel}` (htmx only): the patient's notes (`notes`,
/// audited `note.list`) or perio exams (`perio`, audited `perio_exam.list`), in place.
pub(crate) async fn panel(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    _: Fragment,
    Path((_, id, which)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let visit: VisitId = path_id(&id, "visit")?;
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let patient = store::capture::visit_patient(&mut tx, visit)
        .await?
        .ok_or(WebError(server::AppError::NotFound("visit")))?;
    let page = match which.as_str() {
        "notes" => {
            let notes =
                server::actions::list_notes(&mut tx, state.store.keyring()?, patient).await?;
            PanelFragment {
                title: "Notes",
                notes: notes
                    .iter()
                    .map(|n| PanelNote {
                        href: format!("/app/practices/{practice}/notes/{}", n.note_id),
                        title: n.template.title(),
                        status: match n.status {
                            domain::notes::NoteStatus::Draft => "draft",
                            _ => "signed",
                        },
                        created: utc(n.created_at),
                    })
                    .collect(),
                exams: Vec::new(),
                notes_panel: true,
            }
        }
        "perio" => {
            let exams = server::actions::perio::list_exams(&mut tx, patient).await?;
            PanelFragment {
                title: "Periodontal exams",
                notes: Vec::new(),
                exams: exams
                    .iter()
                    .map(|e| PanelExam {
                        href: format!(
                            "/app/practices/{practice}/patients/{patient}/perio/{}",
                            e.exam_id
                        ),
                        created: utc(e.created_at),
                    })
                    .collect(),
                notes_panel: false,
            }
        }
        _ => return Err(WebError(server::AppError::NotFound("panel"))),
    };
    tx.commit().await?;
    html(&page)
}

/// The patient-facing status page.
#[derive(Template)]
#[template(path = "capture_status.html")]
pub(crate) struct StatusPage {
    assets: &'static Assets,
    src: String,
    state: &'static str,
    elapsed_ms: i64,
    elapsed: String,
}

/// `GET /app/practices/{practice_id}/captures/{capture_id}/status`: "Recording" / "Paused" /
/// "Not recording" and the elapsed time, kept current by `indicator.js`; nothing about the
/// patient (audited `capture.read`).
pub(crate) async fn status_page(
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let capture: CaptureId = path_id(&id, "capture")?;
    let mut tx = ctx.tx;
    let now = tx.now();
    let practice = tx.practice();
    let c = actions::read_capture(&mut tx, capture).await?;
    tx.commit().await?;
    let open = c.state != store::capture::CaptureState::Stopped;
    html(&StatusPage {
        assets: assets(),
        src: format!("/api/v1/practices/{practice}/me/capture"),
        state: if open { c.state.as_str() } else { "none" },
        elapsed_ms: c.elapsed_ms_at(now),
        elapsed: if open {
            clock(c.elapsed_ms_at(now))
        } else {
            String::new()
        },
    })
}

/// The scribe policy page.
#[derive(Template)]
#[template(path = "scribe_policy.html")]
pub(crate) struct PolicyPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    all_party: bool,
    retention_days: String,
    max_seconds: String,
    error: Option<String>,
    done: bool,
}

/// The policy form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct PolicyForm {
    #[serde(default)]
    consent_rule: String,
    #[serde(default)]
    audio_retention_days: String,
    #[serde(default)]
    max_capture_seconds: String,
}

fn policy_page_of(
    chrome: Chrome,
    practice_id: PracticeId,
    p: &Policy,
    error: Option<String>,
    done: bool,
) -> PolicyPage {
    PolicyPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        all_party: p.consent_rule == ConsentRule::AllParty,
        retention_days: p.audio_retention_days.to_string(),
        max_seconds: p.max_capture_seconds.to_string(),
        error,
        done,
    }
}

/// `GET /app/practices/{practice_id}/scribe`: the scribe policy form (owners and admins).
pub(crate) async fn policy_page(
    Member(ctx): Member<Manage>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let p = actions::read_policy(&mut tx).await?;
    tx.commit().await?;
    html(&policy_page_of(
        chrome,
        practice_id,
        &p,
        None,
        q.done.is_some(),
    ))
}

/// `POST /app/practices/{practice_id}/scribe`: sets the policy (as the API's `policy_put`,
/// audited `scribe_policy.update`); a refused form answers `400` with the message.
pub(crate) async fn policy_update(
    Member(ctx): Member<Manage>,
    Form(form): Form<PolicyForm>,
) -> Result<Response, WebError> {
    let parsed = match (
        form.audio_retention_days.trim().parse::<i64>(),
        form.max_capture_seconds.trim().parse::<i64>(),
    ) {
        (Ok(d), Ok(s)) => actions::policy_input(&form.consent_rule, d, s),
        _ => Err(server::AppError::Invalid(
            "audio_retention_days and max_capture_seconds must be whole numbers".into(),
        )),
    };
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    match parsed {
        Ok(p) => {
            actions::set_policy(&mut tx, &p).await?;
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice_id}/scribe?done=1"
            )))
        }
        Err(e) => {
            let chrome = chrome(&mut tx).await?;
            let current = actions::read_policy(&mut tx).await?;
            tx.commit().await?;
            html_status(
                StatusCode::BAD_REQUEST,
                &policy_page_of(chrome, practice_id, &current, Some(e.to_string()), false),
            )
        }
    }
}
