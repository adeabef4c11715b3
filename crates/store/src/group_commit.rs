//! Group commit for the audit events of reads.
//!
//! A read ([`crate::TenantTx`] entered with [`crate::Access::Read`]) runs in a read-only
//! transaction; its audit events are validated and resolved there (the emergency-access flag
//! is computed in the reader's own transaction, where its actor and practice are set), then
//! handed to the [`AuditWriter`] when the read commits. The writer collects the events of
//! concurrent reads and makes them durable together: one transaction, one WAL flush, many
//! events, through the one audit append ([`crate::append`]) — for a batch of one practice a
//! single statement on the writer's own connection (one round trip). [`AuditWriter::write`] returns
//! only once its events are committed, and the read's commit returns only then — so a
//! response with patient data is released only after its audit event is durable.
//!
//! What it guarantees:
//! - **Nothing is dropped.** The queue is bounded; when it is full a read waits for room
//!   (backpressure), it is never turned away unaudited or audited later.
//! - **A failure fails the read.** If a batch cannot be committed, each of its submissions is
//!   retried alone once (so one bad submission cannot fail the others); whatever still fails
//!   is reported to its read as [`StoreError::AuditFailed`], and the read answers 500.
//! - **Bounded batches and waits.** A batch holds at most [`GroupCommit::max_batch_events`]
//!   events; the writer waits at most [`GroupCommit::max_wait`] for more after the first
//!   (zero by default: a batch is whatever queued while the previous one was committing, so an
//!   uncontended read pays no waiting at all).
//! - **Writes are not affected**: a change appends its events in its own transaction.
//! - **A clean stop.** The writer keeps one connection between batches; told to stop
//!   ([`AuditWriter::stop`], from [`crate::Store::close`]) or left without handles, it takes no
//!   more submissions (those reads fail), commits and answers every one already queued, and
//!   only then releases the connection, so closing its pool never waits on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use domain::PracticeId;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, watch};

use crate::StoreError;
use crate::append::{NewEvent, append};
use crate::entry::set_practice;

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommit {
    /// Submissions that may wait in the queue before a read waits for room.
    pub queue: usize,
    /// Most events in one batch (one transaction).
    pub max_batch_events: usize,
    /// How long the writer waits for more events after the first of a batch.
    pub max_wait: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            queue: 4096,
            max_batch_events: 512,
            max_wait: Duration::ZERO,
        }
    }
}

/// Upper bounds of the batch-size buckets in [`WriterStats`] (events per batch); the last
/// bucket takes everything larger.
pub const BATCH_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Counters of the writer since it started (for the benchmark harness and operators).
#[derive(Debug, Default)]
pub struct WriterStats {
    batches: AtomicU64,
    events: AtomicU64,
    failed_batches: AtomicU64,
    buckets: [AtomicU64; BATCH_BUCKETS.len() + 1],
}

/// A copy of [`WriterStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterSnapshot {
    /// Transactions committed (or attempted) by the writer.
    pub batches: u64,
    /// Events made durable.
    pub events: u64,
    /// Batches that failed and were retried submission by submission.
    pub failed_batches: u64,
    /// Batches per size bucket ([`BATCH_BUCKETS`], then one for anything larger).
    pub buckets: Vec<u64>,
}

impl WriterSnapshot {
    /// The counts since `earlier`.
    #[must_use]
    pub fn since(&self, earlier: &WriterSnapshot) -> WriterSnapshot {
        WriterSnapshot {
            batches: self.batches.saturating_sub(earlier.batches),
            events: self.events.saturating_sub(earlier.events),
            failed_batches: self.failed_batches.saturating_sub(earlier.failed_batches),
            buckets: self
                .buckets
                .iter()
                .zip(earlier.buckets.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        }
    }
}

impl WriterStats {
    fn record(&self, events: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        let i = BATCH_BUCKETS
            .iter()
            .position(|b| events <= *b)
            .unwrap_or(BATCH_BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> WriterSnapshot {
        WriterSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// One read's events, and where to say they are durable.
struct Submission {
    practice: PracticeId,
    events: Vec<NewEvent>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle reads submit their audit events to. Cloning shares the writer; it stops when
/// told to ([`AuditWriter::stop`], which [`crate::Store::close`] calls) or when the last
/// handle is dropped, after committing what was queued, and then releases its connection.
#[derive(Clone, Debug)]
pub struct AuditWriter {
    shared: Arc<Shared>,
}

/// What every handle of one writer shares.
#[derive(Debug)]
struct Shared {
    queue: mpsc::Sender<Submission>,
    stats: Arc<WriterStats>,
    /// Set to ask the writer to stop ([`AuditWriter::stop`]).
    stop: watch::Sender<bool>,
    /// Set by the writer once it has stopped and released its connection.
    stopped: watch::Receiver<bool>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("practice", &self.practice)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writer on `pool` (its own connections: a read never waits for the writer's
    /// connection behind other reads).
    #[must_use]
    pub fn start(pool: PgPool, config: GroupCommit) -> Self {
        let (queue, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(WriterStats::default());
        let (stop, stop_rx) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        let counters = stats.clone();
        tokio::spawn(async move {
            run(pool, rx, config, counters, stop_rx).await;
            stopped_tx.send_replace(true);
        });
        Self {
            shared: Arc::new(Shared {
                queue,
                stats,
                stop,
                stopped,
            }),
        }
    }

    /// Stops the writer and waits until it has: it takes no more submissions (a read that
    /// submits from now on fails with [`StoreError::AuditFailed`]), commits every submission
    /// already queued and answers it, then releases its connection. Idempotent; every clone
    /// of this handle shares the one writer.
    pub async fn stop(&self) {
        self.signal_stop();
        let mut stopped = self.shared.stopped.clone();
        // An error means the writer's task is gone (it ended, or the runtime dropped it): it
        // holds nothing any more either way.
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Asks the writer to stop (see [`AuditWriter::stop`]) without waiting for it.
    pub(crate) fn signal_stop(&self) {
        self.shared.stop.send_replace(true);
    }

    /// The writer's counters.
    #[must_use]
    pub fn stats(&self) -> WriterSnapshot {
        self.shared.stats.snapshot()
    }

    /// Makes `events` of `practice` durable; returns once they are committed (waiting for
    /// room in the queue first if it is full). Events must have been validated and resolved
    /// ([`crate::append::prepare`]).
    pub(crate) async fn write(
        &self,
        practice: PracticeId,
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let (done, result) = oneshot::channel();
        self.shared
            .queue
            .send(Submission {
                practice,
                events,
                done,
            })
            .await
            .map_err(|_| StoreError::AuditFailed("the audit writer has stopped".into()))?;
        result
            .await
            .map_err(|_| StoreError::AuditFailed("the audit writer has stopped".into()))?
    }
}

/// The writer loop: takes a batch, commits it, answers every submission in it. Once asked to
/// stop (or once every handle is gone) it closes its queue, so no new submission gets in,
/// drains what was queued the same way, and releases its connection.
async fn run(
    pool: PgPool,
    mut rx: mpsc::Receiver<Submission>,
    config: GroupCommit,
    stats: Arc<WriterStats>,
    mut stop: watch::Receiver<bool>,
) {
    let max = config.max_batch_events.max(1);
    let mut conn = WriterConn::new(pool);
    let mut closed = false;
    loop {
        let first = tokio::select! {
            biased;
            // An error means every handle is gone: stop as well.
            _ = stop.wait_for(|s| *s), if !closed => {
                rx.close();
                closed = true;
                continue;
            }
            s = rx.recv() => s,
        };
        let Some(first) = first else { break };
        let mut size = first.events.len();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.max_wait;
        while size < max {
            let next = match rx.try_recv() {
                Ok(s) => Some(s),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) if config.max_wait.is_zero() || closed => {
                    None
                }
                Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                    biased;
                    // Asked to stop: commit what is here; the loop drains the rest.
                    _ = stop.wait_for(|s| *s) => None,
                    s = tokio::time::timeout_at(deadline, rx.recv()) => s.ok().flatten(),
                },
            };
            let Some(s) = next else { break };
            size += s.events.len();
            batch.push(s);
        }
        commit(&mut conn, batch, &stats).await;
    }
    conn.retire().await;
}

/// The writer's own connection, kept between batches, and the practice its session has
/// entered. The connection belongs to the writer's pool, which nothing else uses, and every
/// statement the writer sends is preceded by entering its practice, so a practice entered for
/// the session never reaches another caller. After any error the connection is closed and the
/// next batch starts on a fresh one.
struct WriterConn {
    pool: PgPool,
    conn: Option<(PoolConnection<Postgres>, Option<PracticeId>)>,
    /// When the kept connection last answered: one idle for [`crate::IDLE_PING_AFTER`] is
    /// checked before use, like the request pool's (the database may have restarted since).
    last_used: std::time::Instant,
}

impl WriterConn {
    fn new(pool: PgPool) -> Self {
        Self {
            pool,
            conn: None,
            last_used: std::time::Instant::now(),
        }
    }

    /// Closes the connection instead of returning it to the pool with a practice entered.
    async fn retire(mut self) {
        if let Some((conn, _)) = self.conn.take() {
            // A connection that cannot say goodbye is closed all the same when dropped.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                sqlx::Connection::close(conn.detach()),
            )
            .await;
        }
    }

    /// Appends `groups` durably: a batch of one practice is one statement in its own implicit
    /// transaction (one round trip, one flush; the practice is entered for the session only
    /// when it changes); a batch of several practices is one explicit transaction entering
    /// each in turn.
    async fn write(&mut self, groups: &[(PracticeId, Vec<NewEvent>)]) -> Result<(), StoreError> {
        let result = self.try_write(groups).await;
        if result.is_err()
            && let Some((conn, _)) = self.conn.take()
        {
            // The connection's state is unknown: it is not returned to the pool.
            drop(conn.detach());
        }
        self.last_used = std::time::Instant::now();
        result
    }

    async fn try_write(
        &mut self,
        groups: &[(PracticeId, Vec<NewEvent>)],
    ) -> Result<(), StoreError> {
        if self.last_used.elapsed() >= crate::IDLE_PING_AFTER
            && let Some((conn, _)) = &mut self.conn
            && sqlx::Connection::ping(&mut **conn).await.is_err()
            && let Some((conn, _)) = self.conn.take()
        {
            // Gone while idle (a restart of the database): the batch goes out on a fresh one.
            drop(conn.detach());
        }
        if self.conn.is_none() {
            let conn = self.pool.acquire().await.map_err(|e| audit_failed(&e))?;
            self.conn = Some((conn, None));
        }
        let Some((conn, entered)) = &mut self.conn else {
            return Err(StoreError::AuditFailed(
                "the audit writer has no connection".into(),
            ));
        };
        match groups {
            [] => Ok(()),
            [(practice, events)] => {
                if *entered != Some(*practice) {
                    *entered = None;
                    enter_for_session(conn, *practice)
                        .await
                        .map_err(|e| audit_failed(&e))?;
                    *entered = Some(*practice);
                }
                append(conn, *practice, events).await?;
                Ok(())
            }
            several => {
                let mut tx = sqlx::Connection::begin(&mut **conn)
                    .await
                    .map_err(|e| audit_failed(&e))?;
                for (practice, events) in several {
                    set_practice(&mut tx, Some(*practice))
                        .await
                        .map_err(|e| audit_failed(&e))?;
                    append(&mut tx, *practice, events).await?;
                }
                tx.commit().await.map_err(|e| audit_failed(&e))?;
                // The transaction-local practice ended with it; the session's stands again.
                Ok(())
            }
        }
    }
}

/// Enters `practice` for the rest of the writer connection's session (see [`WriterConn`]).
async fn enter_for_session(
    conn: &mut PgConnection,
    practice: PracticeId,
) -> Result<(), sqlx::Error> {
    sqlx::query("select set_config('chartroom.practice_id', $1, false)")
        .bind(practice.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Commits `batch` in one transaction and answers each submission; on failure retries each
/// submission alone, so only the ones that cannot be written fail.
async fn commit(conn: &mut WriterConn, batch: Vec<Submission>, stats: &WriterStats) {
    let events: u64 = batch.iter().map(|s| s.events.len() as u64).sum();
    let whole = conn.write(&by_practice(&batch)).await;
    stats.record(events);
    match whole {
        Ok(()) => {
            for s in batch {
                // A read that gave up (its request was cancelled) no longer listens.
                let _ = s.done.send(Ok(()));
            }
        }
        Err(e) if batch.len() == 1 => {
            tracing::error!(target: "chartroom::alert", error = %e, "audit events of a read could not be written");
            if let Some(s) = batch.into_iter().next() {
                let _ = s.done.send(Err(e));
            }
        }
        Err(e) => {
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, submissions = batch.len(), "an audit batch failed: retrying its submissions one by one");
            for s in batch {
                let one = conn.write(&[(s.practice, s.events.clone())]).await;
                stats.record(s.events.len() as u64);
                if let Err(e) = &one {
                    tracing::error!(target: "chartroom::alert", error = %e, "audit events of a read could not be written");
                }
                let _ = s.done.send(one);
            }
        }
    }
}

/// The batch's events grouped by practice (one statement per practice), in queue order.
fn by_practice(batch: &[Submission]) -> Vec<(PracticeId, Vec<NewEvent>)> {
    let mut groups: Vec<(PracticeId, Vec<NewEvent>)> = Vec::new();
    for s in batch {
        match groups.iter_mut().find(|(p, _)| *p == s.practice) {
            Some((_, events)) => events.extend(s.events.iter().cloned()),
            None => groups.push((s.practice, s.events.clone())),
        }
    }
    groups
}

fn audit_failed(e: &sqlx::Error) -> StoreError {
    StoreError::AuditFailed(e.to_string())
}
