//! Deletion, retention and legal hold (req INT-02; `migrations/0009_retention.sql`).
//!
//! # Model
//! - Patients and draft notes are soft-deleted (`deleted_at`); signed notes are never deleted
//!   by anyone through the application.
//! - Each practice has two windows ([`RetentionSettings`]): how long a soft-deleted record is
//!   kept (`deleted_retention_days`), and how long signed notes are kept
//!   (`record_keeping_years`, from the practice's state record-keeping rule, counted from a
//!   note's newest signed version: signature, amendment or addendum).
//! - A legal hold on a patient ([`LegalHold`]; who, when, a [`HoldCategory`] code, never free
//!   text) stops every purge of that patient's records while it exists.
//!
//! # What the retention job purges ([`crate::OwnerStore::purge_expired`])
//! Run as the owner role, one practice per transaction, with an injected time `now`:
//! - **Deleted patients** whose deletion is older than `deleted_retention_days`, not under
//!   legal hold, with no signed note version newer than `record_keeping_years` and no
//!   disclosure newer than six years (the accounting-of-disclosures period, HIPAA
//!   45 CFR 164.528(a)(1)). The whole record goes: notes (every version, drafts and signed),
//!   perio exams, visits, appointments, disclosures, break-glass grants, search tokens, the
//!   patient row. A deleted patient whose signed notes are still inside the record-keeping
//!   window stays soft-deleted (410) until they are not.
//! - **Deleted draft notes** (of any patient not under legal hold) whose deletion is older than
//!   `deleted_retention_days`: header and versions.
//! - Signed notes of patients who are *not* deleted are never purged automatically: destroying
//!   a current patient's chart is a decision for the practice, not a timer.
//! - Blob registrations (`blob_object`) name no patient yet (no table refers to a blob), so a
//!   purge removes none; the future attachment tables will be purged with their patient.
//! - Which tables are purged, with what, in what order and under which audited object type
//!   is read from the sealed-table registry ([`crate::sealed_columns::TABLES`], field
//!   [`crate::sealed_columns::SealedTable::purge`]): a table added there is purged here.
//! - Audit rows are never touched: they have no foreign keys to records and their triggers
//!   forbid DELETE. The purge appends one `retention.purge` event per purged record (ids only;
//!   object type, object id, patient id), so "what happened to this patient" still answers,
//!   and `audit verify` keeps passing.
//!
//! The database enforces the narrow path: note versions and signed note headers can be
//! deleted only by the owner role with the transaction-local `chartroom.retention_purge`
//! setting, and never for a patient under legal hold (triggers in migration 0009).

use chrono::{DateTime, Months, Utc};
use domain::{AuditAction, AuditObject, ObjectKind, PatientId, PracticeId, UserId};
use serde::Serialize;
use sqlx::PgConnection;

use crate::sealed_columns::{self, Purge, SealedTable, TABLES};
use crate::{OwnerStore, StoreError, TenantTx};

/// Bounds of `deleted_retention_days` (days): never the same day, at most ten years.
pub const DELETED_RETENTION_DAYS: std::ops::RangeInclusive<i32> = 1..=3650;
/// Bounds of `record_keeping_years` (years).
pub const RECORD_KEEPING_YEARS: std::ops::RangeInclusive<i32> = 2..=100;
/// How long a patient's disclosures must stay available for an accounting (HIPAA
/// 45 CFR 164.528(a)(1): the six years before the request).
pub const DISCLOSURE_ACCOUNTING_YEARS: u32 = 6;

/// A practice's retention windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionSettings {
    /// Days a soft-deleted record is kept before it is purged.
    pub deleted_retention_days: i32,
    /// Years signed notes are kept, from their newest signed version.
    pub record_keeping_years: i32,
}

/// Why a patient is under legal hold: a category, never free text (a typed reason could be
/// PHI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldCategory {
    /// Litigation, pending or reasonably anticipated.
    Litigation,
    /// An investigation (regulator, board, insurer, internal).
    Investigation,
    /// A regulatory or statutory obligation to keep the record.
    Regulatory,
    /// A records request (subpoena, patient or authorized request) being fulfilled.
    RecordsRequest,
    /// Anything else (the owners keep the details outside the chart).
    Other,
}

impl HoldCategory {
    /// Every category.
    pub const ALL: [HoldCategory; 5] = [
        HoldCategory::Litigation,
        HoldCategory::Investigation,
        HoldCategory::Regulatory,
        HoldCategory::RecordsRequest,
        HoldCategory::Other,
    ];

    /// The stable code stored in `legal_hold.category`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            HoldCategory::Litigation => "litigation",
            HoldCategory::Investigation => "investigation",
            HoldCategory::Regulatory => "regulatory",
            HoldCategory::RecordsRequest => "records_request",
            HoldCategory::Other => "other",
        }
    }

    /// The category with this code.
    #[must_use]
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// A legal hold on one patient.
#[derive(Clone, Debug, Serialize)]
pub struct LegalHold {
    /// The patient held.
    pub patient_id: PatientId,
    /// Why.
    pub category: HoldCategory,
    /// Who placed it (or last changed its category).
    pub placed_by: UserId,
    /// When.
    pub placed_at: DateTime<Utc>,
}

type HoldRow = (PatientId, String, UserId, DateTime<Utc>);

fn hold((patient_id, category, placed_by, placed_at): HoldRow) -> Result<LegalHold, StoreError> {
    Ok(LegalHold {
        patient_id,
        category: HoldCategory::parse(&category)
            .ok_or(StoreError::Corrupt("legal_hold.category"))?,
        placed_by,
        placed_at,
    })
}

/// Whether the actor (an owner or admin) may hold `patient`: a patient of the transaction's
/// practice, deleted or not. Reads no patient data (`app.legal_hold_target`).
pub async fn hold_target(tx: &mut TenantTx, patient: PatientId) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("select app.legal_hold_target($1)")
        .bind(patient)
        .fetch_one(tx.conn())
        .await?)
}

/// Places (or re-categorizes) the legal hold on `patient`, as the transaction's actor at its
/// time. The caller checks [`hold_target`] first and audits.
pub async fn place_hold(
    tx: &mut TenantTx,
    patient: PatientId,
    category: HoldCategory,
) -> Result<LegalHold, StoreError> {
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    let r: HoldRow = sqlx::query_as(
        "insert into legal_hold (practice_id, patient_id, category, placed_by, placed_at)
         values ($1, $2, $3, $4, $5)
         on conflict (practice_id, patient_id)
         do update set category = excluded.category, placed_by = excluded.placed_by,
                       placed_at = excluded.placed_at
         returning patient_id, category, placed_by, placed_at",
    )
    .bind(practice)
    .bind(patient)
    .bind(category.as_str())
    .bind(actor)
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    hold(r)
}

/// Releases the legal hold on `patient`; the hold released, or `None` when there was none.
pub async fn release_hold(
    tx: &mut TenantTx,
    patient: PatientId,
) -> Result<Option<LegalHold>, StoreError> {
    let practice = tx.practice();
    let r: Option<HoldRow> = sqlx::query_as(
        "delete from legal_hold where practice_id = $1 and patient_id = $2
         returning patient_id, category, placed_by, placed_at",
    )
    .bind(practice)
    .bind(patient)
    .fetch_optional(tx.conn())
    .await?;
    r.map(hold).transpose()
}

/// The practice's legal holds, oldest first (at most 1000).
pub async fn list_holds(tx: &mut TenantTx) -> Result<Vec<LegalHold>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<HoldRow> = sqlx::query_as(
        "select patient_id, category, placed_by, placed_at from legal_hold
          where practice_id = $1 order by placed_at, patient_id limit 1000",
    )
    .bind(practice)
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(hold).collect()
}

/// What one retention run did (or, dry, would do) in one practice.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PurgeReport {
    /// The practice.
    pub practice_id: Option<PracticeId>,
    /// Patients purged (whole records).
    pub patients: Vec<PatientId>,
    /// Notes purged (deleted drafts, and every note of a purged patient).
    pub notes: u64,
    /// Note versions purged with them.
    pub note_versions: u64,
    /// Perio exams purged.
    pub perio_exams: u64,
    /// Visits purged.
    pub visits: u64,
    /// Appointments purged.
    pub appointments: u64,
    /// Online bookings purged (before their appointments).
    pub online_bookings: u64,
    /// Intake records purged: requests, their signed responses and the client links.
    pub intake_records: u64,
    /// Outbox messages purged (with their client).
    pub outbox_messages: u64,
    /// Payment records of online bookings (states, amounts, processor ids) deleted.
    pub booking_payments: u64,
    /// Right-of-access requests deleted.
    pub access_requests: u64,
    /// Amendment requests deleted (with their statements of disagreement and rebuttals).
    pub amendment_requests: u64,
    /// Disclosure records purged.
    pub disclosures: u64,
    /// Break-glass grants purged.
    pub break_glass: u64,
    /// Scribe records purged: assistant turns, transcript segments and their revisions, note
    /// drafts and their sentences.
    pub scribe_records: u64,
    /// Captures purged (their audio was deleted before, by the audio retention pass).
    pub captures: u64,
    /// Capture audio chunk rows purged with them.
    pub capture_chunks: u64,
    /// Recording consents purged.
    pub recording_consents: u64,
    /// Deleted patients and draft notes past their window kept because of a legal hold.
    pub held: u64,
    /// Deleted patients past the deletion window kept because signed notes (record-keeping
    /// window) or disclosures (accounting period) are still inside their windows.
    pub kept_for_record_keeping: u64,
    /// `retention.purge` audit events written (one per purged record).
    pub audit_events: u64,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
}

impl PurgeReport {
    /// The counter of the purged rows of the registered table `t`; `None` for patients (listed
    /// by id) and for tables never purged. This module's tests check that every purged table
    /// other than `patient` has one.
    fn counter(&mut self, t: &SealedTable) -> Option<&mut u64> {
        let name = t.table;
        if name == sealed_columns::CLINICAL_NOTE_VERSION.table {
            Some(&mut self.note_versions)
        } else if name == sealed_columns::CLINICAL_NOTE.table {
            Some(&mut self.notes)
        } else if name == sealed_columns::PERIO_EXAM.table {
            Some(&mut self.perio_exams)
        } else if name == sealed_columns::BREAK_GLASS.table {
            Some(&mut self.break_glass)
        } else if name == sealed_columns::DISCLOSURE.table {
            Some(&mut self.disclosures)
        } else if name == sealed_columns::VISIT.table {
            Some(&mut self.visits)
        } else if name == sealed_columns::APPOINTMENT.table {
            Some(&mut self.appointments)
        } else if name == sealed_columns::ONLINE_BOOKING.table {
            Some(&mut self.online_bookings)
        } else if name == sealed_columns::OUTBOX_MESSAGE.table {
            Some(&mut self.outbox_messages)
        } else if name == sealed_columns::BOOKING_PAYMENT.table {
            Some(&mut self.booking_payments)
        } else if name == sealed_columns::ACCESS_REQUEST.table {
            Some(&mut self.access_requests)
        } else if name == sealed_columns::AMENDMENT_REQUEST.table {
            Some(&mut self.amendment_requests)
        } else if [
            sealed_columns::INTAKE_RESPONSE.table,
            sealed_columns::INTAKE_REQUEST.table,
            sealed_columns::CLIENT_LINK.table,
        ]
        .contains(&name)
        {
            Some(&mut self.intake_records)
        } else if [
            sealed_columns::DRAFT_SENTENCE.table,
            sealed_columns::NOTE_DRAFT.table,
            sealed_columns::TRANSCRIPT_REVISION.table,
            sealed_columns::TRANSCRIPT_SEGMENT.table,
            sealed_columns::ASSISTANT_TURN.table,
        ]
        .contains(&name)
        {
            Some(&mut self.scribe_records)
        } else if name == sealed_columns::CAPTURE.table {
            Some(&mut self.captures)
        } else if name == sealed_columns::CAPTURE_CHUNK.table {
            Some(&mut self.capture_chunks)
        } else if name == sealed_columns::RECORDING_CONSENT.table {
            Some(&mut self.recording_consents)
        } else {
            None
        }
    }
}

/// One purged record, for its audit event.
struct Purged {
    object_type: ObjectKind,
    object_id: uuid::Uuid,
    patient_id: uuid::Uuid,
}

fn years_before(now: DateTime<Utc>, years: u32) -> Result<DateTime<Utc>, StoreError> {
    now.checked_sub_months(Months::new(years.saturating_mul(12)))
        .ok_or(StoreError::Corrupt("retention cut-off out of range"))
}

async fn deleted_ids(
    conn: &mut PgConnection,
    sql: &str,
    practice: PracticeId,
    ids: &[uuid::Uuid],
    object_type: ObjectKind,
    out: &mut Vec<Purged>,
) -> Result<u64, StoreError> {
    let rows: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(sql)
        .bind(practice)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    let n = u64::try_from(rows.len()).unwrap_or(u64::MAX);
    out.extend(rows.into_iter().map(|(id, patient)| Purged {
        object_type,
        object_id: id,
        patient_id: patient,
    }));
    Ok(n)
}

impl OwnerStore {
    /// The retention windows of `practice` (as the owner role).
    pub async fn retention_settings(
        &self,
        practice: PracticeId,
    ) -> Result<RetentionSettings, StoreError> {
        let mut tx = self.begin_in(practice).await?;
        let r: Option<(i32, i32)> = sqlx::query_as(
            "select deleted_retention_days, record_keeping_years from practice where practice_id = $1",
        )
        .bind(practice)
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        let (d, y) = r.ok_or(StoreError::NotMember)?;
        Ok(RetentionSettings {
            deleted_retention_days: d,
            record_keeping_years: y,
        })
    }

    /// Changes the retention windows of `practice` (as the owner role; the runtime role cannot
    /// change them). Audited as `practice.update` with the new values. Values outside
    /// [`DELETED_RETENTION_DAYS`] / [`RECORD_KEEPING_YEARS`] are refused
    /// ([`StoreError::Invalid`]).
    pub async fn set_retention(
        &self,
        practice: PracticeId,
        deleted_retention_days: Option<i32>,
        record_keeping_years: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<RetentionSettings, StoreError> {
        if deleted_retention_days.is_some_and(|d| !DELETED_RETENTION_DAYS.contains(&d)) {
            return Err(StoreError::Invalid(
                "practice_deleted_retention_days".into(),
            ));
        }
        if record_keeping_years.is_some_and(|y| !RECORD_KEEPING_YEARS.contains(&y)) {
            return Err(StoreError::Invalid("practice_record_keeping_years".into()));
        }
        let mut tx = self.begin_at(practice, now).await?;
        let r: Option<(i32, i32)> = sqlx::query_as(
            "update practice
                set deleted_retention_days = coalesce($2, deleted_retention_days),
                    record_keeping_years = coalesce($3, record_keeping_years)
              where practice_id = $1 and kind = 'practice'
          returning deleted_retention_days, record_keeping_years",
        )
        .bind(practice)
        .bind(deleted_retention_days)
        .bind(record_keeping_years)
        .fetch_optional(tx.conn())
        .await?;
        let (d, y) = r.ok_or(StoreError::NotMember)?;
        tx.audit(
            AuditAction::PracticeUpdate,
            Some(AuditObject::practice(practice)),
            None,
            Some(serde_json::json!({ "deleted_retention_days": d, "record_keeping_years": y })),
        )
        .await?;
        tx.commit().await?;
        Ok(RetentionSettings {
            deleted_retention_days: d,
            record_keeping_years: y,
        })
    }

    /// The retention job for one practice at time `now` (injected; never the wall clock):
    /// hard-deletes, as the owner role, what is past the practice's windows and not under
    /// legal hold (see the [module docs](self) for exactly what), and appends one
    /// `retention.purge` audit event per purged record, all in one transaction. Decrypts
    /// nothing. Audit rows of the purged records stay.
    pub async fn purge_expired(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<PurgeReport, StoreError> {
        self.purge(practice, now, false).await
    }

    /// [`OwnerStore::purge_expired`] run to the end and rolled back: the exact report, with
    /// nothing changed and nothing audited.
    pub async fn purge_expired_dry_run(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<PurgeReport, StoreError> {
        self.purge(practice, now, true).await
    }

    #[allow(
        clippy::too_many_lines,
        reason = "one transaction, read top to bottom: select, delete in foreign-key order, audit"
    )]
    async fn purge(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PurgeReport, StoreError> {
        let settings = self.retention_settings(practice).await?;
        let deleted_cutoff = now
            .checked_sub_signed(chrono::Duration::days(i64::from(
                settings.deleted_retention_days,
            )))
            .ok_or(StoreError::Corrupt("retention cut-off out of range"))?;
        let signed_cutoff = years_before(
            now,
            u32::try_from(settings.record_keeping_years).unwrap_or(u32::MAX),
        )?;
        let disclosure_cutoff = years_before(now, DISCLOSURE_ACCOUNTING_YEARS)?;

        let mut tx = self.begin_at(practice, now).await?;
        sqlx::query("select set_config('chartroom.retention_purge', 'on', true)")
            .execute(tx.conn())
            .await?;
        let mut report = PurgeReport {
            practice_id: Some(practice),
            dry_run,
            ..PurgeReport::default()
        };

        // Deleted patients past the deletion window, locked: with whether a hold or a
        // record-keeping obligation keeps them.
        let candidates: Vec<(uuid::Uuid, bool, bool)> = sqlx::query_as(
            "select p.patient_id,
                    exists (select 1 from legal_hold h
                             where h.practice_id = p.practice_id and h.patient_id = p.patient_id),
                    exists (select 1 from clinical_note n
                              join clinical_note_version v
                                on v.practice_id = n.practice_id and v.note_id = n.note_id
                             where n.practice_id = p.practice_id and n.patient_id = p.patient_id
                               and v.kind <> 'draft' and v.signed_at > $3)
                    or exists (select 1 from disclosure d
                                where d.practice_id = p.practice_id and d.patient_id = p.patient_id
                                  and d.disclosed_at > $4)
               from patient p
              where p.practice_id = $1 and p.deleted_at is not null and p.deleted_at <= $2
              order by p.patient_id
              for update of p",
        )
        .bind(practice)
        .bind(deleted_cutoff)
        .bind(signed_cutoff)
        .bind(disclosure_cutoff)
        .fetch_all(tx.conn())
        .await?;
        let mut patients = Vec::new();
        for (id, held, kept) in candidates {
            if held {
                report.held += 1;
            } else if kept {
                report.kept_for_record_keeping += 1;
            } else {
                patients.push(id);
            }
        }

        // Notes: every note of a purged patient, and deleted drafts past the window.
        let notes: Vec<(uuid::Uuid, uuid::Uuid, bool)> = sqlx::query_as(
            "select n.note_id, n.patient_id,
                    exists (select 1 from legal_hold h
                             where h.practice_id = n.practice_id and h.patient_id = n.patient_id)
               from clinical_note n
              where n.practice_id = $1
                and (n.patient_id = any($2)
                     or (n.deleted_at is not null and n.deleted_at <= $3))
              order by n.note_id
              for update of n",
        )
        .bind(practice)
        .bind(&patients)
        .bind(deleted_cutoff)
        .fetch_all(tx.conn())
        .await?;
        let mut note_ids = Vec::new();
        for (note, _, held) in &notes {
            if *held {
                report.held += 1;
            } else {
                note_ids.push(*note);
            }
        }

        // Every registered table, in the registry's order (each before the tables it refers
        // to): rows of the purged notes, then of the purged patients, then the patients. Search
        // tokens go by cascade; they are not records of their own.
        let mut purged = Vec::new();
        for t in TABLES {
            let (key, ids, audit_as) = match t.purge {
                Purge::WithNotes { audit_as } => ("note_id", &note_ids, audit_as),
                Purge::WithPatients { audit_as } => ("patient_id", &patients, audit_as),
                Purge::Never(_) => continue,
            };
            let delete = format!(
                "delete from {} where practice_id = $1 and {key} = any($2)",
                t.table
            );
            let n = match audit_as {
                Some(object_type) => {
                    let sql = format!("{delete} returning {}, patient_id", t.row.id);
                    deleted_ids(tx.conn(), &sql, practice, ids, object_type, &mut purged).await?
                }
                None => sqlx::query(&delete)
                    .bind(practice)
                    .bind(ids)
                    .execute(tx.conn())
                    .await?
                    .rows_affected(),
            };
            if let Some(c) = report.counter(t) {
                *c += n;
            }
        }
        report.patients = patients.into_iter().map(PatientId::from_uuid).collect();

        // One audit event per purged record, in the same transaction (ids only).
        let details = serde_json::json!({
            "run": uuid::Uuid::now_v7(),
            "deleted_retention_days": settings.deleted_retention_days,
            "record_keeping_years": settings.record_keeping_years,
        });
        let events: Vec<_> = purged
            .iter()
            .map(|p| {
                let mut e = tx.event(AuditAction::RetentionPurge);
                e.object = Some(AuditObject::new(p.object_type, p.object_id));
                e.patient = Some(PatientId::from_uuid(p.patient_id));
                e.details = Some(details.clone());
                e
            })
            .collect();
        report.audit_events = if events.is_empty() {
            0
        } else {
            tx.append(&events).await?
        };

        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(report)
    }
}

/// The retention windows of the transaction's practice (any member may read them).
pub async fn settings(tx: &mut TenantTx) -> Result<RetentionSettings, StoreError> {
    let practice = tx.practice();
    let (d, y): (i32, i32) = sqlx::query_as(
        "select deleted_retention_days, record_keeping_years from practice where practice_id = $1",
    )
    .bind(practice)
    .fetch_one(tx.conn())
    .await?;
    Ok(RetentionSettings {
        deleted_retention_days: d,
        record_keeping_years: y,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15.3 — every table the retention job purges is counted in its report (patients are
    // listed by id instead), and none that it never purges is.
    #[test]
    fn every_purged_table_is_counted() {
        for t in TABLES {
            let mut r = PurgeReport::default();
            let counted = r.counter(t).is_some();
            let purged = !matches!(t.purge, Purge::Never(_));
            assert_eq!(
                counted,
                purged && t.table != sealed_columns::PATIENT.table,
                "{}",
                t.table
            );
        }
    }
}
