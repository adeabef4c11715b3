//! The right-of-access overdue job (req PR-01): a request still open or extended at its
//! deadline (30 days after receipt, 60 once extended) raises one alert, once: marked on the
//! request (`overdue_alerted_at`), audited `access_request.overdue`, and logged on the
//! `chartroom::alert` target with the practice id and request id only (no PHI). It runs as the
//! owner role, every [`EVERY`]; [`raise_all`] is one pass at a given time (the injected
//! clock's), which tests drive.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::PracticeId;
use store::rights::OverdueAlert;
use store::{OwnerStore, PerPractice, StoreError};

use super::{Job, JobContext};

/// How often `serve` checks the deadlines: an alert is at most this late.
pub const EVERY: Duration = Duration::from_secs(5 * 60);

/// One pass for `practice`, or for every practice, at `now`: raises and logs every overdue
/// alert not raised before. A practice that fails is reported and skipped
/// ([`store::each_practice`]).
pub async fn raise_all(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
) -> Result<PerPractice<Vec<OverdueAlert>, StoreError>, StoreError> {
    let practices = super::practices(owner, practice).await?;
    let pass = store::each_practice("access-request-alerts", practices, |p| async move {
        owner.raise_access_request_alerts(p, now).await
    })
    .await;
    for (_, raised) in &pass.done {
        for a in raised {
            tracing::warn!(
                target: "chartroom::alert",
                practice = %a.practice_id,
                access_request = %a.request_id,
                due = %a.due_at,
                "right-of-access request overdue"
            );
        }
    }
    Ok(pass)
}

/// The overdue job on the owner role's store.
#[derive(Debug)]
pub struct AccessRequestAlerts {
    owner: OwnerStore,
    every: Duration,
}

impl AccessRequestAlerts {
    /// Checks every [`EVERY`].
    #[must_use]
    pub fn new(owner: OwnerStore) -> Self {
        Self {
            owner,
            every: EVERY,
        }
    }
}

impl Job for AccessRequestAlerts {
    fn name(&self) -> &'static str {
        "access-request-alerts"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            let outcome = match raise_all(&self.owner, None, ctx.clock().now()).await {
                Ok(pass) if pass.is_complete() => Ok(()),
                Ok(pass) => Err(format!(
                    "{} practice(s) could not be checked; retried on the next pass",
                    pass.failed.len()
                )),
                Err(e) => {
                    tracing::error!(error = %e, "access request alerts pass failed");
                    Err(format!("access request alerts pass failed: {e}"))
                }
            };
            ctx.report(outcome);
        }
    }
}
