//! How far each practice's audit log has been forwarded to a separate sink (req AUD-08;
//! migration 0046), and the next events to send.
//!
//! # Guarantees
//! - The log in PostgreSQL is the buffer: events are read from the sequenced log in order of
//!   their position, so a sink that is down loses nothing, however long it is down; the
//!   cursor ([`Store::audit_forwarded`]) only moves forward, and only after the sink took the
//!   batch. A crash between the two sends the batch again (at least once).
//! - Runs as the runtime role without an actor, like the sequencer: row-level security lets no
//!   signed-in user move a cursor (owners and admins may read it). Nothing is decrypted:
//!   the audit log holds no sealed field.

use chrono::{DateTime, Utc};
use domain::PracticeId;

use crate::{Store, StoreError};

/// One sequenced audit event to forward.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ForwardEvent {
    /// Its position in the practice's log.
    pub seq: i64,
    /// The event id.
    pub event_id: uuid::Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Who acted.
    pub actor_id: Option<uuid::Uuid>,
    /// The patient concerned.
    pub patient_id: Option<uuid::Uuid>,
    /// The action.
    pub action: String,
    /// The outcome.
    pub outcome: String,
    /// The object's kind.
    pub object_type: Option<String>,
    /// The object's id.
    pub object_id: Option<uuid::Uuid>,
    /// The request.
    pub request_id: Option<uuid::Uuid>,
    /// Ids, counts, flags and names.
    pub details: Option<serde_json::Value>,
    /// The chain hash after it.
    pub chain_hash: Vec<u8>,
}

/// Whether `sink` is a name the cursor table accepts (`^[a-z0-9][a-z0-9._:-]{0,127}$`): the
/// one check, for the configuration too.
#[must_use]
pub fn sink_ok(sink: &str) -> bool {
    let b = sink.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._:-".contains(c))
}

impl Store {
    /// The next at most `limit` (1‥1000) events of `practice`'s log not yet forwarded to
    /// `sink`, oldest first (pruned events are gone and skipped).
    pub async fn audit_to_forward(
        &self,
        practice: PracticeId,
        sink: &str,
        limit: i64,
    ) -> Result<Vec<ForwardEvent>, StoreError> {
        if !sink_ok(sink) {
            return Err(StoreError::Invalid("sink name".into()));
        }
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let rows: Vec<ForwardEvent> = sqlx::query_as(
            "select s.seq, e.event_id, e.occurred_at, e.actor_id, e.patient_id, e.action,
                    e.outcome, e.object_type, e.object_id, e.request_id, e.details, s.chain_hash
               from audit_sequence s
               join audit_event e on e.practice_id = s.practice_id and e.event_id = s.event_id
              where s.practice_id = $1
                and s.seq >= coalesce((select f.next_seq from audit_forward f
                                        where f.practice_id = $1 and f.sink = $2), 0)
              order by s.seq limit $3",
        )
        .bind(practice)
        .bind(sink)
        .bind(limit.clamp(1, 1_000))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Records that `sink` took `practice`'s events up to and including `through`. The cursor
    /// never moves back.
    pub async fn audit_forwarded(
        &self,
        practice: PracticeId,
        sink: &str,
        through: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if !sink_ok(sink) {
            return Err(StoreError::Invalid("sink name".into()));
        }
        let next = through
            .checked_add(1)
            .ok_or(StoreError::Invalid("position".into()))?;
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        sqlx::query(
            "insert into audit_forward (practice_id, sink, next_seq, forwarded_at)
             values ($1, $2, $3, $4)
             on conflict (practice_id, sink) do update
                set next_seq = greatest(audit_forward.next_seq, excluded.next_seq),
                    forwarded_at = excluded.forwarded_at",
        )
        .bind(practice)
        .bind(sink)
        .bind(next)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sink_names_follow_the_tables_rule() {
        for ok in ["otlp", "otlp:127.0.0.1:4318", "a", "logs.clinic-1"] {
            assert!(super::sink_ok(ok), "{ok}");
        }
        for bad in ["", "Otlp", "-x", "a b", "a/b", &"x".repeat(129)] {
            assert!(!super::sink_ok(bad), "{bad}");
        }
    }
}
