//! The subprocessor registry's record (installation-level, not tenant data; migration 0027):
//! the state of every configured integration and the dated history of changes to it.
//!
//! # Guarantees
//! - [`Store::record_subprocessors`] is idempotent: the same configuration records nothing
//!   new. It compares, records the changes and updates the state in one transaction under a
//!   transaction-scoped advisory lock, so servers starting together record a change once.
//! - The history is append-only (the runtime role may only insert and read it; a trigger
//!   refuses UPDATE, DELETE and TRUNCATE to everyone).
//! - Rows hold the published facts only ([`egress::registry::Entry`]): no secret, no URL, no
//!   BAA document reference. Nothing here is PHI, so nothing is audited per read; the facts
//!   are public (`/.well-known/subprocessors.json`).
//!
//! # Owners' notices
//! Every recorded change is a notice to the owners and admins of every practice: the web app
//! shows the history on their home page and notices screen with each change's effective date.
//! The recording ([`record_in`]) is the one place notices are created, and so the one place
//! their email copies are queued: [`OwnerStore::record_subprocessors_notifying`] (what `serve`
//! runs when it has the owner role) queues, in the same transaction as the change rows, one
//! `subprocessor_change` email per change to each active owner of each practice through the
//! outbox ([`crate::outbox::enqueue`]). The message's cause id is derived from the change and
//! the owner ([`notice_cause_id`]), so the outbox's one-message-per-cause rule makes it once
//! per owner per change; a restart with the same configuration records no change and queues
//! nothing. The email's slots are the vendor (a registry [`egress::registry::Vendor`],
//! rendered by its fixed name) and the effective date; nothing about a client.
//! [`Store::record_subprocessors`] (runtime role, no owner role configured) records the
//! notices in the app only.

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use egress::registry::{Change, ChangeKind, Entry, Recorded, plan};
use sqlx::Row as _;

use crate::outbox::{Cause, Channel, NewMessage, PracticeQueue, Recipient, Slots};
use crate::{OwnerStore, Store, StoreError};

/// Most changes read for a page or a feed.
pub const MAX_CHANGES: i64 = 500;

/// One recorded change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedChange {
    /// Its id (increasing).
    pub change_id: i64,
    /// The integration (`<kind>.<vendor>`).
    pub integration: String,
    /// What changed.
    pub kind: ChangeKind,
    /// A one-line summary.
    pub summary: String,
    /// The entry after the change (before it, for a removal).
    pub entry: Entry,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// When it takes effect.
    pub effective_at: DateTime<Utc>,
}

/// What [`Store::record_subprocessors`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    /// The state after it (activation time of each configured integration).
    pub state: Vec<Recorded>,
    /// The changes it recorded (empty: the configuration matched the record).
    pub changes: Vec<RecordedChange>,
    /// Owners' notice emails queued with them ([`OwnerStore::record_subprocessors_notifying`];
    /// always 0 from [`Store::record_subprocessors`]).
    pub emails_queued: u64,
}

/// The outbox cause id of the notice email about change `change_id` to owner `user`: the
/// first 16 bytes of SHA-256 over a fixed label, the change id and the user id (stable across
/// restarts, distinct per owner and change).
#[must_use]
pub fn notice_cause_id(change_id: i64, user: domain::UserId) -> uuid::Uuid {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"chartroom.subprocessor_change.v1");
    h.update(change_id.to_be_bytes());
    h.update(user.as_uuid().as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    uuid::Uuid::from_bytes(bytes)
}

fn entry_of(v: serde_json::Value) -> Result<Entry, StoreError> {
    serde_json::from_value(v).map_err(|_| StoreError::Corrupt("a subprocessor entry"))
}

fn json_of(e: &Entry) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(e).map_err(|_| StoreError::Corrupt("a subprocessor entry"))
}

async fn state(conn: &mut sqlx::PgConnection) -> Result<Vec<Recorded>, StoreError> {
    let rows = sqlx::query("select entry, active_from from subprocessor order by integration")
        .fetch_all(conn)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Recorded {
                entry: entry_of(r.try_get("entry")?)?,
                active_from: r.try_get("active_from")?,
            })
        })
        .collect()
}

/// Compares the configured `current` entries with the recorded state and records each
/// difference as a change dated `now` ([`egress::registry::plan`]: a new PHI-touching
/// subprocessor is active from `now + notice`, a removal at once), then updates the state; in
/// the caller's transaction, under a transaction-scoped advisory lock (servers starting
/// together record a change once). The one place notices are created.
async fn record_in(
    conn: &mut sqlx::PgConnection,
    current: &[Entry],
    now: DateTime<Utc>,
    notice: Duration,
) -> Result<Recording, StoreError> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('chartroom.subprocessors', 0))")
        .execute(&mut *conn)
        .await?;
    let previous = state(&mut *conn).await?;
    let planned = plan(&previous, current, now, notice);
    if planned.changes.is_empty() {
        return Ok(Recording {
            state: planned.state,
            ..Recording::default()
        });
    }
    let mut changes = Vec::with_capacity(planned.changes.len());
    for Change {
        integration,
        kind,
        summary,
        effective_at,
        entry,
    } in planned.changes
    {
        let change_id: i64 = sqlx::query_scalar(
            "insert into subprocessor_change (integration, change, summary, entry, recorded_at, effective_at)
             values ($1, $2, $3, $4, $5, $6) returning change_id",
        )
        .bind(&integration)
        .bind(kind.as_str())
        .bind(&summary)
        .bind(json_of(&entry)?)
        .bind(now)
        .bind(effective_at)
        .fetch_one(&mut *conn)
        .await?;
        changes.push(RecordedChange {
            change_id,
            integration,
            kind,
            summary,
            entry,
            recorded_at: now,
            effective_at,
        });
    }
    sqlx::query("delete from subprocessor")
        .execute(&mut *conn)
        .await?;
    for r in &planned.state {
        sqlx::query(
            "insert into subprocessor (integration, entry, active_from, recorded_at)
             values ($1, $2, $3, $4)",
        )
        .bind(&r.entry.id)
        .bind(json_of(&r.entry)?)
        .bind(r.active_from)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Recording {
        state: planned.state,
        changes,
        emails_queued: 0,
    })
}

impl Store {
    /// Start-up of `serve` without the owner role: records the configured registry
    /// ([`record_in`]) and returns the state and the changes recorded (none when the
    /// configuration is the recorded one). The notices are in the app only: their emails need
    /// the owner role ([`OwnerStore::record_subprocessors_notifying`]).
    pub async fn record_subprocessors(
        &self,
        current: &[Entry],
        now: DateTime<Utc>,
        notice: Duration,
    ) -> Result<Recording, StoreError> {
        // PostgreSQL keeps microseconds: what is returned is what is stored.
        let now = now.trunc_subsecs(6);
        let mut tx = self.pool.begin().await?;
        let recording = record_in(&mut tx, current, now, notice).await?;
        tx.commit().await?;
        Ok(recording)
    }
}

impl OwnerStore {
    /// Start-up of `serve`: records the configured registry ([`record_in`]) and, in the same
    /// transaction, queues each change's notice email to every active owner of every practice
    /// (one `subprocessor_change` email per owner per change; see the module docs). Runs as
    /// the owner role across practices, entering each in turn to read its owners and queue;
    /// the recipients are sealed with each practice's key. No audit event: the change is
    /// installation-level and public, and the job audits each send.
    ///
    /// # Errors
    /// Database and key errors (nothing is recorded or queued); no keyring
    /// ([`StoreError::Invalid`]).
    pub async fn record_subprocessors_notifying(
        &self,
        current: &[Entry],
        now: DateTime<Utc>,
        notice: Duration,
    ) -> Result<Recording, StoreError> {
        let now = now.trunc_subsecs(6);
        let keyring = self.keyring()?.clone();
        let practices: Vec<domain::PracticeId> = self
            .list_practices()
            .await?
            .into_iter()
            .map(|(id, _, _)| id)
            .filter(|id| !id.is_system())
            .collect();
        let mut tx = self.pool.begin().await?;
        let mut recording = record_in(&mut tx, current, now, notice).await?;
        if !recording.changes.is_empty() {
            for practice in practices {
                crate::entry::set_practice(&mut tx, Some(practice)).await?;
                let owners: Vec<(domain::UserId, String)> = sqlx::query_as(
                    "select u.user_id, u.email from membership m join app_user u using (user_id)
                      where m.practice_id = $1 and 'owner' = any (m.roles)
                        and u.status = 'active' and u.kind = 'staff'
                      order by u.user_id",
                )
                .bind(practice)
                .fetch_all(&mut *tx)
                .await?;
                for (user, email) in owners {
                    for c in &recording.changes {
                        let m = NewMessage {
                            patient: None,
                            template: "subprocessor_change",
                            channel: Channel::Email,
                            cause: Cause::SubprocessorChange,
                            cause_id: notice_cause_id(c.change_id, user),
                            recipient: Recipient(email.clone()),
                            slots: Slots {
                                vendor: Some(c.entry.vendor),
                                effective: Some(c.effective_at.date_naive()),
                                ..Slots::default()
                            },
                            time_zone: None,
                            not_before: None,
                        };
                        let mut q = PracticeQueue {
                            conn: &mut tx,
                            practice,
                            now,
                        };
                        if crate::outbox::enqueue(&mut q, &keyring, &m).await? {
                            recording.emails_queued += 1;
                        }
                    }
                }
            }
            crate::entry::set_practice(&mut tx, None).await?;
        }
        tx.commit().await?;
        Ok(recording)
    }
}

impl Store {
    /// The recorded state: every configured integration with its activation time, by id.
    pub async fn subprocessors(&self) -> Result<Vec<Recorded>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        state(&mut conn).await
    }

    /// The most recent changes, newest first (at most `limit`, capped at [`MAX_CHANGES`]).
    pub async fn subprocessor_changes(
        &self,
        limit: i64,
    ) -> Result<Vec<RecordedChange>, StoreError> {
        let rows = sqlx::query(
            "select change_id, integration, change, summary, entry, recorded_at, effective_at
               from subprocessor_change order by recorded_at desc, change_id desc limit $1",
        )
        .bind(limit.clamp(0, MAX_CHANGES))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let change: String = r.try_get("change")?;
                Ok(RecordedChange {
                    change_id: r.try_get("change_id")?,
                    integration: r.try_get("integration")?,
                    kind: ChangeKind::parse(&change)
                        .ok_or(StoreError::Corrupt("a subprocessor change kind"))?,
                    summary: r.try_get("summary")?,
                    entry: entry_of(r.try_get("entry")?)?,
                    recorded_at: r.try_get("recorded_at")?,
                    effective_at: r.try_get("effective_at")?,
                })
            })
            .collect()
    }
}
