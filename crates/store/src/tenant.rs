//! Transactions bound to an actor ([`UserTx`]) and to an actor inside a practice
//! ([`TenantTx`]). Both audit through the one append ([`crate::append`]); a [`TenantTx`] is an
//! [`Audited`] transaction (entered by the session check, stamped by the injected clock, and
//! unable to commit after opening sealed fields without an audit event).

use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditObject, PatientId, PracticeId, RequestId, RoleSet, UserId};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::StoreError;
use crate::append::{NewEvent, append};
use crate::entry::{Audited, Opener, set_practice};
use crate::group_commit::AuditWriter;

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

    /// An event of the signed-in user in this transaction: its time, request, `action`.
    pub(crate) fn event(&self, action: AuditAction) -> NewEvent {
        let mut e = NewEvent::new(self.now, action);
        e.actor = Some(self.user);
        e.request = Some(self.request);
        e
    }

    /// Appends `events` to the log of each of `practices` in this transaction, entering each
    /// practice for its statement and leaving it after: actions about the user's own relation
    /// to a practice (deciding an invitation) or security events — never patient data.
    pub(crate) async fn append_in(
        &mut self,
        practices: &[PracticeId],
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        for practice in practices {
            set_practice(&mut self.tx, Some(*practice)).await?;
            append(&mut self.tx, *practice, events).await?;
        }
        set_practice(&mut self.tx, None).await?;
        Ok(())
    }

    /// Appends one audit event of the signed-in user on `practice`'s log ([`UserTx::append_in`]).
    pub(crate) async fn audit_in(
        &mut self,
        practice: PracticeId,
        action: AuditAction,
        object: Option<AuditObject>,
    ) -> Result<(), StoreError> {
        let mut e = self.event(action);
        e.object = object;
        self.append_in(&[practice], &[e]).await
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
    inner: Audited,
    actor: UserId,
    roles: RoleSet,
    request: RequestId,
    support: Option<uuid::Uuid>,
    /// Seals the `support_access` disclosures a support transaction records.
    keyring: Option<std::sync::Arc<crypto::Keyring>>,
    /// The entering session's idle timeout here in seconds (see [`TenantTx::session_idle`]).
    session_idle: Option<u32>,
}

impl TenantTx {
    pub(crate) fn new(
        tx: Transaction<'static, Postgres>,
        practice: PracticeId,
        actor: UserId,
        roles: RoleSet,
        request: RequestId,
        now: DateTime<Utc>,
        reader: Option<AuditWriter>,
    ) -> Self {
        let inner = Audited::entered(tx, practice, now);
        Self {
            inner: match reader {
                Some(writer) => inner.deferring_to(writer),
                None => inner,
            },
            actor,
            roles,
            request,
            support: None,
            keyring: None,
            session_idle: None,
        }
    }

    /// Records how long the session this transaction was entered with may stay idle (what the
    /// session check enforced), for the web app's timeout warning.
    #[must_use]
    pub(crate) fn with_session_idle(mut self, idle: chrono::Duration) -> Self {
        self.session_idle = u32::try_from(idle.num_seconds()).ok();
        self
    }

    /// How long the session this transaction was entered with may stay idle here; `None` for a
    /// transaction not entered through a session (jobs, the command line).
    #[must_use]
    pub fn session_idle(&self) -> Option<chrono::Duration> {
        self.session_idle
            .map(|s| chrono::Duration::seconds(i64::from(s)))
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

    /// Whether this is a read ([`crate::Access::Read`]): a read-only transaction whose audit
    /// events the group-commit writer makes durable at commit.
    #[must_use]
    pub fn is_read(&self) -> bool {
        self.inner.is_read()
    }

    /// The support grant this transaction acts under (vendor support access), if any.
    #[must_use]
    pub fn support_grant(&self) -> Option<uuid::Uuid> {
        self.support
    }

    /// The practice this transaction is bound to.
    #[must_use]
    pub fn practice(&self) -> PracticeId {
        self.inner.practice()
    }

    /// The acting user.
    #[must_use]
    pub fn actor(&self) -> UserId {
        self.actor
    }

    /// The request this transaction serves.
    #[must_use]
    pub fn request(&self) -> RequestId {
        self.request
    }

    /// The actor's roles in the practice, as read when the transaction was opened.
    #[must_use]
    pub fn roles(&self) -> RoleSet {
        self.roles
    }

    /// The request time (from the injected clock).
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// The connection, for queries in this crate.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        self.inner.conn()
    }

    /// The opener for the practice's sealed fields: from now on this transaction commits only
    /// after it has appended an audit event.
    pub(crate) fn opener<'k>(&mut self, keyring: &'k crypto::Keyring) -> Opener<'k> {
        self.inner.opener(keyring)
    }

    /// An event of this transaction: its time, actor, request and `action`.
    fn event(&self, action: AuditAction, patient: Option<PatientId>) -> NewEvent {
        let mut e = self.inner.event(action);
        e.actor = Some(self.actor);
        e.request = Some(self.request);
        e.patient = patient;
        e
    }

    /// Appends one audit event in this transaction: actor, practice, optional patient, action,
    /// outcome `success`, object, request id and time. If it fails the caller must fail the
    /// request (there is no unaudited access).
    pub async fn audit(
        &mut self,
        action: AuditAction,
        patient: Option<PatientId>,
        object: Option<AuditObject>,
    ) -> Result<(), StoreError> {
        self.audit_details(action, patient, object, None).await
    }

    /// [`TenantTx::audit`] with extra metadata (ids, flags and names of filters only — never
    /// values a person typed).
    pub async fn audit_details(
        &mut self,
        action: AuditAction,
        patient: Option<PatientId>,
        object: Option<AuditObject>,
        details: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let mut e = self.event(action, patient);
        e.object = object;
        e.details = details;
        self.append(vec![e]).await
    }

    /// Appends `events` of this transaction in one statement. Under vendor support access each
    /// is flagged with the grant and each patient touched gets a disclosure first.
    async fn append(&mut self, mut events: Vec<NewEvent>) -> Result<(), StoreError> {
        if let Some(grant) = self.support {
            for e in &mut events {
                let mut d = match e.details.take() {
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
                e.details = Some(serde_json::Value::Object(d));
                if let Some(p) = e.patient {
                    self.support_disclosure(grant, p, e.action).await?;
                }
            }
        }
        self.inner.append(&events).await?;
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
        let now = self.now();
        let practice = self.practice();
        let d = crate::disclosures::NewDisclosure {
            disclosed_at: now,
            recipient: "Chartroom vendor support".into(),
            description: format!("{} (grant {grant})", action.as_str()),
            purpose: "Support under the practice's grant".into(),
            tpo: false,
            kind: "support_access".into(),
        };
        crate::disclosures::insert(
            self.inner.conn(),
            &keyring,
            practice,
            patient,
            Some(self.actor),
            now,
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
        self.audit(action, Some(patient), Some(AuditObject::patient(patient)))
            .await
    }

    /// Appends one audit event per patient (a list or search result names every patient it
    /// showed), in one statement; one event without a patient when there is none.
    pub async fn audit_patients(
        &mut self,
        action: AuditAction,
        patients: impl IntoIterator<Item = PatientId>,
    ) -> Result<(), StoreError> {
        let mut events: Vec<NewEvent> = patients
            .into_iter()
            .map(|p| {
                let mut e = self.event(action, Some(p));
                e.object = Some(AuditObject::patient(p));
                e
            })
            .collect();
        if events.is_empty() {
            events.push(self.event(action, None));
        }
        self.append(events).await
    }

    /// Commits the change and its audit events together; refused
    /// ([`StoreError::AuditFailed`], rolled back) when the transaction opened sealed fields and
    /// appended no audit event after that.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}
