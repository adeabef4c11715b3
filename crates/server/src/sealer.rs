//! The background sealer and checkpointer.
//!
//! Every `interval` it seals the queued audit events of every practice (hash chain + Merkle
//! tree, see [`store::seal`]) and, for each practice whose log grew by `every_events` or
//! whose last checkpoint is older than `every`, signs a C2SP checkpoint with the Ed25519 key
//! kept outside the database and writes it to the checkpoint store. Sealing is bounded: an
//! event waits at most about one `interval` (plus the time to seal what came before it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::checkpoint::{Checkpoint, Signer, origin};
use audit::store::{CheckpointStore as _, DirStore};
use domain::{Clock, PracticeId};
use store::Store;

/// Where and how often checkpoints are written.
#[derive(Clone)]
pub struct Checkpointer {
    /// The signing key (never in the database).
    pub signer: Arc<Signer>,
    /// The checkpoint store.
    pub store: DirStore,
    /// Origin prefix; each practice's origin is `<prefix>/<practice id>`.
    pub origin_prefix: String,
    /// Write a checkpoint after this many new events…
    pub every_events: u64,
    /// …or after this long, whichever comes first (when there is anything new).
    pub every: Duration,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("origin_prefix", &self.origin_prefix)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Signs and stores a checkpoint of `practice` at its current sealed size, if that size
    /// has no checkpoint yet. Returns the size checkpointed.
    pub async fn checkpoint(
        &self,
        db: &Store,
        practice: PracticeId,
    ) -> Result<Option<u64>, String> {
        let head = db.tree_head(practice).await.map_err(|e| e.to_string())?;
        if head.size == 0 {
            return Ok(None);
        }
        let cp = Checkpoint::new(
            origin(&self.origin_prefix, practice.as_uuid()),
            head.size,
            head.root,
        )
        .with_chain_head(&head.chain_head);
        let note = self.signer.sign(&cp).map_err(|e| e.to_string())?;
        let store = self.store.clone();
        let size = head.size;
        tokio::task::spawn_blocking(move || store.put(practice.as_uuid(), &note, size))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(Some(size))
    }
}

/// Runs the sealer (and checkpointer) until the returned sender is dropped or sent to.
pub fn spawn(
    db: Store,
    clock: Arc<dyn Clock>,
    interval: Duration,
    checkpointer: Option<Checkpointer>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let mut last: HashMap<PracticeId, (u64, Instant)> = HashMap::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tick.tick() => {}
            }
            match db.seal_pending(clock.now()).await {
                Ok(n) if n > 0 => tracing::debug!(sealed = n, "sealed audit events"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "sealing audit events failed"),
            }
            // Housekeeping: expired passkey ceremonies (public sign-in can create them).
            if let Err(e) = db.purge_expired_challenges(clock.now()).await {
                tracing::warn!(error = %e, "removing expired passkey challenges failed");
            }
            let Some(cp) = &checkpointer else { continue };
            let practices = match db.practices_with_log().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "listing practices for checkpoints failed");
                    continue;
                }
            };
            for practice in practices {
                let head = match db.tree_head(practice).await {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::error!(error = %e, %practice, "reading the audit tree head failed");
                        continue;
                    }
                };
                let (size, at) = last
                    .get(&practice)
                    .copied()
                    .map_or((0, None), |(s, at)| (s, Some(at)));
                let due = head.size > size
                    && (head.size - size >= cp.every_events
                        || at.is_none_or(|at| at.elapsed() >= cp.every));
                if !due {
                    continue;
                }
                match cp.checkpoint(&db, practice).await {
                    Ok(Some(s)) => {
                        last.insert(practice, (s, Instant::now()));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, %practice, "writing an audit checkpoint failed");
                    }
                }
            }
        }
    });
    (handle, stop_tx)
}
