//! Clinical notes, minimal shape (clinician only; enforced by RLS). The clinical-records work
//! completes the lifecycle (signing, amendments, encryption). The caller audits.

use chrono::{DateTime, Utc};
use domain::{NoteId, PatientId, UserId};
use serde::Serialize;

use crate::{StoreError, TenantTx};

/// A note row.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Note {
    /// Id.
    pub note_id: NoteId,
    /// The patient.
    pub patient_id: PatientId,
    /// The author (always the signed-in clinician who wrote it).
    pub author_id: UserId,
    /// The text.
    pub body: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "note_id, patient_id, author_id, body, created_at";

/// Reads one note.
pub async fn get(tx: &mut TenantTx, id: NoteId) -> Result<Option<Note>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from clinical_note where practice_id = $1 and note_id = $2"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// Lists a patient's notes, newest first, at most `limit` ≤ 100.
pub async fn list_for_patient(
    tx: &mut TenantTx,
    patient: PatientId,
    limit: i64,
) -> Result<Vec<Note>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from clinical_note where practice_id = $1 and patient_id = $2
          order by created_at desc, note_id desc limit $3"
    ))
    .bind(tx.practice())
    .bind(patient)
    .bind(limit.clamp(1, 100))
    .fetch_all(tx.conn())
    .await?)
}

/// Creates a note authored by the transaction's actor.
pub async fn create(tx: &mut TenantTx, patient: PatientId, body: &str) -> Result<Note, StoreError> {
    let now = tx.now();
    let author = tx.actor();
    Ok(sqlx::query_as(&format!(
        "insert into clinical_note (practice_id, note_id, patient_id, author_id, body, created_at)
         values ($1, $2, $3, $4, $5, $6) returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(NoteId::new())
    .bind(patient)
    .bind(author)
    .bind(body)
    .bind(now)
    .fetch_one(tx.conn())
    .await?)
}
