//! Periodontal exams: one perio charting session per exam (clinical content: visible only
//! where `app.clinical_visible(patient)` holds, enforced by RLS). Every function runs inside
//! the caller's [`TenantTx`]; the caller audits, in the same transaction.
//!
//! # Encryption at rest
//! The whole engine state ([`perio::Session`]: settings, chart, cursor, undo history and a
//! final held for confirmation) is serialized and stored as one field ciphertext
//! (`session_enc`) bound to (practice, `perio_exam`, `session`, exam id). A ciphertext copied
//! to another exam or practice fails to decrypt. No chart value and no dictated word is
//! written in the clear; the session itself keeps events, never transcripts.
//!
//! # Concurrency
//! `version` counts changes. [`get_for_update`] locks the row for the rest of the
//! transaction, so finals on one exam apply one after the other, each to the state the
//! previous one left; [`save`] writes only over the version it read.

use chrono::{DateTime, Utc};
use crypto::{FieldContext, Keyring};
use domain::{PatientId, PerioExamId, PracticeId, UserId};

use crate::entry::Opener;
use crate::sealed_columns::{PERIO_EXAM, crypto_error, write_keys};
use crate::{OwnerStore, StoreError, TenantTx};

/// The table name bound into every exam ciphertext.
pub const TABLE: &str = PERIO_EXAM.table;
/// The column name bound into every exam ciphertext.
const COLUMN: &str = "session";
/// Most exams one list returns.
pub const LIST_MAX: i64 = 100;

/// An exam without its chart (what a list shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExamInfo {
    /// Id.
    pub exam_id: PerioExamId,
    /// The patient.
    pub patient_id: PatientId,
    /// The clinician who created it.
    pub clinician_id: UserId,
    /// Created (the exam date).
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Change counter, 1 at creation.
    pub version: i64,
}

/// An exam with its decrypted charting session.
#[derive(Debug, Clone)]
pub struct Exam {
    /// Ids, times and version.
    pub info: ExamInfo,
    /// The charting session (settings, chart, cursor, history, pending final).
    pub session: perio::Session,
}

#[derive(sqlx::FromRow)]
struct Row {
    exam_id: PerioExamId,
    patient_id: PatientId,
    clinician_id: UserId,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl From<Row> for ExamInfo {
    fn from(r: Row) -> Self {
        Self {
            exam_id: r.exam_id,
            patient_id: r.patient_id,
            clinician_id: r.clinician_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(sqlx::FromRow)]
struct FullRow {
    #[sqlx(flatten)]
    info: Row,
    session_enc: Vec<u8>,
}

const INFO_COLUMNS: &str = "exam_id, patient_id, clinician_id, created_at, updated_at, version";

fn context(practice: PracticeId, id: &uuid::Uuid) -> FieldContext<'_> {
    PERIO_EXAM.context(practice, COLUMN, id.as_bytes())
}

async fn seal(
    keyring: &Keyring,
    practice: PracticeId,
    exam: PerioExamId,
    session: &perio::Session,
) -> Result<Vec<u8>, StoreError> {
    let plain = zeroize::Zeroizing::new(
        serde_json::to_vec(session)
            .map_err(|_| StoreError::Corrupt("a perio session could not be serialized"))?,
    );
    let keys = write_keys(keyring, practice).await?;
    let uuid = exam.as_uuid();
    crypto::encrypt_field(keys.active(), &context(practice, &uuid), &plain)
        .map_err(|e| crypto_error(&e))
}

async fn open(opener: &Opener<'_>, practice: PracticeId, row: FullRow) -> Result<Exam, StoreError> {
    let uuid = row.info.exam_id.as_uuid();
    let plain = zeroize::Zeroizing::new(
        opener
            .open(&context(practice, &uuid), &row.session_enc)
            .await?,
    );
    let session: perio::Session = serde_json::from_slice(&plain)
        .map_err(|_| StoreError::Corrupt("a stored perio session is not readable"))?;
    Ok(Exam {
        info: row.info.into(),
        session,
    })
}

/// Whether the actor may chart `patient`: the patient exists in the practice and
/// `app.clinical_visible` holds for it (a clinician with the patient on their care team, a
/// practice-wide scope, or an open break-glass). Routes answer
/// 404 when it does not, so an invisible patient looks like an absent one.
pub async fn patient_visible(tx: &mut TenantTx, patient: PatientId) -> Result<bool, StoreError> {
    let visible: Option<bool> = sqlx::query_scalar(
        "select app.clinical_visible(patient_id) from patient where practice_id = $1 and patient_id = $2",
    )
    .bind(tx.practice())
    .bind(patient)
    .fetch_optional(tx.conn())
    .await?;
    Ok(visible == Some(true))
}

/// Creates an exam for `patient`, authored by the transaction's actor, holding `session`
/// (sealed). The caller checks [`patient_visible`] first and audits.
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    session: &perio::Session,
) -> Result<ExamInfo, StoreError> {
    let practice = tx.practice();
    let now = tx.now();
    let id = PerioExamId::new();
    let ct = seal(keyring, practice, id, session).await?;
    let row: Row = sqlx::query_as(&format!(
        "insert into perio_exam (practice_id, exam_id, patient_id, clinician_id, created_at, updated_at, version, session_enc)
         values ($1, $2, $3, $4, $5, $5, 1, $6)
         returning {INFO_COLUMNS}"
    ))
    .bind(practice)
    .bind(id)
    .bind(patient)
    .bind(tx.actor())
    .bind(now)
    .bind(&ct)
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into())
}

/// A patient's exams, newest first (at most [`LIST_MAX`]); nothing is decrypted.
pub async fn list_for_patient(
    tx: &mut TenantTx,
    patient: PatientId,
) -> Result<Vec<ExamInfo>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {INFO_COLUMNS} from perio_exam where practice_id = $1 and patient_id = $2
          order by created_at desc, exam_id desc limit $3"
    ))
    .bind(tx.practice())
    .bind(patient)
    .bind(LIST_MAX)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

async fn fetch(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    exam: PerioExamId,
    lock: bool,
) -> Result<Option<Exam>, StoreError> {
    let row: Option<FullRow> = sqlx::query_as(&format!(
        "select {INFO_COLUMNS}, session_enc from perio_exam
          where practice_id = $1 and patient_id = $2 and exam_id = $3{}",
        if lock { " for update" } else { "" }
    ))
    .bind(tx.practice())
    .bind(patient)
    .bind(exam)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(r) => {
            let practice = tx.practice();
            Ok(Some(open(&tx.opener(keyring), practice, r).await?))
        }
        None => Ok(None),
    }
}

/// Reads and decrypts one exam of `patient` (`None` if it does not exist, belongs to
/// another patient, or is not visible to the actor).
pub async fn get(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    exam: PerioExamId,
) -> Result<Option<Exam>, StoreError> {
    fetch(tx, keyring, patient, exam, false).await
}

/// [`get`], locking the row until the transaction ends: the read before a change.
pub async fn get_for_update(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    exam: PerioExamId,
) -> Result<Option<Exam>, StoreError> {
    fetch(tx, keyring, patient, exam, true).await
}

/// Writes a changed session over `read_version` (the version [`get_for_update`] returned),
/// sealed anew under the practice's active data key; returns the exam with its new version
/// and time. [`StoreError::Conflict`] (`perio_exam_version`) if the exam changed meanwhile.
pub async fn save(
    tx: &mut TenantTx,
    keyring: &Keyring,
    info: &ExamInfo,
    session: &perio::Session,
) -> Result<ExamInfo, StoreError> {
    let practice = tx.practice();
    let ct = seal(keyring, practice, info.exam_id, session).await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "update perio_exam set session_enc = $4, version = version + 1, updated_at = greatest($5, created_at)
          where practice_id = $1 and exam_id = $2 and version = $3
          returning {INFO_COLUMNS}"
    ))
    .bind(practice)
    .bind(info.exam_id)
    .bind(info.version)
    .bind(&ct)
    .bind(tx.now())
    .fetch_optional(tx.conn())
    .await?;
    row.map(Into::into)
        .ok_or_else(|| StoreError::Conflict("perio_exam_version".to_owned()))
}

impl OwnerStore {
    /// Seeds an exam for fixtures and the demo: applies `finals` in order to a fresh session
    /// with `settings` and stores the result sealed, authored by `clinician`. Audited as
    /// `perio_exam.create` (an administrative write, no actor).
    pub async fn seed_perio_exam(
        &self,
        practice: PracticeId,
        patient: PatientId,
        clinician: UserId,
        settings: perio::Settings,
        finals: &[&str],
        now: DateTime<Utc>,
    ) -> Result<PerioExamId, StoreError> {
        let mut session = perio::Session::new(settings);
        for text in finals {
            session.apply_final(text);
        }
        let id = PerioExamId::new();
        let ct = seal(self.keyring()?, practice, id, &session).await?;
        let mut tx = self.begin_at(practice, now).await?;
        sqlx::query(
            "insert into perio_exam (practice_id, exam_id, patient_id, clinician_id, created_at, updated_at, version, session_enc)
             values ($1, $2, $3, $4, $5, $5, 1, $6)",
        )
        .bind(practice)
        .bind(id)
        .bind(patient)
        .bind(clinician)
        .bind(now)
        .bind(&ct)
        .execute(tx.conn())
        .await?;
        tx.audit(
            domain::AuditAction::PerioExamCreate,
            Some(domain::AuditObject::perio_exam(id)),
            Some(patient),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}
