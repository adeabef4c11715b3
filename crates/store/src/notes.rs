//! Clinical notes with versions, signatures, amendments and addenda
//! (`migrations/0007_clinical_notes.sql`). Visibility is RLS (`app.clinical_visible`); the
//! caller audits.
//!
//! - Every save of a draft is a new row in `clinical_note_version`; signing copies the last
//!   draft into a `signed` version carrying the signature manifestation and locks the note;
//!   an amendment is a new signed version with a reason (and whether it was AI-assisted); an
//!   addendum is signed text appended to the note. No version is ever updated.
//! - Each version stores a SHA-256 over everything a reader is shown of it: the note (practice,
//!   id, patient, template), the version (number, kind, author, time), its reason and AI flags,
//!   the whole signature manifestation (signer, printed name, credential, signed time, time
//!   zone, meaning) and the exact content ([`domain::notes::VersionBinding`], hash scheme 2);
//!   [`verify`] recomputes them. Versions written before scheme 2 keep scheme 1
//!   (`hash_scheme = 1`), which does not bind the printed name, credential, time zone or
//!   creation time; verification reports them as such.
//! - Content and reasons are field ciphertexts bound to (practice, `clinical_note_version`,
//!   column, note id ‖ version). Notes written before versions existed keep their body in
//!   `clinical_note.body_enc` (version 0) until they are next saved or signed.
//! - Concurrency: changes name the version they were made against (`If-Match`); the header's
//!   `current_version` is compared and advanced in one UPDATE, so of two writers exactly one
//!   wins and the other gets [`Refusal::Stale`].

use chrono::{DateTime, Utc};
use crypto::{FieldContext, Keyring};
use domain::notes::{
    DiffOp, HashScheme, NoteContent, NoteStatus, SIGNATURE_MEANING, Signature, Template,
    VersionBinding, VersionKind, word_diff,
};
use domain::{NoteId, PatientId, PracticeId, UserId, VisitId};
use serde::Serialize;

use crate::entry::Opener;
use crate::sealed_columns::{CLINICAL_NOTE, CLINICAL_NOTE_VERSION, crypto_error, version_row_id};
use crate::{StoreError, TenantTx};

/// The legacy table name bound into pre-version note bodies.
pub const TABLE: &str = CLINICAL_NOTE.table;
/// The table name bound into version ciphertexts (row id: note id ‖ version,
/// [`crate::sealed_columns::version_row_id`]).
pub const VERSION_TABLE: &str = CLINICAL_NOTE_VERSION.table;

/// The field context of a legacy note body.
fn body_context(practice: PracticeId, id: &uuid::Uuid) -> FieldContext<'_> {
    CLINICAL_NOTE.context(practice, "body", id.as_bytes())
}

/// Why a note change was refused (the API maps each to a status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such note here (or not visible).
    NotFound,
    /// The note was deleted (410).
    Deleted,
    /// The change was made against an older version (412).
    Stale,
    /// Not allowed in the note's state (409): signed notes are locked; drafts have no
    /// amendments.
    Locked,
    /// Nothing to sign (409).
    Empty,
}

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
    /// Created.
    pub created_at: DateTime<Utc>,
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

/// What the signer is, read from their account.
#[derive(Debug, Clone)]
struct Signer {
    name: String,
    credential: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Header {
    note_id: NoteId,
    patient_id: PatientId,
    author_id: UserId,
    template: String,
    visit_id: Option<VisitId>,
    status: String,
    current_version: i32,
    signed_version: Option<i32>,
    body: Option<String>,
    body_enc: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

const HEADER: &str = "note_id, patient_id, author_id, template, visit_id, status, current_version,
    signed_version, body, body_enc, created_at, deleted_at";

#[derive(sqlx::FromRow)]
struct VersionRow {
    version: i32,
    kind: String,
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
    hash_scheme: i16,
}

const VERSION: &str = "version, kind, author_id, created_at, content_enc, content_sha256, reason_enc,
    ai_assisted, assistant_turn_id, signer_name, signer_credential, signed_at, signed_tz, signature_meaning,
    hash_scheme";

/// What a version's hash binds of its note.
#[derive(Debug, Clone, Copy)]
struct NoteRef {
    id: uuid::Uuid,
    patient: uuid::Uuid,
    template: Template,
}

impl Header {
    fn status(&self) -> NoteStatus {
        if self.deleted_at.is_some() {
            NoteStatus::Deleted
        } else if self.status == "signed" {
            NoteStatus::Signed
        } else {
            NoteStatus::Draft
        }
    }

    fn template(&self) -> Result<Template, StoreError> {
        Template::parse(&self.template).ok_or(StoreError::Corrupt("clinical_note.template"))
    }

    fn note_ref(&self) -> Result<NoteRef, StoreError> {
        Ok(NoteRef {
            id: self.note_id.as_uuid(),
            patient: self.patient_id.as_uuid(),
            template: self.template()?,
        })
    }
}

/// `t` cut to microseconds: what PostgreSQL stores, so a hash over it recomputes exactly.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
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

    async fn open(
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

async fn header(tx: &mut TenantTx, id: NoteId, lock: bool) -> Result<Option<Header>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {HEADER} from clinical_note where practice_id = $1 and note_id = $2{}",
        if lock { " for update" } else { "" }
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

async fn versions(
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
async fn legacy_content(
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

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Versions checked.
    pub versions: usize,
    /// Versions whose content no longer matches their hash (or does not decrypt).
    pub mismatched: Vec<i32>,
    /// Versions hashed under scheme 1 (written before scheme 2): their hash does not bind the
    /// printed name, credential, time zone or creation time, so a change to those is not
    /// detected.
    pub manifestation_not_bound: Vec<i32>,
}

/// Recomputes every version's hash (INT-01). A version whose ciphertext no longer decrypts
/// counts as mismatched.
pub async fn verify(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
) -> Result<Option<Verification>, StoreError> {
    let Some(h) = header(tx, id, false).await? else {
        return Ok(None);
    };
    let n = h.note_ref()?;
    let practice = tx.practice();
    let rows = versions(tx, id, "true").await?;
    Ok(Some(check(&tx.opener(keyring), practice, &n, rows).await?))
}

/// Checks `rows` (versions of note `n`): which no longer match their hash or no longer
/// decrypt, and which were hashed under scheme 1.
async fn check(
    opener: &Opener<'_>,
    practice: PracticeId,
    n: &NoteRef,
    rows: Vec<VersionRow>,
) -> Result<Verification, StoreError> {
    let mut out = Verification {
        versions: rows.len(),
        mismatched: Vec::new(),
        manifestation_not_bound: Vec::new(),
    };
    for r in rows {
        let number = r.version;
        if HashScheme::from_i16(r.hash_scheme).is_some_and(|s| !s.binds_manifestation()) {
            out.manifestation_not_bound.push(number);
        }
        match r.open(opener, practice, n).await {
            Ok(version) if version.hash_ok => {}
            Ok(_) | Err(StoreError::Corrupt(_)) => out.mismatched.push(number),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

struct NewVersion<'a> {
    kind: VersionKind,
    canonical: Vec<u8>,
    reason: Option<&'a str>,
    ai_assisted: bool,
    assistant_turn_id: Option<uuid::Uuid>,
    signature: Option<Signature>,
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
async fn insert_version(
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
async fn for_change(
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

async fn advance(
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
        created_at: h.created_at,
    }))
}

async fn assemble_id(tx: &mut TenantTx, keyring: &Keyring, id: NoteId) -> Result<Note, StoreError> {
    get(tx, keyring, id)
        .await?
        .ok_or(StoreError::Corrupt("a note vanished during a change"))
}

async fn signer(tx: &mut TenantTx) -> Result<Signer, StoreError> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("select display_name, credential from app_user where user_id = $1")
            .bind(tx.actor())
            .fetch_optional(tx.conn())
            .await?;
    let (name, credential) =
        row.ok_or(StoreError::Corrupt("the signer's account is not readable"))?;
    Ok(Signer { name, credential })
}

async fn signature(tx: &mut TenantTx) -> Result<Signature, StoreError> {
    let s = signer(tx).await?;
    Ok(Signature {
        signer_id: tx.actor().as_uuid(),
        printed_name: s.name,
        credential: s.credential,
        signed_at: micros(tx.now()),
        time_zone: "UTC".to_owned(),
        meaning: SIGNATURE_MEANING.to_owned(),
    })
}

/// Signs the note as the transaction's actor (the caller checked step-up): the last draft is
/// copied into a signed version and the note locks.
pub async fn sign(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
    expected: Option<i32>,
) -> Result<Result<Note, Refusal>, StoreError> {
    let h = match for_change(tx, id, expected, domain::notes::NoteAction::Sign).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    let practice = tx.practice();
    let content = if h.current_version == 0 {
        legacy_content(&tx.opener(keyring), practice, &h).await?
    } else {
        let rows = versions(tx, id, &format!("version = {}", h.current_version)).await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or(StoreError::Corrupt("a note's current version is missing"))?;
        row.open(&tx.opener(keyring), practice, &h.note_ref()?)
            .await?
            .content
    };
    if content.is_empty() {
        return Ok(Err(Refusal::Empty));
    }
    append_signed(
        tx,
        keyring,
        &h,
        NewVersion {
            kind: VersionKind::Signed,
            canonical: content.canonical(),
            reason: None,
            ai_assisted: false,
            assistant_turn_id: None,
            signature: None,
        },
    )
    .await
    .map(Ok)
}

/// Appends the note's next version signed by the actor (signing, amending, an addendum),
/// advances the header (and locks it when `v` is the signed copy), and reads the note back.
async fn append_signed(
    tx: &mut TenantTx,
    keyring: &Keyring,
    h: &Header,
    mut v: NewVersion<'_>,
) -> Result<Note, StoreError> {
    let next = h.current_version + 1;
    let locks = v.kind == VersionKind::Signed;
    v.signature = Some(signature(tx).await?);
    insert_version(tx, keyring, &h.note_ref()?, next, v).await?;
    advance(tx, h.note_id, next, locks.then_some(next)).await?;
    assemble_id(tx, keyring, h.note_id).await
}

/// An amendment's inputs.
#[derive(Debug, Clone)]
pub struct AmendmentInput<'a> {
    /// The new content.
    pub content: &'a NoteContent,
    /// Why.
    pub reason: &'a str,
    /// Whether an AI assistant drafted it.
    pub ai_assisted: bool,
    /// The assistant turn it came from (required when AI-assisted).
    pub assistant_turn_id: Option<uuid::Uuid>,
}

/// Amends a signed note as the transaction's actor (the caller checked step-up).
pub async fn amend(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
    expected: Option<i32>,
    a: &AmendmentInput<'_>,
) -> Result<Result<Note, Refusal>, StoreError> {
    let h = match for_change(tx, id, expected, domain::notes::NoteAction::Amend).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    a.content
        .validate(h.template()?)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    if a.content.is_empty() {
        return Ok(Err(Refusal::Empty));
    }
    append_signed(
        tx,
        keyring,
        &h,
        NewVersion {
            kind: VersionKind::Amendment,
            canonical: a.content.canonical(),
            reason: Some(a.reason),
            ai_assisted: a.ai_assisted,
            assistant_turn_id: a.assistant_turn_id,
            signature: None,
        },
    )
    .await
    .map(Ok)
}

/// Adds a signed addendum to a signed note (the caller checked step-up).
pub async fn add_addendum(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
    expected: Option<i32>,
    text: &str,
    reason: &str,
) -> Result<Result<Note, Refusal>, StoreError> {
    let h = match for_change(tx, id, expected, domain::notes::NoteAction::Addendum).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    append_signed(
        tx,
        keyring,
        &h,
        NewVersion {
            kind: VersionKind::Addendum,
            canonical: text.as_bytes().to_vec(),
            reason: Some(reason),
            ai_assisted: false,
            assistant_turn_id: None,
            signature: None,
        },
    )
    .await
    .map(Ok)
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

/// A visit (encounter).
#[derive(Debug, Clone, Serialize)]
pub struct Visit {
    /// Id.
    pub visit_id: VisitId,
    /// Patient.
    pub patient_id: PatientId,
    /// The clinician who saw the patient.
    pub clinician_id: UserId,
    /// The appointment it came from.
    pub appointment_id: Option<domain::AppointmentId>,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// Records a visit.
pub async fn create_visit(
    tx: &mut TenantTx,
    patient: PatientId,
    clinician: UserId,
    appointment: Option<domain::AppointmentId>,
    started_at: DateTime<Utc>,
) -> Result<Visit, StoreError> {
    let id = VisitId::new();
    let now = tx.now();
    sqlx::query(
        "insert into visit (practice_id, visit_id, patient_id, clinician_id, appointment_id, started_at, created_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tx.practice())
    .bind(id)
    .bind(patient)
    .bind(clinician)
    .bind(appointment)
    .bind(started_at)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(Visit {
        visit_id: id,
        patient_id: patient,
        clinician_id: clinician,
        appointment_id: appointment,
        started_at,
    })
}

type VisitRow = (
    VisitId,
    PatientId,
    UserId,
    Option<domain::AppointmentId>,
    DateTime<Utc>,
);

/// A patient's visits, newest first (at most 100).
pub async fn list_visits(tx: &mut TenantTx, patient: PatientId) -> Result<Vec<Visit>, StoreError> {
    let rows: Vec<VisitRow> = sqlx::query_as(
        "select visit_id, patient_id, clinician_id, appointment_id, started_at from visit
              where practice_id = $1 and patient_id = $2 order by started_at desc limit 100",
    )
    .bind(tx.practice())
    .bind(patient)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Visit {
            visit_id: r.0,
            patient_id: r.1,
            clinician_id: r.2,
            appointment_id: r.3,
            started_at: r.4,
        })
        .collect())
}

/// Whether a visit of this patient exists (visible).
pub async fn visit_of(
    tx: &mut TenantTx,
    visit: VisitId,
    patient: PatientId,
) -> Result<bool, StoreError> {
    let r: Option<(i32,)> = sqlx::query_as(
        "select 1 from visit where practice_id = $1 and visit_id = $2 and patient_id = $3",
    )
    .bind(tx.practice())
    .bind(visit)
    .bind(patient)
    .fetch_optional(tx.conn())
    .await?;
    Ok(r.is_some())
}

/// What [`crate::OwnerStore::verify_notes`] found in one practice.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PracticeVerification {
    /// Notes checked.
    pub notes: usize,
    /// Versions checked.
    pub versions: usize,
    /// Notes with versions whose content no longer matches their hash (or no longer
    /// decrypts), with those version numbers.
    pub mismatched: Vec<(NoteId, Vec<i32>)>,
    /// Versions hashed under scheme 1 (written before scheme 2), whose hash does not bind the
    /// printed name, credential, time zone or creation time.
    pub manifestation_not_bound: usize,
}

impl crate::OwnerStore {
    /// `chartroom notes verify`: recomputes the hash of every version of every note of
    /// `practice` (INT-01), as the owner role, in pages of 200 notes, one transaction each.
    /// Decrypts every version; each note checked gets a `note.verify` event (no actor; its
    /// patient and note, `via: cli`, whether it is intact, how many versions and how many
    /// mismatched) in the transaction that decrypted it.
    pub async fn verify_notes(
        &self,
        practice: PracticeId,
    ) -> Result<PracticeVerification, StoreError> {
        let keyring = self.keyring()?;
        let mut out = PracticeVerification::default();
        let mut after = uuid::Uuid::nil();
        loop {
            let mut tx = self.begin_in(practice).await?;
            let ids: Vec<(uuid::Uuid, uuid::Uuid, String)> = sqlx::query_as(
                "select note_id, patient_id, template from clinical_note
                  where practice_id = $1 and note_id > $2 order by note_id limit 200",
            )
            .bind(practice)
            .bind(after)
            .fetch_all(tx.conn())
            .await?;
            let Some(last) = ids.last() else {
                tx.commit().await?;
                break;
            };
            after = last.0;
            let opener = tx.opener(keyring);
            let mut events = Vec::with_capacity(ids.len());
            for (note, patient, template) in ids {
                out.notes += 1;
                let n = NoteRef {
                    id: note,
                    patient,
                    template: Template::parse(&template)
                        .ok_or(StoreError::Corrupt("clinical_note.template"))?,
                };
                let rows: Vec<VersionRow> = sqlx::query_as(&format!(
                    "select {VERSION} from clinical_note_version
                      where practice_id = $1 and note_id = $2 order by version"
                ))
                .bind(practice)
                .bind(note)
                .fetch_all(tx.conn())
                .await?;
                let v = check(&opener, practice, &n, rows).await?;
                let mut e = tx.event(domain::AuditAction::NoteVerify);
                e.patient = Some(PatientId::from_uuid(patient));
                e.object = Some(domain::AuditObject::note(NoteId::from_uuid(note)));
                e.details = Some(serde_json::json!({
                    "via": "cli",
                    "ok": v.mismatched.is_empty(),
                    "versions": v.versions,
                    "mismatched": v.mismatched.len(),
                }));
                events.push(e);
                out.versions += v.versions;
                out.manifestation_not_bound += v.manifestation_not_bound.len();
                if !v.mismatched.is_empty() {
                    out.mismatched.push((NoteId::from_uuid(note), v.mismatched));
                }
            }
            tx.append(&events).await?;
            tx.commit().await?;
        }
        Ok(out)
    }
}
