//! Transcripts (`transcript_segment`, `transcript_revision`, `migrations/0024_scribe.sql`):
//! the segments transcription turns returned for a capture's chunks, and the clinician's
//! corrections.
//!
//! # Guarantees
//! - Segment text is a field ciphertext bound to (practice, `transcript_segment`, `text`,
//!   segment id); every text a segment has had is kept in `transcript_revision` (bound to
//!   segment id ‖ revision): revision 0 is what the provider returned, each correction adds
//!   the next. A correction never rewrites history.
//! - Segment times are milliseconds from the capture's start: the chunk's offset plus the
//!   provider's time within the chunk.
//! - Speaker labels are kept only as `speaker_<n>` (a number or a single letter, as diarizing
//!   providers label speakers): a provider's label can never carry a name into the clear column.
//! - The transcription job works as the owner role ([`ChunkWork`]): it claims one pending chunk
//!   with `for update skip locked`, so two workers never transcribe the same chunk, and the
//!   chunk's new state, its turn and its segments commit together.
//! - Reads ([`segments`], [`history`]) decrypt; the caller audits (`transcript.read`), and the
//!   transaction refuses to commit otherwise.

use crypto::Keyring;
use domain::{AssistantTurnId, CaptureId, PatientId, PracticeId, SegmentId, UserId, VisitId};

use crate::sealed_columns::{TRANSCRIPT_REVISION, TRANSCRIPT_SEGMENT, seal_field, version_row_id};
use crate::turns::{NewTurn, record_as_owner};
use crate::{OwnerStore, OwnerTx, StoreError, TenantTx};

/// Longest segment text accepted (bytes).
pub const SEGMENT_TEXT_MAX: usize = 16 * 1024;

/// Most segments one chunk may produce.
pub const SEGMENTS_PER_CHUNK_MAX: usize = 2000;

/// A chunk's transcription state (`capture_chunk.transcription`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    /// Not transcribed yet (or to be retried).
    Pending,
    /// Transcribed, with segments.
    Done,
    /// Transcribed: no speech.
    Silent,
    /// Gave up after the retries, or the audio is gone.
    Failed,
    /// The provider gate refused the provider: nothing was sent.
    Refused,
}

impl ChunkState {
    /// The stable name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ChunkState::Pending => "pending",
            ChunkState::Done => "done",
            ChunkState::Silent => "silent",
            ChunkState::Failed => "failed",
            ChunkState::Refused => "refused",
        }
    }
}

/// A claimed chunk.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Its capture.
    pub capture_id: CaptureId,
    /// Its sequence number in the capture.
    pub seq: i32,
    /// The patient.
    pub patient_id: PatientId,
    /// The visit.
    pub visit_id: VisitId,
    /// The blob store object holding its audio (`None`: purged).
    pub object_id: Option<crypto::BlobId>,
    /// Where it starts in the capture (ms).
    pub offset_ms: i64,
    /// Its length (ms).
    pub duration_ms: i32,
    /// Transcription attempts so far (before this one).
    pub attempts: i16,
}

/// One segment to store.
#[derive(Debug, Clone)]
pub struct NewSegment<'a> {
    /// Start within the chunk (ms).
    pub start_ms: u64,
    /// End within the chunk (ms).
    pub end_ms: u64,
    /// The provider's speaker label, if any.
    pub speaker: Option<&'a str>,
    /// The text.
    pub text: &'a str,
}

/// A chunk claimed by the transcription job: its owner transaction holds the chunk's row lock
/// until [`ChunkWork::finish`] commits (or the value is dropped, which rolls back and leaves
/// the chunk pending).
#[derive(Debug)]
pub struct ChunkWork {
    tx: OwnerTx,
    /// The chunk.
    pub chunk: Chunk,
}

type ChunkRow = (
    uuid::Uuid,
    i32,
    uuid::Uuid,
    uuid::Uuid,
    Option<uuid::Uuid>,
    i64,
    i32,
    i16,
);

impl OwnerStore {
    /// Claims the oldest pending chunk of `practice` not claimed by another worker (`for
    /// update skip locked`), in an owner transaction stamped `now`. `None` when there is none.
    pub async fn claim_chunk(
        &self,
        practice: PracticeId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<ChunkWork>, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let r: Option<ChunkRow> = sqlx::query_as(
            "select k.capture_id, k.seq, c.patient_id, c.visit_id, b.object_id, k.offset_ms,
                    k.duration_ms, k.attempts
               from capture_chunk k
               join capture c on c.practice_id = k.practice_id and c.capture_id = k.capture_id
               left join blob_object b on b.practice_id = k.practice_id and b.blob_id = k.blob_id
              where k.practice_id = $1 and k.transcription = 'pending'
              order by k.received_at, k.seq
              limit 1
              for update of k skip locked",
        )
        .bind(practice)
        .fetch_optional(tx.conn())
        .await?;
        let Some(r) = r else {
            tx.rollback().await?;
            return Ok(None);
        };
        Ok(Some(ChunkWork {
            tx,
            chunk: Chunk {
                capture_id: CaptureId::from_uuid(r.0),
                seq: r.1,
                patient_id: PatientId::from_uuid(r.2),
                visit_id: VisitId::from_uuid(r.3),
                object_id: r.4.map(crypto::BlobId::from_uuid),
                offset_ms: r.5,
                duration_ms: r.6,
                attempts: r.7,
            },
        }))
    }
}

/// `speaker_<n>` for a provider's speaker label that is a number or a single letter
/// (`SPEAKER_00`, `spk_1`, `A`), lower case; `None` for anything else, so a label can never
/// carry a name into the clear column.
fn speaker_label(raw: &str) -> Option<String> {
    let lower = raw.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("speaker")
        .or_else(|| lower.strip_prefix("spk"))
        .unwrap_or(&lower)
        .trim_start_matches(['_', '-', ' ']);
    let number = !rest.is_empty() && rest.len() <= 4 && rest.chars().all(|c| c.is_ascii_digit());
    let letter = rest.len() == 1 && rest.chars().all(|c| c.is_ascii_lowercase());
    (number || letter).then(|| format!("speaker_{rest}"))
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Inserts one segment (revision 0, also kept in the history), sealed.
#[expect(clippy::too_many_arguments, reason = "one row's columns")]
async fn insert_segment(
    conn: &mut sqlx::PgConnection,
    keyring: &Keyring,
    practice: PracticeId,
    capture: CaptureId,
    patient: PatientId,
    seq: i32,
    offset_ms: i64,
    turn: AssistantTurnId,
    now: chrono::DateTime<chrono::Utc>,
    s: &NewSegment<'_>,
) -> Result<SegmentId, StoreError> {
    let id = SegmentId::new();
    let text = s.text.trim();
    let cut: String = text.chars().take(SEGMENT_TEXT_MAX / 4).collect();
    let text_enc = seal_field(
        keyring,
        &TRANSCRIPT_SEGMENT.context(practice, "text", id.as_uuid().as_bytes()),
        cut.as_bytes(),
    )
    .await?;
    let rev_row = version_row_id(id.as_uuid(), 0);
    let rev_enc = seal_field(
        keyring,
        &TRANSCRIPT_REVISION.context(practice, "text", &rev_row),
        cut.as_bytes(),
    )
    .await?;
    let start = offset_ms.saturating_add(ms(s.start_ms));
    let end = offset_ms.saturating_add(ms(s.end_ms.max(s.start_ms)));
    sqlx::query(
        "insert into transcript_segment (practice_id, segment_id, capture_id, patient_id, chunk_seq,
            start_ms, end_ms, speaker, turn_id, revision, text_enc)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10)",
    )
    .bind(practice)
    .bind(id)
    .bind(capture)
    .bind(patient)
    .bind(seq)
    .bind(start)
    .bind(end)
    .bind(s.speaker.and_then(speaker_label))
    .bind(turn)
    .bind(text_enc)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into transcript_revision (practice_id, segment_id, patient_id, revision, text_enc,
            revised_by, revised_at)
         values ($1, $2, $3, 0, $4, null, $5)",
    )
    .bind(practice)
    .bind(id)
    .bind(patient)
    .bind(rev_enc)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

impl ChunkWork {
    /// The owner transaction (for the store's own queries).
    pub(crate) fn tx_mut(&mut self) -> &mut OwnerTx {
        &mut self.tx
    }

    /// The practice.
    #[must_use]
    pub fn practice(&self) -> PracticeId {
        self.tx.practice()
    }

    /// Records the chunk's transcription turn and audits it (`assistant.turn`, same
    /// transaction).
    pub async fn record_turn(
        &mut self,
        keyring: &Keyring,
        turn: &NewTurn<'_>,
    ) -> Result<AssistantTurnId, StoreError> {
        record_as_owner(&mut self.tx, keyring, turn).await
    }

    /// Stores the segments `turn` returned, times offset by the chunk's offset; blank texts are
    /// skipped. Returns how many were stored.
    pub async fn store_segments(
        &mut self,
        keyring: &Keyring,
        turn: AssistantTurnId,
        segments: &[NewSegment<'_>],
    ) -> Result<usize, StoreError> {
        let practice = self.tx.practice();
        let now = self.tx.now();
        let c = self.chunk.clone();
        let mut n = 0;
        for s in segments
            .iter()
            .filter(|s| !s.text.trim().is_empty())
            .take(SEGMENTS_PER_CHUNK_MAX)
        {
            insert_segment(
                self.tx.conn(),
                keyring,
                practice,
                c.capture_id,
                c.patient_id,
                c.seq,
                c.offset_ms,
                turn,
                now,
                s,
            )
            .await?;
            n += 1;
        }
        Ok(n)
    }

    /// Sets the chunk's state, counts this attempt, and commits everything done on it.
    pub async fn finish(mut self, state: ChunkState) -> Result<(), StoreError> {
        sqlx::query(
            "update capture_chunk set transcription = $4, attempts = attempts + 1
              where practice_id = $1 and capture_id = $2 and seq = $3",
        )
        .bind(self.tx.practice())
        .bind(self.chunk.capture_id)
        .bind(self.chunk.seq)
        .bind(state.as_str())
        .execute(self.tx.conn())
        .await?;
        self.tx.commit().await
    }
}

/// A capture as the transcript pages need it.
#[derive(Debug, Clone, Copy)]
pub struct CaptureRef {
    /// The capture.
    pub capture_id: CaptureId,
    /// Its patient.
    pub patient_id: PatientId,
    /// Its visit.
    pub visit_id: VisitId,
}

/// Capture `id` if visible here.
pub async fn capture(tx: &mut TenantTx, id: CaptureId) -> Result<Option<CaptureRef>, StoreError> {
    let r: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "select patient_id, visit_id from capture where practice_id = $1 and capture_id = $2",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(r.map(|(p, v)| CaptureRef {
        capture_id: id,
        patient_id: PatientId::from_uuid(p),
        visit_id: VisitId::from_uuid(v),
    }))
}

/// The captures of `visit` visible here, oldest first.
pub async fn captures_of_visit(
    tx: &mut TenantTx,
    visit: VisitId,
) -> Result<Vec<CaptureRef>, StoreError> {
    let r: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "select capture_id, patient_id from capture where practice_id = $1 and visit_id = $2
          order by started_at",
    )
    .bind(tx.practice())
    .bind(visit)
    .fetch_all(tx.conn())
    .await?;
    Ok(r.into_iter()
        .map(|(c, p)| CaptureRef {
            capture_id: CaptureId::from_uuid(c),
            patient_id: PatientId::from_uuid(p),
            visit_id: visit,
        })
        .collect())
}

/// How far a capture's transcription has come: chunks by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Chunks waiting (or to be retried).
    pub pending: i64,
    /// Chunks transcribed with speech.
    pub done: i64,
    /// Chunks with no speech.
    pub silent: i64,
    /// Chunks given up on.
    pub failed: i64,
    /// Chunks the provider gate refused.
    pub refused: i64,
}

/// The chunk states of capture `id` (ids and counts only; nothing decrypted).
pub async fn progress(tx: &mut TenantTx, id: CaptureId) -> Result<Progress, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select transcription, count(*) from capture_chunk
          where practice_id = $1 and capture_id = $2 group by transcription",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    let mut p = Progress::default();
    for (s, n) in rows {
        match s.as_str() {
            "pending" => p.pending = n,
            "done" => p.done = n,
            "silent" => p.silent = n,
            "failed" => p.failed = n,
            "refused" => p.refused = n,
            _ => {}
        }
    }
    Ok(p)
}

/// One segment, opened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Segment {
    /// Its id.
    pub segment_id: SegmentId,
    /// Its capture.
    pub capture_id: CaptureId,
    /// The chunk it came from.
    pub chunk_seq: i32,
    /// Start in the capture (ms).
    pub start_ms: i64,
    /// End in the capture (ms).
    pub end_ms: i64,
    /// The speaker label, when the provider gave one.
    pub speaker: Option<String>,
    /// The current revision (0: as transcribed).
    pub revision: i32,
    /// The current text.
    pub text: String,
}

type SegmentRow = (
    uuid::Uuid,
    uuid::Uuid,
    i32,
    i64,
    i64,
    Option<String>,
    i32,
    Vec<u8>,
);

async fn open_segments(
    tx: &mut TenantTx,
    keyring: &Keyring,
    rows: Vec<SegmentRow>,
) -> Result<Vec<Segment>, StoreError> {
    let practice = tx.practice();
    let opener = tx.opener(keyring);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let text = opener
            .open_text(
                &TRANSCRIPT_SEGMENT.context(practice, "text", r.0.as_bytes()),
                &r.7,
            )
            .await?;
        out.push(Segment {
            segment_id: SegmentId::from_uuid(r.0),
            capture_id: CaptureId::from_uuid(r.1),
            chunk_seq: r.2,
            start_ms: r.3,
            end_ms: r.4,
            speaker: r.5,
            revision: r.6,
            text,
        });
    }
    Ok(out)
}

const SEGMENT_COLUMNS: &str =
    "segment_id, capture_id, chunk_seq, start_ms, end_ms, speaker, revision, text_enc";

/// The segments of capture `id` in time order, opened (the caller audits `transcript.read`).
pub async fn segments(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: CaptureId,
) -> Result<Vec<Segment>, StoreError> {
    let rows: Vec<SegmentRow> = sqlx::query_as(&format!(
        "select {SEGMENT_COLUMNS} from transcript_segment
          where practice_id = $1 and capture_id = $2 order by start_ms, chunk_seq, segment_id"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    open_segments(tx, keyring, rows).await
}

/// The segments of every capture of `visit` in capture and time order, opened (the caller
/// audits).
pub async fn visit_segments(
    tx: &mut TenantTx,
    keyring: &Keyring,
    visit: VisitId,
) -> Result<Vec<Segment>, StoreError> {
    let rows: Vec<SegmentRow> = sqlx::query_as(
        "select s.segment_id, s.capture_id, s.chunk_seq, s.start_ms, s.end_ms, s.speaker,
                s.revision, s.text_enc
           from transcript_segment s
           join capture c on c.practice_id = s.practice_id and c.capture_id = s.capture_id
          where s.practice_id = $1 and c.visit_id = $2
          order by c.started_at, s.start_ms, s.chunk_seq, s.segment_id",
    )
    .bind(tx.practice())
    .bind(visit)
    .fetch_all(tx.conn())
    .await?;
    open_segments(tx, keyring, rows).await
}

/// A segment's patient and capture, if visible here (nothing decrypted).
pub async fn segment_owner(
    tx: &mut TenantTx,
    id: SegmentId,
) -> Result<Option<(PatientId, CaptureId)>, StoreError> {
    let r: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "select patient_id, capture_id from transcript_segment
          where practice_id = $1 and segment_id = $2",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(r.map(|(p, c)| (PatientId::from_uuid(p), CaptureId::from_uuid(c))))
}

/// Why a correction was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrectionRefusal {
    /// No such segment here.
    NotFound,
    /// The segment was corrected since the revision the clinician edited.
    Stale,
}

/// Corrects segment `id` as the transaction's actor: the new text becomes revision
/// `expected + 1` (refused as stale if the current revision is not `expected`), and the
/// earlier text stays in the history. Seals; decrypts nothing; the caller audits
/// `transcript.correct`.
pub async fn correct(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: SegmentId,
    expected: Option<i32>,
    text: &str,
) -> Result<Result<i32, CorrectionRefusal>, StoreError> {
    let r: Option<(i32, uuid::Uuid)> = sqlx::query_as(
        "select revision, patient_id from transcript_segment
          where practice_id = $1 and segment_id = $2 for update",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((current, patient)) = r else {
        return Ok(Err(CorrectionRefusal::NotFound));
    };
    if expected.is_some_and(|e| e != current) {
        return Ok(Err(CorrectionRefusal::Stale));
    }
    let next = current + 1;
    let practice = tx.practice();
    let seg_enc = seal_field(
        keyring,
        &TRANSCRIPT_SEGMENT.context(practice, "text", id.as_uuid().as_bytes()),
        text.as_bytes(),
    )
    .await?;
    let rev_row = version_row_id(id.as_uuid(), next);
    let rev_enc = seal_field(
        keyring,
        &TRANSCRIPT_REVISION.context(practice, "text", &rev_row),
        text.as_bytes(),
    )
    .await?;
    let (actor, now) = (tx.actor(), tx.now());
    sqlx::query(
        "insert into transcript_revision (practice_id, segment_id, patient_id, revision, text_enc,
            revised_by, revised_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(practice)
    .bind(id)
    .bind(patient)
    .bind(next)
    .bind(rev_enc)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "update transcript_segment set revision = $3, text_enc = $4
          where practice_id = $1 and segment_id = $2",
    )
    .bind(practice)
    .bind(id)
    .bind(next)
    .bind(seg_enc)
    .execute(tx.conn())
    .await?;
    Ok(Ok(next))
}

/// One revision of a segment, opened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Revision {
    /// The revision (0: as transcribed).
    pub revision: i32,
    /// Its text.
    pub text: String,
    /// Who wrote it (`None`: the transcription).
    pub revised_by: Option<UserId>,
    /// When.
    pub revised_at: chrono::DateTime<chrono::Utc>,
}

type RevisionRow = (
    i32,
    Vec<u8>,
    Option<uuid::Uuid>,
    chrono::DateTime<chrono::Utc>,
);

/// Every revision of segment `id`, oldest first, opened (the caller audits).
pub async fn history(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: SegmentId,
) -> Result<Vec<Revision>, StoreError> {
    let rows: Vec<RevisionRow> = sqlx::query_as(
        "select revision, text_enc, revised_by, revised_at from transcript_revision
              where practice_id = $1 and segment_id = $2 order by revision",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    let practice = tx.practice();
    let opener = tx.opener(keyring);
    let mut out = Vec::with_capacity(rows.len());
    for (rev, ct, by, at) in rows {
        let row = version_row_id(id.as_uuid(), rev);
        let text = opener
            .open_text(&TRANSCRIPT_REVISION.context(practice, "text", &row), &ct)
            .await?;
        out.push(Revision {
            revision: rev,
            text,
            revised_by: by.map(UserId::from_uuid),
            revised_at: at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::speaker_label;

    #[test]
    fn speaker_labels_are_normalized() {
        assert_eq!(speaker_label("SPEAKER_00").as_deref(), Some("speaker_00"));
        assert_eq!(speaker_label("A").as_deref(), Some("speaker_a"));
        assert_eq!(speaker_label("spk-1").as_deref(), Some("speaker_1"));
        assert_eq!(speaker_label("Dr. Jane Doe"), None);
        assert_eq!(speaker_label("speaker_jane"), None);
        assert_eq!(speaker_label(" .,"), None);
    }
}
