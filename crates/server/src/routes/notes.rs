//! Clinical notes and visits (clinical roles; RLS narrows to `app.clinical_visible`).
//!
//! Lifecycle: drafts are saved as new versions (`PUT` with `If-Match`), signed with a fresh
//! second factor (step-up), then locked: a signed note changes only through signed amendments
//! (with a reason, a word-level diff against the signed version, and whether an AI assistant
//! drafted them) and signed addenda. Every response names the note's version in `ETag`.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, Response};
use domain::notes::{ADDENDUM_MAX, NoteContent, NoteStatus, REASON_MAX, Template, TemplateField};
use domain::{
    AppointmentId, AuditAction, AuditObject, NoteId, PatientId, PracticeId, UserId, VisitId,
};
use serde::{Deserialize, Serialize};
use store::notes::Refusal;
use utoipa::ToSchema;

use crate::etag::{IfMatch, with_etag};
use crate::extract::{ApiJson, ApiPath, Clinical, Ctx};
use crate::views::NoteView;
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// How a refused note change answers: 404, 410, 412 (stale `If-Match`), 409 (locked or
/// empty).
#[must_use]
pub fn refusal(r: Refusal) -> AppError {
    match r {
        Refusal::NotFound => AppError::NotFound("note"),
        Refusal::Deleted => AppError::Gone("note"),
        Refusal::Stale => AppError::PreconditionFailed,
        Refusal::Locked => AppError::Locked(
            "this note is signed and locked (or this change needs a signed note): amend it or add an addendum",
        ),
        Refusal::Empty => AppError::Locked("an empty note cannot be signed"),
        Refusal::Unreviewed => AppError::Locked(
            "this note comes from a draft with flagged sentences: accept or edit each flagged sentence on the draft before signing",
        ),
    }
}

/// The note version `If-Match` names (`None` when absent or `*`); `400` when it names none.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i32>, AppError> {
    note_version(IfMatch::from_headers(headers, "note")?)
}

fn note_version(m: IfMatch) -> Result<Option<i32>, AppError> {
    m.version()
        .map(|v| {
            i32::try_from(v).map_err(|_| AppError::Invalid("If-Match: no such note version".into()))
        })
        .transpose()
}

fn content_checked(template: Template, c: &NoteContent) -> Result<(), AppError> {
    c.validate(template).map_err(AppError::from)
}

/// A template and its structured fields.
#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateView {
    /// Stable id.
    id: Template,
    /// Title.
    title: &'static str,
    /// The structured fields a note of this template may carry.
    fields: Vec<TemplateField>,
}

/// The note templates: free SOAP, dental hygiene visit, dental exam, massage session.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/note-templates", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<TemplateView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn note_templates(
    ctx: Ctx<Clinical>,
    ApiPath(_): ApiPath<PracticeId>,
) -> Result<Json<Vec<TemplateView>>, AppError> {
    ctx.tx.commit().await?;
    Ok(Json(
        Template::ALL
            .iter()
            .map(|t| TemplateView {
                id: *t,
                title: t.title(),
                fields: t.fields().to_vec(),
            })
            .collect(),
    ))
}

/// A patient's notes, newest first (at most 100; deleted drafts left out).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/notes", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<NoteView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn note_list(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
) -> Result<Json<Vec<NoteView>>, AppError> {
    let mut tx = ctx.tx;
    let notes = list_notes(&mut tx, state.store.keyring()?, patient).await?;
    tx.commit().await?;
    Ok(Json(notes.into_iter().map(Into::into).collect()))
}

/// A new note (a draft).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteCreate {
    /// The template (default `free`).
    #[serde(default)]
    template: Option<Template>,
    /// The visit it documents (of the same patient).
    #[schema(value_type = Option<String>, format = Uuid)]
    visit_id: Option<VisitId>,
    /// SOAP sections and template fields (each section at most 32 KiB).
    content: NoteContent,
}

/// Starts a draft note for a patient; the author is the signed-in clinician.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/notes", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = NoteCreate,
    responses((status = 201, body = NoteView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 410, body = E)))]
pub(crate) async fn note_create(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<NoteCreate>,
) -> Result<Response, AppError> {
    let template = req.template.unwrap_or(Template::Free);
    content_checked(template, &req.content)?;
    let mut tx = ctx.tx;
    let note = start_note(
        &mut tx,
        state.store.keyring()?,
        patient,
        template,
        req.visit_id,
        &req.content,
    )
    .await?;
    tx.commit().await?;
    let v = note.version;
    Ok(with_etag(
        v,
        (StatusCode::CREATED, Json(NoteView::from(note))),
    ))
}

/// One note, with its signature, amendments (and diffs) and addenda. 410 once deleted.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/notes/{note_id}", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid)),
    responses((status = 200, body = NoteView), (status = 403, body = E), (status = 404, body = E), (status = 410, body = E)))]
pub(crate) async fn note_get(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let n = read_note(&mut tx, state.store.keyring()?, id, None).await?;
    tx.commit().await?;
    Ok(with_etag(n.version, Json(NoteView::from(n))))
}

/// A draft's new content.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteSave {
    /// The full new content.
    content: NoteContent,
}

/// Saves a draft (a new version). Needs `If-Match`: 412 if someone saved in between, 409 if
/// the note is signed.
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/notes/{note_id}", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid),
           ("If-Match" = String, Header, description = "the ETag of the version edited")),
    request_body = NoteSave,
    responses((status = 200, body = NoteView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E),
              (status = 409, body = E), (status = 410, body = E), (status = 412, body = E), (status = 428, body = E)))]
pub(crate) async fn note_save(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<NoteSave>,
) -> Result<Response, AppError> {
    let m = IfMatch::from_headers(&headers, "note")?;
    let expected = note_version(m)?;
    let mut tx = ctx.tx;
    // `If-Match: *` (any version) is an explicit choice to overwrite; no header is refused
    // (after the lookup, so a note that is not visible stays 404).
    if m == IfMatch::Absent {
        return Err(if store::notes::exists(&mut tx, id).await? {
            AppError::PreconditionRequired
        } else {
            AppError::NotFound("note")
        });
    }
    let n = save_note(&mut tx, state.store.keyring()?, id, expected, &req.content).await?;
    tx.commit().await?;
    Ok(with_etag(n.version, Json(NoteView::from(n))))
}

/// Deletes a draft (soft: its versions stay). A signed note cannot be deleted (409).
#[utoipa::path(delete, path = "/api/v1/practices/{practice_id}/notes/{note_id}", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "the ETag of the version seen (412 if it is no longer current)")),
    responses((status = 204), (status = 403, body = E), (status = 404, body = E), (status = 409, body = E), (status = 410, body = E), (status = 412, body = E)))]
pub(crate) async fn note_delete(
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
    headers: HeaderMap,
) -> Result<StatusCode, AppError> {
    let expected = if_match(&headers)?;
    let mut tx = ctx.tx;
    let patient = store::notes::delete(&mut tx, id, expected)
        .await?
        .map_err(refusal)?;
    tx.audit(
        AuditAction::NoteDelete,
        Some(patient),
        Some(AuditObject::note(id)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs the note as the signed-in clinician and locks it. Needs a second factor presented
/// in the last five minutes (401 `AUTH-0004` otherwise); an empty note cannot be signed. The
/// signer is always the session's user (nothing in the request can name another).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/notes/{note_id}/sign", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "the ETag of the version seen (412 if it is no longer current)")),
    responses((status = 200, body = NoteView), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E),
              (status = 409, body = E), (status = 410, body = E), (status = 412, body = E)))]
pub(crate) async fn note_sign(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    ctx.require_step_up(&state)?;
    let expected = if_match(&headers)?;
    let mut tx = ctx.tx;
    let n = sign_note(&mut tx, state.store.keyring()?, id, expected).await?;
    tx.commit().await?;
    Ok(with_etag(n.version, Json(NoteView::from(n))))
}

/// An amendment of a signed note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AmendmentCreate {
    /// The full amended content.
    content: NoteContent,
    /// Why (required, at most 2 KiB).
    reason: String,
    /// Whether an AI assistant drafted the change (default false).
    #[serde(default)]
    ai_assisted: bool,
    /// The assistant turn the change came from (required when `ai_assisted`; 404 when it is
    /// not an assistant turn of this practice about this patient).
    assistant_turn_id: Option<uuid::Uuid>,
}

/// Amends a signed note: a new signed version with its own author, time, reason and
/// signature; the signed original stays unchanged and readable, and the response carries the
/// word-level diff against it. Step-up required.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/notes/{note_id}/amendments", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "the ETag of the version seen (412 if it is no longer current)")), request_body = AmendmentCreate,
    responses((status = 201, body = NoteView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E),
              (status = 404, body = E), (status = 409, body = E), (status = 410, body = E), (status = 412, body = E)))]
pub(crate) async fn note_amend(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AmendmentCreate>,
) -> Result<Response, AppError> {
    ctx.require_step_up(&state)?;
    let reason = domain::values::free_text("reason", &req.reason, REASON_MAX)?;
    if req.ai_assisted != req.assistant_turn_id.is_some() {
        return Err(AppError::Invalid(
            "assistant_turn_id: name the assistant turn exactly when ai_assisted is true".into(),
        ));
    }
    let expected = if_match(&headers)?;
    let mut tx = ctx.tx;
    let n = amend_note(
        &mut tx,
        state.store.keyring()?,
        id,
        expected,
        &store::notes::AmendmentInput {
            content: &req.content,
            reason: &reason,
            ai_assisted: req.ai_assisted,
            assistant_turn_id: req.assistant_turn_id,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(with_etag(
        n.version,
        (StatusCode::CREATED, Json(NoteView::from(n))),
    ))
}

/// An addendum to a signed note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddendumCreate {
    /// The appended text (at most 16 KiB).
    text: String,
    /// Why (required, at most 2 KiB).
    reason: String,
}

/// Appends a signed addendum to a signed note (the original is unchanged). Step-up required.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/notes/{note_id}/addenda", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "the ETag of the version seen (412 if it is no longer current)")), request_body = AddendumCreate,
    responses((status = 201, body = NoteView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E),
              (status = 404, body = E), (status = 409, body = E), (status = 410, body = E), (status = 412, body = E)))]
pub(crate) async fn note_addendum(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AddendumCreate>,
) -> Result<Response, AppError> {
    ctx.require_step_up(&state)?;
    let text = domain::values::free_text("text", &req.text, ADDENDUM_MAX)?;
    let reason = domain::values::free_text("reason", &req.reason, REASON_MAX)?;
    let expected = if_match(&headers)?;
    let mut tx = ctx.tx;
    let n = add_addendum(
        &mut tx,
        state.store.keyring()?,
        id,
        expected,
        &text,
        &reason,
    )
    .await?;
    tx.commit().await?;
    Ok(with_etag(
        n.version,
        (StatusCode::CREATED, Json(NoteView::from(n))),
    ))
}

/// One stored version.
#[derive(Serialize, ToSchema)]
pub(crate) struct VersionView {
    version: i32,
    kind: domain::notes::VersionKind,
    author_id: UserId,
    created_at: chrono::DateTime<chrono::Utc>,
    content: NoteContent,
    reason: Option<String>,
    ai_assisted: bool,
    signature: Option<domain::notes::Signature>,
    /// Whether the stored hash still matches the content.
    hash_ok: bool,
    /// How the hash was computed: 2 binds everything shown (signature manifestation, reason,
    /// time); 1 (versions written before scheme 2) does not bind the printed name,
    /// credential, time zone or creation time.
    hash_scheme: i16,
}

/// Every version of a note, oldest first (deleted drafts included), each with its hash
/// checked.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/notes/{note_id}/versions", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<VersionView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn note_versions(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
) -> Result<Json<Vec<VersionView>>, AppError> {
    let mut tx = ctx.tx;
    let versions = store::notes::history(&mut tx, state.store.keyring()?, id)
        .await?
        .ok_or(AppError::NotFound("note"))?;
    let patient = store::notes::get(&mut tx, state.store.keyring()?, id)
        .await?
        .map(|n| n.patient_id);
    tx.audit_details(
        AuditAction::NoteRead,
        patient,
        Some(AuditObject::note(id)),
        Some(serde_json::json!({ "history": true })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        versions
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                kind: v.kind,
                author_id: v.author_id,
                created_at: v.created_at,
                content: v.content,
                reason: v.reason,
                ai_assisted: v.ai_assisted,
                signature: v.signature,
                hash_ok: v.hash_ok,
                hash_scheme: v.hash_scheme,
            })
            .collect(),
    ))
}

/// The result of an integrity check.
#[derive(Serialize, ToSchema)]
pub(crate) struct VerifyView {
    /// Whether every version matches its hash.
    ok: bool,
    /// Versions checked.
    versions: usize,
    /// Versions whose content no longer matches its hash.
    mismatched: Vec<i32>,
    /// Versions hashed under scheme 1 (written before scheme 2): a change to their printed
    /// name, credential, time zone or creation time is not detected.
    manifestation_not_bound: Vec<i32>,
}

/// Recomputes the hash of every version of a note (detects a change made around the
/// application, e.g. by a database superuser).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/notes/{note_id}/verify", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid)),
    responses((status = 200, body = VerifyView), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn note_verify(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
) -> Result<Json<VerifyView>, AppError> {
    let mut tx = ctx.tx;
    let v = verify_note(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    Ok(Json(VerifyView {
        ok: v.mismatched.is_empty(),
        versions: v.versions,
        mismatched: v.mismatched,
        manifestation_not_bound: v.manifestation_not_bound,
    }))
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(crate) fn signature_html(s: &domain::notes::Signature) -> String {
    format!(
        "<p class=\"signature\">Electronically signed by {}{} on {} ({}). Meaning: {}.</p>",
        esc(&s.printed_name),
        s.credential
            .as_deref()
            .map(|c| format!(", {}", esc(c)))
            .unwrap_or_default(),
        s.signed_at.format("%Y-%m-%d %H:%M:%S"),
        esc(&s.time_zone),
        esc(&s.meaning)
    )
}

fn content_html(c: &NoteContent) -> String {
    let mut out = String::new();
    for (h, s) in [
        ("Subjective", &c.subjective),
        ("Objective", &c.objective),
        ("Assessment", &c.assessment),
        ("Plan", &c.plan),
    ] {
        let _ = write!(out, "<h2>{h}</h2><p>{}</p>", esc(s));
    }
    if !c.fields.is_empty() {
        out.push_str("<dl>");
        for (k, v) in &c.fields {
            let v = match v {
                domain::notes::FieldValue::Bool(b) => b.to_string(),
                domain::notes::FieldValue::Int(i) => i.to_string(),
                domain::notes::FieldValue::Text(t) => t.clone(),
            };
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
        }
        out.push_str("</dl>");
    }
    out
}

/// The note rendered for printing (HTML, no script): content, the signature manifestation,
/// every amendment with its own signature and reason, and every addendum.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/notes/{note_id}/rendering", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid)),
    responses((status = 200, content_type = "text/html", body = String), (status = 403, body = E), (status = 404, body = E), (status = 410, body = E)))]
pub(crate) async fn note_rendering(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
) -> Result<Html<String>, AppError> {
    let mut tx = ctx.tx;
    let n = read_note(
        &mut tx,
        state.store.keyring()?,
        id,
        Some(serde_json::json!({ "rendering": true })),
    )
    .await?;
    tx.commit().await?;
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head><body><h1>{}</h1><p>Status: {}</p>",
        esc(n.template.title()),
        esc(n.template.title()),
        match n.status {
            NoteStatus::Draft => "draft (unsigned)",
            NoteStatus::Signed if n.amendments.is_empty() => "signed",
            NoteStatus::Signed => "signed, amended",
            NoteStatus::Deleted => "deleted",
        }
    );
    if let Some(original) = &n.signed_content {
        html.push_str("<section class=\"signed\"><h2>As signed</h2>");
        html.push_str(&content_html(original));
    } else {
        html.push_str("<section class=\"content\">");
        html.push_str(&content_html(&n.content));
    }
    if let Some(s) = &n.signature {
        html.push_str(&signature_html(s));
    }
    html.push_str("</section>");
    for a in &n.amendments {
        let _ = write!(
            html,
            "<section class=\"amendment\"><h2>Amendment (version {}){}</h2><p>Reason: {}</p>",
            a.version,
            if a.ai_assisted { ", AI-assisted" } else { "" },
            esc(&a.reason)
        );
        html.push_str(&content_html(&a.content));
        html.push_str(&signature_html(&a.signature));
        html.push_str("</section>");
    }
    for a in &n.addenda {
        let _ = write!(
            html,
            "<section class=\"addendum\"><h2>Addendum (version {})</h2><p>Reason: {}</p><p>{}</p>",
            a.version,
            esc(&a.reason),
            esc(&a.text)
        );
        html.push_str(&signature_html(&a.signature));
        html.push_str("</section>");
    }
    html.push_str("</body></html>");
    Ok(Html(html))
}

/// A visit to record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VisitCreate {
    /// The appointment it comes from (of the same patient).
    #[schema(value_type = Option<String>, format = Uuid)]
    appointment_id: Option<AppointmentId>,
    /// When it started (default: now).
    started_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A visit.
#[derive(Serialize, ToSchema)]
pub(crate) struct VisitView {
    visit_id: VisitId,
    patient_id: PatientId,
    clinician_id: UserId,
    appointment_id: Option<AppointmentId>,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl From<store::notes::Visit> for VisitView {
    fn from(v: store::notes::Visit) -> Self {
        Self {
            visit_id: v.visit_id,
            patient_id: v.patient_id,
            clinician_id: v.clinician_id,
            appointment_id: v.appointment_id,
            started_at: v.started_at,
        }
    }
}

/// Records a visit (encounter) of a patient with the signed-in clinician.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/visits", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = VisitCreate,
    responses((status = 201, body = VisitView), (status = 400, body = E), (status = 403, body = E), (status = 404, body = E), (status = 410, body = E)))]
pub(crate) async fn visit_create(
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<VisitCreate>,
) -> Result<(StatusCode, Json<VisitView>), AppError> {
    let mut tx = ctx.tx;
    let started = req.started_at.unwrap_or_else(|| tx.now());
    let v = open_visit(&mut tx, patient, req.appointment_id, started).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// Signs note `id` at version `expected` (`None`: whatever is current) and audits
/// `note.sign` with the version: the one path of the API and the web pages. A refusal
/// (stale, locked, …) is the API's answer for it. The caller checks step-up and commits.
pub async fn sign_note(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: NoteId,
    expected: Option<i32>,
) -> Result<store::notes::Note, AppError> {
    let n = store::notes::sign(tx, keyring, id, expected)
        .await?
        .map_err(refusal)?;
    tx.audit_details(
        AuditAction::NoteSign,
        Some(n.patient_id),
        Some(AuditObject::note(id)),
        Some(serde_json::json!({ "version": n.version })),
    )
    .await?;
    Ok(n)
}

/// Amends signed note `id` and audits `note.amend` with the version and the AI-assisted
/// flag: the one path of the API and the web pages. The caller checks step-up and commits.
pub async fn amend_note(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: NoteId,
    expected: Option<i32>,
    amendment: &store::notes::AmendmentInput<'_>,
) -> Result<store::notes::Note, AppError> {
    let n = store::notes::amend(tx, keyring, id, expected, amendment)
        .await?
        .map_err(refusal)?;
    // req: SCR-04 — an AI-assisted amendment names a real assistant turn of this practice
    // about this patient (the database refuses an unknown id; another practice's turn, or
    // another patient's, is not found here either). The caller's rollback undoes the version.
    if let Some(turn) = amendment.assistant_turn_id {
        let t = store::turns::get(tx, domain::AssistantTurnId::from_uuid(turn)).await?;
        if t.is_none_or(|t| t.patient_id != n.patient_id) {
            return Err(AppError::NotFound("assistant turn"));
        }
    }
    tx.audit_details(
        AuditAction::NoteAmend,
        Some(n.patient_id),
        Some(AuditObject::note(id)),
        Some(serde_json::json!({
            "version": n.version,
            "ai_assisted": amendment.ai_assisted,
            "assistant_turn_id": amendment.assistant_turn_id,
        })),
    )
    .await?;
    Ok(n)
}

/// Adds an addendum to signed note `id` and audits `note.addendum` with the version: the one
/// path of the API and the web pages. The caller checks step-up and commits.
pub async fn add_addendum(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: NoteId,
    expected: Option<i32>,
    text: &str,
    reason: &str,
) -> Result<store::notes::Note, AppError> {
    let n = store::notes::add_addendum(tx, keyring, id, expected, text, reason)
        .await?
        .map_err(refusal)?;
    tx.audit_details(
        AuditAction::NoteAddendum,
        Some(n.patient_id),
        Some(AuditObject::note(id)),
        Some(serde_json::json!({ "version": n.version })),
    )
    .await?;
    Ok(n)
}

/// Records a visit of `patient` with the signed-in clinician from `started`, from
/// `appointment` when one is named, and audits `visit.create`: the one path of the API and the
/// web pages. `404` for a patient not visible here or an unknown appointment, `410` for a
/// deleted patient. The caller commits.
pub async fn open_visit(
    tx: &mut store::TenantTx,
    patient: PatientId,
    appointment: Option<domain::AppointmentId>,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<store::notes::Visit, AppError> {
    if !store::perio::patient_visible(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    if store::patients::is_deleted(tx, patient).await? {
        return Err(AppError::Gone("patient"));
    }
    let clinician = tx.actor();
    let v = store::notes::create_visit(tx, patient, clinician, appointment, started)
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(c) if c == "visit_appointment_fkey" => {
                AppError::NotFound("appointment")
            }
            e => e.into(),
        })?;
    tx.audit(
        AuditAction::VisitCreate,
        Some(patient),
        Some(AuditObject::visit(v.visit_id)),
    )
    .await?;
    Ok(v)
}

/// A patient's visits, newest first (at most 100).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/visits", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<VisitView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn visit_list(
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
) -> Result<Json<Vec<VisitView>>, AppError> {
    let mut tx = ctx.tx;
    let visits = list_visits(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(Json(visits.into_iter().map(Into::into).collect()))
}

/// `patient`'s notes, newest first (at most 100; deleted drafts left out), audited
/// `note.list` after the decryption: the one path of the API and the web pages. `404` for a
/// patient not visible here. The caller commits.
pub async fn list_notes(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
) -> Result<Vec<store::notes::Note>, AppError> {
    if !store::perio::patient_visible(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let notes = store::notes::list_for_patient(tx, keyring, patient, 100).await?;
    tx.audit(
        AuditAction::NoteList,
        Some(patient),
        Some(AuditObject::patient(patient)),
    )
    .await?;
    Ok(notes)
}

/// `patient`'s visits, newest first (at most 100), audited `visit.list`: the one path of the
/// API and the web pages. `404` for a patient not visible here. The caller commits.
pub async fn list_visits(
    tx: &mut store::TenantTx,
    patient: PatientId,
) -> Result<Vec<store::notes::Visit>, AppError> {
    if !store::perio::patient_visible(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let visits = store::notes::list_visits(tx, patient).await?;
    tx.audit(
        AuditAction::VisitList,
        Some(patient),
        Some(AuditObject::patient(patient)),
    )
    .await?;
    Ok(visits)
}

/// Starts a draft note of `template` for `patient` (of `visit` when one is named; content
/// already checked), the signed-in clinician its author, and audits `note.create`: the one
/// path of the API and the web pages. `404` for a patient not visible here or a visit not
/// theirs, `410` for a deleted patient. The caller commits.
pub async fn start_note(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
    template: Template,
    visit: Option<VisitId>,
    content: &NoteContent,
) -> Result<store::notes::Note, AppError> {
    if !store::perio::patient_visible(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    if store::patients::is_deleted(tx, patient).await? {
        return Err(AppError::Gone("patient"));
    }
    if let Some(v) = visit
        && !store::notes::visit_of(tx, v, patient).await?
    {
        return Err(AppError::NotFound("visit"));
    }
    let note = store::notes::create(tx, keyring, patient, template, visit, content).await?;
    tx.audit(
        AuditAction::NoteCreate,
        Some(patient),
        Some(AuditObject::note(note.note_id)),
    )
    .await?;
    Ok(note)
}

/// Note `id`, audited `note.read` after the decryption with `details` (what the reader
/// asked for: a rendering, a conflict view), names of flags only: the one path of the API
/// and the web pages. `404` when unknown, `410` once deleted. The caller commits.
pub async fn read_note(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: NoteId,
    details: Option<serde_json::Value>,
) -> Result<store::notes::Note, AppError> {
    let n = store::notes::get(tx, keyring, id)
        .await?
        .ok_or(AppError::NotFound("note"))?;
    if n.status == NoteStatus::Deleted {
        return Err(AppError::Gone("note"));
    }
    tx.audit_details(
        AuditAction::NoteRead,
        Some(n.patient_id),
        Some(AuditObject::note(id)),
        details,
    )
    .await?;
    Ok(n)
}

/// Recomputes the hash of every version of note `id` and audits `note.verify` with the
/// outcome (counts only): the one path of the API and the web pages. `404` when unknown. The
/// caller commits.
pub async fn verify_note(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: NoteId,
) -> Result<store::notes::Verification, AppError> {
    let v = store::notes::verify(tx, keyring, id)
        .await?
        .ok_or(AppError::NotFound("note"))?;
    tx.audit_details(
        AuditAction::NoteVerify,
        None,
        Some(AuditObject::note(id)),
        Some(serde_json::json!({
            "ok": v.mismatched.is_empty(),
            "versions": v.versions,
            "mismatched": v.mismatched.len(),
        })),
    )
    .await?;
    Ok(v)
}

/// Saves `content` as a new version of draft `id` against version `expected` (`None`:
/// whatever is current) and audits `note.update` with the version: the one path of the API
/// and the web pages. A refusal is the API's answer for it ([`refusal`]: stale is `412`).
/// The caller commits.
pub async fn save_note(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: NoteId,
    expected: Option<i32>,
    content: &NoteContent,
) -> Result<store::notes::Note, AppError> {
    let n = store::notes::save_draft(tx, keyring, id, expected, content)
        .await?
        .map_err(refusal)?;
    tx.audit_details(
        AuditAction::NoteUpdate,
        Some(n.patient_id),
        Some(AuditObject::note(id)),
        Some(serde_json::json!({ "version": n.version })),
    )
    .await?;
    Ok(n)
}
