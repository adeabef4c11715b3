//! Disclosures of a patient's information outside the practice, and the accounting of
//! disclosures (HIPAA 164.528). Clinician or reception (enforced by RLS). The caller audits.
//!
//! # Encryption at rest
//! Recipient, description and purpose are free text a person typed, so they are stored only
//! as field ciphertexts (`recipient_enc`, `description_enc`, `purpose_enc`), each bound to
//! (practice, `disclosure`, column, disclosure id). `kind` is a closed category and `tpo` a
//! flag: they stay in the clear (see [`crate::sealed_columns`]). Rows written before
//! migration 0016 keep their plaintext, read as it is, until the start-up job
//! ([`crate::OwnerStore::encrypt_existing`]) seals them; the database refuses plaintext in any
//! new row.

use chrono::{DateTime, Utc};
use crypto::{FieldContext, Keyring};
use domain::{PatientId, PracticeId, UserId};
use serde::Serialize;
use sqlx::PgConnection;

use crate::entry::Opener;
use crate::sealed_columns::{DISCLOSURE, seal_field};
use crate::{StoreError, TenantTx};

/// The table name bound into every disclosure ciphertext.
pub const TABLE: &str = DISCLOSURE.table;

/// One disclosure.
#[derive(Debug, Clone, Serialize)]
pub struct Disclosure {
    /// Id.
    pub disclosure_id: uuid::Uuid,
    /// The patient.
    pub patient_id: PatientId,
    /// When the information was disclosed.
    pub disclosed_at: DateTime<Utc>,
    /// To whom (name, and address when known). Decrypted.
    pub recipient: String,
    /// What was disclosed. Decrypted.
    pub description: String,
    /// Why. Decrypted.
    pub purpose: String,
    /// Treatment, payment or health-care operations (excluded from the accounting).
    pub tpo: bool,
    /// `export`, `sharing`, `support_access` or `other`.
    pub kind: String,
    /// Who recorded it.
    pub recorded_by: Option<UserId>,
}

/// A new disclosure (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewDisclosure {
    /// When.
    pub disclosed_at: DateTime<Utc>,
    /// To whom.
    pub recipient: String,
    /// What.
    pub description: String,
    /// Why.
    pub purpose: String,
    /// TPO?
    pub tpo: bool,
    /// Kind.
    pub kind: String,
}

/// The field context of one sealed column of disclosure `id`.
pub(crate) fn context<'a>(
    practice: PracticeId,
    column: &'a str,
    id: &'a uuid::Uuid,
) -> FieldContext<'a> {
    DISCLOSURE.context(practice, column, id.as_bytes())
}

/// Inserts a disclosure of `patient` recorded by `recorded_by` at `now`, its recipient,
/// description and purpose sealed with the practice's active key. Shared by the API and the
/// support-access audit path.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    keyring: &Keyring,
    practice: PracticeId,
    patient: PatientId,
    recorded_by: Option<UserId>,
    now: DateTime<Utc>,
    d: &NewDisclosure,
) -> Result<Disclosure, StoreError> {
    let id = uuid::Uuid::now_v7();
    let mut sealed = Vec::with_capacity(DISCLOSURE.columns.len());
    for (column, plain) in DISCLOSURE
        .columns
        .iter()
        .zip([&d.recipient, &d.description, &d.purpose])
    {
        let ctx = context(practice, column.name, &id);
        sealed.push(seal_field(keyring, &ctx, plain.as_bytes()).await?);
    }
    let [recipient_enc, description_enc, purpose_enc]: [Vec<u8>; 3] = sealed
        .try_into()
        .map_err(|_| StoreError::Corrupt("a disclosure field was not sealed"))?;
    sqlx::query(
        "insert into disclosure (practice_id, disclosure_id, patient_id, disclosed_at, recipient_enc,
            description_enc, purpose_enc, tpo, kind, recorded_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(practice)
    .bind(id)
    .bind(patient)
    .bind(d.disclosed_at)
    .bind(&recipient_enc)
    .bind(&description_enc)
    .bind(&purpose_enc)
    .bind(d.tpo)
    .bind(&d.kind)
    .bind(recorded_by)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(Disclosure {
        disclosure_id: id,
        patient_id: patient,
        disclosed_at: d.disclosed_at,
        recipient: d.recipient.clone(),
        description: d.description.clone(),
        purpose: d.purpose.clone(),
        tpo: d.tpo,
        kind: d.kind.clone(),
        recorded_by,
    })
}

/// Records a disclosure of `patient`'s information, recorded by the actor (details sealed).
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    d: &NewDisclosure,
) -> Result<Disclosure, StoreError> {
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    insert(tx.conn(), keyring, practice, patient, Some(actor), now, d).await
}

/// The stored row: ciphertexts, plus legacy plaintext until the row is sealed.
#[derive(sqlx::FromRow)]
struct Row {
    disclosure_id: uuid::Uuid,
    patient_id: PatientId,
    disclosed_at: DateTime<Utc>,
    recipient: Option<String>,
    description: Option<String>,
    purpose: Option<String>,
    recipient_enc: Option<Vec<u8>>,
    description_enc: Option<Vec<u8>>,
    purpose_enc: Option<Vec<u8>>,
    tpo: bool,
    kind: String,
    recorded_by: Option<UserId>,
}

const COLUMNS: &str = "disclosure_id, patient_id, disclosed_at, recipient, description, purpose,
    recipient_enc, description_enc, purpose_enc, tpo, kind, recorded_by";

/// One sealed column of a row: the ciphertext opened, else the legacy plaintext.
async fn open_column(
    opener: &Opener<'_>,
    ctx: &FieldContext<'_>,
    enc: Option<&[u8]>,
    legacy: Option<String>,
) -> Result<String, StoreError> {
    match (enc, legacy) {
        (Some(ct), _) => opener.open_text(ctx, ct).await,
        (None, Some(plain)) => Ok(plain),
        (None, None) => Err(StoreError::Corrupt("a disclosure field is missing")),
    }
}

impl Row {
    async fn open(
        self,
        opener: &Opener<'_>,
        practice: PracticeId,
    ) -> Result<Disclosure, StoreError> {
        let id = self.disclosure_id;
        let mut fields = Vec::with_capacity(DISCLOSURE.columns.len());
        for (column, (enc, legacy)) in DISCLOSURE.columns.iter().zip([
            (self.recipient_enc, self.recipient),
            (self.description_enc, self.description),
            (self.purpose_enc, self.purpose),
        ]) {
            let ctx = context(practice, column.name, &id);
            fields.push(open_column(opener, &ctx, enc.as_deref(), legacy).await?);
        }
        let [recipient, description, purpose]: [String; 3] = fields
            .try_into()
            .map_err(|_| StoreError::Corrupt("a disclosure field was not opened"))?;
        Ok(Disclosure {
            recipient,
            description,
            purpose,
            disclosure_id: id,
            patient_id: self.patient_id,
            disclosed_at: self.disclosed_at,
            tpo: self.tpo,
            kind: self.kind,
            recorded_by: self.recorded_by,
        })
    }
}

/// The disclosures of `patient` in `[from, to)`, oldest first, decrypted; TPO disclosures only
/// when `include_tpo`.
pub async fn list(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    include_tpo: bool,
) -> Result<Vec<Disclosure>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from disclosure
          where practice_id = $1 and patient_id = $2 and disclosed_at >= $3 and disclosed_at < $4
            and ($5 or not tpo)
          order by disclosed_at, disclosure_id limit 5000"
    ))
    .bind(practice)
    .bind(patient)
    .bind(from)
    .bind(to)
    .bind(include_tpo)
    .fetch_all(tx.conn())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let opener = tx.opener(keyring);
    for r in rows {
        out.push(r.open(&opener, practice).await?);
    }
    Ok(out)
}
