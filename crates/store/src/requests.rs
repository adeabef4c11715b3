//! Patients' requests under the HIPAA Privacy Rule — right of access (164.524, [`crate::rights`])
//! and amendment (164.526, [`crate::amendments`]) — and the one lifecycle they share, over the
//! columns each kind's table has alike (migrations 0037 and 0039): the receipt, the status,
//! the deadline, the one extension with its sealed reason, the denial with its sealed reason,
//! who closed it, and the overdue alert. Each kind's module keeps only what is its own: what
//! the request names, and what granting it does (the copy produced; the change landed on the
//! note).
//!
//! # Lifecycle
//! Every change of status is decided by [`domain::rights::apply`] on the row locked
//! `for update` ([`decide`]), so two concurrent extensions cannot both pass; the database
//! checks the same shape again (one extension column, the deadline a check constraint on the
//! receipt, a denial only with its reason). The request-path functions do not audit: the
//! caller appends its kind's event in the same transaction; the overdue pass
//! ([`raise_overdue`]) audits its own events.
//!
//! # Encryption at rest
//! The written reasons are sealed bound to (practice, the kind's table, column, request id)
//! ([`crate::sealed_columns::ACCESS_REQUEST`], [`crate::sealed_columns::AMENDMENT_REQUEST`]);
//! reading them goes through the transaction's opener ([`open_sealed`]), so the read must be
//! audited.

use chrono::{DateTime, Utc};
use crypto::Keyring;
use domain::rights::{self, Action, RequestKind, Status};
use domain::{AuditAction, AuditObject, ObjectKind, PatientId, PracticeId};

use crate::entry::Opener;
use crate::sealed_columns::{ACCESS_REQUEST, AMENDMENT_REQUEST, SealedTable, seal_field};
use crate::{OwnerStore, StoreError, TenantTx};

/// One kind of patient request: the right it exercises and the table that holds it.
#[derive(Debug)]
pub(crate) struct Kind {
    /// The right (its deadlines).
    pub request: RequestKind,
    /// The table and its sealed columns.
    pub table: &'static SealedTable,
}

/// Right-of-access requests (`access_request`).
pub(crate) const ACCESS: Kind = Kind {
    request: RequestKind::Access,
    table: &ACCESS_REQUEST,
};

/// Amendment requests (`amendment_request`).
pub(crate) const AMENDMENT: Kind = Kind {
    request: RequestKind::Amendment,
    table: &AMENDMENT_REQUEST,
};

/// Why a step of the lifecycle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such request here.
    NotFound,
    /// The lifecycle refused it.
    Lifecycle(rights::Refusal),
}

/// Seals `text` into `column` of request `id` of `kind` in the transaction's practice.
pub(crate) async fn seal(
    tx: &TenantTx,
    keyring: &Keyring,
    kind: &Kind,
    column: &str,
    id: uuid::Uuid,
    text: &str,
) -> Result<Vec<u8>, StoreError> {
    seal_field(
        keyring,
        &kind.table.context(tx.practice(), column, id.as_bytes()),
        text.as_bytes(),
    )
    .await
}

/// Opens the optional sealed `column` of row `id` of a patient-request table: `None` when
/// nothing was written there.
pub(crate) async fn open_sealed(
    opener: &Opener<'_>,
    table: &SealedTable,
    practice: PracticeId,
    column: &str,
    id: &uuid::Uuid,
    ct: Option<&[u8]>,
) -> Result<Option<String>, StoreError> {
    match ct {
        Some(ct) => Ok(Some(
            opener
                .open_text(&table.context(practice, column, id.as_bytes()), ct)
                .await?,
        )),
        None => Ok(None),
    }
}

/// Locks request `id` of `kind` and decides `action` with the written `reason` at the
/// transaction's time ([`rights::apply`]): its receipt time when the action may go on.
pub(crate) async fn decide(
    tx: &mut TenantTx,
    kind: &Kind,
    id: uuid::Uuid,
    action: Action,
    reason: Option<&str>,
) -> Result<Result<DateTime<Utc>, Refusal>, StoreError> {
    let practice = tx.practice();
    let row: Option<(DateTime<Utc>, String)> = sqlx::query_as(&format!(
        "select received_at, status from {} where practice_id = $1 and request_id = $2
            for update",
        kind.table.table
    ))
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((received, status)) = row else {
        return Ok(Err(Refusal::NotFound));
    };
    let status = Status::parse(&status).ok_or(StoreError::Corrupt(
        "a patient request has an unknown status",
    ))?;
    Ok(
        rights::apply(kind.request, received, status, action, reason, tx.now())
            .map(|_| received)
            .map_err(Refusal::Lifecycle),
    )
}

/// Extends request `id` of `kind` once by [`rights::EXTENSION_DAYS`] with the written
/// `reason` (sealed). Refused for a second extension, after the first deadline, without a
/// reason, or when closed; nothing is written then.
pub(crate) async fn extend(
    tx: &mut TenantTx,
    keyring: &Keyring,
    kind: &Kind,
    id: uuid::Uuid,
    reason: &str,
) -> Result<Result<(), Refusal>, StoreError> {
    let received = match decide(tx, kind, id, Action::Extend, Some(reason)).await? {
        Ok(r) => r,
        Err(r) => return Ok(Err(r)),
    };
    let sealed = seal(tx, keyring, kind, "extension_reason", id, reason).await?;
    let due = rights::due(kind.request, received, true);
    let (practice, now) = (tx.practice(), tx.now());
    sqlx::query(&format!(
        "update {} set status = 'extended', due_at = $3, extended_at = $4,
                extension_reason_enc = $5, updated_at = $4
          where practice_id = $1 and request_id = $2",
        kind.table.table
    ))
    .bind(practice)
    .bind(id)
    .bind(due)
    .bind(now)
    .bind(&sealed)
    .execute(tx.conn())
    .await?;
    Ok(Ok(()))
}

/// Denies request `id` of `kind` now, by the actor, with the written `reason` (sealed).
/// Refused without a reason or when closed; nothing is written then.
pub(crate) async fn deny(
    tx: &mut TenantTx,
    keyring: &Keyring,
    kind: &Kind,
    id: uuid::Uuid,
    reason: &str,
) -> Result<Result<(), Refusal>, StoreError> {
    if let Err(r) = decide(tx, kind, id, Action::Deny, Some(reason)).await? {
        return Ok(Err(r));
    }
    let sealed = seal(tx, keyring, kind, "denial_reason", id, reason).await?;
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    sqlx::query(&format!(
        "update {} set status = 'denied', denial_reason_enc = $3, closed_at = $4,
                closed_by = $5, updated_at = $4
          where practice_id = $1 and request_id = $2",
        kind.table.table
    ))
    .bind(practice)
    .bind(id)
    .bind(&sealed)
    .bind(now)
    .bind(actor)
    .execute(tx.conn())
    .await?;
    Ok(Ok(()))
}

/// Raises, as the owner role, the overdue alert of every request of `kind` of `practice`
/// still open or extended at or after its deadline at `now` ([`domain::rights::is_overdue`])
/// and not alerted before: each is marked once (`overdue_alerted_at`) and audited `action` on
/// an object of `object` kind (request and patient ids only). Returns the request ids and
/// deadlines raised by this call, soonest due first.
pub(crate) async fn raise_overdue(
    owner: &OwnerStore,
    kind: &Kind,
    action: AuditAction,
    object: ObjectKind,
    practice: PracticeId,
    now: DateTime<Utc>,
) -> Result<Vec<(uuid::Uuid, DateTime<Utc>)>, StoreError> {
    let mut tx = owner.begin_at(practice, now).await?;
    let rows: Vec<(uuid::Uuid, PatientId, DateTime<Utc>)> = sqlx::query_as(&format!(
        "update {} set overdue_alerted_at = $2
          where practice_id = $1 and closed_at is null and overdue_alerted_at is null
            and due_at <= $2
          returning request_id, patient_id, due_at",
        kind.table.table
    ))
    .bind(practice)
    .bind(now)
    .fetch_all(tx.conn())
    .await?;
    let mut raised = Vec::with_capacity(rows.len());
    for (request_id, patient, due_at) in rows {
        tx.audit(
            action,
            Some(AuditObject::new(object, request_id)),
            Some(patient),
            None,
        )
        .await?;
        raised.push((request_id, due_at));
    }
    raised.sort_by_key(|&(id, due)| (due, id));
    tx.commit().await?;
    Ok(raised)
}
