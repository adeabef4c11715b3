//! Patients' right-of-access requests (HIPAA 164.524; req PR-01): the request, its deadline
//! from the receipt, its one extension, its closing (granted when the copy is produced, or
//! denied), and the overdue alert raised once. Owners, admins and clinicians (enforced by RLS,
//! migration 0037). The request-path functions do not audit: the caller appends the
//! `access_request.*` event in the same transaction; the overdue pass
//! ([`crate::OwnerStore::raise_access_request_alerts`]) audits its own events.
//!
//! # Encryption at rest
//! The third-party recipient and the written reasons of an extension or a denial are text a
//! person typed: stored only as field ciphertexts bound to (practice, `access_request`, column,
//! request id) ([`crate::sealed_columns::ACCESS_REQUEST`]). Reading them goes through the
//! transaction's opener, so the read must be audited.
//!
//! # Lifecycle
//! The lifecycle is the one every patient request shares ([`crate::requests`]): decided by
//! [`domain::rights::apply`] on the row locked `for update`, so two concurrent extensions
//! cannot both pass; the database checks the same shape again (one extension column, the
//! deadline a check constraint on the receipt). What is this kind's own: the form and the
//! recipient, and granting (the copy produced, the disclosure recorded).

use chrono::{DateTime, Utc};
use crypto::{FieldContext, Keyring};
use domain::rights::{self, Action, RequestKind, Status};
use domain::{AccessRequestId, AuditAction, ObjectKind, PatientId, PracticeId, UserId};
use serde::Serialize;

use crate::entry::Opener;
use crate::requests::{self, ACCESS};
use crate::sealed_columns::{ACCESS_REQUEST, seal_field};
use crate::{OwnerStore, StoreError, TenantTx};

pub use crate::requests::Refusal;

/// The field context of one sealed column of request `id`.
fn context<'a>(practice: PracticeId, column: &'a str, id: &'a uuid::Uuid) -> FieldContext<'a> {
    ACCESS_REQUEST.context(practice, column, id.as_bytes())
}

/// A new request (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewAccessRequest {
    /// The patient.
    pub patient_id: PatientId,
    /// When the request was received (starts the clock).
    pub received_at: DateTime<Utc>,
    /// The form asked for (one of [`domain::rights::ACCESS_FORMS`]).
    pub form: String,
    /// The third party the copy goes to, when not the patient (sealed).
    pub recipient: Option<String>,
}

/// A request in a list: nothing decrypted.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRequestSummary {
    /// Id.
    pub request_id: AccessRequestId,
    /// The patient.
    pub patient_id: PatientId,
    /// Received.
    pub received_at: DateTime<Utc>,
    /// The form asked for.
    pub form: String,
    /// Whether a third party is to receive the copy.
    pub third_party: bool,
    /// Status.
    pub status: Status,
    /// When it is due (30 days after receipt, 60 once extended).
    pub due_at: DateTime<Utc>,
    /// When it was extended.
    pub extended_at: Option<DateTime<Utc>>,
    /// When it was granted or denied.
    pub closed_at: Option<DateTime<Utc>>,
    /// The disclosure recorded when the copy went to a third party.
    pub disclosure_id: Option<uuid::Uuid>,
    /// When its overdue alert was raised.
    pub overdue_alerted_at: Option<DateTime<Utc>>,
}

/// A request with its sealed fields opened.
#[derive(Debug, Clone)]
pub struct AccessRequest {
    /// The list fields.
    pub summary: AccessRequestSummary,
    /// The third-party recipient.
    pub recipient: Option<String>,
    /// Why it was extended.
    pub extension_reason: Option<String>,
    /// Why it was denied.
    pub denial_reason: Option<String>,
    /// Who recorded it.
    pub created_by: Option<UserId>,
    /// Who granted or denied it.
    pub closed_by: Option<UserId>,
}

#[derive(sqlx::FromRow)]
struct Row {
    request_id: AccessRequestId,
    patient_id: PatientId,
    received_at: DateTime<Utc>,
    form: String,
    third_party: bool,
    status: String,
    due_at: DateTime<Utc>,
    extended_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    disclosure_id: Option<uuid::Uuid>,
    overdue_alerted_at: Option<DateTime<Utc>>,
}

const SUMMARY: &str =
    "request_id, patient_id, received_at, form, recipient_enc is not null as third_party,
    status, due_at, extended_at, closed_at, disclosure_id, overdue_alerted_at";

impl Row {
    fn into_summary(self) -> Result<AccessRequestSummary, StoreError> {
        Ok(AccessRequestSummary {
            request_id: self.request_id,
            patient_id: self.patient_id,
            received_at: self.received_at,
            form: self.form,
            third_party: self.third_party,
            status: Status::parse(&self.status).ok_or(StoreError::Corrupt(
                "an access request has an unknown status",
            ))?,
            due_at: self.due_at,
            extended_at: self.extended_at,
            closed_at: self.closed_at,
            disclosure_id: self.disclosure_id,
            overdue_alerted_at: self.overdue_alerted_at,
        })
    }
}

/// Records a request for `new.patient_id`, status `open`, due 30 days after receipt; the
/// recipient sealed. `Ok(None)` when the patient does not exist in this practice.
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    new: &NewAccessRequest,
) -> Result<Option<AccessRequestId>, StoreError> {
    let id = AccessRequestId::new();
    let uid = id.as_uuid();
    let practice = tx.practice();
    let recipient = match &new.recipient {
        Some(r) => {
            Some(seal_field(keyring, &context(practice, "recipient", &uid), r.as_bytes()).await?)
        }
        None => None,
    };
    let received = audit::event::truncate_to_micros(new.received_at);
    let due = rights::due(RequestKind::Access, received, false);
    let (actor, now) = (tx.actor(), tx.now());
    let done = sqlx::query(
        "insert into access_request (practice_id, request_id, patient_id, received_at, form,
            recipient_enc, due_at, created_by, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(practice)
    .bind(id)
    .bind(new.patient_id)
    .bind(received)
    .bind(&new.form)
    .bind(recipient)
    .bind(due)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await;
    match done {
        Ok(_) => Ok(Some(id)),
        Err(e) => match StoreError::from(e) {
            StoreError::Conflict(c) if c == "access_request_patient_fkey" => Ok(None),
            other => Err(other),
        },
    }
}

/// The practice's requests, open ones first (soonest due first), then the newest closed ones
/// (at most 500); nothing decrypted.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<AccessRequestSummary>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {SUMMARY} from access_request where practice_id = $1
          order by closed_at is not null, case when closed_at is null then due_at end,
                   closed_at desc, request_id limit 500"
    ))
    .bind(practice)
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(Row::into_summary).collect()
}

#[derive(sqlx::FromRow)]
struct Detail {
    recipient_enc: Option<Vec<u8>>,
    extension_reason_enc: Option<Vec<u8>>,
    denial_reason_enc: Option<Vec<u8>>,
    created_by: Option<UserId>,
    closed_by: Option<UserId>,
}

async fn open_opt(
    opener: &Opener<'_>,
    practice: PracticeId,
    column: &str,
    id: &uuid::Uuid,
    ct: Option<&[u8]>,
) -> Result<Option<String>, StoreError> {
    requests::open_sealed(opener, &ACCESS_REQUEST, practice, column, id, ct).await
}

/// Request `id` with its sealed fields opened (the caller audits `access_request.read`), or
/// `None` when not visible here.
pub async fn get(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AccessRequestId,
) -> Result<Option<AccessRequest>, StoreError> {
    let practice = tx.practice();
    let Some(summary) = summary(tx, id).await? else {
        return Ok(None);
    };
    let d: Detail = sqlx::query_as(
        "select recipient_enc, extension_reason_enc, denial_reason_enc, created_by, closed_by
           from access_request where practice_id = $1 and request_id = $2",
    )
    .bind(practice)
    .bind(id)
    .fetch_one(tx.conn())
    .await?;
    let uid = id.as_uuid();
    let opener = tx.opener(keyring);
    Ok(Some(AccessRequest {
        summary,
        recipient: open_opt(
            &opener,
            practice,
            "recipient",
            &uid,
            d.recipient_enc.as_deref(),
        )
        .await?,
        extension_reason: open_opt(
            &opener,
            practice,
            "extension_reason",
            &uid,
            d.extension_reason_enc.as_deref(),
        )
        .await?,
        denial_reason: open_opt(
            &opener,
            practice,
            "denial_reason",
            &uid,
            d.denial_reason_enc.as_deref(),
        )
        .await?,
        created_by: d.created_by,
        closed_by: d.closed_by,
    }))
}

/// Request `id`'s list fields (nothing decrypted), or `None` when not visible here.
async fn summary(
    tx: &mut TenantTx,
    id: AccessRequestId,
) -> Result<Option<AccessRequestSummary>, StoreError> {
    let practice = tx.practice();
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {SUMMARY} from access_request where practice_id = $1 and request_id = $2"
    ))
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    row.map(Row::into_summary).transpose()
}

/// The request as a lifecycle step left it (`done`), or why the step was refused.
async fn after(
    tx: &mut TenantTx,
    id: AccessRequestId,
    done: Result<(), Refusal>,
) -> Result<Result<AccessRequestSummary, Refusal>, StoreError> {
    if let Err(r) = done {
        return Ok(Err(r));
    }
    Ok(summary(tx, id).await?.ok_or(Refusal::NotFound))
}

/// Extends request `id` once by 30 days with the written `reason` (sealed). Refused for a
/// second extension, after the first deadline, without a reason, or when closed.
pub async fn extend(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AccessRequestId,
    reason: &str,
) -> Result<Result<AccessRequestSummary, Refusal>, StoreError> {
    let done = requests::extend(tx, keyring, &ACCESS, id.as_uuid(), reason).await?;
    after(tx, id, done).await
}

/// Denies request `id` with the written `reason` (sealed).
pub async fn deny(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AccessRequestId,
    reason: &str,
) -> Result<Result<AccessRequestSummary, Refusal>, StoreError> {
    let done = requests::deny(tx, keyring, &ACCESS, id.as_uuid(), reason).await?;
    after(tx, id, done).await
}

/// The request `id` as it stands, locked, when it may be granted now; with its recipient
/// opened (the caller audits). The caller produces the copy, then calls [`mark_granted`].
pub async fn to_grant(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AccessRequestId,
) -> Result<Result<AccessRequest, Refusal>, StoreError> {
    if let Err(r) = requests::decide(tx, &ACCESS, id.as_uuid(), Action::Grant, None).await? {
        return Ok(Err(r));
    }
    match get(tx, keyring, id).await? {
        Some(r) => Ok(Ok(r)),
        None => Ok(Err(Refusal::NotFound)),
    }
}

/// Marks request `id` granted now by the actor, with the disclosure recorded for a third
/// party (if any). Call after [`to_grant`] in the same transaction.
pub async fn mark_granted(
    tx: &mut TenantTx,
    id: AccessRequestId,
    disclosure: Option<uuid::Uuid>,
) -> Result<(), StoreError> {
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    sqlx::query(
        "update access_request set status = 'granted', closed_at = $3, closed_by = $4,
                disclosure_id = $5, updated_at = $3
          where practice_id = $1 and request_id = $2 and closed_at is null",
    )
    .bind(practice)
    .bind(id)
    .bind(now)
    .bind(actor)
    .bind(disclosure)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// An overdue alert raised for a request.
#[derive(Debug, Clone, Serialize)]
pub struct OverdueAlert {
    /// The practice.
    pub practice_id: PracticeId,
    /// The request.
    pub request_id: AccessRequestId,
    /// When it was due.
    pub due_at: DateTime<Utc>,
}

impl OwnerStore {
    /// Raises, as the owner role, the overdue alert of every request of `practice` still open
    /// or extended at or after its deadline at `now` ([`domain::rights::is_overdue`]) and not
    /// alerted before: each is marked once (`overdue_alerted_at`) and audited
    /// `access_request.overdue` (request and patient ids only). Returns the alerts raised by
    /// this call.
    pub async fn raise_access_request_alerts(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<Vec<OverdueAlert>, StoreError> {
        let raised = requests::raise_overdue(
            self,
            &ACCESS,
            AuditAction::AccessRequestOverdue,
            ObjectKind::AccessRequest,
            practice,
            now,
        )
        .await?;
        Ok(raised
            .into_iter()
            .map(|(id, due_at)| OverdueAlert {
                practice_id: practice,
                request_id: AccessRequestId::from_uuid(id),
                due_at,
            })
            .collect())
    }
}
