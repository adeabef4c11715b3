//! The scribe's capture jobs, as the owner role, per practice ([`store::each_practice`]):
//!
//! - **The sweep** ([`sweep_all`], every [`SWEEP_EVERY`]): a live capture with no chunk for
//!   longer than [`ABANDONED_AFTER`] (the browser crashed, the network is gone for good) is
//!   stopped as `abandoned`, and an open capture past its longest duration as `max_duration`,
//!   so the live indicator never shows a recording nobody is making. Audited `capture.stop`.
//! - **Audio retention** ([`purge_audio_all`], every [`AUDIO_RETENTION_EVERY`]): the audio of
//!   a capture whose visit's note was signed more than the practice's `audio_retention_days`
//!   ago is deleted, unless the patient is under legal hold. Audited `capture.audio_purge`.
//!
//! Both read the injected clock, so tests drive them without sleeping.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::PracticeId;
use store::capture::{AudioPurgeReport, SweepReport};
use store::crypto::BlobStore;
use store::{OwnerStore, PerPractice, StoreError};

use super::{Job, JobContext};

/// How long a live capture may go without a chunk before the sweep stops it (the browser
/// sends one every ~5 s and retries for ~20 s).
pub const ABANDONED_AFTER: chrono::Duration = chrono::Duration::seconds(30);
/// How often `serve` sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How often `serve` purges expired audio.
pub const AUDIO_RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// One sweep of `practice` or of every practice at `now`.
pub async fn sweep_all(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
    idle: chrono::Duration,
) -> Result<PerPractice<SweepReport, StoreError>, StoreError> {
    let practices = super::practices(owner, practice).await?;
    Ok(
        store::each_practice("capture-sweep", practices, |p| async move {
            owner.sweep_captures(p, now, idle).await
        })
        .await,
    )
}

/// One audio-retention pass of `practice` or of every practice at `now`.
pub async fn purge_audio_all(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
    blobs: &BlobStore,
) -> Result<PerPractice<AudioPurgeReport, StoreError>, StoreError> {
    let practices = super::practices(owner, practice).await?;
    Ok(
        store::each_practice("audio-retention", practices, |p| async move {
            owner.purge_expired_audio(p, now, blobs).await
        })
        .await,
    )
}

/// The capture sweep and the audio retention, on the owner role's store (shared: this job
/// does not close it).
#[derive(Debug)]
pub struct CaptureJobs {
    owner: OwnerStore,
    blobs: Arc<BlobStore>,
}

impl CaptureJobs {
    /// The jobs `serve` runs.
    #[must_use]
    pub fn new(owner: OwnerStore, blobs: Arc<BlobStore>) -> Self {
        Self { owner, blobs }
    }
}

fn outcome<T>(what: &str, r: Result<PerPractice<T, StoreError>, StoreError>) -> Result<(), String> {
    match r {
        Ok(pass) if pass.is_complete() => Ok(()),
        Ok(pass) => Err(format!(
            "{what}: {} practice(s) could not be processed; retried on the next pass",
            pass.failed.len()
        )),
        Err(e) => {
            tracing::error!(error = %e, "{what} failed");
            Err(format!("{what} failed: {e}"))
        }
    }
}

impl Job for CaptureJobs {
    fn name(&self) -> &'static str {
        "capture"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge: Option<DateTime<Utc>> = None;
        let every = chrono::Duration::from_std(AUDIO_RETENTION_EVERY)
            .unwrap_or_else(|_| chrono::Duration::hours(1));
        while ctx.tick(&mut tick).await {
            let now = ctx.clock().now();
            let mut result = outcome(
                "capture sweep",
                sweep_all(&self.owner, None, now, ABANDONED_AFTER).await,
            );
            if last_purge.is_none_or(|t| now - t >= every) {
                last_purge = Some(now);
                let purge = outcome(
                    "audio retention",
                    purge_audio_all(&self.owner, None, now, &self.blobs).await,
                );
                result = result.and(purge);
            }
            ctx.report(result);
        }
    }
}
