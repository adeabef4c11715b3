//! Intake forms: the practice sends a versioned form ([`domain::intake`]) to a patient by
//! client link; the link holder opens it (prefilled from the chart), signs and submits it; the
//! practice reviews it and accepts it onto the chart or rejects it.
//!
//! # Guarantees
//! - A request records the form's id, version and definition hash; the holder gets exactly
//!   that definition, and the signature's evidence hash covers it ([`domain::intake::evidence_hash`]).
//! - The holder's transaction ([`PublicIntake`]) enters through the client link's entry
//!   (`crate::entry::enter_link`, purpose `intake`): an expired, used, revoked or other-purpose
//!   link, or a request no longer waiting, opens nothing.
//! - The prefill (name, date of birth) is opened only in the holder's transaction, which then
//!   appends `intake.open`; it is shown to the holder and never stored with the link.
//! - Answers, the typed name and the client's address are sealed (`intake_response`); the
//!   response records that the intent statement was shown, the consent to sign electronically,
//!   the evidence hash and the time. A refused submission changes nothing.
//! - Submitting uses the link up: it opens nothing afterwards.
//! - Nothing reaches the chart before a clinician or reception accepts the form: the chart
//!   lists accepted forms only ([`on_chart`]). Listing the queue (`intake.list`), opening a
//!   response (`intake.read`, decrypts) and deciding (`intake.decide`) are audited.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use crypto::{FieldContext, Keyring};
use domain::intake::{FormDef, catalogue, check_signer_name, evidence_hash};
use domain::{AuditAction, AuditObject, IntakeRequestId, PatientId, PracticeId, RequestId};
use outbound::{LinkOrigin, LinkToken, OpaqueLink};
use serde::Serialize;
use sqlx::PgConnection;

use crate::append::NewEvent;
use crate::entry::{Audited, EnteredLink};
use crate::links::{INTAKE_LINK_TTL_DAYS, NewLink, Purpose};
use crate::sealed_columns::{INTAKE_REQUEST, INTAKE_RESPONSE, seal_field};
use crate::{StoreError, TenantTx};

/// Longest rejection reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

fn form_of(id: &str, version: i32) -> Result<&'static FormDef, StoreError> {
    let cat = catalogue().map_err(|_| StoreError::Corrupt("the intake form catalogue"))?;
    u32::try_from(version)
        .ok()
        .and_then(|v| cat.get(id, v))
        .ok_or(StoreError::Corrupt("intake_request names an unknown form"))
}

fn response_ctx<'a>(practice: PracticeId, column: &'a str, id: &'a uuid::Uuid) -> FieldContext<'a> {
    INTAKE_RESPONSE.context(practice, column, id.as_bytes())
}

fn request_ctx<'a>(practice: PracticeId, column: &'a str, id: &'a uuid::Uuid) -> FieldContext<'a> {
    INTAKE_REQUEST.context(practice, column, id.as_bytes())
}

/// A request just made, with its link (the token is never stored: queue it or lose it).
#[derive(Debug)]
pub struct IntakeLink {
    /// The request.
    pub request_id: IntakeRequestId,
    /// The link.
    pub link: NewLink,
}

impl IntakeLink {
    /// The URL for the message: `{origin}/intake/{token}`.
    #[must_use]
    pub fn url(&self, origin: &LinkOrigin) -> OpaqueLink {
        self.link.url(origin, Purpose::Intake)
    }

    /// The token.
    #[must_use]
    pub fn token(&self) -> &LinkToken {
        &self.link.token
    }
}

/// Requests the newest version of form `form_id` from `patient` and makes its intake link
/// (live for [`INTAKE_LINK_TTL_DAYS`] days). The scheduling roles; appends `intake.request`.
/// `None` when there is no such live patient; [`StoreError::Invalid`] for an unknown form. The
/// caller queues the message with [`IntakeLink::url`] in the same transaction.
pub async fn create_intake_link(
    tx: &mut TenantTx,
    patient: PatientId,
    form_id: &str,
) -> Result<Option<IntakeLink>, StoreError> {
    let form = catalogue()
        .map_err(|_| StoreError::Corrupt("the intake form catalogue"))?
        .latest(form_id)
        .ok_or_else(|| StoreError::Invalid("intake.form".into()))?;
    if !crate::patients::exists(tx, patient).await?
        || crate::patients::is_deleted(tx, patient).await?
    {
        return Ok(None);
    }
    let practice = tx.practice();
    let (actor, now) = (tx.actor(), tx.now());
    let request_id = IntakeRequestId::new();
    let link = crate::links::insert(
        tx.conn(),
        practice,
        Purpose::Intake,
        patient,
        request_id.as_uuid(),
        Some(actor),
        now,
        now + Duration::days(INTAKE_LINK_TTL_DAYS),
    )
    .await?;
    sqlx::query(
        "insert into intake_request (practice_id, request_id, patient_id, form_id, form_version,
                form_hash, status, link_id, requested_by, created_at)
         values ($1, $2, $3, $4, $5, $6, 'sent', $7, $8, $9)",
    )
    .bind(practice)
    .bind(request_id)
    .bind(patient)
    .bind(&form.id)
    .bind(i32::try_from(form.version).unwrap_or(i32::MAX))
    .bind(form.hash.as_slice())
    .bind(link.link_id)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?;
    tx.audit_details(
        AuditAction::IntakeRequest,
        Some(patient),
        Some(AuditObject::intake_request(request_id)),
        Some(serde_json::json!({"form": form.id, "version": form.version})),
    )
    .await?;
    Ok(Some(IntakeLink { request_id, link }))
}

/// Requests form `form_id` from `patient` ([`create_intake_link`]) and queues the intake
/// message to the patient's usable contacts (an email and an SMS, each once) in the same
/// transaction: the link's token lives only in those sealed messages. `None` when there is no
/// such live patient; otherwise the request and how many messages were queued (0 when the
/// chart has no usable contact: the request waits, and staff can see it was not sent).
pub async fn request_and_send(
    tx: &mut TenantTx,
    keyring: &Keyring,
    patient: PatientId,
    form_id: &str,
) -> Result<Option<(IntakeRequestId, usize)>, StoreError> {
    use crate::outbox::{Cause, Channel, Contacts, NewMessage, Recipient, Slots, address, enqueue};
    let Some(p) = crate::patients::get(tx, keyring, patient).await? else {
        return Ok(None);
    };
    let Some(made) = create_intake_link(tx, patient, form_id).await? else {
        return Ok(None);
    };
    let contacts = Contacts {
        phone: p.phone.as_deref(),
        email: p.email.as_deref(),
    };
    let slots = Slots {
        time: None,
        link_token: Some(made.token().expose_for_sealing().to_owned()),
        ..Slots::default()
    };
    let mut queued = 0;
    for channel in [Channel::Email, Channel::Sms] {
        let Some(to) = address(channel, contacts) else {
            continue;
        };
        let message = NewMessage {
            patient: Some(patient),
            template: "intake_request",
            channel,
            cause: Cause::Intake,
            cause_id: made.request_id.as_uuid(),
            recipient: Recipient(to),
            slots: slots.clone(),
            time_zone: None,
            not_before: None,
        };
        if enqueue(tx, keyring, &message).await? {
            queued += 1;
        }
    }
    Ok(Some((made.request_id, queued)))
}

/// The state of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = IntakeStatus)]
pub enum Status {
    /// Sent; the client has not submitted it.
    Sent,
    /// Signed and submitted; waiting for review.
    Submitted,
    /// Accepted onto the chart.
    Accepted,
    /// Rejected with a reason.
    Rejected,
}

impl Status {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "sent" => Self::Sent,
            "submitted" => Self::Submitted,
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            _ => return Err(StoreError::Corrupt("intake_request.status")),
        })
    }

    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Submitted => "submitted",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
}

/// A request in a list (ids, form, state and times: nothing decrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = IntakeRequestRow)]
pub struct RequestRow {
    /// The request.
    pub request_id: IntakeRequestId,
    /// The patient.
    pub patient_id: PatientId,
    /// The form's id.
    pub form_id: String,
    /// Its version.
    pub form_version: u32,
    /// Its title.
    pub title: String,
    /// The state.
    pub status: Status,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it was submitted.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When it was accepted or rejected.
    pub decided_at: Option<DateTime<Utc>>,
}

type RowTuple = (
    IntakeRequestId,
    PatientId,
    String,
    i32,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// A request row with its sealed rejection reason.
type WithReason = (
    IntakeRequestId,
    PatientId,
    String,
    i32,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<Vec<u8>>,
);

const ROW_COLUMNS: &str =
    "request_id, patient_id, form_id, form_version, status, created_at, submitted_at, decided_at";

fn row(
    (id, patient, form_id, version, status, created, submitted, decided): RowTuple,
) -> Result<RequestRow, StoreError> {
    let form = form_of(&form_id, version)?;
    Ok(RequestRow {
        request_id: id,
        patient_id: patient,
        title: form.title.clone(),
        form_id,
        form_version: form.version,
        status: Status::parse(&status)?,
        created_at: created,
        submitted_at: submitted,
        decided_at: decided,
    })
}

/// The review queue: requests waiting for review (`submitted`), oldest first, then the 50
/// latest decided. The scheduling roles; appends `intake.list` naming each patient shown.
pub async fn queue(tx: &mut TenantTx) -> Result<Vec<RequestRow>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<RowTuple> = sqlx::query_as(&format!(
        "(select {ROW_COLUMNS} from intake_request
           where practice_id = $1 and status = 'submitted' order by submitted_at, request_id limit 200)
         union all
         (select {ROW_COLUMNS} from intake_request
           where practice_id = $1 and status in ('accepted', 'rejected')
           order by decided_at desc, request_id limit 50)"
    ))
    .bind(practice)
    .fetch_all(tx.conn())
    .await?;
    let rows = rows.into_iter().map(row).collect::<Result<Vec<_>, _>>()?;
    tx.audit_patients(AuditAction::IntakeList, rows.iter().map(|r| r.patient_id))
        .await?;
    Ok(rows)
}

/// A patient's requests, newest first (nothing decrypted, no audit event: the caller's page
/// audits the patient it shows).
pub async fn for_patient(
    tx: &mut TenantTx,
    patient: PatientId,
) -> Result<Vec<RequestRow>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<RowTuple> = sqlx::query_as(&format!(
        "select {ROW_COLUMNS} from intake_request where practice_id = $1 and patient_id = $2
          order by created_at desc, request_id limit 100"
    ))
    .bind(practice)
    .bind(patient)
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(row).collect()
}

/// The intake records on a patient's chart: the accepted forms only, newest first.
pub async fn on_chart(
    tx: &mut TenantTx,
    patient: PatientId,
) -> Result<Vec<RequestRow>, StoreError> {
    Ok(for_patient(tx, patient)
        .await?
        .into_iter()
        .filter(|r| r.status == Status::Accepted)
        .collect())
}

/// A submitted form as the reviewer sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = IntakeReview)]
pub struct Review {
    /// The request.
    #[serde(flatten)]
    pub request: RequestRow,
    /// The answers by field key.
    pub answers: BTreeMap<String, String>,
    /// The name typed as the signature.
    pub signer_name: String,
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// The intent statement was shown.
    pub intent_shown: bool,
    /// The client agreed to sign electronically.
    pub esign_consent: bool,
    /// The stored evidence hash (hex).
    pub evidence_hash: String,
    /// Whether the evidence hash recomputed from the form version, answers and name matches.
    pub evidence_verified: bool,
    /// The reason given for a rejection.
    pub reject_reason: Option<String>,
}

type ResponseTuple = (Vec<u8>, Vec<u8>, bool, bool, Vec<u8>, DateTime<Utc>);

/// Opens a submitted (or decided) form: decrypts the answers and the typed name, recomputes
/// the evidence hash. The scheduling roles; appends `intake.read`. `None` when there is no
/// such request or it was not submitted.
pub async fn open(
    tx: &mut TenantTx,
    keyring: &Keyring,
    request: IntakeRequestId,
) -> Result<Option<Review>, StoreError> {
    let practice = tx.practice();
    let r: Option<(RowTuple, Option<Vec<u8>>)> = {
        let found: Option<WithReason> = sqlx::query_as(&format!(
            "select {ROW_COLUMNS}, reject_reason_enc from intake_request
              where practice_id = $1 and request_id = $2"
        ))
        .bind(practice)
        .bind(request)
        .fetch_optional(tx.conn())
        .await?;
        found.map(|(a, b, c, d, e, f, g, h, reason)| ((a, b, c, d, e, f, g, h), reason))
    };
    let Some((tuple, reason_enc)) = r else {
        return Ok(None);
    };
    let request_row = row(tuple)?;
    let resp: Option<ResponseTuple> = sqlx::query_as(
        "select answers_enc, signer_name_enc, intent_shown, esign_consent, evidence_hash, signed_at
           from intake_response where practice_id = $1 and request_id = $2",
    )
    .bind(practice)
    .bind(request)
    .fetch_optional(tx.conn())
    .await?;
    let Some((answers_enc, signer_enc, intent_shown, esign_consent, stored_hash, signed_at)) = resp
    else {
        return Ok(None);
    };
    let id = request.as_uuid();
    let opener = tx.opener(keyring);
    let answers_json = opener
        .open(&response_ctx(practice, "answers", &id), &answers_enc)
        .await?;
    let signer_name = opener
        .open_text(&response_ctx(practice, "signer_name", &id), &signer_enc)
        .await?;
    let reject_reason = match reason_enc {
        Some(ct) => Some(
            opener
                .open_text(&request_ctx(practice, "reject_reason", &id), &ct)
                .await?,
        ),
        None => None,
    };
    let answers: BTreeMap<String, String> = serde_json::from_slice(&answers_json)
        .map_err(|_| StoreError::Corrupt("intake_response.answers"))?;
    tx.audit(
        AuditAction::IntakeRead,
        Some(request_row.patient_id),
        Some(AuditObject::intake_request(request)),
    )
    .await?;
    let form = form_of(
        &request_row.form_id,
        i32::try_from(request_row.form_version).unwrap_or(0),
    )?;
    let recomputed = evidence_hash(form, &answers, &signer_name);
    Ok(Some(Review {
        request: request_row,
        evidence_verified: recomputed.as_slice() == stored_hash.as_slice(),
        evidence_hash: hex::encode(&stored_hash),
        answers,
        signer_name,
        signed_at,
        intent_shown,
        esign_consent,
        reject_reason,
    }))
}

/// A reviewer's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The answers go on the chart.
    Accept,
    /// Not accepted, for this reason (1–500 characters; sealed).
    Reject(String),
}

/// Accepts a submitted form onto the chart or rejects it. The scheduling roles; appends
/// `intake.decide`. `None` when there is no such request; [`StoreError::Conflict`]
/// (`intake_not_submitted`) when it is not waiting for review; [`StoreError::Invalid`]
/// (`intake.reason`) for a missing or too long reason.
pub async fn decide(
    tx: &mut TenantTx,
    keyring: &Keyring,
    request: IntakeRequestId,
    decision: &Decision,
) -> Result<Option<Status>, StoreError> {
    let reason = match decision {
        Decision::Accept => None,
        Decision::Reject(r) => {
            let r = r.trim();
            if r.is_empty()
                || r.chars().count() > MAX_REASON_CHARS
                || r.chars().any(|c| c.is_control() && c != '\n')
            {
                return Err(StoreError::Invalid("intake.reason".into()));
            }
            Some(r.to_owned())
        }
    };
    let practice = tx.practice();
    let (actor, now) = (tx.actor(), tx.now());
    let current: Option<(String, PatientId)> = sqlx::query_as(
        "select status, patient_id from intake_request
          where practice_id = $1 and request_id = $2 for update",
    )
    .bind(practice)
    .bind(request)
    .fetch_optional(tx.conn())
    .await?;
    let Some((status, patient)) = current else {
        return Ok(None);
    };
    if status != "submitted" {
        return Err(StoreError::Conflict("intake_not_submitted".into()));
    }
    let id = request.as_uuid();
    let reason_enc = match &reason {
        Some(r) => Some(
            seal_field(
                keyring,
                &request_ctx(practice, "reject_reason", &id),
                r.as_bytes(),
            )
            .await?,
        ),
        None => None,
    };
    let new = if reason.is_some() {
        Status::Rejected
    } else {
        Status::Accepted
    };
    sqlx::query(
        "update intake_request set status = $3, decided_by = $4, decided_at = $5,
                reject_reason_enc = $6
          where practice_id = $1 and request_id = $2",
    )
    .bind(practice)
    .bind(request)
    .bind(new.as_str())
    .bind(actor)
    .bind(now)
    .bind(reason_enc)
    .execute(tx.conn())
    .await?;
    tx.audit_details(
        AuditAction::IntakeDecide,
        Some(patient),
        Some(AuditObject::intake_request(request)),
        Some(serde_json::json!({"decision": new.as_str()})),
    )
    .await?;
    Ok(Some(new))
}

// ---------------------------------------------------------------------------------------
// The link holder's side.
// ---------------------------------------------------------------------------------------

/// The link holder's transaction: entered through an intake link (the `client_link`
/// pseudo-role, no actor) whose request still waits for the client. Dropping it rolls back.
#[derive(Debug)]
pub struct PublicIntake {
    inner: Audited,
    link: EnteredLink,
    request_id: IntakeRequestId,
    form: &'static FormDef,
    request: RequestId,
}

/// The form as the holder sees it.
#[derive(Debug, Clone)]
pub struct OpenedForm {
    /// The practice's name.
    pub practice_name: String,
    /// The exact form version requested.
    pub form: &'static FormDef,
    /// Values from the chart, by field key (name, date of birth).
    pub prefill: BTreeMap<String, String>,
}

/// A submission as the holder typed it.
#[derive(Clone)]
pub struct Submission {
    /// Raw values by field key.
    pub values: BTreeMap<String, String>,
    /// The name typed as the signature.
    pub signer_name: String,
    /// The holder ticked "I agree to sign electronically".
    pub esign_consent: bool,
    /// The client's address (sealed; never stored raw).
    pub client_address: Option<IpAddr>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Submission(…)")
    }
}

/// Why a submission was refused: per field key, a message for the client (`signer_name` and
/// `esign_consent` for the signature). Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub Vec<(String, String)>);

async fn waiting_request(
    conn: &mut PgConnection,
    practice: PracticeId,
    link: &EnteredLink,
) -> Result<Option<(IntakeRequestId, String, i32, Vec<u8>)>, StoreError> {
    Ok(sqlx::query_as(
        "select request_id, form_id, form_version, form_hash from intake_request
          where practice_id = $1 and request_id = $2 and link_id = $3 and status = 'sent'",
    )
    .bind(practice)
    .bind(link.subject)
    .bind(link.link)
    .fetch_optional(conn)
    .await?)
}

impl crate::Store {
    /// Enters the practice of an intake link's `token`: `None` when the link is unknown,
    /// expired, used, revoked or of another purpose, or its request no longer waits for the
    /// client (the page answers all of them the same).
    pub async fn intake_link(
        &self,
        token: &LinkToken,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<PublicIntake>, StoreError> {
        let Some((mut inner, link)) =
            crate::entry::enter_link(&self.pool, token, Purpose::Intake, now).await?
        else {
            return Ok(None);
        };
        let practice = inner.practice();
        let Some((request_id, form_id, version, hash)) =
            waiting_request(inner.conn(), practice, &link).await?
        else {
            return Ok(None);
        };
        let form = form_of(&form_id, version)?;
        if form.hash.as_slice() != hash.as_slice() {
            return Err(StoreError::Corrupt(
                "the form definition changed under its version",
            ));
        }
        Ok(Some(PublicIntake {
            inner,
            link,
            request_id,
            form,
            request,
        }))
    }
}

impl PublicIntake {
    /// The practice.
    #[must_use]
    pub fn practice(&self) -> PracticeId {
        self.inner.practice()
    }

    /// The request.
    #[must_use]
    pub fn request_id(&self) -> IntakeRequestId {
        self.request_id
    }

    /// The form requested.
    #[must_use]
    pub fn form(&self) -> &'static FormDef {
        self.form
    }

    /// When the link stops working.
    #[must_use]
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.link.expires_at
    }

    fn event(&self, action: AuditAction) -> NewEvent {
        let mut e = NewEvent::new(self.inner.now(), action);
        e.object = Some(AuditObject::intake_request(self.request_id));
        e.patient = Some(self.link.patient);
        e.request = Some(self.request);
        e
    }

    /// The practice's name.
    pub async fn practice_name(&mut self) -> Result<String, StoreError> {
        self.inner.practice_name().await
    }

    /// Opens the form for the holder: the form and the prefill from the chart (the patient's
    /// name and date of birth, decrypted here); appends `intake.open`.
    pub async fn open_form(&mut self, keyring: &Keyring) -> Result<OpenedForm, StoreError> {
        let practice = self.practice();
        let practice_name = self.practice_name().await?;
        let patient = self.link.patient;
        let opener = self.inner.opener(keyring);
        let p = crate::patients::read_opened(self.inner.conn(), &opener, practice, patient).await?;
        let mut prefill = BTreeMap::new();
        if let Some(p) = p {
            for f in &self.form.fields {
                match f.prefill {
                    Some(domain::intake::Prefill::Name) => {
                        prefill
                            .insert(f.key.clone(), format!("{} {}", p.given_name, p.family_name));
                    }
                    Some(domain::intake::Prefill::DateOfBirth) => {
                        if let Some(d) = p.date_of_birth {
                            prefill.insert(f.key.clone(), d.format("%Y-%m-%d").to_string());
                        }
                    }
                    None => {}
                }
            }
        }
        let e = self.event(AuditAction::IntakeOpen);
        self.inner.append(&[e]).await?;
        Ok(OpenedForm {
            practice_name,
            form: self.form,
            prefill,
        })
    }

    /// Checks, signs and stores the submission: the answers, the typed name and the client's
    /// address sealed, the evidence hash, the time; the request becomes `submitted` and the
    /// link is used up; appends `intake.submit`. `Ok(Err(_))` with every problem when the
    /// submission is refused (nothing was stored: drop the transaction).
    pub async fn submit(
        &mut self,
        keyring: &Keyring,
        s: &Submission,
    ) -> Result<Result<[u8; 32], Refused>, StoreError> {
        let mut errors = match self.form.check_answers(&s.values) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        };
        let signer = check_signer_name(&s.signer_name);
        if let Err(m) = &signer {
            errors.push(("signer_name".into(), m.clone()));
        }
        if !s.esign_consent {
            errors.push((
                "esign_consent".into(),
                "Tick the box to agree to sign electronically.".into(),
            ));
        }
        let (Ok(answers), Ok(signer)) = (self.form.check_answers(&s.values), signer) else {
            return Ok(Err(Refused(errors)));
        };
        if !errors.is_empty() {
            return Ok(Err(Refused(errors)));
        }
        let practice = self.practice();
        let now = self.inner.now();
        let id = self.request_id.as_uuid();
        let hash = evidence_hash(self.form, &answers, &signer);
        let answers_json =
            serde_json::to_vec(&answers).map_err(|_| StoreError::Corrupt("intake answers"))?;
        let answers_enc = seal_field(
            keyring,
            &response_ctx(practice, "answers", &id),
            &answers_json,
        )
        .await?;
        let signer_enc = seal_field(
            keyring,
            &response_ctx(practice, "signer_name", &id),
            signer.as_bytes(),
        )
        .await?;
        let address_enc = match s.client_address {
            Some(ip) => Some(
                seal_field(
                    keyring,
                    &response_ctx(practice, "client_address", &id),
                    ip.to_string().as_bytes(),
                )
                .await?,
            ),
            None => None,
        };
        sqlx::query(
            "insert into intake_response (practice_id, request_id, patient_id, answers_enc,
                    signer_name_enc, client_address_enc, intent_shown, esign_consent,
                    evidence_hash, signed_at)
             values ($1, $2, $3, $4, $5, $6, true, true, $7, $8)",
        )
        .bind(practice)
        .bind(self.request_id)
        .bind(self.link.patient)
        .bind(&answers_enc)
        .bind(&signer_enc)
        .bind(&address_enc)
        .bind(hash.as_slice())
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        let updated = sqlx::query(
            "update intake_request set status = 'submitted', submitted_at = $3
              where practice_id = $1 and request_id = $2 and status = 'sent'",
        )
        .bind(practice)
        .bind(self.request_id)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Conflict("intake_not_waiting".into()));
        }
        crate::links::mark_used(self.inner.conn(), practice, self.link.link, now).await?;
        let mut e = self.event(AuditAction::IntakeSubmit);
        e.details = Some(serde_json::json!({
            "form": self.form.id, "version": self.form.version, "esign_consent": true
        }));
        self.inner.append(&[e]).await?;
        Ok(Ok(hash))
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}
