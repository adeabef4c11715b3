//! Appointments (clinician or reception; enforced by RLS). The caller audits.

use chrono::{DateTime, Utc};
use domain::{AppointmentId, PatientId, UserId};
use serde::Serialize;

use crate::{StoreError, TenantTx};

/// An appointment row.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Appointment {
    /// Id.
    pub appointment_id: AppointmentId,
    /// The patient.
    pub patient_id: PatientId,
    /// The clinician (a member of the practice).
    pub clinician_id: UserId,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// `booked`, `arrived`, `completed`, `cancelled` or `no_show`.
    pub status: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A new appointment (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewAppointment {
    /// The patient.
    pub patient_id: PatientId,
    /// The clinician.
    pub clinician_id: UserId,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
}

/// A partial update.
#[derive(Debug, Clone, Default)]
pub struct AppointmentPatch {
    /// New start.
    pub starts_at: Option<DateTime<Utc>>,
    /// New end.
    pub ends_at: Option<DateTime<Utc>>,
    /// New status.
    pub status: Option<String>,
    /// New clinician.
    pub clinician_id: Option<UserId>,
}

const COLUMNS: &str =
    "appointment_id, patient_id, clinician_id, starts_at, ends_at, status, created_at, updated_at";

/// Reads one appointment.
pub async fn get(tx: &mut TenantTx, id: AppointmentId) -> Result<Option<Appointment>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from appointment where practice_id = $1 and appointment_id = $2"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// Lists appointments starting in `[from, to)`, by start time, at most `limit` ≤ 200.
pub async fn list(
    tx: &mut TenantTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Appointment>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from appointment
          where practice_id = $1 and starts_at >= $2 and starts_at < $3
          order by starts_at, appointment_id limit $4"
    ))
    .bind(tx.practice())
    .bind(from)
    .bind(to)
    .bind(limit.clamp(1, 200))
    .fetch_all(tx.conn())
    .await?)
}

/// Lists `patient`'s appointments, oldest first, at most `limit` ≤ 1000 (a record export).
pub async fn list_for_patient(
    tx: &mut TenantTx,
    patient: PatientId,
    limit: i64,
) -> Result<Vec<Appointment>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from appointment
          where practice_id = $1 and patient_id = $2
          order by starts_at, appointment_id limit $3"
    ))
    .bind(tx.practice())
    .bind(patient)
    .bind(limit.clamp(1, 1000))
    .fetch_all(tx.conn())
    .await?)
}

/// Lists one clinician's appointments starting in `[from, to)`, by start time, at most
/// `limit` ≤ 200 (a schedule column; cancelled ones included, their status says so).
pub async fn list_for_clinician(
    tx: &mut TenantTx,
    clinician: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Appointment>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {COLUMNS} from appointment
          where practice_id = $1 and clinician_id = $2 and starts_at >= $3 and starts_at < $4
          order by starts_at, appointment_id limit $5"
    ))
    .bind(tx.practice())
    .bind(clinician)
    .bind(from)
    .bind(to)
    .bind(limit.clamp(1, 200))
    .fetch_all(tx.conn())
    .await?)
}

/// Creates an appointment. A patient or clinician of another practice (or none) is a
/// conflict on `appointment_patient_fkey` / `appointment_clinician_fkey`.
pub async fn create(tx: &mut TenantTx, new: &NewAppointment) -> Result<Appointment, StoreError> {
    let now = tx.now();
    Ok(sqlx::query_as(&format!(
        "insert into appointment (practice_id, appointment_id, patient_id, clinician_id, starts_at, ends_at, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(AppointmentId::new())
    .bind(new.patient_id)
    .bind(new.clinician_id)
    .bind(new.starts_at)
    .bind(new.ends_at)
    .bind(now)
    .fetch_one(tx.conn())
    .await?)
}

/// Applies a partial update. `None` when there is no such appointment.
pub async fn update(
    tx: &mut TenantTx,
    id: AppointmentId,
    patch: &AppointmentPatch,
) -> Result<Option<Appointment>, StoreError> {
    let now = tx.now();
    Ok(sqlx::query_as(&format!(
        "update appointment set
            starts_at = coalesce($3, starts_at),
            ends_at = coalesce($4, ends_at),
            status = coalesce($5, status),
            clinician_id = coalesce($6, clinician_id),
            updated_at = $7
          where practice_id = $1 and appointment_id = $2
         returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(id)
    .bind(patch.starts_at)
    .bind(patch.ends_at)
    .bind(&patch.status)
    .bind(patch.clinician_id)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?)
}
