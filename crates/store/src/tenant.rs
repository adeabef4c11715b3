//! Transactions bound to an actor ([`UserTx`]) and to an actor inside a practice
//! ([`TenantTx`]).

use chrono::{DateTime, Utc};
use domain::{
    AuditAction, AuditEventId, Outcome, PatientId, PracticeId, RequestId, RoleSet, UserId,
};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::StoreError;

/// One audit event: practice, event id, time, actor, patient, action, outcome, object type and
/// id, request id, details.
const INSERT_EVENT: &str = "insert into audit_event
   (practice_id, event_id, occurred_at, actor_id, patient_id, action, outcome, object_type, object_id, request_id, details)
 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// A transaction acting as a signed-in user, outside any practice: the user's own profile,
/// memberships and sessions are visible; no tenant data is. Dropping it rolls back.
#[derive(Debug)]
pub struct UserTx {
    tx: Transaction<'static, Postgres>,
    user: UserId,
    request: RequestId,
    now: DateTime<Utc>,
}

impl UserTx {
    pub(crate) fn new(
        tx: Transaction<'static, Postgres>,
        user: UserId,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            tx,
            user,
            request,
            now,
        }
    }

    /// The signed-in user.
    #[must_use]
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The request this transaction serves.
    #[must_use]
    pub fn request(&self) -> RequestId {
        self.request
    }

    /// The request time (from the injected clock).
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The connection, for queries in this crate.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Appends one audit event of the signed-in user on `practice`'s log, in this
    /// transaction, for an action about the user's own relation to that practice (deciding
    /// an invitation) — never patient data. Enters the practice for the one statement.
    pub(crate) async fn audit_in(
        &mut self,
        practice: PracticeId,
        action: AuditAction,
        object: Option<(&'static str, uuid::Uuid)>,
    ) -> Result<(), StoreError> {
        sqlx::query("select set_config('chartroom.practice_id', $1, true)")
            .bind(practice.to_string())
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(INSERT_EVENT)
            .bind(practice)
            .bind(AuditEventId::new())
            .bind(self.now)
            .bind(self.user)
            .bind(None::<PatientId>)
            .bind(action.as_str())
            .bind(Outcome::Success.as_str())
            .bind(object.map(|o| o.0))
            .bind(object.map(|o| o.1))
            .bind(self.request)
            .bind(None::<serde_json::Value>)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| StoreError::AuditFailed(e.to_string()))?;
        sqlx::query("select set_config('chartroom.practice_id', '', true)")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A transaction acting as `actor` inside `practice`: the server's only way to touch tenant
/// data. The practice and actor are transaction-local settings that row-level security reads;
/// the database itself derives the actor's roles from the memberships copied onto the session
/// row (kept equal to `membership` by triggers; migration 0013). Dropping it rolls back.
#[derive(Debug)]
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    practice: PracticeId,
    actor: UserId,
    roles: RoleSet,
    request: RequestId,
    now: DateTime<Utc>,
    support: Option<uuid::Uuid>,
    /// Seals the `support_access` disclosures a support transaction records.
    keyring: Option<std::sync::Arc<crypto::Keyring>>,
}

impl TenantTx {
    pub(crate) fn new(
        tx: Transaction<'static, Postgres>,
        practice: PracticeId,
        actor: UserId,
        roles: RoleSet,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            tx,
            practice,
            actor,
            roles,
            request,
            now,
            support: None,
            keyring: None,
        }
    }

    /// Marks the transaction as vendor support access under `grant`: every audit event it
    /// writes is flagged, and each patient it touches gets a `support_access` disclosure,
    /// sealed with `keyring` (without one, such an audit append fails and so does the request).
    #[must_use]
    pub(crate) fn with_support(
        mut self,
        grant: Option<uuid::Uuid>,
        keyring: Option<std::sync::Arc<crypto::Keyring>>,
    ) -> Self {
        self.support = grant;
        if grant.is_some() {
            self.keyring = keyring;
        }
        self
    }

    /// The support grant this transaction acts under (vendor support access), if any.
    #[must_use]
    pub fn support_grant(&self) -> Option<uuid::Uuid> {
        self.support
    }

    /// The practice this transaction is bound to.
    #[must_use]
    pub fn practice(&self) -> PracticeId {
        self.practice
    }

    /// The acting user.
    #[must_use]
    pub fn actor(&self) -> UserId {
        self.actor
    }

    /// The actor's roles in the practice, as read when the transaction was opened.
    #[must_use]
    pub fn roles(&self) -> RoleSet {
        self.roles
    }

    /// The request time (from the injected clock).
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The connection, for queries in this crate.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Appends one audit event in this transaction: actor, practice, optional patient, action,
    /// outcome `success`, object, request id and time. If it fails the caller must fail the
    /// request (there is no unaudited access).
    pub async fn audit(
        &mut self,
        action: AuditAction,
        patient: Option<PatientId>,
        object: Option<(&'static str, uuid::Uuid)>,
    ) -> Result<(), StoreError> {
        self.audit_details(action, patient, object, None).await
    }

    /// [`TenantTx::audit`] with extra metadata (ids, flags and names of filters only — never
    /// values a person typed).
    pub async fn audit_details(
        &mut self,
        action: AuditAction,
        patient: Option<PatientId>,
        object: Option<(&'static str, uuid::Uuid)>,
        details: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let details = match self.support {
            Some(grant) => {
                let mut d = match details {
                    Some(serde_json::Value::Object(m)) => m,
                    Some(other) => {
                        let mut m = serde_json::Map::new();
                        m.insert("details".into(), other);
                        m
                    }
                    None => serde_json::Map::new(),
                };
                d.insert("support_access".into(), serde_json::Value::Bool(true));
                d.insert("support_grant_id".into(), serde_json::json!(grant));
                if let Some(p) = patient {
                    self.support_disclosure(grant, p, action).await?;
                }
                Some(serde_json::Value::Object(d))
            }
            None => details,
        };
        // Clinical access through break-glass is flagged as emergency access in the same
        // statement (no extra round trip).
        let statement = if action.is_clinical() {
            "insert into audit_event
               (practice_id, event_id, occurred_at, actor_id, patient_id, action, outcome, object_type, object_id, request_id, details)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, app.clinical_audit_details($11::jsonb, $5))"
        } else {
            INSERT_EVENT
        };
        sqlx::query(statement)
            .bind(self.practice)
            .bind(AuditEventId::new())
            .bind(self.now)
            .bind(self.actor)
            .bind(patient)
            .bind(action.as_str())
            .bind(Outcome::Success.as_str())
            .bind(object.map(|o| o.0))
            .bind(object.map(|o| o.1))
            .bind(self.request)
            .bind(details)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| StoreError::AuditFailed(e.to_string()))?;
        Ok(())
    }

    /// Records a vendor support access to `patient` in the accounting of disclosures (its
    /// details sealed like every disclosure's).
    async fn support_disclosure(
        &mut self,
        grant: uuid::Uuid,
        patient: PatientId,
        action: AuditAction,
    ) -> Result<(), StoreError> {
        let keyring = self.keyring.clone().ok_or_else(|| {
            StoreError::AuditFailed("no keyring to seal a support-access disclosure".into())
        })?;
        let d = crate::disclosures::NewDisclosure {
            disclosed_at: self.now,
            recipient: "Chartroom vendor support".into(),
            description: format!("{} (grant {grant})", action.as_str()),
            purpose: "Support under the practice's grant".into(),
            tpo: false,
            kind: "support_access".into(),
        };
        crate::disclosures::insert(
            &mut self.tx,
            &keyring,
            self.practice,
            patient,
            Some(self.actor),
            self.now,
            &d,
        )
        .await
        .map_err(|e| StoreError::AuditFailed(e.to_string()))?;
        Ok(())
    }

    /// [`TenantTx::audit`] for an action on one patient record.
    pub async fn audit_patient(
        &mut self,
        action: AuditAction,
        patient: PatientId,
    ) -> Result<(), StoreError> {
        self.audit(action, Some(patient), Some(("patient", patient.as_uuid())))
            .await
    }

    /// Appends one audit event per patient (a list or search result names every patient it
    /// showed), in one statement.
    pub async fn audit_patients(
        &mut self,
        action: AuditAction,
        patients: impl IntoIterator<Item = PatientId>,
    ) -> Result<(), StoreError> {
        let patients: Vec<uuid::Uuid> = patients.into_iter().map(|p| p.as_uuid()).collect();
        if patients.is_empty() {
            return self.audit(action, None, None).await;
        }
        if self.support.is_some() {
            for p in patients {
                let p = PatientId::from_uuid(p);
                self.audit(action, Some(p), Some(("patient", p.as_uuid())))
                    .await?;
            }
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = patients
            .iter()
            .map(|_| AuditEventId::new().as_uuid())
            .collect();
        sqlx::query(
            "insert into audit_event
               (practice_id, event_id, occurred_at, actor_id, patient_id, action, outcome, object_type, object_id, request_id)
             select $1, e, $3, $4, p, $5, 'success', 'patient', p, $6
               from unnest($2::uuid[], $7::uuid[]) as t(e, p)",
        )
        .bind(self.practice)
        .bind(&ids)
        .bind(self.now)
        .bind(self.actor)
        .bind(action.as_str())
        .bind(self.request)
        .bind(&patients)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| StoreError::AuditFailed(e.to_string()))?;
        Ok(())
    }

    /// Commits the change and its audit events together.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}
