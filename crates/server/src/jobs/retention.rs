//! The retention job (req INT-02): purges, as the owner role, what is past each practice's
//! retention windows — deleted patients and deleted draft notes past the deletion window,
//! deleted patients' signed notes past the record-keeping window — never anything under legal
//! hold ([`store::retention`]). Every purged record leaves a `retention.purge` audit event.
//! `serve` runs it once a day when it has the owner role; `chartroom retention run` runs one
//! pass ([`purge_all`]) on demand.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::PracticeId;
use store::retention::PurgeReport;
use store::{OwnerStore, PerPractice, StoreError};

use super::{Job, JobContext};

/// How often `serve` runs the retention job.
pub const DAILY: Duration = Duration::from_secs(24 * 60 * 60);

/// How long after start-up `serve` first runs it (start-up stays quick).
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(10 * 60);

/// One pass for `practice`, or for every practice (not the installation's own log), at `now`;
/// with `dry_run`, reports what would be purged and changes nothing. A practice that fails is
/// reported on the alert target and skipped ([`store::each_practice`]).
pub async fn purge_all(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PerPractice<PurgeReport, StoreError>, StoreError> {
    let practices = super::practices(owner, practice).await?;
    Ok(
        store::each_practice("retention", practices, |p| async move {
            if dry_run {
                owner.purge_expired_dry_run(p, now).await
            } else {
                owner.purge_expired(p, now).await
            }
        })
        .await,
    )
}

/// One line per practice (ids and counts only).
#[must_use]
pub fn summary(r: &PurgeReport) -> String {
    let practice = r
        .practice_id
        .map_or_else(|| "?".to_owned(), |p| p.to_string());
    format!(
        "practice {practice}: {}{} patients, {} notes ({} versions), {} perio exams, {} visits, \
         {} appointments, {} disclosures, {} break-glass grants purged; {} kept by legal hold, \
         {} kept for record keeping; {} audit events",
        if r.dry_run {
            "[dry run] would purge "
        } else {
            ""
        },
        r.patients.len(),
        r.notes,
        r.note_versions,
        r.perio_exams,
        r.visits,
        r.appointments,
        r.disclosures,
        r.break_glass,
        r.held,
        r.kept_for_record_keeping,
        r.audit_events,
    )
}

/// The retention job on the owner role's store (which it owns, and closes when it stops): first
/// after `first_after`, then every `every`. A stop waits for a pass in progress. Failures are
/// logged and retried on the next pass.
#[derive(Debug)]
pub struct Retention {
    owner: OwnerStore,
    first_after: Duration,
    every: Duration,
}

impl Retention {
    /// The daily job `serve` runs: first [`FIRST_RUN_AFTER`] after start, then [`DAILY`].
    #[must_use]
    pub fn daily(owner: OwnerStore) -> Self {
        Self {
            owner,
            first_after: FIRST_RUN_AFTER,
            every: DAILY,
        }
    }
}

impl Job for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + self.first_after, self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            let outcome = match purge_all(&self.owner, None, ctx.clock().now(), false).await {
                Ok(pass) => {
                    // Failed practices were reported by `each_practice`; retried next time.
                    let reports = pass.done.iter().map(|(_, r)| r);
                    for r in reports.filter(|r| r.audit_events > 0 || r.held > 0) {
                        tracing::info!(target: "chartroom::retention", "{}", summary(r));
                    }
                    if pass.is_complete() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} practice(s) could not be processed; retried on the next pass",
                            pass.failed.len()
                        ))
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "retention run failed");
                    Err(format!("retention run failed: {e}"))
                }
            };
            ctx.report(outcome);
        }
        self.owner.close().await;
    }
}
