//! A note as a reader sees it: the current content (the newest amendment, else the signed
//! version, else the last draft), the signature, every amendment with its word diff against
//! the signed text, and every addendum; lists of a patient's notes and a note's history.
//!
//! # Guarantees
//! - Reads only: nothing here writes. Row-level security decides which notes are visible; a
//!   reader is shown the signed versions and the current draft, never older drafts (history
//!   shows every version, each with its hash checked).
//! - Every version shown is decrypted through the transaction's opener, so the caller's
//!   transaction must append an audit event before it commits.

use chrono::{DateTime, Utc};
use crypto::Keyring;
use domain::notes::{DiffOp, NoteContent, NoteStatus, Signature, Template, VersionKind, word_diff};
use domain::{NoteId, PatientId, UserId, VisitId};
use serde::Serialize;

use super::stored::{
    HEADER, Header, VERSION, Version, VersionRow, header, legacy_content, versions,
};
use crate::{StoreError, TenantTx};

/// A signed amendment, as listed on its note.
#[derive(Debug, Clone, Serialize)]
pub struct Amendment {
    /// Its version number.
    pub version: i32,
    /// Its author (the signer).
    pub author_id: UserId,
    /// Why.
    pub reason: String,
    /// Whether an AI assistant drafted it.
    pub ai_assisted: bool,
    /// The assistant turn it came from.
    pub assistant_turn_id: Option<uuid::Uuid>,
    /// The signature.
    pub signature: Signature,
    /// The amended content.
    pub content: NoteContent,
    /// Word-level diff against the signed version.
    pub diff: Vec<DiffOp>,
}

/// A signed addendum.
#[derive(Debug, Clone, Serialize)]
pub struct Addendum {
    /// Its version number.
    pub version: i32,
    /// Its author (the signer).
    pub author_id: UserId,
    /// Why.
    pub reason: String,
    /// The appended text.
    pub text: String,
    /// The signature.
    pub signature: Signature,
}

/// A note as read: its current content, state, signature and every amendment and addendum.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// Id.
    pub note_id: NoteId,
    /// The patient.
    pub patient_id: PatientId,
    /// The author (always the clinician who created it).
    pub author_id: UserId,
    /// Template.
    pub template: Template,
    /// The visit it documents.
    pub visit_id: Option<VisitId>,
    /// State.
    pub status: NoteStatus,
    /// The newest version (the `ETag`).
    pub version: i32,
    /// The current content: the newest amendment, else the signed version, else the last
    /// draft.
    pub content: NoteContent,
    /// The signature of the signed version.
    pub signature: Option<Signature>,
    /// The signed version's number.
    pub signed_version: Option<i32>,
    /// The content as signed (unchanged by amendments), when amended.
    pub signed_content: Option<NoteContent>,
    /// Amendments, oldest first.
    pub amendments: Vec<Amendment>,
    /// Addenda, oldest first.
    pub addenda: Vec<Addendum>,
    /// The patient's amendment requests that name this note, oldest first (req SIG-07):
    /// nothing decrypted, so a reader sees that amendment documents are linked and where each
    /// request stands.
    pub amendment_requests: Vec<crate::amendments::AmendmentRequestSummary>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// The versions of one note a reader sees: every signed one and the current draft. Only
/// leakproof comparisons on the version table's own columns, so row-level security is
/// checked for the rows returned, not for every draft the note ever had.
async fn shown_versions(tx: &mut TenantTx, h: &Header) -> Result<Vec<VersionRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {VERSION} from clinical_note_version
          where practice_id = $1 and note_id = $2 and (kind <> 'draft' or version = $3)
          order by version"
    ))
    .bind(tx.practice())
    .bind(h.note_id)
    .bind(h.current_version)
    .fetch_all(tx.conn())
    .await?)
}

async fn assemble(tx: &mut TenantTx, keyring: &Keyring, h: Header) -> Result<Note, StoreError> {
    let rows = shown_versions(tx, &h).await?;
    assemble_rows(tx, keyring, h, rows).await
}

async fn assemble_rows(
    tx: &mut TenantTx,
    keyring: &Keyring,
    h: Header,
    rows: Vec<VersionRow>,
) -> Result<Note, StoreError> {
    let practice = tx.practice();
    // One more query only for a note an amendment request names (the header says so).
    let amendment_requests = if h.amendment_requested {
        crate::amendments::for_note(tx, h.note_id).await?
    } else {
        Vec::new()
    };
    let n = h.note_ref()?;
    let opener = tx.opener(keyring);
    let mut shown = Vec::with_capacity(rows.len());
    for r in rows {
        shown.push(r.open(&opener, practice, &n).await?);
    }
    let signed = shown
        .iter()
        .find(|v| v.kind == VersionKind::Signed)
        .cloned();
    let signed_text = signed.as_ref().map(|s| s.content.render_text());
    let mut amendments: Vec<Amendment> = Vec::new();
    let mut addenda = Vec::new();
    let mut current = None;
    for v in &shown {
        match v.kind {
            VersionKind::Amendment => {
                let diff = word_diff(
                    signed_text.as_deref().unwrap_or_default(),
                    &v.content.render_text(),
                );
                let signature = v
                    .signature
                    .clone()
                    .ok_or(StoreError::Corrupt("an amendment without a signature"))?;
                amendments.push(Amendment {
                    version: v.version,
                    author_id: v.author_id,
                    reason: v.reason.clone().unwrap_or_default(),
                    ai_assisted: v.ai_assisted,
                    assistant_turn_id: v.assistant_turn_id,
                    signature,
                    content: v.content.clone(),
                    diff,
                });
                current = Some(v.content.clone());
            }
            VersionKind::Addendum => addenda.push(Addendum {
                version: v.version,
                author_id: v.author_id,
                reason: v.reason.clone().unwrap_or_default(),
                text: v.content.subjective.clone(),
                signature: v
                    .signature
                    .clone()
                    .ok_or(StoreError::Corrupt("an addendum without a signature"))?,
            }),
            VersionKind::Signed => {
                if current.is_none() {
                    current = Some(v.content.clone());
                }
            }
            VersionKind::Draft => {
                if signed.is_none() {
                    current = Some(v.content.clone());
                }
            }
        }
    }
    let content = match current {
        Some(c) => c,
        None => legacy_content(&opener, practice, &h).await?,
    };
    Ok(Note {
        note_id: h.note_id,
        patient_id: h.patient_id,
        author_id: h.author_id,
        template: h.template()?,
        visit_id: h.visit_id,
        status: h.status(),
        version: h.current_version,
        signed_content: if amendments.is_empty() {
            None
        } else {
            signed.as_ref().map(|s| s.content.clone())
        },
        content,
        signature: signed.as_ref().and_then(|s| s.signature.clone()),
        signed_version: h.signed_version,
        amendments,
        addenda,
        amendment_requests,
        created_at: h.created_at,
    })
}

/// Whether a note is visible here.
pub async fn exists(tx: &mut TenantTx, id: NoteId) -> Result<bool, StoreError> {
    Ok(header(tx, id, false).await?.is_some())
}

/// Reads one note (deleted ones too: the caller answers 410 for [`NoteStatus::Deleted`]).
pub async fn get(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
) -> Result<Option<Note>, StoreError> {
    match header(tx, id, false).await? {
        Some(h) => Ok(Some(assemble(tx, keyring, h).await?)),
        None => Ok(None),
    }
}

/// A patient's notes (not deleted), newest first, at most `limit` ≤ 100.
pub async fn list_for_patient(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    limit: i64,
) -> Result<Vec<Note>, StoreError> {
    let heads: Vec<Header> = sqlx::query_as(&format!(
        "select {HEADER} from clinical_note
          where practice_id = $1 and patient_id = $2 and deleted_at is null
          order by created_at desc, note_id desc limit $3"
    ))
    .bind(tx.practice())
    .bind(patient)
    .bind(limit.clamp(1, 100))
    .fetch_all(tx.conn())
    .await?;
    // Every shown version of every listed note in one query (not one per note). `version =
    // any(current versions)` may also match another note's older draft; those are dropped.
    let ids: Vec<uuid::Uuid> = heads.iter().map(|h| h.note_id.as_uuid()).collect();
    let current: Vec<i32> = heads.iter().map(|h| h.current_version).collect();
    let rows: Vec<ListedVersion> = sqlx::query_as(&format!(
        "select note_id as listed_note, {VERSION} from clinical_note_version
          where practice_id = $1 and note_id = any($2) and (kind <> 'draft' or version = any($3))
          order by note_id, version"
    ))
    .bind(tx.practice())
    .bind(&ids)
    .bind(&current)
    .fetch_all(tx.conn())
    .await?;
    let current_of: std::collections::HashMap<uuid::Uuid, i32> =
        ids.iter().copied().zip(current.iter().copied()).collect();
    let mut by_note: std::collections::HashMap<uuid::Uuid, Vec<VersionRow>> =
        std::collections::HashMap::new();
    for r in rows {
        if r.row.kind == "draft" && current_of.get(&r.listed_note) != Some(&r.row.version) {
            continue;
        }
        by_note.entry(r.listed_note).or_default().push(r.row);
    }
    let mut out = Vec::with_capacity(heads.len());
    for h in heads {
        let rows = by_note.remove(&h.note_id.as_uuid()).unwrap_or_default();
        out.push(assemble_rows(tx, keyring, h, rows).await?);
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct ListedVersion {
    listed_note: uuid::Uuid,
    #[sqlx(flatten)]
    row: VersionRow,
}

/// Every version of a note (history), oldest first, each with its hash checked.
pub async fn history(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
) -> Result<Option<Vec<Version>>, StoreError> {
    let Some(h) = header(tx, id, false).await? else {
        return Ok(None);
    };
    let n = h.note_ref()?;
    let practice = tx.practice();
    let rows = versions(tx, id, "true").await?;
    let opener = tx.opener(keyring);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(r.open(&opener, practice, &n).await?);
    }
    Ok(Some(out))
}

pub(super) async fn assemble_id(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
) -> Result<Note, StoreError> {
    get(tx, keyring, id)
        .await?
        .ok_or(StoreError::Corrupt("a note vanished during a change"))
}
