//! Clinical notes (clinicians only), minimal: create, list per patient, read.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AuditAction, NoteId, PatientId, PracticeId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, Clinical, Ctx};
use crate::views::NoteView;
use crate::{AppError, AppState};

/// Longest note body in bytes.
const BODY_MAX: usize = 32 * 1024;

/// A patient's notes, newest first (at most 100).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/notes", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<NoteView>), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn note_list(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
) -> Result<Json<Vec<NoteView>>, AppError> {
    let mut tx = ctx.tx;
    if !store::patients::exists(&mut tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let notes =
        store::notes::list_for_patient(&mut tx, state.store.keyring()?, patient, 100).await?;
    tx.audit(
        AuditAction::NoteList,
        Some(patient),
        Some(("patient", patient.as_uuid())),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(notes.into_iter().map(Into::into).collect()))
}

/// A new note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteCreate {
    /// The text (at most 32 KiB).
    body: String,
}

/// Writes a note for a patient; the author is the signed-in clinician.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/notes", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = NoteCreate,
    responses((status = 201, body = NoteView), (status = 400, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn note_create(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<NoteCreate>,
) -> Result<(StatusCode, Json<NoteView>), AppError> {
    let body = domain::values::free_text("body", &req.body, BODY_MAX)?;
    let mut tx = ctx.tx;
    if !store::patients::exists(&mut tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let note = store::notes::create(&mut tx, state.store.keyring()?, patient, &body).await?;
    tx.audit(
        AuditAction::NoteCreate,
        Some(patient),
        Some(("note", note.note_id.as_uuid())),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(note.into())))
}

/// One note.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/notes/{note_id}", tag = "notes",
    params(("practice_id" = String, Path, format = Uuid), ("note_id" = String, Path, format = Uuid)),
    responses((status = 200, body = NoteView), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn note_get(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, id)): ApiPath<(PracticeId, NoteId)>,
) -> Result<Json<NoteView>, AppError> {
    let mut tx = ctx.tx;
    let n = store::notes::get(&mut tx, state.store.keyring()?, id)
        .await?
        .ok_or(AppError::NotFound("note"))?;
    tx.audit(
        AuditAction::NoteRead,
        Some(n.patient_id),
        Some(("note", id.as_uuid())),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(n.into()))
}
