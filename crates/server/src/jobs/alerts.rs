//! The one shape of a deadline-alert job: a pass goes through each practice as the owner
//! role ([`super::practices`], [`store::each_practice`]), raises every alert that came due and
//! was not raised before (the store marks it once and audits it in the same transaction), and
//! logs each raised alert on the `chartroom::alert` target with ids only (no PHI). What is
//! raised, and how it is logged, is the [`Alerts`] given: the incidents' breach clocks
//! ([`super::incidents`]), overdue right-of-access requests and overdue amendment requests
//! ([`super::rights`]).
//!
//! [`raise_all`] is one pass at a given time (the injected clock's), which tests drive;
//! [`AlertsJob`] runs it every [`EVERY`] in `serve`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::PracticeId;
use futures::future::BoxFuture;
use store::{OwnerStore, PerPractice, StoreError};

use super::{Job, JobContext};

/// How often `serve` checks the deadlines: an alert is at most this late.
pub const EVERY: Duration = Duration::from_secs(5 * 60);

/// Raises, as the owner role, the alerts of one practice due at a time; returns those raised
/// by this call (each raised once: the store marks and audits it).
pub type RaiseFn<A> = for<'a> fn(
    &'a OwnerStore,
    PracticeId,
    DateTime<Utc>,
) -> BoxFuture<'a, Result<Vec<A>, StoreError>>;

/// One kind of alert: its job name, how it is raised and how a raised one is logged.
#[derive(Debug)]
pub struct Alerts<A: 'static> {
    /// The job's name (logs, [`super::JobStatus`], the per-practice failure log).
    pub name: &'static str,
    /// Raises the practice's due alerts.
    pub raise: RaiseFn<A>,
    /// Logs one raised alert on the `chartroom::alert` target (ids only).
    pub log: fn(&A),
}

/// One pass of `alerts` for `practice`, or for every practice, at `now`: raises and logs every
/// alert due and not raised before. A practice that fails is reported and skipped
/// ([`store::each_practice`]).
pub async fn raise_all<A: 'static>(
    alerts: &Alerts<A>,
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
) -> Result<PerPractice<Vec<A>, StoreError>, StoreError> {
    let practices = super::practices(owner, practice).await?;
    let raise = alerts.raise;
    let pass = store::each_practice(alerts.name, practices, |p| raise(owner, p, now)).await;
    for (_, raised) in &pass.done {
        raised.iter().for_each(alerts.log);
    }
    Ok(pass)
}

/// The job that runs [`raise_all`] for one kind of alert on the owner role's store.
#[derive(Debug)]
pub struct AlertsJob<A: 'static> {
    alerts: &'static Alerts<A>,
    owner: OwnerStore,
    every: Duration,
}

impl<A: 'static> AlertsJob<A> {
    /// Checks every [`EVERY`].
    #[must_use]
    pub fn new(alerts: &'static Alerts<A>, owner: OwnerStore) -> Self {
        Self {
            alerts,
            owner,
            every: EVERY,
        }
    }
}

impl<A: Send + Sync + 'static> Job for AlertsJob<A> {
    fn name(&self) -> &'static str {
        self.alerts.name
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            let outcome = match raise_all(self.alerts, &self.owner, None, ctx.clock().now()).await {
                Ok(pass) if pass.is_complete() => Ok(()),
                Ok(pass) => Err(format!(
                    "{} practice(s) could not be checked; retried on the next pass",
                    pass.failed.len()
                )),
                Err(e) => {
                    tracing::error!(job = self.alerts.name, error = %e, "alerts pass failed");
                    Err(format!("{} pass failed: {e}", self.alerts.name))
                }
            };
            ctx.report(outcome);
        }
    }
}
