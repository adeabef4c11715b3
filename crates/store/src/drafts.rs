//! Note drafts (`note_draft`, `draft_sentence`, `migrations/0024_scribe.sql`): a visit's note
//! as a drafting turn wrote it (or, with no drafting provider, the default draft), sentence by
//! sentence, each with the transcript segments it cites and the flags the evidence check
//! raised (req SCR-05).
//!
//! # Guarantees
//! - The draft's content as produced (`content_enc`) and each sentence's text are field
//!   ciphertexts (bound to draft id, and to draft id ‖ index); nothing else is free text.
//! - A flagged sentence counts as reviewed only once a clinician accepted or edited it
//!   (`accepted_by`, `accepted_at`); [`unreviewed_for_note`] counts those still open on the
//!   drafts linked to a note, and signing that note is refused while any is
//!   ([`crate::notes::sign`]).
//! - A draft whose note is signed no longer changes ([`DraftRefusal::Locked`]).
//! - Reads decrypt and the caller audits (`note_draft.read`); writes seal and the caller audits
//!   (`note_draft.create`, `note_draft.update`).

use crypto::Keyring;
use domain::notes::{NoteContent, Template};
use domain::{AssistantTurnId, CaptureId, DraftId, NoteId, PatientId, SegmentId, UserId, VisitId};

use crate::sealed_columns::{DRAFT_SENTENCE, NOTE_DRAFT, seal_field, version_row_id};
use crate::{StoreError, TenantTx};

/// The SOAP sections, in note order (`draft_sentence.section`).
pub const SECTIONS: [&str; 4] = ["subjective", "objective", "assessment", "plan"];

/// Longest sentence accepted (bytes).
pub const SENTENCE_MAX: usize = 4096;

/// Most sentences in one draft.
pub const SENTENCES_MAX: usize = 400;

/// A sentence to store.
#[derive(Debug, Clone)]
pub struct NewSentence {
    /// Its section (one of [`SECTIONS`]).
    pub section: &'static str,
    /// The sentence.
    pub text: String,
    /// The segments it cites.
    pub evidence: Vec<SegmentId>,
    /// The evidence check's flags (stable names).
    pub flags: Vec<&'static str>,
}

/// A draft to store.
#[derive(Debug, Clone)]
pub struct NewDraft<'a> {
    /// The visit.
    pub visit: VisitId,
    /// Its patient.
    pub patient: PatientId,
    /// The capture whose transcript it rests on, if one.
    pub capture: Option<CaptureId>,
    /// The drafting turn (`None`: the default draft, not AI-written).
    pub turn: Option<AssistantTurnId>,
    /// The note template.
    pub template: Template,
    /// The draft as a note's content.
    pub content: &'a NoteContent,
    /// Its sentences in order.
    pub sentences: &'a [NewSentence],
}

/// One stored sentence, opened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sentence {
    /// Its place in the draft.
    pub idx: i32,
    /// Its section.
    pub section: String,
    /// Its current text.
    pub text: String,
    /// The segments it cites.
    pub evidence: Vec<SegmentId>,
    /// The evidence check's flags.
    pub flags: Vec<String>,
    /// Who accepted (or edited) it.
    pub accepted_by: Option<UserId>,
    /// When.
    pub accepted_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Sentence {
    /// Whether it still needs the clinician: flagged and not accepted.
    #[must_use]
    pub fn needs_review(&self) -> bool {
        !self.flags.is_empty() && self.accepted_at.is_none()
    }
}

/// A stored draft, opened.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Its id.
    pub draft_id: DraftId,
    /// The visit.
    pub visit_id: VisitId,
    /// The patient.
    pub patient_id: PatientId,
    /// The note made from it, if any.
    pub note_id: Option<NoteId>,
    /// Whether that note is signed (the draft no longer changes).
    pub note_signed: bool,
    /// The capture.
    pub capture_id: Option<CaptureId>,
    /// The drafting turn.
    pub turn_id: Option<AssistantTurnId>,
    /// Whether a model wrote it (false: the default draft).
    pub ai_written: bool,
    /// The template.
    pub template: Template,
    /// The draft as produced.
    pub content: NoteContent,
    /// Who asked for it.
    pub created_by: UserId,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Its sentences.
    pub sentences: Vec<Sentence>,
}

impl Draft {
    /// The note content the sentences make now (after the clinician's edits), section by
    /// section, with the produced draft's template fields.
    #[must_use]
    pub fn current_content(&self) -> NoteContent {
        let mut c = NoteContent {
            fields: self.content.fields.clone(),
            ..NoteContent::default()
        };
        for s in &self.sentences {
            let target = match s.section.as_str() {
                "subjective" => &mut c.subjective,
                "objective" => &mut c.objective,
                "assessment" => &mut c.assessment,
                _ => &mut c.plan,
            };
            if !target.is_empty() {
                target.push(if s.text.starts_with('\n') { '\n' } else { ' ' });
            }
            target.push_str(s.text.trim_start_matches('\n'));
        }
        c
    }
}

fn sentence_row(draft: DraftId, idx: i32) -> [u8; 20] {
    version_row_id(draft.as_uuid(), idx)
}

/// Stores a draft and its sentences (sealed) authored by the transaction's actor; the caller
/// audits `note_draft.create`.
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    d: &NewDraft<'_>,
) -> Result<DraftId, StoreError> {
    if d.sentences.len() > SENTENCES_MAX {
        return Err(StoreError::Invalid(
            "draft_sentence: too many sentences".into(),
        ));
    }
    let id = DraftId::new();
    let practice = tx.practice();
    let content_enc = seal_field(
        keyring,
        &NOTE_DRAFT.context(practice, "content", id.as_uuid().as_bytes()),
        &d.content.canonical(),
    )
    .await?;
    let (actor, now) = (tx.actor(), tx.now());
    sqlx::query(
        "insert into note_draft (practice_id, draft_id, visit_id, patient_id, capture_id, turn_id,
            ai_written, template, content_enc, created_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(practice)
    .bind(id)
    .bind(d.visit)
    .bind(d.patient)
    .bind(d.capture)
    .bind(d.turn)
    .bind(d.turn.is_some())
    .bind(d.template.as_str())
    .bind(content_enc)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?;
    for (i, s) in d.sentences.iter().enumerate() {
        let idx = i32::try_from(i).map_err(|_| StoreError::Corrupt("sentence index"))?;
        let text: String = s.text.chars().take(SENTENCE_MAX / 4).collect();
        let row = sentence_row(id, idx);
        let text_enc = seal_field(
            keyring,
            &DRAFT_SENTENCE.context(practice, "text", &row),
            text.as_bytes(),
        )
        .await?;
        let evidence: Vec<uuid::Uuid> =
            s.evidence.iter().take(64).map(SegmentId::as_uuid).collect();
        sqlx::query(
            "insert into draft_sentence (practice_id, draft_id, patient_id, idx, section, text_enc,
                evidence, flags)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(practice)
        .bind(id)
        .bind(d.patient)
        .bind(idx)
        .bind(s.section)
        .bind(text_enc)
        .bind(evidence)
        .bind(&s.flags)
        .execute(tx.conn())
        .await?;
    }
    Ok(id)
}

type DraftRow = (
    uuid::Uuid,
    uuid::Uuid,
    Option<uuid::Uuid>,
    Option<uuid::Uuid>,
    Option<uuid::Uuid>,
    bool,
    String,
    Vec<u8>,
    uuid::Uuid,
    chrono::DateTime<chrono::Utc>,
    bool,
);

type SentenceRow = (
    i32,
    String,
    Vec<u8>,
    Vec<uuid::Uuid>,
    Vec<String>,
    Option<uuid::Uuid>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// Draft `id` with its sentences, opened (the caller audits `note_draft.read`). `None` when
/// not visible here.
pub async fn get(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: DraftId,
) -> Result<Option<Draft>, StoreError> {
    let r: Option<DraftRow> = sqlx::query_as(
        "select d.visit_id, d.patient_id, d.note_id, d.capture_id, d.turn_id, d.ai_written,
                d.template, d.content_enc, d.created_by, d.created_at,
                coalesce(n.status = 'signed', false)
           from note_draft d
           left join clinical_note n on n.practice_id = d.practice_id and n.note_id = d.note_id
          where d.practice_id = $1 and d.draft_id = $2",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(r) = r else {
        return Ok(None);
    };
    let rows: Vec<SentenceRow> = sqlx::query_as(
        "select idx, section, text_enc, evidence, flags, accepted_by, accepted_at
           from draft_sentence where practice_id = $1 and draft_id = $2 order by idx",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    let practice = tx.practice();
    let opener = tx.opener(keyring);
    let content = opener
        .open(
            &NOTE_DRAFT.context(practice, "content", id.as_uuid().as_bytes()),
            &r.7,
        )
        .await?;
    let content = NoteContent::from_canonical(&content)
        .map_err(|_| StoreError::Corrupt("note_draft.content is not a note's content"))?;
    let mut sentences = Vec::with_capacity(rows.len());
    for s in rows {
        let row = sentence_row(id, s.0);
        let text = opener
            .open_text(&DRAFT_SENTENCE.context(practice, "text", &row), &s.2)
            .await?;
        sentences.push(Sentence {
            idx: s.0,
            section: s.1,
            text,
            evidence: s.3.into_iter().map(SegmentId::from_uuid).collect(),
            flags: s.4,
            accepted_by: s.5.map(UserId::from_uuid),
            accepted_at: s.6,
        });
    }
    Ok(Some(Draft {
        draft_id: id,
        visit_id: VisitId::from_uuid(r.0),
        patient_id: PatientId::from_uuid(r.1),
        note_id: r.2.map(NoteId::from_uuid),
        note_signed: r.10,
        capture_id: r.3.map(CaptureId::from_uuid),
        turn_id: r.4.map(AssistantTurnId::from_uuid),
        ai_written: r.5,
        template: Template::parse(&r.6).ok_or(StoreError::Corrupt("note_draft.template"))?,
        content,
        created_by: UserId::from_uuid(r.8),
        created_at: r.9,
        sentences,
    }))
}

/// A draft in a list (nothing decrypted).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DraftSummary {
    /// Its id.
    pub draft_id: DraftId,
    /// Whether a model wrote it.
    pub ai_written: bool,
    /// The note made from it.
    pub note_id: Option<NoteId>,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Flagged sentences not yet accepted.
    pub unreviewed: i64,
}

type SummaryRow = (
    uuid::Uuid,
    bool,
    Option<uuid::Uuid>,
    chrono::DateTime<chrono::Utc>,
    i64,
);

/// The drafts of `visit` visible here, newest first (ids and counts only).
pub async fn list_for_visit(
    tx: &mut TenantTx,
    visit: VisitId,
) -> Result<Vec<DraftSummary>, StoreError> {
    let rows: Vec<SummaryRow> = sqlx::query_as(
        "select d.draft_id, d.ai_written, d.note_id, d.created_at,
                    (select count(*) from draft_sentence s
                      where s.practice_id = d.practice_id and s.draft_id = d.draft_id
                        and cardinality(s.flags) > 0 and s.accepted_at is null)
               from note_draft d where d.practice_id = $1 and d.visit_id = $2
              order by d.created_at desc limit 50",
    )
    .bind(tx.practice())
    .bind(visit)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DraftSummary {
            draft_id: DraftId::from_uuid(r.0),
            ai_written: r.1,
            note_id: r.2.map(NoteId::from_uuid),
            created_at: r.3,
            unreviewed: r.4,
        })
        .collect())
}

/// Why a change of a draft was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftRefusal {
    /// No such draft or sentence here.
    NotFound,
    /// The note made from the draft is signed: the draft no longer changes.
    Locked,
}

/// The draft's patient, visit and note, locked for a change; refused when its note is signed.
async fn for_change(
    tx: &mut TenantTx,
    id: DraftId,
) -> Result<Result<(PatientId, VisitId, Option<NoteId>), DraftRefusal>, StoreError> {
    let r: Option<(uuid::Uuid, uuid::Uuid, Option<uuid::Uuid>, Option<String>)> = sqlx::query_as(
        "select d.patient_id, d.visit_id, d.note_id, n.status
           from note_draft d
           left join clinical_note n on n.practice_id = d.practice_id and n.note_id = d.note_id
          where d.practice_id = $1 and d.draft_id = $2
          for update of d",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((p, v, n, status)) = r else {
        return Ok(Err(DraftRefusal::NotFound));
    };
    if status.as_deref() == Some("signed") {
        return Ok(Err(DraftRefusal::Locked));
    }
    Ok(Ok((
        PatientId::from_uuid(p),
        VisitId::from_uuid(v),
        n.map(NoteId::from_uuid),
    )))
}

/// The draft's patient and visit, if visible here (nothing decrypted).
pub async fn owner(
    tx: &mut TenantTx,
    id: DraftId,
) -> Result<Option<(PatientId, VisitId)>, StoreError> {
    let r: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "select patient_id, visit_id from note_draft where practice_id = $1 and draft_id = $2",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(r.map(|(p, v)| (PatientId::from_uuid(p), VisitId::from_uuid(v))))
}

/// Accepts sentence `idx` of draft `id` as the transaction's actor (again: the first
/// acceptance stays). Returns the patient; the caller audits `note_draft.update`.
pub async fn accept(
    tx: &mut TenantTx,
    id: DraftId,
    idx: i32,
) -> Result<Result<PatientId, DraftRefusal>, StoreError> {
    let (patient, _, _) = match for_change(tx, id).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    let (actor, now) = (tx.actor(), tx.now());
    let n = sqlx::query(
        "update draft_sentence set accepted_by = coalesce(accepted_by, $4),
                accepted_at = coalesce(accepted_at, $5)
          where practice_id = $1 and draft_id = $2 and idx = $3",
    )
    .bind(tx.practice())
    .bind(id)
    .bind(idx)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(if n == 1 {
        Ok(patient)
    } else {
        Err(DraftRefusal::NotFound)
    })
}

/// Replaces the text of sentence `idx` of draft `id` with the clinician's `text`, which
/// counts as accepting it (the flags stay, as the record of what was checked). Seals; the
/// caller audits `note_draft.update`.
pub async fn edit(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: DraftId,
    idx: i32,
    text: &str,
) -> Result<Result<PatientId, DraftRefusal>, StoreError> {
    let (patient, _, _) = match for_change(tx, id).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    let practice = tx.practice();
    let row = sentence_row(id, idx);
    let text_enc = seal_field(
        keyring,
        &DRAFT_SENTENCE.context(practice, "text", &row),
        text.as_bytes(),
    )
    .await?;
    let (actor, now) = (tx.actor(), tx.now());
    let n = sqlx::query(
        "update draft_sentence set text_enc = $4, accepted_by = $5, accepted_at = $6
          where practice_id = $1 and draft_id = $2 and idx = $3",
    )
    .bind(practice)
    .bind(id)
    .bind(idx)
    .bind(text_enc)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(if n == 1 {
        Ok(patient)
    } else {
        Err(DraftRefusal::NotFound)
    })
}

/// Links draft `id` to the note made from it (the caller made the note and audits it).
pub async fn link_note(tx: &mut TenantTx, id: DraftId, note: NoteId) -> Result<(), StoreError> {
    sqlx::query("update note_draft set note_id = $3 where practice_id = $1 and draft_id = $2")
        .bind(tx.practice())
        .bind(id)
        .bind(note)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// How many flagged sentences of the drafts linked to `note` no clinician has accepted yet.
pub async fn unreviewed_for_note(tx: &mut TenantTx, note: NoteId) -> Result<i64, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "select count(*) from draft_sentence s
           join note_draft d on d.practice_id = s.practice_id and d.draft_id = s.draft_id
          where d.practice_id = $1 and d.note_id = $2
            and cardinality(s.flags) > 0 and s.accepted_at is null",
    )
    .bind(tx.practice())
    .bind(note)
    .fetch_one(tx.conn())
    .await?;
    Ok(n)
}

/// The latest draft linked to `note`, opened: what the clinician started from (the caller
/// audits).
pub async fn draft_of_note(
    tx: &mut TenantTx,
    keyring: &Keyring,
    note: NoteId,
) -> Result<Option<Draft>, StoreError> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "select draft_id from note_draft where practice_id = $1 and note_id = $2
          order by created_at desc limit 1",
    )
    .bind(tx.practice())
    .bind(note)
    .fetch_optional(tx.conn())
    .await?;
    match id {
        Some(d) => get(tx, keyring, DraftId::from_uuid(d)).await,
        None => Ok(None),
    }
}

/// The draft made by assistant turn `turn` (a drafting turn, or an accepted edit), if one is
/// visible here (nothing decrypted).
pub async fn made_by_turn(
    tx: &mut TenantTx,
    turn: AssistantTurnId,
) -> Result<Option<DraftId>, StoreError> {
    let d: Option<uuid::Uuid> = sqlx::query_scalar(
        "select draft_id from note_draft where practice_id = $1 and turn_id = $2 limit 1",
    )
    .bind(tx.practice())
    .bind(turn)
    .fetch_optional(tx.conn())
    .await?;
    Ok(d.map(DraftId::from_uuid))
}

/// The patient of `visit`, if the visit is visible here (nothing decrypted).
pub async fn visit_patient(
    tx: &mut TenantTx,
    visit: VisitId,
) -> Result<Option<PatientId>, StoreError> {
    let p: Option<uuid::Uuid> =
        sqlx::query_scalar("select patient_id from visit where practice_id = $1 and visit_id = $2")
            .bind(tx.practice())
            .bind(visit)
            .fetch_optional(tx.conn())
            .await?;
    Ok(p.map(PatientId::from_uuid))
}
