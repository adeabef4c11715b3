//! The audit forwarder (req AUD-08): every practice's sequenced audit events, in the order of
//! their log, to the operator's own log sink ([`egress::audit_sink`], OTLP/HTTP).
//!
//! Each pass sends, practice by practice, the events after the sink's cursor
//! ([`store::forward`]) in batches of [`BATCH`], and moves the cursor only after the sink took
//! a whole batch. Requests never wait for the sink: they append to the log in PostgreSQL as
//! always, and the log is the buffer. While the sink is down or refusing, passes back off (1 s
//! doubling to [`MAX_BACKOFF`]), each failure is reported to [`super::Jobs`], the outage is
//! logged once when it starts, raised on the alert target once it has lasted
//! [`ALERT_AFTER`], and logged again when delivery resumes; then everything queued meanwhile
//! is sent, oldest first. Nothing is dropped, and a crash sends at most the last batch again
//! (receivers drop repeats by event id). With leases, one server forwards.

use std::time::Duration;

use chrono::{DateTime, Utc};
use egress::audit_sink::{AuditRecord, AuditSink, SinkError};
use store::Store;
use store::forward::ForwardEvent;

use super::{Job, JobContext};
use crate::checkpoint::ALERT_TARGET;

/// Events per request to the sink.
pub const BATCH: i64 = 500;
/// Longest wait between attempts while the sink fails.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// An outage this long is raised on the alert target (once per outage).
pub const ALERT_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// The forwarder job, as the runtime role without an actor (like the sequencer).
#[derive(Debug)]
pub struct Forward {
    db: Store,
    sink: AuditSink,
    name: String,
    interval: Duration,
}

impl Forward {
    /// Forwards to `sink`, whose cursor is kept under `name` (a new name starts from each
    /// log's beginning), checking for new events every `interval`.
    #[must_use]
    pub fn new(db: Store, sink: AuditSink, name: String, interval: Duration) -> Self {
        Self {
            db,
            sink,
            name,
            interval,
        }
    }
}

/// Why a pass stopped early.
enum PassError {
    /// The sink failed: stop the pass, back off.
    Sink(SinkError),
    /// The database failed.
    Store(store::StoreError),
}

impl std::fmt::Display for PassError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sink(e) => write!(f, "forwarding the audit log failed: {e}"),
            Self::Store(e) => write!(f, "reading the audit log to forward failed: {e}"),
        }
    }
}

fn record(practice: domain::PracticeId, e: ForwardEvent) -> Result<AuditRecord, PassError> {
    let corrupt = |what| PassError::Store(store::StoreError::Corrupt(what));
    Ok(AuditRecord {
        practice: practice.as_uuid(),
        seq: u64::try_from(e.seq).map_err(|_| corrupt("audit_sequence.seq"))?,
        event_id: e.event_id,
        occurred_at: e.occurred_at,
        actor: e.actor_id,
        patient: e.patient_id,
        action: e.action,
        outcome: e.outcome,
        object_type: e.object_type,
        object_id: e.object_id,
        request: e.request_id,
        details: e.details,
        chain_hash: e
            .chain_hash
            .try_into()
            .map_err(|_| corrupt("audit_sequence.chain_hash"))?,
    })
}

impl Forward {
    /// Sends everything not yet forwarded; returns how many events the sink took.
    async fn pass(&self, now: DateTime<Utc>) -> Result<u64, PassError> {
        let practices = self
            .db
            .practices_with_log()
            .await
            .map_err(PassError::Store)?;
        let mut sent = 0_u64;
        for practice in practices {
            loop {
                let batch = self
                    .db
                    .audit_to_forward(practice, &self.name, BATCH)
                    .await
                    .map_err(PassError::Store)?;
                let Some(last) = batch.last().map(|e| e.seq) else {
                    break;
                };
                let full = i64::try_from(batch.len()).is_ok_and(|n| n >= BATCH);
                let records = batch
                    .into_iter()
                    .map(|e| record(practice, e))
                    .collect::<Result<Vec<_>, _>>()?;
                self.sink
                    .export(&records, now)
                    .await
                    .map_err(PassError::Sink)?;
                self.db
                    .audit_forwarded(practice, &self.name, last, now)
                    .await
                    .map_err(PassError::Store)?;
                sent += records.len() as u64;
                if !full {
                    break;
                }
            }
        }
        Ok(sent)
    }
}

impl Job for Forward {
    fn name(&self) -> &'static str {
        "audit_forward"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut down_since: Option<DateTime<Utc>> = None;
        let mut alerted = false;
        let mut backoff = Duration::ZERO;
        let mut next_try = tokio::time::Instant::now();
        while ctx.tick(&mut tick).await {
            if tokio::time::Instant::now() < next_try {
                continue;
            }
            let now = ctx.clock().now();
            match self.pass(now).await {
                Ok(n) => {
                    if let Some(since) = down_since.take() {
                        tracing::info!(sink = %self.name, forwarded = n, down_seconds = (now - since).num_seconds(), "the audit sink takes events again; the backlog was sent");
                    } else if n > 0 {
                        tracing::debug!(sink = %self.name, forwarded = n, "audit events forwarded");
                    }
                    alerted = false;
                    backoff = Duration::ZERO;
                    ctx.report(Ok(()));
                }
                Err(e) => {
                    let since = *down_since.get_or_insert_with(|| {
                        tracing::warn!(sink = %self.name, error = %e, "the audit sink is failing: events stay queued in the log and are sent when it is back");
                        now
                    });
                    if !alerted && now - since >= ALERT_AFTER {
                        tracing::error!(target: ALERT_TARGET, sink = %self.name, error = %e, down_seconds = (now - since).num_seconds(), "the audit sink has not taken events for a while: they are kept in the log");
                        alerted = true;
                    }
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                    next_try = tokio::time::Instant::now() + backoff;
                    ctx.report(Err(e.to_string()));
                }
            }
        }
        // A last pass at a clean stop (the sequencer stops after this job and sequences what
        // is left; whatever it adds goes out at the next start).
        if ctx.holds_lease().await && down_since.is_none() {
            let now = ctx.clock().now();
            if let Err(e) = self.pass(now).await {
                tracing::warn!(sink = %self.name, error = %e, "the last forwarding pass at shutdown failed: the events go out at the next start");
            }
        }
    }
}
