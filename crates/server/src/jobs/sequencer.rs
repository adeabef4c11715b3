//! The audit sequencer: gives queued audit events their place in each practice's log and
//! signs checkpoints of it.
//!
//! Every `interval` it sequences the queued audit events of every practice (gapless sequence
//! number, hash chain and Merkle tree, see [`store::sequence`]) and, for each practice whose
//! log grew by the checkpointer's `every_events` or whose last checkpoint is older than its
//! `every`, signs a C2SP checkpoint ([`Checkpointer::checkpoint`]) into the checkpoint
//! directory and every mirror. When it is stopped (a clean shutdown of the server: stop the
//! request listener and the jobs that append events first) it sequences whatever is still
//! queued and checkpoints every practice whose log grew, so no sequenced event is left outside
//! a signed checkpoint. Sequencing is bounded: an event waits at most about one `interval`
//! (plus the time to sequence what came before it). One practice whose events cannot be
//! sequenced or checkpointed is reported (once while it lasts, on the alert target when it
//! means tampering) and the others go on; the pass then reports a failure to
//! [`super::Jobs`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use domain::{Clock, PracticeId};
use store::Store;

use super::{Job, JobContext};
use crate::checkpoint::{ALERT_TARGET, CheckpointError, Checkpointer, report};

/// Sequencing passes at shutdown before the last checkpoints are signed (each sequences up to
/// [`store::sequence::SEQUENCE_BATCH`] events per practice; the listener is closed by then).
const FINAL_SEQUENCE_PASSES: usize = 1_000;

/// The sequencer job, as the runtime role (no actor; it reads and writes audit tables only).
#[derive(Debug)]
pub struct Sequencer {
    db: Store,
    interval: Duration,
    checkpointer: Option<Checkpointer>,
}

impl Sequencer {
    /// Sequences every `interval` on `db`; signs checkpoints with `checkpointer` on its
    /// cadence (none: sequencing only).
    #[must_use]
    pub fn new(db: Store, interval: Duration, checkpointer: Option<Checkpointer>) -> Self {
        Self {
            db,
            interval,
            checkpointer,
        }
    }
}

impl Job for Sequencer {
    fn name(&self) -> &'static str {
        "sequencer"
    }

    async fn run(self, mut ctx: JobContext) {
        let Self {
            db,
            interval,
            checkpointer,
        } = self;
        let clock = ctx.clock().clone();
        let mut cadence = Cadence::default();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            if ctx.took_over() {
                // Another replica may have signed checkpoints while this one stood by.
                if let Some(cp) = &checkpointer {
                    cp.forget_signed();
                }
                cadence.last.clear();
            }
            // A backlog (a burst of audited list views, a restart after downtime) is drained
            // pass after pass, not one batch per tick; a shutdown request ends the drain and
            // the final passes below finish it.
            let mut n = 0;
            loop {
                let (sequenced, more) = cadence.sequence(&db, clock.as_ref()).await;
                n += sequenced;
                if !more || ctx.stopping() {
                    break;
                }
            }
            if n > 0 {
                tracing::debug!(sequenced = n, "sequenced audit events");
            }
            if let Some(cp) = &checkpointer {
                cadence.checkpoint(&db, cp, false).await;
            }
            ctx.report(cadence.outcome());
        }
        // Another server runs the sequencer: its passes and checkpoints go on there.
        if !ctx.holds_lease().await {
            return;
        }
        // Clean shutdown: nothing sequenced stays outside a signed checkpoint.
        for _ in 0..FINAL_SEQUENCE_PASSES {
            if cadence.sequence(&db, clock.as_ref()).await.0 == 0 {
                break;
            }
        }
        if let Some(cp) = &checkpointer {
            let n = cadence.checkpoint(&db, cp, true).await;
            tracing::info!(
                practices = n,
                "audit logs sequenced and checkpointed at shutdown"
            );
        }
        ctx.report(cadence.outcome());
    }
}

/// When each practice was last checkpointed, and which failures were reported already (so a
/// lasting refusal alerts once, not at every tick).
#[derive(Default)]
struct Cadence {
    last: HashMap<PracticeId, (u64, Instant)>,
    reported: HashMap<PracticeId, std::mem::Discriminant<CheckpointError>>,
    sequence_failing: HashSet<PracticeId>,
    /// A failure of the current pass that is not one practice's (listing, a whole pass).
    pass_error: Option<String>,
}

impl Cadence {
    /// Sequences every practice's queued events; a practice that fails is reported (once
    /// while it keeps failing) and the others are sequenced. Returns how many events were
    /// sequenced, and whether more may be queued (a practice had a full batch).
    async fn sequence(&mut self, db: &Store, clock: &dyn Clock) -> (u64, bool) {
        match db.sequence_pending_each(clock.now()).await {
            Ok(pass) => {
                let failing: HashSet<PracticeId> = pass.failed.iter().map(|f| f.0).collect();
                for (practice, e) in &pass.failed {
                    if self.sequence_failing.contains(practice) {
                        continue;
                    }
                    if matches!(
                        e,
                        store::StoreError::Corrupt(_) | store::StoreError::Conflict(_)
                    ) {
                        tracing::error!(target: ALERT_TARGET, %practice, error = %e, "this practice's audit events cannot be sequenced (changed around Chartroom); the others were sequenced");
                    } else {
                        tracing::error!(%practice, error = %e, "sequencing this practice's audit events failed; the others were sequenced");
                    }
                }
                self.sequence_failing = failing;
                (pass.sequenced, pass.more)
            }
            Err(e) => {
                tracing::error!(error = %e, "sequencing audit events failed");
                self.pass_error = Some(format!("sequencing audit events failed: {e}"));
                (0, false)
            }
        }
    }

    /// Checkpoints the practices that are due (`all`: every practice whose log grew, as at
    /// shutdown). Returns how many checkpoints were signed or confirmed.
    async fn checkpoint(&mut self, db: &Store, cp: &Checkpointer, all: bool) -> usize {
        let practices = match db.practices_with_log().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "listing practices for checkpoints failed");
                self.pass_error = Some(format!("listing practices for checkpoints failed: {e}"));
                return 0;
            }
        };
        let mut done = 0;
        for practice in practices {
            let (size, at) = self
                .last
                .get(&practice)
                .copied()
                .map_or((0, None), |(s, at)| (s, Some(at)));
            let mut seen = None;
            if !all {
                let head = match db.tree_head(practice).await {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::error!(error = %e, %practice, "reading the audit tree head failed");
                        continue;
                    }
                };
                let due = head.size > size
                    && (head.size - size >= cp.every_events
                        || at.is_none_or(|at| at.elapsed() >= cp.every));
                if !due {
                    continue;
                }
                seen = Some(head.size);
            }
            match cp.checkpoint(db, practice).await {
                Ok(Some(s)) => {
                    self.last.insert(practice, (s, Instant::now()));
                    self.reported.remove(&practice);
                    done += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    // Retry on the cadence, not at every tick.
                    if let Some(s) = seen {
                        self.last.insert(practice, (s, Instant::now()));
                    }
                    let kind = std::mem::discriminant(&e);
                    if all || self.reported.get(&practice) != Some(&kind) {
                        report(practice, &e);
                        self.reported.insert(practice, kind);
                    }
                }
            }
        }
        done
    }

    /// The outcome of the pass that just ended, for [`JobContext::report`] (and the start of
    /// the next one).
    fn outcome(&mut self) -> Result<(), String> {
        if let Some(e) = self.pass_error.take() {
            return Err(e);
        }
        let (sequence, checkpoint) = (self.sequence_failing.len(), self.reported.len());
        if sequence + checkpoint == 0 {
            Ok(())
        } else {
            Err(format!(
                "{sequence} practice(s) cannot be sequenced, {checkpoint} cannot be checkpointed"
            ))
        }
    }
}
