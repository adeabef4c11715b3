//! Disclosures of a patient's information outside the practice, and the accounting of
//! disclosures (HIPAA 164.528). Clinician or reception (enforced by RLS). The caller audits.

use chrono::{DateTime, Utc};
use domain::{PatientId, UserId};
use serde::Serialize;

use crate::{StoreError, TenantTx};

/// One disclosure.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Disclosure {
    /// Id.
    pub disclosure_id: uuid::Uuid,
    /// The patient.
    pub patient_id: PatientId,
    /// When the information was disclosed.
    pub disclosed_at: DateTime<Utc>,
    /// To whom (name, and address when known).
    pub recipient: String,
    /// What was disclosed.
    pub description: String,
    /// Why.
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

const COLUMNS: &str = "disclosure_id, patient_id, disclosed_at, recipient, description, purpose, tpo, kind, recorded_by";

/// Records a disclosure of `patient`'s information.
pub async fn create(
    tx: &mut TenantTx,
    patient: PatientId,
    d: &NewDisclosure,
) -> Result<Disclosure, StoreError> {
    let now = tx.now();
    let actor = tx.actor();
    Ok(sqlx::query_as(&format!(
        "insert into disclosure (practice_id, disclosure_id, patient_id, disclosed_at, recipient, description, purpose, tpo, kind, recorded_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(uuid::Uuid::now_v7())
    .bind(patient)
    .bind(d.disclosed_at)
    .bind(&d.recipient)
    .bind(&d.description)
    .bind(&d.purpose)
    .bind(d.tpo)
    .bind(&d.kind)
    .bind(actor)
    .bind(now)
    .fetch_one(tx.conn())
    .await?)
}

/// The disclosures of `patient` in `[from, to)`, oldest first; TPO disclosures only when
/// `include_tpo`.
pub async fn list(
    tx: &mut TenantTx,
    patient: PatientId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    include_tpo: bool,
) -> Result<Vec<Disclosure>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from disclosure
          where practice_id = $1 and patient_id = $2 and disclosed_at >= $3 and disclosed_at < $4
            and ($5 or not tpo)
          order by disclosed_at, disclosure_id limit 5000"
    ))
    .bind(tx.practice())
    .bind(patient)
    .bind(from)
    .bind(to)
    .bind(include_tpo)
    .fetch_all(tx.conn())
    .await?)
}
