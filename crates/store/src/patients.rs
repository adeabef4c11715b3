//! Patients: demographics and contact details (clinician or reception; enforced by RLS).
//! Every function runs inside the caller's [`TenantTx`]; the caller audits.
#![allow(
    clippy::option_option,
    reason = "a PATCH tells an absent field (keep) from null (clear)"
)]

use chrono::{DateTime, NaiveDate, Utc};
use domain::PatientId;
use serde::Serialize;

use crate::{StoreError, TenantTx};

/// A patient row.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Patient {
    /// Id.
    pub patient_id: PatientId,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Phone.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Fields of a new patient (already validated by the caller).
#[derive(Debug, Clone)]
pub struct NewPatient {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Phone.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
}

/// A partial update; `None` leaves a field as it is, `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct PatientPatch {
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<Option<NaiveDate>>,
    /// Phone.
    pub phone: Option<Option<String>>,
    /// Email.
    pub email: Option<Option<String>>,
}

const COLUMNS: &str =
    "patient_id, given_name, family_name, date_of_birth, phone, email, created_at, updated_at";

/// Reads one patient of the transaction's practice.
pub async fn get(tx: &mut TenantTx, id: PatientId) -> Result<Option<Patient>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from patient where practice_id = $1 and patient_id = $2"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// Lists patients by family name, given name, id (stable order), `limit` ≤ 100 from `offset`.
pub async fn list(tx: &mut TenantTx, offset: i64, limit: i64) -> Result<Vec<Patient>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from patient where practice_id = $1
          order by family_name, given_name, patient_id offset $2 limit $3"
    ))
    .bind(tx.practice())
    .bind(offset.max(0))
    .bind(limit.clamp(1, 100))
    .fetch_all(tx.conn())
    .await?)
}

/// Creates a patient.
pub async fn create(tx: &mut TenantTx, new: &NewPatient) -> Result<Patient, StoreError> {
    let now = tx.now();
    Ok(sqlx::query_as(&format!(
        "insert into patient (practice_id, patient_id, given_name, family_name, date_of_birth, phone, email, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8) returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(PatientId::new())
    .bind(&new.given_name)
    .bind(&new.family_name)
    .bind(new.date_of_birth)
    .bind(&new.phone)
    .bind(&new.email)
    .bind(now)
    .fetch_one(tx.conn())
    .await?)
}

/// Applies a partial update. `None` when there is no such patient.
pub async fn update(
    tx: &mut TenantTx,
    id: PatientId,
    patch: &PatientPatch,
) -> Result<Option<Patient>, StoreError> {
    let now = tx.now();
    Ok(sqlx::query_as(&format!(
        "update patient set
            given_name = coalesce($3, given_name),
            family_name = coalesce($4, family_name),
            date_of_birth = case when $5 then $6 else date_of_birth end,
            phone = case when $7 then $8 else phone end,
            email = case when $9 then $10 else email end,
            updated_at = $11
          where practice_id = $1 and patient_id = $2
         returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(id)
    .bind(&patch.given_name)
    .bind(&patch.family_name)
    .bind(patch.date_of_birth.is_some())
    .bind(patch.date_of_birth.flatten())
    .bind(patch.phone.is_some())
    .bind(patch.phone.clone().flatten())
    .bind(patch.email.is_some())
    .bind(patch.email.clone().flatten())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?)
}

/// Deletes a patient (and, by cascade, their appointments). Fails with a conflict while
/// clinical notes refer to them. Audit rows about the patient stay: they have no foreign key.
pub async fn delete(tx: &mut TenantTx, id: PatientId) -> Result<bool, StoreError> {
    let done = sqlx::query("delete from patient where practice_id = $1 and patient_id = $2")
        .bind(tx.practice())
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

impl From<domain::synthetic::SyntheticPatient> for NewPatient {
    fn from(p: domain::synthetic::SyntheticPatient) -> Self {
        Self {
            given_name: p.given_name,
            family_name: p.family_name,
            date_of_birth: Some(p.date_of_birth),
            phone: Some(p.phone),
            email: Some(p.email),
        }
    }
}
