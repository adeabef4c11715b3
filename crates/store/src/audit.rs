//! The audit log in PostgreSQL: reports, denied attempts, the sequencer (hash chain and
//! Merkle tree), proofs, and the streaming read that `audit verify` checks.
//!
//! Appends happen in the caller's transaction, through the one append (`crate::append`:
//! [`crate::TenantTx::audit`], [`crate::OwnerTx`], denied attempts here); a trigger queues
//! each event in `audit_pending`. [`Store::sequence_pending`] sequences queued events
//! practice by practice: one sequencer per practice at a time (a transaction-scoped advisory
//! lock), so a busy practice never serializes another, and requests never wait on a chain
//! head.

use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditEventId, Outcome, PatientId, PracticeId, RequestId, UserId};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{OwnerStore, Store, StoreError, TenantTx};

/// One audit event as stored, with its sequence number once sequenced.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    /// Position in the practice's chain (`None` until sequenced).
    pub seq: Option<i64>,
    /// Event id.
    pub event_id: AuditEventId,
    /// When it happened (UTC).
    pub occurred_at: DateTime<Utc>,
    /// Who (absent for system and administrative events).
    pub actor_id: Option<UserId>,
    /// The patient concerned, if any.
    pub patient_id: Option<PatientId>,
    /// What (a stable action name).
    pub action: String,
    /// `success` or `denied`.
    pub outcome: String,
    /// Kind of object.
    pub object_type: Option<String>,
    /// The object's id.
    pub object_id: Option<uuid::Uuid>,
    /// The request that caused it.
    pub request_id: Option<RequestId>,
    /// Extra metadata (ids and flags only).
    pub details: Option<serde_json::Value>,
}

/// Report filters (all optional; combined with AND).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events about this patient ("who looked at this patient").
    pub patient: Option<PatientId>,
    /// Only events by this actor ("what did this user touch").
    pub actor: Option<UserId>,
    /// Only this action.
    pub action: Option<String>,
    /// From this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this time (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Newest first when true.
    pub descending: bool,
    /// Keyset cursor: continue after this (time, event id).
    pub after: Option<(DateTime<Utc>, AuditEventId)>,
    /// Page size (1..=500).
    pub limit: i64,
}

const ROW_COLUMNS: &str =
    "s.seq, e.event_id, e.occurred_at, e.actor_id, e.patient_id, e.action, e.outcome,
     e.object_type, e.object_id, e.request_id, e.details";

async fn query_events(
    conn: &mut PgConnection,
    practice: PracticeId,
    f: &AuditFilter,
) -> Result<Vec<AuditRow>, StoreError> {
    let (cmp, order) = if f.descending {
        (" < ", "desc")
    } else {
        (" > ", "asc")
    };
    // Only the filters given become conditions, so each combination is its own statement whose
    // plan can use the index that fits it (an `$n is null or …` condition cannot).
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "select {ROW_COLUMNS}
           from audit_event e left join audit_sequence s on s.practice_id = e.practice_id and s.event_id = e.event_id
          where e.practice_id = "
    ));
    q.push_bind(practice);
    if let Some(patient) = f.patient {
        q.push(" and e.patient_id = ").push_bind(patient);
    }
    if let Some(actor) = f.actor {
        q.push(" and e.actor_id = ").push_bind(actor);
    }
    if let Some(action) = &f.action {
        q.push(" and e.action = ").push_bind(action.clone());
    }
    if let Some(from) = f.from {
        q.push(" and e.occurred_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" and e.occurred_at < ").push_bind(to);
    }
    if let Some((t, id)) = f.after {
        q.push(" and (e.occurred_at, e.event_id)")
            .push(cmp)
            .push("(")
            .push_bind(t)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(format!(
        " order by e.occurred_at {order}, e.event_id {order} limit "
    ))
    .push_bind(f.limit.clamp(1, 500));
    Ok(q.build_query_as().fetch_all(conn).await?)
}

/// Reads audit events of the transaction's practice (owner or admin; enforced by RLS). The
/// caller audits the report itself.
pub async fn report(tx: &mut TenantTx, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
    let practice = tx.practice();
    query_events(tx.conn(), practice, filter).await
}

impl OwnerStore {
    /// Reads audit events of a practice as the owner role (the `chartroom audit report` CLI).
    pub async fn audit_report(
        &self,
        practice: PracticeId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut tx = self.begin_in(practice).await?;
        let rows = query_events(tx.conn(), practice, filter).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

impl OwnerStore {
    /// Records an administrative action on the audit log itself (a report or export made with
    /// the CLI), without an actor, stamped by this store's clock.
    pub async fn audit_admin_event(
        &self,
        practice: PracticeId,
        action: AuditAction,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_in(practice).await?;
        tx.audit(action, None, None, Some(serde_json::json!({"via": "cli"})))
            .await?;
        tx.commit().await
    }
}

/// What a denied attempt was.
#[derive(Debug, Clone)]
pub struct Denial {
    /// The practice the attempt was aimed at.
    pub practice: PracticeId,
    /// Who tried.
    pub actor: UserId,
    /// The patient id named in the path, if any: what was requested. The event names it as
    /// its patient only when that patient exists in the practice (migration 0017); it is
    /// kept in the details as `requested_patient_id` either way.
    pub requested_patient: Option<PatientId>,
    /// `role` (a member without the privilege) or `not_member`.
    pub reason: &'static str,
    /// Method and route template (no ids, no values), as an audit detail value.
    pub route: String,
    /// The request.
    pub request: RequestId,
    /// When.
    pub at: DateTime<Utc>,
}

impl Store {
    /// Records a denied attempt on its own connection and transaction (the request's own
    /// transaction is rolled back). Nothing is written when the practice does not exist, so
    /// made-up practice ids cannot fill the log. What was requested is kept apart from what
    /// the event is about: `patient_id` is set only for a patient of this practice, and the
    /// id from the path goes to `details.requested_patient_id` (so another practice's ids
    /// never become this practice's patients in reports).
    pub async fn audit_denied(&self, d: &Denial) -> Result<(), StoreError> {
        let mut tx = crate::entry::Audited::begin(&self.pool, d.practice, d.at).await?;
        let (exists, in_practice): (bool, bool) = sqlx::query_as(
            "select exists (select 1 from practice where practice_id = $1),
                    coalesce(app.patient_in_practice($2), false)",
        )
        .bind(d.practice)
        .bind(d.requested_patient)
        .fetch_one(tx.conn())
        .await?;
        if !exists {
            return Ok(());
        }
        let mut e = tx.event(AuditAction::AccessDenied);
        e.actor = Some(d.actor);
        e.outcome = Outcome::Denied;
        e.patient = d.requested_patient.filter(|_| in_practice);
        e.request = Some(d.request);
        e.details = Some(match d.requested_patient {
            Some(p) => serde_json::json!({
                "reason": d.reason, "route": d.route, "requested_patient_id": p,
            }),
            None => serde_json::json!({"reason": d.reason, "route": d.route}),
        });
        tx.append(&[e]).await?;
        tx.commit().await
    }
}

/// The result of verifying one practice's log in the database.
#[derive(Debug)]
pub struct VerifyOutcome {
    /// What the chain, tree and checkpoints say (first problem, if any).
    pub report: audit::verify::Report,
    /// Events that are neither sequenced nor queued for the sequencer: rows inserted with the
    /// queue trigger disabled.
    pub unqueued_events: i64,
    /// Events queued for longer than the sequencing bound.
    pub stale_pending: i64,
    /// Queue entries whose event row is gone: events deleted before they were sequenced.
    pub queued_missing: i64,
    /// Queue entries for events that are already sequenced: queued again around the
    /// application (sequencing them twice is refused, so the practice's sequencing stops).
    pub queued_sequenced: i64,
}

impl VerifyOutcome {
    /// Whether nothing is wrong.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.report.is_ok()
            && self.unqueued_events == 0
            && self.stale_pending == 0
            && self.queued_missing == 0
            && self.queued_sequenced == 0
    }
}

impl OwnerStore {
    /// Verifies one practice's log: streams every sequenced event from the pruning point on
    /// through [`audit::verify::Verification`] (chain, Merkle tree, signed `checkpoints`;
    /// sequenced positions whose events are gone included), and counts events that are
    /// neither sequenced nor queued, events that wait longer than `sequence_bound`, and queue
    /// entries whose event is gone or already sequenced. Runs as the owner role.
    ///
    /// Sequence rows and events are read on two connections by two tasks (binary `COPY`); the
    /// events task also encodes and leaf-hashes each event, a blocking thread matches and
    /// verifies. Never-queued events are looked for among the events no sequence row claimed
    /// (normally only those still queued); if a stream could not be read to its end, or too
    /// many went unclaimed, the whole log is counted in SQL instead.
    pub async fn verify_practice(
        &self,
        practice: PracticeId,
        origin: &str,
        checkpoints: Vec<audit::Checkpoint>,
        sequence_bound: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<VerifyOutcome, StoreError> {
        use crate::copy_read as cr;

        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let start = verify_start(&mut tx, practice).await?;
        let stale_pending: i64 = sqlx::query_scalar(
            "select count(*) from audit_pending p join audit_event e using (practice_id, event_id)
              where p.practice_id = $1 and e.occurred_at < $2",
        )
        .bind(practice)
        .bind(now - sequence_bound)
        .fetch_one(&mut *tx)
        .await?;
        let (queued_missing, queued_sequenced): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where not exists
                        (select 1 from audit_event e where e.practice_id = p.practice_id and e.event_id = p.event_id)),
                    count(*) filter (where exists
                        (select 1 from audit_sequence s where s.practice_id = p.practice_id and s.event_id = p.event_id))
               from audit_pending p where p.practice_id = $1",
        )
        .bind(practice)
        .fetch_one(&mut *tx)
        .await?;

        let start_seq =
            i64::try_from(start.seq).map_err(|_| StoreError::Corrupt("audit prune seq"))?;
        sqlx::query("select set_config('chartroom.verify_from', $1, true)")
            .bind(start_seq.to_string())
            .execute(&mut *tx)
            .await?;
        let events_tx = crate::entry::begin_in(&self.pool, practice).await?;
        let (mut tx, verified) =
            cr::read_and_verify(tx, events_tx, practice, origin, start, checkpoints).await?;

        let unqueued_events = match verified.unclaimed {
            Some(ids) if ids.is_empty() => 0,
            Some(ids) if ids.len() <= cr::MAX_UNCLAIMED => {
                sqlx::query_scalar(
                    "select count(*) from audit_event e where e.practice_id = $1 and e.event_id = any($2)
                       and not exists (select 1 from audit_sequence s where s.practice_id = e.practice_id and s.event_id = e.event_id)
                       and not exists (select 1 from audit_pending p where p.practice_id = e.practice_id and p.event_id = e.event_id)",
                )
                .bind(practice)
                .bind(ids)
                .fetch_one(&mut *tx)
                .await?
            }
            _ => {
                sqlx::query_scalar(
                    "select count(*) from audit_event e where e.practice_id = $1
                       and not exists (select 1 from audit_sequence s where s.practice_id = e.practice_id and s.event_id = e.event_id)
                       and not exists (select 1 from audit_pending p where p.practice_id = e.practice_id and p.event_id = e.event_id)",
                )
                .bind(practice)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(VerifyOutcome {
            report: verified.report,
            unqueued_events,
            stale_pending,
            queued_missing,
            queued_sequenced,
        })
    }
}

/// Where verification of `practice`'s log starts: genesis, or the last retention prune
/// (its chain hash and the stored right edge of the tree at that size).
async fn verify_start(
    tx: &mut PgConnection,
    practice: PracticeId,
) -> Result<audit::verify::VerifyStart, StoreError> {
    let prune: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "select seq, chain_hash from audit_prune where practice_id = $1 order by seq desc limit 1",
    )
    .bind(practice)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match prune {
        None => audit::verify::VerifyStart::genesis(),
        Some((seq, chain)) => {
            let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt("audit prune seq"))?;
            let needed = audit::merkle::nodes_needed_for_root(seq);
            let nodes = crate::sequence::fetch_nodes(&mut *tx, practice, &needed).await?;
            let right_edge = needed
                .iter()
                .filter_map(|k| nodes.get(k).copied())
                .collect();
            audit::verify::VerifyStart {
                seq,
                prev_chain: chain
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("audit prune chain hash"))?,
                right_edge,
            }
        }
    })
}
