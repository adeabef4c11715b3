//! Patients' amendment requests (HIPAA 164.526; req SIG-07, SIG-08): the request and the
//! record it names, its deadline from the receipt (60 days, one 30-day extension), its
//! closing — accepted (the change lands on a note as an amendment or addendum through
//! [`crate::notes`], and the request names that version) or denied with a written reason —
//! then the patient's statement of disagreement and the practice's rebuttal, and the overdue
//! alert raised once. Owners, admins and clinicians (enforced by RLS, migration 0039). The
//! request-path functions do not audit: the caller appends the `amendment_request.*` event in
//! the same transaction; the overdue pass
//! ([`crate::OwnerStore::raise_amendment_request_alerts`]) audits its own events.
//!
//! # Encryption at rest
//! The change asked for, the written reasons, the statement of disagreement and the rebuttal
//! are text a person typed: stored only as field ciphertexts bound to (practice,
//! `amendment_request`, column, request id) ([`crate::sealed_columns::AMENDMENT_REQUEST`]).
//! Reading them goes through the transaction's opener, so the read must be audited.
//!
//! # Lifecycle
//! The lifecycle is the one every patient request shares ([`crate::requests`], kind
//! [`RequestKind::Amendment`]): decided by [`domain::rights::apply`] on the row locked
//! `for update`, so two concurrent extensions cannot both pass; the database checks the same
//! shape again (one extension column, the deadline a check constraint on the receipt). What is
//! this kind's own: the record it names, accepting (the change landed on the note), and the
//! statements after a denial (a statement of disagreement only after a denial, a rebuttal
//! only after a statement).

use chrono::{DateTime, Utc};
use crypto::Keyring;
use domain::rights::{self, Action, RequestKind, Status};
use domain::{AmendmentRequestId, AuditAction, NoteId, ObjectKind, PatientId, PracticeId, UserId};
use serde::Serialize;

use crate::requests::{self, AMENDMENT, open_sealed};
use crate::sealed_columns::AMENDMENT_REQUEST;
use crate::{OwnerStore, StoreError, TenantTx};

/// The kinds of record a request may name (`record_kind`).
pub const RECORD_KINDS: [&str; 6] = [
    "note",
    "demographics",
    "appointment",
    "perio_exam",
    "intake",
    "other",
];

async fn seal(
    tx: &TenantTx,
    keyring: &Keyring,
    column: &str,
    id: AmendmentRequestId,
    text: &str,
) -> Result<Vec<u8>, StoreError> {
    requests::seal(tx, keyring, &AMENDMENT, column, id.as_uuid(), text).await
}

/// A new request (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewAmendmentRequest {
    /// The patient.
    pub patient_id: PatientId,
    /// When the request was received (starts the clock).
    pub received_at: DateTime<Utc>,
    /// The kind of record (one of [`RECORD_KINDS`]).
    pub record_kind: String,
    /// The note, when the record is a note, and the version the patient read.
    pub note: Option<(NoteId, Option<i32>)>,
    /// What the patient asks to change, and why (sealed).
    pub requested_change: String,
}

/// A request in a list: nothing decrypted.
#[derive(Debug, Clone, Serialize)]
pub struct AmendmentRequestSummary {
    /// Id.
    pub request_id: AmendmentRequestId,
    /// The patient.
    pub patient_id: PatientId,
    /// Received.
    pub received_at: DateTime<Utc>,
    /// The kind of record it names.
    pub record_kind: String,
    /// The note it names.
    pub note_id: Option<NoteId>,
    /// The note version the patient read.
    pub note_version: Option<i32>,
    /// Status (`granted`: accepted).
    pub status: Status,
    /// When it is due (60 days after receipt, 90 once extended).
    pub due_at: DateTime<Utc>,
    /// When it was extended.
    pub extended_at: Option<DateTime<Utc>>,
    /// When it was accepted or denied.
    pub closed_at: Option<DateTime<Utc>>,
    /// The note version that carries the accepted change.
    pub landed_version: Option<i32>,
    /// `amendment` or `addendum`.
    pub landed_kind: Option<String>,
    /// When the patient's statement of disagreement was linked.
    pub disagreement_at: Option<DateTime<Utc>>,
    /// When the practice's rebuttal was linked.
    pub rebuttal_at: Option<DateTime<Utc>>,
    /// When its overdue alert was raised.
    pub overdue_alerted_at: Option<DateTime<Utc>>,
}

/// A request with its sealed fields opened.
#[derive(Debug, Clone)]
pub struct AmendmentRequest {
    /// The list fields.
    pub summary: AmendmentRequestSummary,
    /// What the patient asked to change.
    pub requested_change: String,
    /// Why it was extended.
    pub extension_reason: Option<String>,
    /// Why it was denied.
    pub denial_reason: Option<String>,
    /// The patient's statement of disagreement.
    pub disagreement: Option<String>,
    /// The practice's rebuttal.
    pub rebuttal: Option<String>,
    /// Who linked the rebuttal (`None` before one is linked, or for a rebuttal linked before
    /// its author was recorded).
    pub rebuttal_by: Option<UserId>,
    /// Who recorded it.
    pub created_by: Option<UserId>,
    /// Who accepted or denied it.
    pub closed_by: Option<UserId>,
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such request here.
    NotFound,
    /// The lifecycle refused it.
    Lifecycle(rights::Refusal),
    /// A statement of disagreement on a request that is not denied.
    NotDenied,
    /// A rebuttal before the patient's statement of disagreement.
    NoDisagreement,
    /// The statement (or rebuttal) was already linked.
    AlreadyLinked,
}

impl From<requests::Refusal> for Refusal {
    fn from(r: requests::Refusal) -> Self {
        match r {
            requests::Refusal::NotFound => Refusal::NotFound,
            requests::Refusal::Lifecycle(l) => Refusal::Lifecycle(l),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    request_id: AmendmentRequestId,
    patient_id: PatientId,
    received_at: DateTime<Utc>,
    record_kind: String,
    note_id: Option<NoteId>,
    note_version: Option<i32>,
    status: String,
    due_at: DateTime<Utc>,
    extended_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    landed_version: Option<i32>,
    landed_kind: Option<String>,
    disagreement_at: Option<DateTime<Utc>>,
    rebuttal_at: Option<DateTime<Utc>>,
    overdue_alerted_at: Option<DateTime<Utc>>,
}

const SUMMARY: &str = "request_id, patient_id, received_at, record_kind, note_id, note_version,
    status, due_at, extended_at, closed_at, landed_version, landed_kind, disagreement_at,
    rebuttal_at, overdue_alerted_at";

impl Row {
    fn into_summary(self) -> Result<AmendmentRequestSummary, StoreError> {
        Ok(AmendmentRequestSummary {
            request_id: self.request_id,
            patient_id: self.patient_id,
            received_at: self.received_at,
            record_kind: self.record_kind,
            note_id: self.note_id,
            note_version: self.note_version,
            status: Status::parse(&self.status).ok_or(StoreError::Corrupt(
                "an amendment request has an unknown status",
            ))?,
            due_at: self.due_at,
            extended_at: self.extended_at,
            closed_at: self.closed_at,
            landed_version: self.landed_version,
            landed_kind: self.landed_kind,
            disagreement_at: self.disagreement_at,
            rebuttal_at: self.rebuttal_at,
            overdue_alerted_at: self.overdue_alerted_at,
        })
    }
}

/// What a create names that does not exist here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The patient.
    Patient,
    /// The note (or it is another patient's).
    Note,
}

/// Records a request for `new.patient_id`, status `open`, due 60 days after receipt; the
/// change asked for sealed. `Ok(Err(_))` when the patient, or the note of that patient, does
/// not exist in this practice.
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    new: &NewAmendmentRequest,
) -> Result<Result<AmendmentRequestSummary, Missing>, StoreError> {
    let id = AmendmentRequestId::new();
    let change = seal(tx, keyring, "requested_change", id, &new.requested_change).await?;
    let received = audit::event::truncate_to_micros(new.received_at);
    let due = rights::due(RequestKind::Amendment, received, false);
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    let row: Result<Row, _> = sqlx::query_as(&format!(
        "insert into amendment_request (practice_id, request_id, patient_id, received_at,
            record_kind, note_id, note_version, requested_change_enc, due_at, created_by,
            created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
         returning {SUMMARY}"
    ))
    .bind(practice)
    .bind(id)
    .bind(new.patient_id)
    .bind(received)
    .bind(&new.record_kind)
    .bind(new.note.map(|(n, _)| n))
    .bind(new.note.and_then(|(_, v)| v))
    .bind(change)
    .bind(due)
    .bind(actor)
    .bind(now)
    .fetch_one(tx.conn())
    .await;
    match row {
        Ok(r) => Ok(Ok(r.into_summary()?)),
        Err(e) => match StoreError::from(e) {
            StoreError::Conflict(c) if c == "amendment_request_patient_fkey" => {
                Ok(Err(Missing::Patient))
            }
            StoreError::Conflict(c) if c == "amendment_request_note_fkey" => Ok(Err(Missing::Note)),
            other => Err(other),
        },
    }
}

/// The practice's requests (of `patient` only, when named), open ones first (soonest due
/// first), then the newest closed ones (at most 500); nothing decrypted.
pub async fn list(
    tx: &mut TenantTx,
    patient: Option<PatientId>,
) -> Result<Vec<AmendmentRequestSummary>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {SUMMARY} from amendment_request
          where practice_id = $1 and ($2::uuid is null or patient_id = $2)
          order by closed_at is not null, case when closed_at is null then due_at end,
                   closed_at desc, request_id limit 500"
    ))
    .bind(practice)
    .bind(patient)
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(Row::into_summary).collect()
}

/// The requests that name note `note`, oldest first; nothing decrypted (what a reader of the
/// note is shown: that amendment documents are linked, and where they stand).
pub async fn for_note(
    tx: &mut TenantTx,
    note: NoteId,
) -> Result<Vec<AmendmentRequestSummary>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {SUMMARY} from amendment_request
          where practice_id = $1 and note_id = $2 order by received_at, request_id"
    ))
    .bind(practice)
    .bind(note)
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(Row::into_summary).collect()
}

#[derive(sqlx::FromRow)]
struct Detail {
    requested_change_enc: Vec<u8>,
    extension_reason_enc: Option<Vec<u8>>,
    denial_reason_enc: Option<Vec<u8>>,
    disagreement_enc: Option<Vec<u8>>,
    rebuttal_enc: Option<Vec<u8>>,
    rebuttal_by: Option<UserId>,
    created_by: Option<UserId>,
    closed_by: Option<UserId>,
}

async fn opened(
    tx: &mut TenantTx,
    keyring: &Keyring,
    s: AmendmentRequestSummary,
) -> Result<AmendmentRequest, StoreError> {
    let practice = tx.practice();
    let d: Detail = sqlx::query_as(
        "select requested_change_enc, extension_reason_enc, denial_reason_enc,
                disagreement_enc, rebuttal_enc, rebuttal_by, created_by, closed_by
           from amendment_request where practice_id = $1 and request_id = $2",
    )
    .bind(practice)
    .bind(s.request_id)
    .fetch_one(tx.conn())
    .await?;
    let uid = s.request_id.as_uuid();
    let opener = tx.opener(keyring);
    let open = |column: &'static str, ct: Option<Vec<u8>>| {
        let opener = &opener;
        async move {
            open_sealed(
                opener,
                &AMENDMENT_REQUEST,
                practice,
                column,
                &uid,
                ct.as_deref(),
            )
            .await
        }
    };
    let requested_change = open("requested_change", Some(d.requested_change_enc))
        .await?
        .unwrap_or_default();
    Ok(AmendmentRequest {
        requested_change,
        extension_reason: open("extension_reason", d.extension_reason_enc).await?,
        denial_reason: open("denial_reason", d.denial_reason_enc).await?,
        disagreement: open("disagreement", d.disagreement_enc).await?,
        rebuttal: open("rebuttal", d.rebuttal_enc).await?,
        rebuttal_by: d.rebuttal_by,
        created_by: d.created_by,
        closed_by: d.closed_by,
        summary: s,
    })
}

/// Request `id` with its sealed fields opened (the caller audits `amendment_request.read`),
/// or `None` when not visible here.
pub async fn get(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AmendmentRequestId,
) -> Result<Option<AmendmentRequest>, StoreError> {
    match summary(tx, id).await? {
        Some(s) => Ok(Some(opened(tx, keyring, s).await?)),
        None => Ok(None),
    }
}

/// Request `id`'s list fields (nothing decrypted), or `None` when not visible here: what a
/// change needs to know of it (the note it names) before the change is decided.
pub async fn summary(
    tx: &mut TenantTx,
    id: AmendmentRequestId,
) -> Result<Option<AmendmentRequestSummary>, StoreError> {
    let practice = tx.practice();
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {SUMMARY} from amendment_request where practice_id = $1 and request_id = $2"
    ))
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    row.map(Row::into_summary).transpose()
}

/// Every request of `patient`, oldest first, with its sealed fields opened (the record export
/// holds them; the caller audits). At most 100, plus one to tell "full" from "too many".
pub async fn for_patient_opened(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
) -> Result<Vec<AmendmentRequest>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {SUMMARY} from amendment_request where practice_id = $1 and patient_id = $2
          order by received_at, request_id limit 101"
    ))
    .bind(practice)
    .bind(patient)
    .fetch_all(tx.conn())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(opened(tx, keyring, r.into_summary()?).await?);
    }
    Ok(out)
}

/// The request locked for a change: its summary.
async fn for_update(
    tx: &mut TenantTx,
    id: AmendmentRequestId,
) -> Result<Option<AmendmentRequestSummary>, StoreError> {
    let practice = tx.practice();
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {SUMMARY} from amendment_request where practice_id = $1 and request_id = $2
            for update"
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
    id: AmendmentRequestId,
    done: Result<(), requests::Refusal>,
) -> Result<Result<AmendmentRequestSummary, Refusal>, StoreError> {
    if let Err(r) = done {
        return Ok(Err(r.into()));
    }
    Ok(summary(tx, id).await?.ok_or(Refusal::NotFound))
}

/// Decides `action` on request `id` at the transaction's time ([`rights::apply`]): the
/// request locked, when it may change.
pub async fn decide(
    tx: &mut TenantTx,
    id: AmendmentRequestId,
    action: Action,
    reason: Option<&str>,
) -> Result<Result<AmendmentRequestSummary, Refusal>, StoreError> {
    let done = requests::decide(tx, &AMENDMENT, id.as_uuid(), action, reason)
        .await?
        .map(|_| ());
    after(tx, id, done).await
}

/// Extends request `id` once by 30 days with the written `reason` (sealed). Refused for a
/// second extension, after the first deadline, without a reason, or when closed.
pub async fn extend(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AmendmentRequestId,
    reason: &str,
) -> Result<Result<AmendmentRequestSummary, Refusal>, StoreError> {
    let done = requests::extend(tx, keyring, &AMENDMENT, id.as_uuid(), reason).await?;
    after(tx, id, done).await
}

/// Denies request `id` with the written `reason` (sealed).
pub async fn deny(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AmendmentRequestId,
    reason: &str,
) -> Result<Result<AmendmentRequestSummary, Refusal>, StoreError> {
    let done = requests::deny(tx, keyring, &AMENDMENT, id.as_uuid(), reason).await?;
    after(tx, id, done).await
}

/// Marks request `id` accepted now by the actor, naming the note version that carries the
/// change (`Some((version, "amendment" | "addendum"))`, for a request that names a note).
/// Call after [`decide`] with [`Action::Grant`] in the same transaction.
pub async fn mark_accepted(
    tx: &mut TenantTx,
    id: AmendmentRequestId,
    landed: Option<(i32, &str)>,
) -> Result<AmendmentRequestSummary, StoreError> {
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    let row: Row = sqlx::query_as(&format!(
        "update amendment_request set status = 'granted', closed_at = $3, closed_by = $4,
                landed_version = $5, landed_kind = $6, updated_at = $3
          where practice_id = $1 and request_id = $2 and closed_at is null
          returning {SUMMARY}"
    ))
    .bind(practice)
    .bind(id)
    .bind(now)
    .bind(actor)
    .bind(landed.map(|(v, _)| v))
    .bind(landed.map(|(_, k)| k))
    .fetch_one(tx.conn())
    .await?;
    row.into_summary()
}

/// Links the patient's statement of disagreement (164.526(d)(1)(iii)) to denied request `id`
/// (sealed), once.
pub async fn add_disagreement(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AmendmentRequestId,
    text: &str,
) -> Result<Result<AmendmentRequestSummary, Refusal>, StoreError> {
    let Some(s) = for_update(tx, id).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    if s.status != Status::Denied {
        return Ok(Err(Refusal::NotDenied));
    }
    if s.disagreement_at.is_some() {
        return Ok(Err(Refusal::AlreadyLinked));
    }
    link(tx, keyring, id, "disagreement", text).await.map(Ok)
}

/// Links the practice's rebuttal (164.526(d)(3)) to request `id` (sealed), once, after the
/// patient's statement of disagreement; the actor is recorded as its author (`rebuttal_by`).
pub async fn add_rebuttal(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AmendmentRequestId,
    text: &str,
) -> Result<Result<AmendmentRequestSummary, Refusal>, StoreError> {
    let Some(s) = for_update(tx, id).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    if s.disagreement_at.is_none() {
        return Ok(Err(Refusal::NoDisagreement));
    }
    if s.rebuttal_at.is_some() {
        return Ok(Err(Refusal::AlreadyLinked));
    }
    link(tx, keyring, id, "rebuttal", text).await.map(Ok)
}

/// Seals `text` into `column` (`disagreement` or `rebuttal`) of request `id`, stamped now; a
/// rebuttal also names the actor as its author (a statement of disagreement is the
/// patient's, whoever types it in).
async fn link(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AmendmentRequestId,
    column: &'static str,
    text: &str,
) -> Result<AmendmentRequestSummary, StoreError> {
    let sealed = seal(tx, keyring, column, id, text).await?;
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    let author = if column == "rebuttal" {
        ", rebuttal_by = $5"
    } else {
        ""
    };
    let sql = format!(
        "update amendment_request set {column}_enc = $3, {column}_at = $4, updated_at = $4{author}
          where practice_id = $1 and request_id = $2 returning {SUMMARY}"
    );
    let mut query = sqlx::query_as::<_, Row>(&sql)
        .bind(practice)
        .bind(id)
        .bind(&sealed)
        .bind(now);
    if !author.is_empty() {
        query = query.bind(actor);
    }
    let row = query.fetch_one(tx.conn()).await?;
    row.into_summary()
}

/// An overdue alert raised for an amendment request.
#[derive(Debug, Clone, Serialize)]
pub struct OverdueAlert {
    /// The practice.
    pub practice_id: PracticeId,
    /// The request.
    pub request_id: AmendmentRequestId,
    /// When it was due.
    pub due_at: DateTime<Utc>,
}

impl OwnerStore {
    /// Raises, as the owner role, the overdue alert of every amendment request of `practice`
    /// still open or extended at or after its deadline at `now`
    /// ([`domain::rights::is_overdue`]) and not alerted before: each is marked once
    /// (`overdue_alerted_at`) and audited `amendment_request.overdue` (request and patient ids
    /// only). Returns the alerts raised by this call.
    pub async fn raise_amendment_request_alerts(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<Vec<OverdueAlert>, StoreError> {
        let raised = requests::raise_overdue(
            self,
            &AMENDMENT,
            AuditAction::AmendmentRequestOverdue,
            ObjectKind::AmendmentRequest,
            practice,
            now,
        )
        .await?;
        Ok(raised
            .into_iter()
            .map(|(id, due_at)| OverdueAlert {
                practice_id: practice,
                request_id: AmendmentRequestId::from_uuid(id),
                due_at,
            })
            .collect())
    }
}
