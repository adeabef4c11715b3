//! How a note changes: creating it, saving a draft, deleting it, and the two steps every
//! change (signed ones too, [`super::signing`]) goes through: the header check under `If-Match`
//! ([`for_change`]) and the version insert ([`insert_version`]) followed by the header
//! advance ([`advance`]).
//!
//! # Guarantees
//! - A change locks the note's header (`for update`) and is refused when the note is gone,
//!   deleted, locked for that action, or was changed since the version the caller names
//!   ([`Refusal::Stale`]): of two writers exactly one wins.
//! - Versions are only inserted, never updated: content and reason sealed with the
//!   practice's active key, bound to (practice, `clinical_note_version`, column, note id ‖
//!   version), hashed under [`HashScheme::CURRENT`].
//! - Deleting is soft (`deleted_at`) and only allowed on drafts.

use chrono::{DateTime, Utc};
use crypto::{FieldContext, Keyring};
use domain::notes::{
    HashScheme, NoteContent, NoteStatus, Signature, Template, VersionBinding, VersionKind,
};
use domain::{NoteId, PatientId, PracticeId, UserId, VisitId};

use super::read::{Note, get};
use super::stored::{Header, NoteRef, header, micros};
use super::{Refusal, VERSION_TABLE};
use crate::sealed_columns::{crypto_error, version_row_id};
use crate::{StoreError, TenantTx};

/// A version about to be inserted ([`insert_version`]).
pub(super) struct NewVersion<'a> {
    pub(super) kind: VersionKind,
    pub(super) canonical: Vec<u8>,
    pub(super) reason: Option<&'a str>,
    pub(super) ai_assisted: bool,
    pub(super) assistant_turn_id: Option<uuid::Uuid>,
    pub(super) signature: Option<Signature>,
}

/// The hash of a new version under [`HashScheme::CURRENT`].
fn new_version_hash(
    practice: PracticeId,
    n: &NoteRef,
    version: i32,
    author: UserId,
    created_at: DateTime<Utc>,
    v: &NewVersion<'_>,
) -> [u8; 32] {
    VersionBinding {
        practice: practice.as_uuid(),
        note: n.id,
        patient: n.patient,
        template: n.template,
        version,
        kind: v.kind,
        author: author.as_uuid(),
        created_at,
        reason: v.reason,
        ai_assisted: v.ai_assisted,
        assistant_turn_id: v.assistant_turn_id,
        signature: v.signature.as_ref(),
        canonical: &v.canonical,
    }
    .hash(HashScheme::CURRENT)
}

/// Inserts `version` of note `n`, sealed, hashed under [`HashScheme::CURRENT`].
pub(super) async fn insert_version(
    tx: &mut TenantTx,
    keyring: &Keyring,
    n: &NoteRef,
    version: i32,
    v: NewVersion<'_>,
) -> Result<(), StoreError> {
    let practice = tx.practice();
    let note = n.id;
    let keys = crate::sealed_columns::write_keys(keyring, practice).await?;
    let row = version_row_id(note, version);
    let content_enc = crypto::encrypt_field(
        keys.active(),
        &FieldContext::new(practice, VERSION_TABLE, "content", &row),
        &v.canonical,
    )
    .map_err(|e| crypto_error(&e))?;
    let reason_enc = match v.reason {
        Some(r) => Some(
            crypto::encrypt_field(
                keys.active(),
                &FieldContext::new(practice, VERSION_TABLE, "reason", &row),
                r.as_bytes(),
            )
            .map_err(|e| crypto_error(&e))?,
        ),
        None => None,
    };
    let now = micros(tx.now());
    let actor = tx.actor();
    let hash = new_version_hash(practice, n, version, actor, now, &v);
    let s = v.signature.as_ref();
    sqlx::query(
        "insert into clinical_note_version (practice_id, note_id, version, kind, author_id, created_at,
            content_enc, content_sha256, reason_enc, ai_assisted, assistant_turn_id, signer_name,
            signer_credential, signed_at, signed_tz, signature_meaning, hash_scheme)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(practice)
    .bind(note)
    .bind(version)
    .bind(v.kind.as_str())
    .bind(actor)
    .bind(now)
    .bind(&content_enc)
    .bind(hash.as_slice())
    .bind(&reason_enc)
    .bind(v.ai_assisted)
    .bind(v.assistant_turn_id)
    .bind(s.map(|s| s.printed_name.clone()))
    .bind(s.and_then(|s| s.credential.clone()))
    .bind(s.map(|s| s.signed_at))
    .bind(s.map(|s| s.time_zone.clone()))
    .bind(s.map(|s| s.meaning.clone()))
    .bind(HashScheme::CURRENT.as_i16())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Creates a draft note (version 1) authored by the transaction's actor.
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    template: Template,
    visit: Option<VisitId>,
    content: &NoteContent,
) -> Result<Note, StoreError> {
    let now = tx.now();
    let id = NoteId::new();
    sqlx::query(
        "insert into clinical_note (practice_id, note_id, patient_id, author_id, created_at, updated_at,
            template, visit_id, status, current_version)
         values ($1, $2, $3, $4, $5, $5, $6, $7, 'draft', 1)",
    )
    .bind(tx.practice())
    .bind(id)
    .bind(patient)
    .bind(tx.actor())
    .bind(now)
    .bind(template.as_str())
    .bind(visit)
    .execute(tx.conn())
    .await?;
    let n = NoteRef {
        id: id.as_uuid(),
        patient: patient.as_uuid(),
        template,
    };
    insert_version(
        tx,
        keyring,
        &n,
        1,
        NewVersion {
            kind: VersionKind::Draft,
            canonical: content.canonical(),
            reason: None,
            ai_assisted: false,
            assistant_turn_id: None,
            signature: None,
        },
    )
    .await?;
    get(tx, keyring, id)
        .await?
        .ok_or(StoreError::Corrupt("a note vanished after insert"))
}

/// Locks the header and checks state and version; returns it for the change.
pub(super) async fn for_change(
    tx: &mut TenantTx,
    id: NoteId,
    expected: Option<i32>,
    action: domain::notes::NoteAction,
) -> Result<Result<Header, Refusal>, StoreError> {
    let Some(h) = header(tx, id, true).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    let status = h.status();
    if status == NoteStatus::Deleted {
        return Ok(Err(Refusal::Deleted));
    }
    if !status.allows(action) {
        return Ok(Err(Refusal::Locked));
    }
    if expected.is_some_and(|e| e != h.current_version) {
        return Ok(Err(Refusal::Stale));
    }
    Ok(Ok(h))
}

pub(super) async fn advance(
    tx: &mut TenantTx,
    id: NoteId,
    to: i32,
    sign: Option<i32>,
) -> Result<(), StoreError> {
    let now = tx.now();
    sqlx::query(
        "update clinical_note set current_version = $3, updated_at = $4,
                status = case when $5::int4 is null then status else 'signed' end,
                signed_version = coalesce($5, signed_version)
          where practice_id = $1 and note_id = $2",
    )
    .bind(tx.practice())
    .bind(id)
    .bind(to)
    .bind(now)
    .bind(sign)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Saves a new draft version. `expected`: the version the client edited (`If-Match`).
pub async fn save_draft(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
    expected: Option<i32>,
    content: &NoteContent,
) -> Result<Result<Note, Refusal>, StoreError> {
    let h = match for_change(tx, id, expected, domain::notes::NoteAction::Save).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    content
        .validate(h.template()?)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let next = h.current_version + 1;
    insert_version(
        tx,
        keyring,
        &h.note_ref()?,
        next,
        NewVersion {
            kind: VersionKind::Draft,
            canonical: content.canonical(),
            reason: None,
            ai_assisted: false,
            assistant_turn_id: None,
            signature: None,
        },
    )
    .await?;
    advance(tx, id, next, None).await?;
    // A draft has no signature, amendments or addenda: the note is what we just wrote (no
    // second read).
    Ok(Ok(Note {
        note_id: h.note_id,
        patient_id: h.patient_id,
        author_id: h.author_id,
        template: h.template()?,
        visit_id: h.visit_id,
        status: NoteStatus::Draft,
        version: next,
        content: content.clone(),
        signature: None,
        signed_version: None,
        signed_content: None,
        amendments: Vec::new(),
        addenda: Vec::new(),
        amendment_requests: Vec::new(),
        created_at: h.created_at,
    }))
}

/// Soft-deletes a draft. Signed notes are refused ([`Refusal::Locked`]).
pub async fn delete(
    tx: &mut TenantTx,
    id: NoteId,
    expected: Option<i32>,
) -> Result<Result<PatientId, Refusal>, StoreError> {
    let h = match for_change(tx, id, expected, domain::notes::NoteAction::Delete).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    let now = tx.now();
    sqlx::query("update clinical_note set deleted_at = $3, updated_at = $3 where practice_id = $1 and note_id = $2")
        .bind(tx.practice())
        .bind(id)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(Ok(h.patient_id))
}
