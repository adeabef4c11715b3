//! Clinical notes, minimal shape (clinician only; enforced by RLS). The clinical-records work
//! completes the lifecycle (signing, amendments). The caller audits.
//!
//! The body is stored only as a field ciphertext (`body_enc`) bound to (practice,
//! `clinical_note`, `body`, note id); functions here encrypt on write and decrypt on read.
//! Notes written before encryption are read from the legacy plaintext column until the
//! start-up job ([`crate::OwnerStore::encrypt_existing`]) seals them.

use chrono::{DateTime, Utc};
use crypto::{FieldContext, Keyring};
use domain::{NoteId, PatientId, PracticeId, UserId};
use serde::Serialize;

use crate::keys::crypto_error;
use crate::{StoreError, TenantTx};

/// The table name bound into every note ciphertext.
pub const TABLE: &str = "clinical_note";

/// A note row.
#[derive(Debug, Clone, Serialize)]
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

#[derive(sqlx::FromRow)]
struct Row {
    note_id: NoteId,
    patient_id: PatientId,
    author_id: UserId,
    body: Option<String>,
    body_enc: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str = "note_id, patient_id, author_id, body, body_enc, created_at";

/// The field context of a note body.
pub(crate) fn body_context(practice: PracticeId, id: &uuid::Uuid) -> FieldContext<'_> {
    FieldContext::new(practice, TABLE, "body", id.as_bytes())
}

impl Row {
    async fn open(self, keyring: &Keyring, practice: PracticeId) -> Result<Note, StoreError> {
        let body = match (self.body_enc, self.body) {
            (Some(ct), _) => {
                let id = self.note_id.as_uuid();
                let pt = keyring
                    .decrypt_field(&body_context(practice, &id), &ct)
                    .await
                    .map_err(|e| crypto_error(&e))?;
                String::from_utf8(pt)
                    .map_err(|_| StoreError::Corrupt("an encrypted note body is not UTF-8"))?
            }
            (None, Some(b)) => b,
            (None, None) => return Err(StoreError::Corrupt("note without a body")),
        };
        Ok(Note {
            note_id: self.note_id,
            patient_id: self.patient_id,
            author_id: self.author_id,
            body,
            created_at: self.created_at,
        })
    }
}

/// Reads and decrypts one note.
pub async fn get(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
) -> Result<Option<Note>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from clinical_note where practice_id = $1 and note_id = $2"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(r) => Ok(Some(r.open(keyring, tx.practice()).await?)),
        None => Ok(None),
    }
}

/// Lists and decrypts a patient's notes, newest first, at most `limit` ≤ 100.
pub async fn list_for_patient(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    limit: i64,
) -> Result<Vec<Note>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from clinical_note where practice_id = $1 and patient_id = $2
          order by created_at desc, note_id desc limit $3"
    ))
    .bind(tx.practice())
    .bind(patient)
    .bind(limit.clamp(1, 100))
    .fetch_all(tx.conn())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(r.open(keyring, tx.practice()).await?);
    }
    Ok(out)
}

/// Creates a note authored by the transaction's actor (body encrypted).
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    body: &str,
) -> Result<Note, StoreError> {
    let now = tx.now();
    let author = tx.actor();
    let practice = tx.practice();
    let id = NoteId::new();
    let keys = crate::patients::write_keys(keyring, practice).await?;
    let uuid = id.as_uuid();
    let ct = crypto::encrypt_field(
        keys.active(),
        &body_context(practice, &uuid),
        body.as_bytes(),
    )
    .map_err(|e| crypto_error(&e))?;
    sqlx::query(
        "insert into clinical_note (practice_id, note_id, patient_id, author_id, body_enc, created_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(practice)
    .bind(id)
    .bind(patient)
    .bind(author)
    .bind(&ct)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(Note {
        note_id: id,
        patient_id: patient,
        author_id: author,
        body: body.to_owned(),
        created_at: now,
    })
}
