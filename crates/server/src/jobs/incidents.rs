//! The incident alerts job (req IR-02): as each breach clock of an open incident comes due —
//! the alert schedule at 24, 48 and 72 hours and on days 45, 55 and 60 after discovery, and
//! each deadline of [`domain::incident::clocks`] — raises one alert, once: recorded per
//! incident and clock (`incident_alert`), audited `incident.alert`, and logged on the
//! `chartroom::alert` target with the practice id, incident id and clock name only (no PHI).
//! The pass and the job are the one alerts shape ([`super::alerts`]).

use chrono::{DateTime, Utc};
use domain::PracticeId;
use store::incidents::RaisedAlert;
use store::{OwnerStore, PerPractice, StoreError};

use super::alerts::{Alerts, AlertsJob};

/// How often `serve` checks the clocks.
pub use super::alerts::EVERY;

/// The incidents' breach-clock alerts.
pub static ALERTS: Alerts<RaisedAlert> = Alerts {
    name: "incident-alerts",
    raise: |owner, p, now| Box::pin(owner.raise_incident_alerts(p, now)),
    log: |a| {
        tracing::warn!(
            target: "chartroom::alert",
            practice = %a.practice_id,
            incident = %a.incident_id,
            clock = %a.clock,
            due = %a.due_at,
            "incident clock due"
        );
    },
};

/// One pass for `practice`, or for every practice, at `now` ([`super::alerts::raise_all`]).
pub async fn raise_all(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
) -> Result<PerPractice<Vec<RaisedAlert>, StoreError>, StoreError> {
    super::alerts::raise_all(&ALERTS, owner, practice, now).await
}

/// The incident alerts job on the owner role's store.
pub type IncidentAlerts = AlertsJob<RaisedAlert>;

/// The incident alerts job, checking every [`EVERY`].
#[must_use]
pub fn job(owner: OwnerStore) -> IncidentAlerts {
    AlertsJob::new(&ALERTS, owner)
}
