//! The patient-rights overdue alerts (req PR-01, SIG-08): a right-of-access request still open
//! or extended at its deadline (30 days after receipt, 60 once extended), or an amendment
//! request at its (60 days, 90 once extended), raises one alert, once: marked on the request
//! (`overdue_alerted_at`), audited `access_request.overdue` or `amendment_request.overdue`, and
//! logged on the `chartroom::alert` target with the practice id and request id only (no PHI).
//! The passes and the jobs are the one alerts shape ([`super::alerts`]).

use chrono::{DateTime, Utc};
use domain::PracticeId;
use store::rights::OverdueAlert;
use store::{OwnerStore, PerPractice, StoreError};

use super::alerts::{Alerts, AlertsJob};

/// How often `serve` checks the deadlines.
pub use super::alerts::EVERY;

/// Overdue right-of-access requests.
pub static ACCESS_ALERTS: Alerts<OverdueAlert> = Alerts {
    name: "access-request-alerts",
    raise: |owner, p, now| Box::pin(owner.raise_access_request_alerts(p, now)),
    log: |a| {
        tracing::warn!(
            target: "chartroom::alert",
            practice = %a.practice_id,
            access_request = %a.request_id,
            due = %a.due_at,
            "right-of-access request overdue"
        );
    },
};

/// Overdue amendment requests.
pub static AMENDMENT_ALERTS: Alerts<store::amendments::OverdueAlert> = Alerts {
    name: "amendment-request-alerts",
    raise: |owner, p, now| Box::pin(owner.raise_amendment_request_alerts(p, now)),
    log: |a| {
        tracing::warn!(
            target: "chartroom::alert",
            practice = %a.practice_id,
            amendment_request = %a.request_id,
            due = %a.due_at,
            "amendment request overdue"
        );
    },
};

/// One pass of the right-of-access alerts for `practice`, or for every practice, at `now`
/// ([`super::alerts::raise_all`]).
pub async fn raise_all(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
) -> Result<PerPractice<Vec<OverdueAlert>, StoreError>, StoreError> {
    super::alerts::raise_all(&ACCESS_ALERTS, owner, practice, now).await
}

/// One pass of the amendment-request alerts for `practice`, or for every practice, at `now`
/// ([`super::alerts::raise_all`]).
pub async fn raise_amendment_alerts(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
) -> Result<PerPractice<Vec<store::amendments::OverdueAlert>, StoreError>, StoreError> {
    super::alerts::raise_all(&AMENDMENT_ALERTS, owner, practice, now).await
}

/// The right-of-access overdue job, checking every [`EVERY`].
#[must_use]
pub fn access_job(owner: OwnerStore) -> AlertsJob<OverdueAlert> {
    AlertsJob::new(&ACCESS_ALERTS, owner)
}

/// The amendment-request overdue job, checking every [`EVERY`].
#[must_use]
pub fn amendment_job(owner: OwnerStore) -> AlertsJob<store::amendments::OverdueAlert> {
    AlertsJob::new(&AMENDMENT_ALERTS, owner)
}
