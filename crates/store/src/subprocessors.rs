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
//! [`Store::record_subprocessors`] is the one function that creates notices, and so the one
//! place their email copies belong: queued through the outbox (`store::outbox::enqueue`) in the
//! same transaction as the change rows, one message per practice to its owners. This tree has
//! no outbox yet, so today the notice is in the app only.

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use egress::registry::{Change, ChangeKind, Entry, Recorded, plan};
use sqlx::Row as _;

use crate::{Store, StoreError};

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

impl Store {
    /// Start-up of `serve`: compares the configured `current` entries with the recorded state
    /// and records each difference as a change dated `now` ([`egress::registry::plan`]: a new
    /// PHI-touching subprocessor is active from `now + notice`, a removal at once), then
    /// updates the state. Returns the state and the changes recorded (none when the
    /// configuration is the recorded one).
    ///
    /// This is the one place owners' notices are created (see the module docs), and so the
    /// one place their emails are to be queued.
    pub async fn record_subprocessors(
        &self,
        current: &[Entry],
        now: DateTime<Utc>,
        notice: Duration,
    ) -> Result<Recording, StoreError> {
        // PostgreSQL keeps microseconds: what is returned is what is stored.
        let now = now.trunc_subsecs(6);
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock(hashtextextended('chartroom.subprocessors', 0))")
            .execute(&mut *tx)
            .await?;
        let previous = state(&mut tx).await?;
        let planned = plan(&previous, current, now, notice);
        if planned.changes.is_empty() {
            tx.commit().await?;
            return Ok(Recording {
                state: planned.state,
                changes: Vec::new(),
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
            .fetch_one(&mut *tx)
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
            .execute(&mut *tx)
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
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Recording {
            state: planned.state,
            changes,
        })
    }

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
