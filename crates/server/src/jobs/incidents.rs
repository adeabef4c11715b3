//! The incident alerts job (req IR-02): as each breach clock of an open incident comes due —
//! the alert schedule at 24, 48 and 72 hours and on days 45, 55 and 60 after discovery, and
//! each deadline of [`domain::incident::clocks`] — raises one alert, once: recorded per
//! incident and clock (`incident_alert`), audited `incident.alert`, and logged on the
//! `chartroom::alert` target with the practice id, incident id and clock name only (no PHI).
//! It runs as the owner role, every [`EVERY`]; [`raise_all`] is one pass at a given time (the
//! injected clock's), which tests drive.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::PracticeId;
use store::incidents::RaisedAlert;
use store::{OwnerStore, PerPractice, StoreError};

use super::{Job, JobContext};

/// How often `serve` checks the clocks: often enough that an alert is at most this late.
pub const EVERY: Duration = Duration::from_secs(5 * 60);

/// One pass for `practice`, or for every practice, at `now`: raises and logs every alert due
/// and not raised before. A practice that fails is reported and skipped
/// ([`store::each_practice`]).
pub async fn raise_all(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
) -> Result<PerPractice<Vec<RaisedAlert>, StoreError>, StoreError> {
    let practices = super::practices(owner, practice).await?;
    let pass = store::each_practice("incident-alerts", practices, |p| async move {
        owner.raise_incident_alerts(p, now).await
    })
    .await;
    for (_, raised) in &pass.done {
        for a in raised {
            tracing::warn!(
                target: "chartroom::alert",
                practice = %a.practice_id,
                incident = %a.incident_id,
                clock = %a.clock,
                due = %a.due_at,
                "incident clock due"
            );
        }
    }
    Ok(pass)
}

/// The alerts job on the owner role's store.
#[derive(Debug)]
pub struct IncidentAlerts {
    owner: OwnerStore,
    every: Duration,
}

impl IncidentAlerts {
    /// Checks every [`EVERY`].
    #[must_use]
    pub fn new(owner: OwnerStore) -> Self {
        Self {
            owner,
            every: EVERY,
        }
    }
}

impl Job for IncidentAlerts {
    fn name(&self) -> &'static str {
        "incident-alerts"
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
                    tracing::error!(error = %e, "incident alerts pass failed");
                    Err(format!("incident alerts pass failed: {e}"))
                }
            };
            ctx.report(outcome);
        }
    }
}
