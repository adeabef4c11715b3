//! Administrative commands, run as the owner role by the `chartroom` CLI (bootstrap a
//! practice and its first owner, manage accounts, seed the demo). Each is tenant-bound where
//! it touches tenant tables, and audited where it touches a practice.

use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditObject, PatientId, PracticeId, RoleSet, UserId};
use sqlx::{Postgres, Transaction};

use crate::entry::OwnerTx;
use crate::sealed_columns::{CLINICAL_NOTE, seal_field, write_keys};
use crate::{OwnerStore, StoreError};

/// Appends the administrative audit event (no actor; a patient record names its patient, so
/// "who touched this patient" finds administrative writes too) and commits the change with it.
async fn commit_audited(
    mut tx: OwnerTx,
    action: AuditAction,
    object: AuditObject,
) -> Result<(), StoreError> {
    let patient =
        (object.kind() == domain::ObjectKind::Patient).then(|| PatientId::from_uuid(object.id()));
    tx.audit(action, Some(object), patient, None).await?;
    tx.commit().await
}

impl OwnerStore {
    /// A transaction outside any practice (accounts).
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Creates a practice.
    pub async fn create_practice(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<PracticeId, StoreError> {
        let id = PracticeId::new();
        let mut tx = self.begin_at(id, now).await?;
        sqlx::query("insert into practice (practice_id, name, created_at) values ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(tx.conn())
            .await?;
        commit_audited(tx, AuditAction::PracticeUpdate, AuditObject::practice(id)).await?;
        Ok(id)
    }

    /// Creates an account with an argon2id password hash computed by the caller.
    pub async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UserId, StoreError> {
        let id = UserId::new();
        let mut tx = self.begin().await?;
        sqlx::query("insert into app_user (user_id, email, display_name, created_at) values ($1, $2, $3, $4)")
            .bind(id)
            .bind(email)
            .bind(display_name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("insert into user_password (user_id, hash, updated_at) values ($1, $2, $3)")
            .bind(id)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Finds an active account by normalized email.
    pub async fn find_user(&self, email: &str) -> Result<Option<UserId>, StoreError> {
        let row: Option<(UserId,)> =
            sqlx::query_as("select user_id from app_user where email = $1 and status = 'active'")
                .bind(email)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// Deactivates an account and ends every session it has, in one transaction (req AC-11).
    /// The id is never reused. Returns whether an active account was deactivated.
    pub async fn deactivate_user(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "update app_user set status = 'deactivated' where user_id = $1 and status = 'active'",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        sqlx::query("update session set revoked_at = $2 where user_id = $1 and revoked_at is null")
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Adds a user to a practice with `roles`, or replaces their roles if already a member.
    pub async fn add_member(
        &self,
        practice: PracticeId,
        user: UserId,
        roles: RoleSet,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        sqlx::query(
            "insert into membership (practice_id, user_id, roles, created_at) values ($1, $2, $3, $4)
             on conflict (practice_id, user_id) do update set roles = excluded.roles",
        )
        .bind(practice)
        .bind(user)
        .bind(roles.names())
        .bind(now)
        .execute(tx.conn())
        .await?;
        commit_audited(tx, AuditAction::MembershipCreate, AuditObject::user(user)).await?;
        Ok(())
    }

    /// Lists every practice (id, name, whether it is demo data), for the operator.
    pub async fn list_practices(&self) -> Result<Vec<(PracticeId, String, bool)>, StoreError> {
        Ok(sqlx::query_as(
            "select practice_id, name, demo from practice order by name, practice_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Inserts a patient as the owner role (demo seeding and benchmarks), audited as a
    /// creation without an actor. Fields are encrypted with the practice's keys (provisioned
    /// on first use) and search tokens written.
    pub async fn seed_patient(
        &self,
        practice: PracticeId,
        p: &crate::patients::NewPatient,
        now: DateTime<Utc>,
    ) -> Result<PatientId, StoreError> {
        let id = PatientId::new();
        let keys = write_keys(self.keyring()?, practice).await?;
        let sealed = crate::patients::seal(&keys, id, p)?;
        let mut tx = self.begin_at(practice, now).await?;
        crate::patients::insert_sealed(tx.conn(), practice, id, &sealed, now).await?;
        commit_audited(tx, AuditAction::PatientCreate, AuditObject::patient(id)).await?;
        Ok(id)
    }

    /// Inserts an appointment as the owner role (demo seeding).
    pub async fn seed_appointment(
        &self,
        practice: PracticeId,
        patient: PatientId,
        clinician: UserId,
        starts_at: DateTime<Utc>,
        minutes: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = domain::AppointmentId::new();
        let mut tx = self.begin_at(practice, now).await?;
        sqlx::query(
            "insert into appointment (practice_id, appointment_id, patient_id, clinician_id, starts_at, ends_at, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(practice)
        .bind(id)
        .bind(patient)
        .bind(clinician)
        .bind(starts_at)
        .bind(starts_at + chrono::Duration::minutes(minutes))
        .bind(now)
        .execute(tx.conn())
        .await?;
        commit_audited(
            tx,
            AuditAction::AppointmentCreate,
            AuditObject::appointment(id),
        )
        .await?;
        Ok(())
    }

    /// The practices marked as demo data.
    pub async fn demo_practices(&self) -> Result<Vec<PracticeId>, StoreError> {
        Ok(self
            .list_practices()
            .await?
            .into_iter()
            .filter(|p| p.2)
            .map(|p| p.0)
            .collect())
    }

    /// Marks a practice as demo data.
    pub async fn mark_demo(&self, practice: PracticeId) -> Result<(), StoreError> {
        let mut tx = self.begin_in(practice).await?;
        sqlx::query("update practice set demo = true where practice_id = $1")
            .bind(practice)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl OwnerStore {
    /// Inserts a clinical note as the owner role (demo seeding), audited without an actor.
    /// The body is encrypted.
    pub async fn seed_note(
        &self,
        practice: PracticeId,
        patient: PatientId,
        author: UserId,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<domain::NoteId, StoreError> {
        let id = domain::NoteId::new();
        let uuid = id.as_uuid();
        let body_enc = seal_field(
            self.keyring()?,
            &CLINICAL_NOTE.context(practice, "body", uuid.as_bytes()),
            body.as_bytes(),
        )
        .await?;
        let mut tx = self.begin_at(practice, now).await?;
        sqlx::query(
            "insert into clinical_note (practice_id, note_id, patient_id, author_id, body_enc, created_at)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(practice)
        .bind(id)
        .bind(patient)
        .bind(author)
        .bind(&body_enc)
        .bind(now)
        .execute(tx.conn())
        .await?;
        commit_audited(tx, AuditAction::NoteCreate, AuditObject::note(id)).await?;
        Ok(id)
    }
}
