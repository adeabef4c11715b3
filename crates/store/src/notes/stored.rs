//! How a note is stored: the header row (`clinical_note`), the version rows
//! (`clinical_note_version`) and the column lists that select them, and how a stored version
//! is opened.
//!
//! # Guarantees
//! - Opening a version ([`VersionRow::open`]) decrypts its content and reason only through
//!   a transaction's opener (the transaction then refuses to commit until it has appended an
//!   audit event) and recomputes its hash under the scheme it was written with; a mismatch is
//!   reported ([`Version::hash_ok`]), not hidden.
//! - Times that go into a hash are cut to microseconds ([`micros`]), what PostgreSQL keeps,
//!   so a hash recomputed from the stored row matches the one computed at insert.
//! - Every query here names the practice; none writes.

use chrono::{DateTime, Utc};
use crypto::FieldContext;
use domain::notes::{
    HashScheme, NoteContent, NoteStatus, Signature, Template, VersionBinding, VersionKind,
};
use domain::{NoteId, PatientId, PracticeId, UserId, VisitId};
use serde::Serialize;

use super::VERSION_TABLE;
use crate::entry::Opener;
use crate::sealed_columns::{CLINICAL_NOTE, version_row_id};
use crate::{StoreError, TenantTx};

/// The field context of a legacy note body.
fn body_context(practice: PracticeId, id: &uuid::Uuid) -> FieldContext<'_> {
    CLINICAL_NOTE.context(practice, "body", id.as_bytes())
}

/// One version as stored (for history and verification).
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// Number.
    pub version: i32,
    /// Kind.
    pub kind: VersionKind,
    /// Author.
    pub author_id: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Content (an addendum's text is in `subjective`).
    pub content: NoteContent,
    /// Reason (amendments, addenda).
    pub reason: Option<String>,
    /// AI-assisted.
    pub ai_assisted: bool,
    /// The assistant turn it came from.
    pub assistant_turn_id: Option<uuid::Uuid>,
    /// Signature (all but drafts).
    pub signature: Option<Signature>,
    /// Whether the stored hash matches the content.
    pub hash_ok: bool,
    /// How the hash was computed: 2 binds the whole manifestation; 1 (versions written
    /// before scheme 2) does not bind the printed name, credential, time zone or creation time.
    pub hash_scheme: i16,
}

/// A `clinical_note` row: the note's header (selected by [`HEADER`]).
#[derive(sqlx::FromRow)]
pub(super) struct Header {
    pub(super) note_id: NoteId,
    pub(super) patient_id: PatientId,
    pub(super) author_id: UserId,
    template: String,
    pub(super) visit_id: Option<VisitId>,
    status: String,
    pub(super) current_version: i32,
    pub(super) signed_version: Option<i32>,
    body: Option<String>,
    body_enc: Option<Vec<u8>>,
    pub(super) created_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    /// Whether an amendment request names the note (so a read asks for them only then).
    pub(super) amendment_requested: bool,
}

/// The columns of [`Header`], selected `from clinical_note` (unaliased).
pub(super) const HEADER: &str =
    "note_id, patient_id, author_id, template, visit_id, status, current_version,
    signed_version, body, body_enc, created_at, deleted_at,
    exists(select 1 from amendment_request r
            where r.practice_id = clinical_note.practice_id
              and r.note_id = clinical_note.note_id) as amendment_requested";

/// A `clinical_note_version` row as stored, still sealed (selected by [`VERSION`]).
#[derive(sqlx::FromRow)]
pub(super) struct VersionRow {
    pub(super) version: i32,
    pub(super) kind: String,
    author_id: UserId,
    created_at: DateTime<Utc>,
    content_enc: Vec<u8>,
    content_sha256: Vec<u8>,
    reason_enc: Option<Vec<u8>>,
    ai_assisted: bool,
    assistant_turn_id: Option<uuid::Uuid>,
    signer_name: Option<String>,
    signer_credential: Option<String>,
    signed_at: Option<DateTime<Utc>>,
    signed_tz: Option<String>,
    signature_meaning: Option<String>,
    pub(super) hash_scheme: i16,
}

pub(super) const VERSION: &str = "version, kind, author_id, created_at, content_enc, content_sha256, reason_enc,
    ai_assisted, assistant_turn_id, signer_name, signer_credential, signed_at, signed_tz, signature_meaning,
    hash_scheme";

/// What a version's hash binds of its note.
#[derive(Debug, Clone, Copy)]
pub(super) struct NoteRef {
    pub(super) id: uuid::Uuid,
    pub(super) patient: uuid::Uuid,
    pub(super) template: Template,
}

impl Header {
    pub(super) fn status(&self) -> NoteStatus {
        if self.deleted_at.is_some() {
            NoteStatus::Deleted
        } else if self.status == "signed" {
            NoteStatus::Signed
        } else {
            NoteStatus::Draft
        }
    }

    pub(super) fn template(&self) -> Result<Template, StoreError> {
        Template::parse(&self.template).ok_or(StoreError::Corrupt("clinical_note.template"))
    }

    pub(super) fn note_ref(&self) -> Result<NoteRef, StoreError> {
        Ok(NoteRef {
            id: self.note_id.as_uuid(),
            patient: self.patient_id.as_uuid(),
            template: self.template()?,
        })
    }
}

/// `t` cut to microseconds: what PostgreSQL stores, so a hash over it recomputes exactly.
pub(super) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

async fn decrypt(
    opener: &Opener<'_>,
    practice: PracticeId,
    note: uuid::Uuid,
    version: i32,
    column: &'static str,
    ct: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let row = version_row_id(note, version);
    opener
        .open(
            &FieldContext::new(practice, VERSION_TABLE, column, &row),
            ct,
        )
        .await
}

fn text(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("a note text is not UTF-8"))
}

impl VersionRow {
    fn kind(&self) -> Result<VersionKind, StoreError> {
        VersionKind::parse(&self.kind).ok_or(StoreError::Corrupt("clinical_note_version.kind"))
    }

    fn signature(&self) -> Option<Signature> {
        Some(Signature {
            signer_id: self.author_id.as_uuid(),
            printed_name: self.signer_name.clone()?,
            credential: self.signer_credential.clone(),
            signed_at: self.signed_at?,
            time_zone: self.signed_tz.clone()?,
            meaning: self.signature_meaning.clone()?,
        })
    }

    pub(super) async fn open(
        self,
        opener: &Opener<'_>,
        practice: PracticeId,
        n: &NoteRef,
    ) -> Result<Version, StoreError> {
        let kind = self.kind()?;
        let note = n.id;
        let plain = decrypt(
            opener,
            practice,
            note,
            self.version,
            "content",
            &self.content_enc,
        )
        .await?;
        let reason = match &self.reason_enc {
            Some(ct) => Some(text(
                decrypt(opener, practice, note, self.version, "reason", ct).await?,
            )?),
            None => None,
        };
        let signature = self.signature();
        let scheme = HashScheme::from_i16(self.hash_scheme)
            .ok_or(StoreError::Corrupt("clinical_note_version.hash_scheme"))?;
        let expect = VersionBinding {
            practice: practice.as_uuid(),
            note,
            patient: n.patient,
            template: n.template,
            version: self.version,
            kind,
            author: self.author_id.as_uuid(),
            created_at: self.created_at,
            reason: reason.as_deref(),
            ai_assisted: self.ai_assisted,
            assistant_turn_id: self.assistant_turn_id,
            signature: signature.as_ref(),
            canonical: &plain,
        }
        .hash(scheme);
        let hash_ok = expect.as_slice() == self.content_sha256.as_slice();
        let content = if kind == VersionKind::Addendum {
            NoteContent {
                subjective: text(plain)?,
                ..NoteContent::default()
            }
        } else {
            NoteContent::from_canonical(&plain)
                .map_err(|_| StoreError::Corrupt("a note version's content is malformed"))?
        };
        Ok(Version {
            version: self.version,
            kind,
            author_id: self.author_id,
            created_at: self.created_at,
            content,
            reason,
            ai_assisted: self.ai_assisted,
            assistant_turn_id: self.assistant_turn_id,
            signature,
            hash_ok,
            hash_scheme: self.hash_scheme,
        })
    }
}

pub(super) async fn header(
    tx: &mut TenantTx,
    id: NoteId,
    lock: bool,
) -> Result<Option<Header>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {HEADER} from clinical_note where practice_id = $1 and note_id = $2{}",
        if lock { " for update" } else { "" }
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

pub(super) async fn versions(
    tx: &mut TenantTx,
    id: NoteId,
    which: &str,
) -> Result<Vec<VersionRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {VERSION} from clinical_note_version
          where practice_id = $1 and note_id = $2 and ({which}) order by version"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_all(tx.conn())
    .await?)
}

/// The content of a legacy (version 0) note: its old body as the subjective section.
pub(super) async fn legacy_content(
    opener: &Opener<'_>,
    practice: PracticeId,
    h: &Header,
) -> Result<NoteContent, StoreError> {
    let body = match (&h.body_enc, &h.body) {
        (Some(ct), _) => text(
            opener
                .open(&body_context(practice, &h.note_id.as_uuid()), ct)
                .await?,
        )?,
        (None, Some(b)) => b.clone(),
        (None, None) => String::new(),
    };
    Ok(NoteContent {
        subjective: body,
        ..NoteContent::default()
    })
}
