//! Care-team assignment and break-glass (`migrations/0008_care_team.sql`).
//!
//! Break-glass: a clinician opens a patient outside their care team by giving a reason; the
//! grant lasts a bounded time (default 60 minutes, at most 4 hours), every clinical audit
//! event in the window is flagged as emergency access (`app.clinical_audit_details`), and the
//! grant stays on the practice's review list until an owner or admin acknowledges it. The
//! reason is free text a clinician typed, so it is stored encrypted.

use chrono::{DateTime, Duration, Utc};
use crypto::Keyring;
use domain::{PatientId, UserId};
use serde::Serialize;

use crate::sealed_columns::{BREAK_GLASS, seal_field};
use crate::{StoreError, TenantTx};

/// An open (or past) break-glass grant.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    /// Id.
    pub grant_id: uuid::Uuid,
    /// Who opened it.
    pub user_id: UserId,
    /// The patient.
    pub patient_id: PatientId,
    /// Why (decrypted; shown to the clinician and to reviewers only).
    pub reason: String,
    /// Opened.
    pub opened_at: DateTime<Utc>,
    /// Ends.
    pub expires_at: DateTime<Utc>,
    /// Reviewer, once acknowledged.
    pub acknowledged_by: Option<UserId>,
    /// When acknowledged.
    pub acknowledged_at: Option<DateTime<Utc>>,
}

/// Opens a break-glass grant for the actor on `patient`, for `minutes` (1–240).
pub async fn open(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    reason: &str,
    minutes: i64,
) -> Result<Grant, StoreError> {
    let practice = tx.practice();
    let id = uuid::Uuid::new_v4();
    let reason_enc = seal_field(
        keyring,
        &BREAK_GLASS.context(practice, "reason", id.as_bytes()),
        reason.as_bytes(),
    )
    .await?;
    let opened = tx.now();
    let expires = opened + Duration::minutes(minutes.clamp(1, 240));
    sqlx::query(
        "insert into break_glass (practice_id, grant_id, user_id, patient_id, reason_enc, opened_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(practice)
    .bind(id)
    .bind(tx.actor())
    .bind(patient)
    .bind(&reason_enc)
    .bind(opened)
    .bind(expires)
    .execute(tx.conn())
    .await?;
    Ok(Grant {
        grant_id: id,
        user_id: tx.actor(),
        patient_id: patient,
        reason: reason.to_owned(),
        opened_at: opened,
        expires_at: expires,
        acknowledged_by: None,
        acknowledged_at: None,
    })
}

type Row = (
    uuid::Uuid,
    UserId,
    PatientId,
    Vec<u8>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<UserId>,
    Option<DateTime<Utc>>,
);

/// The practice's break-glass grants for review (owners and admins; RLS), newest first;
/// `pending` keeps the unacknowledged ones only. At most 200.
pub async fn review_list(
    tx: &mut TenantTx,
    keyring: &Keyring,
    pending: bool,
) -> Result<Vec<Grant>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<Row> = sqlx::query_as(
        "select grant_id, user_id, patient_id, reason_enc, opened_at, expires_at, acknowledged_by, acknowledged_at
           from break_glass where practice_id = $1 and (not $2 or acknowledged_at is null)
          order by opened_at desc limit 200",
    )
    .bind(practice)
    .bind(pending)
    .fetch_all(tx.conn())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let opener = tx.opener(keyring);
    for r in rows {
        let reason = opener
            .open_text(
                &BREAK_GLASS.context(practice, "reason", r.0.as_bytes()),
                &r.3,
            )
            .await?;
        out.push(Grant {
            grant_id: r.0,
            user_id: r.1,
            patient_id: r.2,
            reason,
            opened_at: r.4,
            expires_at: r.5,
            acknowledged_by: r.6,
            acknowledged_at: r.7,
        });
    }
    Ok(out)
}

/// Acknowledges a grant (owners and admins; RLS). Returns its patient, or `None` if there is
/// no such grant here or it was already acknowledged.
pub async fn acknowledge(
    tx: &mut TenantTx,
    grant: uuid::Uuid,
) -> Result<Option<PatientId>, StoreError> {
    let now = tx.now();
    let row: Option<(PatientId,)> = sqlx::query_as(
        "update break_glass set acknowledged_by = $3, acknowledged_at = $4
          where practice_id = $1 and grant_id = $2 and acknowledged_at is null
          returning patient_id",
    )
    .bind(tx.practice())
    .bind(grant)
    .bind(tx.actor())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|r| r.0))
}

/// When the actor's open break-glass window on `patient` ends, if the actor sees the patient's
/// clinical records **through** break-glass only (not through the care team or a
/// practice-wide scope): the same decision as `app.clinical_audit_details`, which flags such
/// reads as emergency access. Reads ids and times only (nothing decrypted).
pub async fn window(
    tx: &mut TenantTx,
    patient: PatientId,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row: Option<(DateTime<Utc>,)> = sqlx::query_as(
        "select b.expires_at from break_glass b
          where b.practice_id = $1 and b.grant_id = app.break_glass_grant($2)
            and not (app.practice_wide_clinical() or app.care_team($2))",
    )
    .bind(tx.practice())
    .bind(patient)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|r| r.0))
}

/// Assigns (or, with `None`, unassigns) a patient's clinician: a member of the practice with
/// the clinician role. `Ok(false)` when `clinician` is not one.
pub async fn assign_clinician(
    tx: &mut TenantTx,
    patient: PatientId,
    clinician: Option<UserId>,
) -> Result<bool, StoreError> {
    if let Some(c) = clinician {
        let ok: Option<(i32,)> = sqlx::query_as(
            "select 1 from membership where practice_id = $1 and user_id = $2 and 'clinician' = any(roles)",
        )
        .bind(tx.practice())
        .bind(c)
        .fetch_optional(tx.conn())
        .await?;
        if ok.is_none() {
            return Ok(false);
        }
    }
    let n = sqlx::query(
        "update patient set assigned_clinician_id = $3 where practice_id = $1 and patient_id = $2",
    )
    .bind(tx.practice())
    .bind(patient)
    .bind(clinician)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(n == 1)
}

impl crate::OwnerStore {
    /// Opens a break-glass grant as the owner role for `user` (fixtures), reason encrypted.
    pub async fn seed_break_glass(
        &self,
        practice: domain::PracticeId,
        user: UserId,
        patient: PatientId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<uuid::Uuid, StoreError> {
        let id = uuid::Uuid::new_v4();
        let reason_enc = seal_field(
            self.keyring()?,
            &BREAK_GLASS.context(practice, "reason", id.as_bytes()),
            reason.as_bytes(),
        )
        .await?;
        let mut tx = self.begin_in(practice).await?;
        sqlx::query(
            "insert into break_glass (practice_id, grant_id, user_id, patient_id, reason_enc, opened_at, expires_at)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(practice)
        .bind(id)
        .bind(user)
        .bind(patient)
        .bind(&reason_enc)
        .bind(now)
        .bind(now + Duration::minutes(60))
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Assigns a patient's clinician as the owner role (seeding and fixtures).
    pub async fn assign_clinician(
        &self,
        practice: domain::PracticeId,
        patient: PatientId,
        clinician: UserId,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_in(practice).await?;
        sqlx::query(
            "update patient set assigned_clinician_id = $3 where practice_id = $1 and patient_id = $2",
        )
        .bind(practice)
        .bind(patient)
        .bind(clinician)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
