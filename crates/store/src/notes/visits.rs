//! Visits (encounters): the visit a note documents (`migrations/0007_clinical_notes.sql`).
//!
//! # Guarantees
//! - Every query names the practice; visibility is row-level security. A visit holds ids
//!   and a time, no free text.

use chrono::{DateTime, Utc};
use domain::{PatientId, UserId, VisitId};
use serde::Serialize;

use crate::{StoreError, TenantTx};

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
