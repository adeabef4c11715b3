//! Security incidents of a practice (req IR-01, IR-02, IR-03): the record, its lifecycle, the
//! four-factor risk assessment, notification letters, the scoping of affected patients from
//! the audit log, and the alerts raised as clocks come due. Owners and admins only (enforced
//! by RLS, migration 0031). The request-path functions do not audit: the caller appends the
//! `incident.*` event in the same transaction; the alerts pass ([`crate::OwnerStore::raise_incident_alerts`])
//! audits its own `incident.alert` events.
//!
//! # Encryption at rest
//! The description, the response and outcome notes and the four factors are text a person
//! typed and may name patients: they are stored only as field ciphertexts bound to
//! (practice, `incident`, column, incident id) ([`crate::sealed_columns::INCIDENT`]). Reading
//! them goes through the transaction's opener, so the read must be audited.
//!
//! # Scoping
//! [`scope`] asks the practice's audit log which patients a subject touched in a window: every
//! successful event naming a patient, read or write, by
//! - a user (`actor_id`);
//! - a session: the session's user during the session's lifetime (created until revoked or
//!   expired) — audit events name the user, not the session, so a user's other sessions in
//!   that time are counted too: never fewer patients than the session touched;
//! - a vendor support grant (events flagged with its `support_grant_id`).
//!
//! The result (patient ids, each with its state of residence when scoped, and the counts per
//! state) replaces the incident's previous scope. Only the practice's own log is read (RLS).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crypto::{FieldContext, Keyring};
use domain::incident::{Affected, Assessment, Status, Terms};
use domain::{AuditAction, AuditObject, IncidentId, ObjectKind, PatientId, PracticeId, UserId};
use serde::Serialize;

use crate::entry::Opener;
use crate::sealed_columns::{INCIDENT, seal_field};
use crate::{OwnerStore, StoreError, TenantTx};

/// The table name bound into every incident ciphertext.
pub const TABLE: &str = INCIDENT.table;

/// The field context of one sealed column of incident `id`.
fn context<'a>(practice: PracticeId, column: &'a str, id: &'a uuid::Uuid) -> FieldContext<'a> {
    INCIDENT.context(practice, column, id.as_bytes())
}

/// A new incident (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewIncident {
    /// When the incident was discovered (starts every clock).
    pub discovered_at: DateTime<Utc>,
    /// How it was detected (one of [`domain::incident::DETECTION_SOURCES`]).
    pub detection_source: String,
    /// What happened (sealed).
    pub description: String,
    /// The terms the clocks run under.
    pub terms: Terms,
}

/// An incident in a list: no sealed field, nothing decrypted.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentSummary {
    /// Id.
    pub incident_id: IncidentId,
    /// Discovery time.
    pub discovered_at: DateTime<Utc>,
    /// How it was detected.
    pub detection_source: String,
    /// Status.
    pub status: Status,
    /// The BAA notice period in hours.
    pub baa_notice_hours: u32,
    /// Whether GDPR applies.
    pub gdpr: bool,
    /// The affected individuals, once scoped.
    #[serde(skip)]
    pub affected: Option<Affected>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
}

impl IncidentSummary {
    /// The terms its clocks run under.
    #[must_use]
    pub fn terms(&self) -> Terms {
        Terms {
            baa_notice_hours: self.baa_notice_hours,
            gdpr: self.gdpr,
        }
    }
}

/// One affected patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedPatient {
    /// The patient.
    pub patient_id: PatientId,
    /// The state of residence when scoped, if recorded.
    pub state: Option<String>,
    /// How many audit events of the subject named the patient in the window.
    pub events: u32,
}

/// What an incident was scoped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// A user (principal).
    User,
    /// A session.
    Session,
    /// A vendor support grant.
    SupportGrant,
}

impl ScopeKind {
    /// The stable name stored in `incident.scope_kind`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ScopeKind::User => "user",
            ScopeKind::Session => "session",
            ScopeKind::SupportGrant => "support_grant",
        }
    }

    /// The kind named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::User, Self::Session, Self::SupportGrant]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The result of a scoping run.
#[derive(Debug, Clone, Serialize)]
pub struct Scope {
    /// By what.
    pub kind: ScopeKind,
    /// The user, session or grant id.
    pub subject: uuid::Uuid,
    /// Window start (inclusive).
    pub from: DateTime<Utc>,
    /// Window end (exclusive).
    pub to: DateTime<Utc>,
    /// When it ran.
    pub scoped_at: DateTime<Utc>,
    /// The affected patients, by id.
    pub patients: Vec<AffectedPatient>,
    /// How many affected patients per state of residence (`unknown` for none recorded).
    pub per_state: BTreeMap<String, u64>,
}

impl Scope {
    /// The counts the clocks use.
    #[must_use]
    pub fn affected(&self) -> Affected {
        affected_of(&self.patients)
    }
}

fn affected_of(patients: &[AffectedPatient]) -> Affected {
    let mut per_state = BTreeMap::new();
    for p in patients {
        if let Some(s) = &p.state {
            *per_state.entry(s.clone()).or_insert(0) += 1;
        }
    }
    Affected {
        total: patients.len() as u64,
        per_state,
    }
}

/// Per-state counts for display: recorded states, plus `unknown`.
fn per_state_display(patients: &[AffectedPatient]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for p in patients {
        let key = p.state.clone().unwrap_or_else(|| "unknown".to_owned());
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// A notification letter (or batch of letters) recorded as sent.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    /// Id.
    pub letter_id: uuid::Uuid,
    /// To whom (one of [`domain::incident::RECIPIENT_KINDS`]).
    pub recipient_kind: String,
    /// When sent.
    pub sent_on: chrono::NaiveDate,
    /// How many letters.
    pub letters: u32,
    /// Recorded by.
    pub recorded_by: Option<UserId>,
}

/// An alert raised for an incident.
#[derive(Debug, Clone, Serialize)]
pub struct RaisedAlert {
    /// The practice.
    pub practice_id: PracticeId,
    /// The incident.
    pub incident_id: IncidentId,
    /// Which clock or schedule point (e.g. `alert_24h`, `individuals`).
    pub clock: String,
    /// When it was due.
    pub due_at: DateTime<Utc>,
}

/// An incident with its sealed fields opened.
#[derive(Debug, Clone)]
pub struct Incident {
    /// The list fields.
    pub summary: IncidentSummary,
    /// What happened.
    pub description: String,
    /// The response so far.
    pub response: Option<String>,
    /// The outcome.
    pub outcome: Option<String>,
    /// The four-factor risk assessment, once recorded, and when.
    pub assessment: Option<(Assessment, DateTime<Utc>)>,
    /// The last scoping run.
    pub scope: Option<Scope>,
    /// The letters recorded, oldest first.
    pub letters: Vec<Letter>,
    /// The alerts raised so far, by clock name.
    pub alerts: Vec<(String, DateTime<Utc>)>,
    /// Who recorded it.
    pub created_by: Option<UserId>,
}

/// Records an incident discovered at `new.discovered_at`, status `open`, its description sealed.
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    new: &NewIncident,
) -> Result<IncidentId, StoreError> {
    let id = IncidentId::new();
    let uid = id.as_uuid();
    let practice = tx.practice();
    let ctx = context(practice, "description", &uid);
    let description = seal_field(keyring, &ctx, new.description.as_bytes()).await?;
    let (actor, now) = (tx.actor(), tx.now());
    sqlx::query(
        "insert into incident (practice_id, incident_id, discovered_at, detection_source,
            description_enc, baa_notice_hours, gdpr, created_by, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(practice)
    .bind(id)
    .bind(new.discovered_at)
    .bind(&new.detection_source)
    .bind(&description)
    .bind(i32::try_from(new.terms.baa_notice_hours).unwrap_or(i32::MAX))
    .bind(new.terms.gdpr)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    incident_id: IncidentId,
    discovered_at: DateTime<Utc>,
    detection_source: String,
    status: String,
    baa_notice_hours: i32,
    gdpr: bool,
    closed_at: Option<DateTime<Utc>>,
    scoped: bool,
}

const SUMMARY: &str =
    "incident_id, discovered_at, detection_source, status, baa_notice_hours, gdpr,
    closed_at, scope_kind is not null as scoped";

impl SummaryRow {
    fn into_summary(self, affected: Option<Affected>) -> Result<IncidentSummary, StoreError> {
        Ok(IncidentSummary {
            incident_id: self.incident_id,
            discovered_at: self.discovered_at,
            detection_source: self.detection_source,
            status: Status::parse(&self.status)
                .ok_or(StoreError::Corrupt("an incident has an unknown status"))?,
            baa_notice_hours: u32::try_from(self.baa_notice_hours).unwrap_or(1),
            gdpr: self.gdpr,
            affected,
            closed_at: self.closed_at,
        })
    }
}

/// The affected patients of `incident` (empty when not scoped).
async fn affected_patients(
    conn: &mut sqlx::PgConnection,
    practice: PracticeId,
    incident: IncidentId,
) -> Result<Vec<AffectedPatient>, StoreError> {
    let rows: Vec<(PatientId, Option<String>, i32)> = sqlx::query_as(
        "select patient_id, state, events from incident_affected
          where practice_id = $1 and incident_id = $2 order by patient_id",
    )
    .bind(practice)
    .bind(incident)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(patient_id, state, events)| AffectedPatient {
            patient_id,
            state,
            events: u32::try_from(events).unwrap_or(0),
        })
        .collect())
}

/// The practice's incidents, open ones first then newest first (at most 500), with their
/// affected counts; nothing decrypted.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<IncidentSummary>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
        "select {SUMMARY} from incident where practice_id = $1
          order by closed_at is not null, discovered_at desc, incident_id limit 500"
    ))
    .bind(practice)
    .fetch_all(tx.conn())
    .await?;
    summaries(tx.conn(), practice, rows).await
}

async fn summaries(
    conn: &mut sqlx::PgConnection,
    practice: PracticeId,
    rows: Vec<SummaryRow>,
) -> Result<Vec<IncidentSummary>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let affected = if r.scoped {
            Some(affected_of(
                &affected_patients(conn, practice, r.incident_id).await?,
            ))
        } else {
            None
        };
        out.push(r.into_summary(affected)?);
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    description_enc: Vec<u8>,
    response_enc: Option<Vec<u8>>,
    outcome_enc: Option<Vec<u8>>,
    nature_enc: Option<Vec<u8>>,
    person_enc: Option<Vec<u8>>,
    acquired_enc: Option<Vec<u8>>,
    mitigation_enc: Option<Vec<u8>>,
    low_probability: Option<bool>,
    assessed_at: Option<DateTime<Utc>>,
    scope_kind: Option<String>,
    scope_subject: Option<uuid::Uuid>,
    scope_from: Option<DateTime<Utc>>,
    scope_to: Option<DateTime<Utc>>,
    scoped_at: Option<DateTime<Utc>>,
    created_by: Option<UserId>,
}

async fn open_opt(
    opener: &Opener<'_>,
    practice: PracticeId,
    column: &str,
    id: &uuid::Uuid,
    ct: Option<&[u8]>,
) -> Result<Option<String>, StoreError> {
    match ct {
        Some(ct) => Ok(Some(
            opener.open_text(&context(practice, column, id), ct).await?,
        )),
        None => Ok(None),
    }
}

/// The letters and the alerts raised of incident `id`, oldest first.
async fn letters_and_alerts(
    tx: &mut TenantTx,
    id: IncidentId,
) -> Result<(Vec<Letter>, Vec<(String, DateTime<Utc>)>), StoreError> {
    let practice = tx.practice();
    let letters: Vec<(uuid::Uuid, String, chrono::NaiveDate, i32, Option<UserId>)> =
        sqlx::query_as(
            "select letter_id, recipient_kind, sent_on, letters, recorded_by from incident_letter
              where practice_id = $1 and incident_id = $2 order by sent_on, created_at, letter_id",
        )
        .bind(practice)
        .bind(id)
        .fetch_all(tx.conn())
        .await?;
    let alerts: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "select clock, due_at from incident_alert
          where practice_id = $1 and incident_id = $2 order by due_at, clock",
    )
    .bind(practice)
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    let letters = letters
        .into_iter()
        .map(
            |(letter_id, recipient_kind, sent_on, letters, recorded_by)| Letter {
                letter_id,
                recipient_kind,
                sent_on,
                letters: u32::try_from(letters).unwrap_or(0),
                recorded_by,
            },
        )
        .collect();
    Ok((letters, alerts))
}

/// The four-factor assessment of a row, opened, with its time; `None` when not recorded.
async fn open_assessment(
    opener: &Opener<'_>,
    practice: PracticeId,
    uid: &uuid::Uuid,
    d: &DetailRow,
) -> Result<Option<(Assessment, DateTime<Utc>)>, StoreError> {
    let (
        Some(nature),
        Some(person),
        Some(acquired),
        Some(mitigation),
        Some(low_probability),
        Some(at),
    ) = (
        d.nature_enc.as_deref(),
        d.person_enc.as_deref(),
        d.acquired_enc.as_deref(),
        d.mitigation_enc.as_deref(),
        d.low_probability,
        d.assessed_at,
    )
    else {
        return Ok(None);
    };
    let ctx = |column: &'static str| context(practice, column, uid);
    Ok(Some((
        Assessment {
            nature: opener.open_text(&ctx("nature"), nature).await?,
            person: opener.open_text(&ctx("person"), person).await?,
            acquired: opener.open_text(&ctx("acquired"), acquired).await?,
            mitigation: opener.open_text(&ctx("mitigation"), mitigation).await?,
            low_probability,
        },
        at,
    )))
}

/// Incident `id` with its sealed fields opened (the caller audits `incident.read`), or `None`
/// when it is not visible here.
pub async fn get(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: IncidentId,
) -> Result<Option<Incident>, StoreError> {
    let practice = tx.practice();
    let Some(row): Option<SummaryRow> = sqlx::query_as(&format!(
        "select {SUMMARY} from incident where practice_id = $1 and incident_id = $2"
    ))
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    else {
        return Ok(None);
    };
    let d: DetailRow = sqlx::query_as(
        "select description_enc, response_enc, outcome_enc, nature_enc, person_enc, acquired_enc,
                mitigation_enc, low_probability, assessed_at, scope_kind, scope_subject, scope_from,
                scope_to, scoped_at, created_by
           from incident where practice_id = $1 and incident_id = $2",
    )
    .bind(practice)
    .bind(id)
    .fetch_one(tx.conn())
    .await?;
    let patients = affected_patients(tx.conn(), practice, id).await?;
    let (letters, alerts) = letters_and_alerts(tx, id).await?;
    let uid = id.as_uuid();
    let opener = tx.opener(keyring);
    let description = opener
        .open_text(&context(practice, "description", &uid), &d.description_enc)
        .await?;
    let response = open_opt(
        &opener,
        practice,
        "response",
        &uid,
        d.response_enc.as_deref(),
    )
    .await?;
    let outcome = open_opt(&opener, practice, "outcome", &uid, d.outcome_enc.as_deref()).await?;
    let assessment = open_assessment(&opener, practice, &uid, &d).await?;
    let scope = match (
        d.scope_kind.as_deref().and_then(ScopeKind::parse),
        d.scope_subject,
        d.scope_from,
        d.scope_to,
        d.scoped_at,
    ) {
        (Some(kind), Some(subject), Some(from), Some(to), Some(scoped_at)) => Some(Scope {
            kind,
            subject,
            from,
            to,
            scoped_at,
            per_state: per_state_display(&patients),
            patients: patients.clone(),
        }),
        _ => None,
    };
    let affected = scope.as_ref().map(Scope::affected);
    Ok(Some(Incident {
        summary: row.into_summary(affected)?,
        description,
        response,
        outcome,
        assessment,
        scope,
        letters,
        alerts,
        created_by: d.created_by,
    }))
}

/// The status of incident `id`, locked for update; `None` when not visible here.
async fn status_for_update(
    tx: &mut TenantTx,
    id: IncidentId,
) -> Result<Option<Status>, StoreError> {
    let practice = tx.practice();
    let s: Option<String> = sqlx::query_scalar(
        "select status from incident where practice_id = $1 and incident_id = $2 for update",
    )
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    s.map(|s| Status::parse(&s).ok_or(StoreError::Corrupt("an incident has an unknown status")))
        .transpose()
}

/// Why a change to an incident was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such incident here.
    NotFound,
    /// The lifecycle does not allow the move (from, to).
    Lifecycle(Status, Status),
    /// Closing as "not a breach" without the four factors concluding a low probability.
    AssessmentMissing,
    /// The incident is closed.
    Closed,
}

/// Moves incident `id` to `to` (not a closed status: [`close`]), optionally replacing its
/// response and outcome notes (sealed).
pub async fn update(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: IncidentId,
    to: Option<Status>,
    response: Option<&str>,
    outcome: Option<&str>,
) -> Result<Result<Status, Refusal>, StoreError> {
    let Some(from) = status_for_update(tx, id).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    if from.is_closed() {
        return Ok(Err(Refusal::Closed));
    }
    let status = match to {
        Some(to) if to != from => {
            if to.is_closed() || !from.allows(to) {
                return Ok(Err(Refusal::Lifecycle(from, to)));
            }
            to
        }
        _ => from,
    };
    let practice = tx.practice();
    let uid = id.as_uuid();
    let mut sealed = Vec::new();
    for (column, plain) in [("response", response), ("outcome", outcome)] {
        sealed.push(match plain {
            Some(p) => {
                Some(seal_field(keyring, &context(practice, column, &uid), p.as_bytes()).await?)
            }
            None => None,
        });
    }
    let [response_enc, outcome_enc]: [Option<Vec<u8>>; 2] = sealed
        .try_into()
        .map_err(|_| StoreError::Corrupt("an incident note was not sealed"))?;
    let now = tx.now();
    sqlx::query(
        "update incident set status = $3, response_enc = coalesce($4, response_enc),
                outcome_enc = coalesce($5, outcome_enc), updated_at = $6
          where practice_id = $1 and incident_id = $2",
    )
    .bind(practice)
    .bind(id)
    .bind(status.as_str())
    .bind(response_enc)
    .bind(outcome_enc)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(Ok(status))
}

/// Records (or replaces) the four-factor risk assessment of incident `id`, each factor sealed.
pub async fn assess(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: IncidentId,
    a: &Assessment,
) -> Result<Result<(), Refusal>, StoreError> {
    match status_for_update(tx, id).await? {
        None => return Ok(Err(Refusal::NotFound)),
        Some(s) if s.is_closed() => return Ok(Err(Refusal::Closed)),
        Some(_) => {}
    }
    let practice = tx.practice();
    let uid = id.as_uuid();
    let mut sealed = Vec::with_capacity(4);
    for (column, plain) in [
        ("nature", &a.nature),
        ("person", &a.person),
        ("acquired", &a.acquired),
        ("mitigation", &a.mitigation),
    ] {
        sealed.push(seal_field(keyring, &context(practice, column, &uid), plain.as_bytes()).await?);
    }
    let [nature, person, acquired, mitigation]: [Vec<u8>; 4] = sealed
        .try_into()
        .map_err(|_| StoreError::Corrupt("an assessment factor was not sealed"))?;
    let now = tx.now();
    sqlx::query(
        "update incident set nature_enc = $3, person_enc = $4, acquired_enc = $5,
                mitigation_enc = $6, low_probability = $7, assessed_at = $8, updated_at = $8
          where practice_id = $1 and incident_id = $2",
    )
    .bind(practice)
    .bind(id)
    .bind(&nature)
    .bind(&person)
    .bind(&acquired)
    .bind(&mitigation)
    .bind(a.low_probability)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(Ok(()))
}

/// Closes incident `id` as a breach or not. Closing as "not a breach" is refused unless the
/// recorded assessment concludes a low probability of compromise with all four factors (the
/// database checks the same: `incident_not_breach_needs_assessment`).
pub async fn close(
    tx: &mut TenantTx,
    id: IncidentId,
    breach: bool,
) -> Result<Result<Status, Refusal>, StoreError> {
    let Some(from) = status_for_update(tx, id).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    let to = if breach {
        Status::ClosedBreach
    } else {
        Status::ClosedNotBreach
    };
    if !from.allows(to) {
        return Ok(Err(if from.is_closed() {
            Refusal::Closed
        } else {
            Refusal::Lifecycle(from, to)
        }));
    }
    let practice = tx.practice();
    if !breach {
        let assessed: Option<bool> = sqlx::query_scalar(
            "select low_probability from incident where practice_id = $1 and incident_id = $2",
        )
        .bind(practice)
        .bind(id)
        .fetch_one(tx.conn())
        .await?;
        if assessed != Some(true) {
            return Ok(Err(Refusal::AssessmentMissing));
        }
    }
    let now = tx.now();
    sqlx::query(
        "update incident set status = $3, closed_at = $4, updated_at = $4
          where practice_id = $1 and incident_id = $2",
    )
    .bind(practice)
    .bind(id)
    .bind(to.as_str())
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(Ok(to))
}

/// Records a notification letter (or batch) for incident `id`.
pub async fn add_letter(
    tx: &mut TenantTx,
    id: IncidentId,
    recipient_kind: &str,
    sent_on: chrono::NaiveDate,
    letters: u32,
) -> Result<Result<uuid::Uuid, Refusal>, StoreError> {
    if status_for_update(tx, id).await?.is_none() {
        return Ok(Err(Refusal::NotFound));
    }
    let letter = uuid::Uuid::now_v7();
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    sqlx::query(
        "insert into incident_letter (practice_id, incident_id, letter_id, recipient_kind, sent_on,
            letters, recorded_by, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(practice)
    .bind(id)
    .bind(letter)
    .bind(recipient_kind)
    .bind(sent_on)
    .bind(i32::try_from(letters).unwrap_or(i32::MAX))
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(Ok(letter))
}

/// The patients `kind` `subject` touched in `[from, to)` according to the practice's audit
/// log (successful events naming a patient), each with its state of residence now and its
/// event count, by patient id. `None` for a session not of a member of this practice.
pub async fn affected_by(
    tx: &mut TenantTx,
    kind: ScopeKind,
    subject: uuid::Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<Vec<AffectedPatient>>, StoreError> {
    let practice = tx.practice();
    let (actor, from, to, grant) = match kind {
        ScopeKind::User => (Some(subject), from, to, None),
        ScopeKind::SupportGrant => (None, from, to, Some(subject.to_string())),
        ScopeKind::Session => {
            let s: Option<(uuid::Uuid, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
                "select user_id, started_at, ended_at from app.incident_session($1)",
            )
            .bind(subject)
            .fetch_optional(tx.conn())
            .await?;
            let Some((user, started, ended)) = s else {
                return Ok(None);
            };
            (Some(user), from.max(started), to.min(ended), None)
        }
    };
    if from >= to {
        return Ok(Some(Vec::new()));
    }
    let rows: Vec<(PatientId, Option<String>, i64)> = sqlx::query_as(
        "select e.patient_id, r.state, count(*)
           from audit_event e
           left join patient_residence r
             on r.practice_id = e.practice_id and r.patient_id = e.patient_id
          where e.practice_id = $1 and e.patient_id is not null and e.outcome = 'success'
            and e.occurred_at >= $2 and e.occurred_at < $3
            and ($4::uuid is null or e.actor_id = $4)
            and ($5::text is null or e.details ->> 'support_grant_id' = $5)
          group by e.patient_id, r.state
          order by e.patient_id",
    )
    .bind(practice)
    .bind(from)
    .bind(to)
    .bind(actor)
    .bind(grant)
    .fetch_all(tx.conn())
    .await?;
    Ok(Some(
        rows.into_iter()
            .map(|(patient_id, state, n)| AffectedPatient {
                patient_id,
                state,
                events: u32::try_from(n).unwrap_or(u32::MAX),
            })
            .collect(),
    ))
}

/// Scopes incident `id`: finds the affected patients ([`affected_by`]) and stores them with
/// the incident, replacing any earlier scope. `Ok(Err(NotFound))` for an incident or a
/// session not visible here.
pub async fn scope(
    tx: &mut TenantTx,
    id: IncidentId,
    kind: ScopeKind,
    subject: uuid::Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Result<Scope, Refusal>, StoreError> {
    if status_for_update(tx, id).await?.is_none() {
        return Ok(Err(Refusal::NotFound));
    }
    let Some(patients) = affected_by(tx, kind, subject, from, to).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    let (practice, now) = (tx.practice(), tx.now());
    sqlx::query("delete from incident_affected where practice_id = $1 and incident_id = $2")
        .bind(practice)
        .bind(id)
        .execute(tx.conn())
        .await?;
    let ids: Vec<uuid::Uuid> = patients.iter().map(|p| p.patient_id.as_uuid()).collect();
    let states: Vec<Option<String>> = patients.iter().map(|p| p.state.clone()).collect();
    let events: Vec<i32> = patients
        .iter()
        .map(|p| i32::try_from(p.events).unwrap_or(i32::MAX))
        .collect();
    sqlx::query(
        "insert into incident_affected (practice_id, incident_id, patient_id, state, events)
         select $1, $2, u.p, u.s, u.e from unnest($3::uuid[], $4::text[], $5::int4[]) as u(p, s, e)",
    )
    .bind(practice)
    .bind(id)
    .bind(&ids)
    .bind(&states)
    .bind(&events)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "update incident set scope_kind = $3, scope_subject = $4, scope_from = $5, scope_to = $6,
                scoped_at = $7, affected_count = $8, updated_at = $7
          where practice_id = $1 and incident_id = $2",
    )
    .bind(practice)
    .bind(id)
    .bind(kind.as_str())
    .bind(subject)
    .bind(from)
    .bind(to)
    .bind(now)
    .bind(i32::try_from(patients.len()).unwrap_or(i32::MAX))
    .execute(tx.conn())
    .await?;
    Ok(Ok(Scope {
        kind,
        subject,
        from,
        to,
        scoped_at: now,
        per_state: per_state_display(&patients),
        patients,
    }))
}

/// Records `patient`'s state of residence (a two-letter code, checked by the caller and the
/// database); `false` when the patient is not visible here. The caller audits.
pub async fn set_residence(
    tx: &mut TenantTx,
    patient: PatientId,
    state: &str,
) -> Result<bool, StoreError> {
    let (practice, now) = (tx.practice(), tx.now());
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from patient where practice_id = $1 and patient_id = $2
                          and deleted_at is null)",
    )
    .bind(practice)
    .bind(patient)
    .fetch_one(tx.conn())
    .await?;
    if !exists {
        return Ok(false);
    }
    sqlx::query(
        "insert into patient_residence (practice_id, patient_id, state, updated_at)
         values ($1, $2, $3, $4)
         on conflict (practice_id, patient_id) do update set state = $3, updated_at = $4",
    )
    .bind(practice)
    .bind(patient)
    .bind(state)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(true)
}

impl OwnerStore {
    /// Raises, as the owner role, every alert of `practice`'s open incidents that is due at
    /// `now` ([`domain::incident::due_alerts`]) and not raised before: each is recorded once
    /// (`incident_alert`) and audited `incident.alert` (incident id and clock name only).
    /// Returns the alerts raised by this call.
    pub async fn raise_incident_alerts(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<Vec<RaisedAlert>, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
            "select {SUMMARY} from incident where practice_id = $1 and closed_at is null
              order by discovered_at, incident_id"
        ))
        .bind(practice)
        .fetch_all(tx.conn())
        .await?;
        let open = summaries(tx.conn(), practice, rows).await?;
        let mut raised = Vec::new();
        for i in open {
            let due = domain::incident::due_alerts(
                i.discovered_at,
                i.terms(),
                i.affected.as_ref(),
                i.status,
                now,
            );
            for (clock, due_at) in due {
                let new: Option<String> = sqlx::query_scalar(
                    "insert into incident_alert (practice_id, incident_id, clock, due_at, alerted_at)
                     values ($1, $2, $3, $4, $5) on conflict do nothing returning clock",
                )
                .bind(practice)
                .bind(i.incident_id)
                .bind(clock)
                .bind(due_at)
                .bind(now)
                .fetch_optional(tx.conn())
                .await?;
                if new.is_some() {
                    tx.audit(
                        AuditAction::IncidentAlert,
                        Some(AuditObject::new(
                            ObjectKind::Incident,
                            i.incident_id.as_uuid(),
                        )),
                        None,
                        Some(serde_json::json!({ "clock": clock })),
                    )
                    .await?;
                    raised.push(RaisedAlert {
                        practice_id: practice,
                        incident_id: i.incident_id,
                        clock: clock.to_owned(),
                        due_at,
                    });
                }
            }
        }
        tx.commit().await?;
        Ok(raised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_kinds_round_trip() {
        for k in [ScopeKind::User, ScopeKind::Session, ScopeKind::SupportGrant] {
            assert_eq!(ScopeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ScopeKind::parse("key"), None);
    }

    #[test]
    fn per_state_counts_patients_not_events() {
        let p = |s: Option<&str>, e| AffectedPatient {
            patient_id: PatientId::new(),
            state: s.map(str::to_owned),
            events: e,
        };
        let list = vec![
            p(Some("CA"), 3),
            p(Some("CA"), 1),
            p(Some("NV"), 9),
            p(None, 2),
        ];
        let a = affected_of(&list);
        assert_eq!(a.total, 4);
        assert_eq!(a.per_state.get("CA"), Some(&2));
        assert_eq!(a.per_state.get("NV"), Some(&1));
        let d = per_state_display(&list);
        assert_eq!(d.get("unknown"), Some(&1));
    }
}
