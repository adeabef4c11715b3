//! The one audit append. Every audit event — of a request ([`crate::TenantTx`],
//! [`crate::UserTx`], a denied attempt, a sign-in) or of the owner role ([`crate::OwnerTx`]:
//! the CLI, jobs, seeding) — is written by [`append`], in one statement, in the caller's
//! transaction:
//!
//! - the action is an [`AuditAction`] and the outcome an [`Outcome`] (closed sets), the object
//!   an [`AuditObject`] (a kind from a closed set with the id of its own type);
//! - each event is checked with [`audit::event::validate`] before it is sent (stable names,
//!   `details` keys and values from the character sets that keep free text, and so PHI, out of
//!   the log; a whole number of microseconds), and refused with [`StoreError::AuditFailed`]
//!   otherwise — the caller's change then fails with it;
//! - the time is the transaction's (the injected clock), never the database's `now()`;
//! - clinical access through break-glass is flagged as emergency access in the same statement
//!   (`app.clinical_audit_details`).

use chrono::{DateTime, Utc};
use domain::{
    AuditAction, AuditEventId, AuditObject, Outcome, PatientId, PracticeId, RequestId, UserId,
};
use sqlx::PgConnection;

use crate::StoreError;

/// One audit event to append (the practice is the transaction's).
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    /// When (the transaction's time, from the injected clock).
    pub(crate) at: DateTime<Utc>,
    /// Who acted (absent for the system and the owner role).
    pub(crate) actor: Option<UserId>,
    /// The patient concerned.
    pub(crate) patient: Option<PatientId>,
    /// What.
    pub(crate) action: AuditAction,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// The object acted on.
    pub(crate) object: Option<AuditObject>,
    /// The request that caused it.
    pub(crate) request: Option<RequestId>,
    /// Ids, counts, flags and names only: a JSON object whose values pass
    /// [`audit::event::validate`].
    pub(crate) details: Option<serde_json::Value>,
    /// Whether `details` already carries the emergency-access flag of a clinical action
    /// ([`resolve`]: computed in the reader's transaction, for the group-commit writer).
    pub(crate) resolved: bool,
}

impl NewEvent {
    /// A successful `action` at `at`, with nothing else set.
    pub(crate) fn new(at: DateTime<Utc>, action: AuditAction) -> Self {
        Self {
            at,
            actor: None,
            patient: None,
            action,
            outcome: Outcome::Success,
            object: None,
            request: None,
            details: None,
            resolved: false,
        }
    }

    /// The canonical event this row becomes (what [`audit::event::validate`] checks and what
    /// the sequencer will hash).
    fn canonical(&self, practice: PracticeId, id: AuditEventId) -> audit::event::Event {
        audit::event::Event {
            practice_id: practice.as_uuid(),
            seq: 0,
            event_id: id.as_uuid(),
            occurred_at: self.at,
            actor_id: self.actor.map(|a| a.as_uuid()),
            patient_id: self.patient.map(|p| p.as_uuid()),
            action: self.action.as_str().to_owned(),
            outcome: self.outcome.as_str().to_owned(),
            object_type: self.object.map(|o| o.kind().as_str().to_owned()),
            object_id: self.object.map(AuditObject::id),
            request_id: self.request.map(|r| r.as_uuid()),
            details: crate::sequence::detail_pairs(self.details.as_ref()),
        }
    }
}

/// Checks `e` for `practice`'s log: `details` is absent or an object, and the event passes
/// [`audit::event::validate`]. The error names the rule, never a value.
fn check(practice: PracticeId, id: AuditEventId, e: &NewEvent) -> Result<(), StoreError> {
    if e.details.as_ref().is_some_and(|d| !d.is_object()) {
        return Err(StoreError::AuditFailed(format!(
            "{}: details must be an object",
            e.action.as_str()
        )));
    }
    audit::event::validate(&e.canonical(practice, id))
        .map_err(|err| StoreError::AuditFailed(format!("{}: {err}", e.action.as_str())))
}

/// `e` as it will be written: its time truncated to whole microseconds, then checked
/// ([`check`]). The error names the rule, never a value.
pub(crate) fn prepare(practice: PracticeId, e: &NewEvent) -> Result<NewEvent, StoreError> {
    let mut e = e.clone();
    e.at = audit::event::truncate_to_micros(e.at);
    check(practice, AuditEventId::new(), &e)?;
    Ok(e)
}

/// Prepares `events` ([`prepare`]) and resolves the emergency-access flag of the clinical
/// ones in the transaction on `conn` — the reader's, where the actor and practice are set —
/// so they can be appended later, on another transaction ([`crate::group_commit`]), exactly
/// as [`append`] would have written them here. One statement, only when an event is clinical.
pub(crate) async fn resolve(
    conn: &mut PgConnection,
    practice: PracticeId,
    events: &[NewEvent],
) -> Result<Vec<NewEvent>, StoreError> {
    let mut out = events
        .iter()
        .map(|e| prepare(practice, e))
        .collect::<Result<Vec<_>, _>>()?;
    let clinical: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, e)| e.action.is_clinical() && !e.resolved && e.patient.is_some())
        .map(|(i, _)| i)
        .collect();
    if !clinical.is_empty() {
        let details: Vec<Option<serde_json::Value>> = clinical
            .iter()
            .filter_map(|i| out.get(*i))
            .map(|e| e.details.clone())
            .collect();
        let patients: Vec<Option<uuid::Uuid>> = clinical
            .iter()
            .filter_map(|i| out.get(*i))
            .map(|e| e.patient.map(|p| p.as_uuid()))
            .collect();
        let resolved: Vec<(Option<serde_json::Value>,)> = sqlx::query_as(
            "select app.clinical_audit_details(e.details, e.patient_id)
               from unnest($1::jsonb[], $2::uuid[]) with ordinality as e(details, patient_id, n)
              order by e.n",
        )
        .bind(&details)
        .bind(&patients)
        .fetch_all(conn)
        .await
        .map_err(|e| StoreError::AuditFailed(e.to_string()))?;
        if resolved.len() != clinical.len() {
            return Err(StoreError::AuditFailed(
                "the emergency-access flags could not be resolved".into(),
            ));
        }
        for (i, (d,)) in clinical.into_iter().zip(resolved) {
            if let Some(e) = out.get_mut(i) {
                e.details = d;
                check(practice, AuditEventId::new(), e)?;
            }
        }
    }
    for e in &mut out {
        e.resolved = true;
    }
    Ok(out)
}

/// Appends `events` to `practice`'s log in one statement, on `conn` — a transaction that has
/// entered `practice` ([`crate::entry::set_practice`]; row-level security refuses any other
/// practice). Each event is validated first; if one is refused, nothing is written. Returns how
/// many were written. The caller's transaction must fail if this does (no unaudited access).
pub(crate) async fn append(
    conn: &mut PgConnection,
    practice: PracticeId,
    events: &[NewEvent],
) -> Result<u64, StoreError> {
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut actor = Vec::with_capacity(n);
    let mut patient = Vec::with_capacity(n);
    let mut action = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut object_type = Vec::with_capacity(n);
    let mut object_id = Vec::with_capacity(n);
    let mut request = Vec::with_capacity(n);
    let mut details = Vec::with_capacity(n);
    let mut clinical = Vec::with_capacity(n);
    for e in events {
        let e = prepare(practice, e)?;
        ids.push(AuditEventId::new().as_uuid());
        at.push(e.at);
        actor.push(e.actor.map(|a| a.as_uuid()));
        patient.push(e.patient.map(|p| p.as_uuid()));
        action.push(e.action.as_str());
        outcome.push(e.outcome.as_str());
        object_type.push(e.object.map(|o| o.kind().as_str()));
        object_id.push(e.object.map(AuditObject::id));
        request.push(e.request.map(|r| r.as_uuid()));
        clinical.push(e.action.is_clinical() && !e.resolved);
        details.push(e.details);
    }
    let done = sqlx::query(
        "insert into audit_event
           (practice_id, event_id, occurred_at, actor_id, patient_id, action, outcome, object_type,
            object_id, request_id, details)
         select $1, e.event_id, e.occurred_at, e.actor_id, e.patient_id, e.action, e.outcome,
                e.object_type, e.object_id, e.request_id,
                case when e.clinical then app.clinical_audit_details(e.details, e.patient_id)
                     else e.details end
           from unnest($2::uuid[], $3::timestamptz[], $4::uuid[], $5::uuid[], $6::text[],
                       $7::text[], $8::text[], $9::uuid[], $10::uuid[], $11::jsonb[], $12::bool[])
                as e(event_id, occurred_at, actor_id, patient_id, action, outcome, object_type,
                     object_id, request_id, details, clinical)",
    )
    .bind(practice)
    .bind(&ids)
    .bind(&at)
    .bind(&actor)
    .bind(&patient)
    .bind(&action)
    .bind(&outcome)
    .bind(&object_type)
    .bind(&object_id)
    .bind(&request)
    .bind(&details)
    .bind(&clinical)
    .execute(conn)
    .await
    .map_err(|e| StoreError::AuditFailed(e.to_string()))?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ObjectKind;

    fn event(action: AuditAction) -> NewEvent {
        NewEvent::new(
            chrono::DateTime::from_timestamp_micros(1_714_979_289_123_456).unwrap(),
            action,
        )
    }

    // issue 15.1 — every action and object kind of the closed sets is a name the audit crate
    // accepts, so a typed event never fails for its names.
    #[test]
    fn every_action_and_object_kind_is_a_valid_name() {
        let practice = PracticeId::new();
        for a in AuditAction::ALL {
            for k in ObjectKind::ALL {
                let mut e = event(*a);
                e.object = Some(AuditObject::new(*k, uuid::Uuid::now_v7()));
                check(practice, AuditEventId::new(), &e).unwrap();
            }
        }
    }

    // issue 15.1 — details are validated on write: free text, bad keys and non-objects are
    // refused, and the error names the rule, not the value.
    #[test]
    fn details_are_validated_on_write() {
        let practice = PracticeId::new();
        let ok = |details: serde_json::Value| {
            let mut e = event(AuditAction::PatientRead);
            e.details = Some(details);
            check(practice, AuditEventId::new(), &e)
        };
        ok(
            serde_json::json!({"version": 3, "ok": true, "by_actor": null,
            "at": "2024-05-06T07:08:09.123456Z"}),
        )
        .unwrap();
        for bad in [
            serde_json::json!({"reason": "patient was upset"}),
            serde_json::json!({"Name": "x"}),
            serde_json::json!({"empty": ""}),
            serde_json::json!(["not", "an", "object"]),
        ] {
            let err = ok(bad).unwrap_err().to_string();
            assert!(err.contains("patient.read"), "{err}");
            assert!(!err.contains("upset"), "{err}");
        }
        let mut sub_micro = event(AuditAction::PatientRead);
        sub_micro.at = chrono::DateTime::from_timestamp(1, 1).unwrap();
        assert!(check(practice, AuditEventId::new(), &sub_micro).is_err());
    }
}
