//! The sweep of expired passkey ceremonies and throttle counts: public sign-in can create
//! challenges, and any client can create throttle counts ([`store::throttle`]), so expired
//! ones are removed on a short cadence (each is refused or forgotten once expired whether or
//! not it was swept; the sweep only keeps the tables small).

use std::time::Duration;

use store::Store;

use super::{Job, JobContext};

/// Removes expired passkey challenges and throttle counts every `every`, as the runtime role.
#[derive(Debug)]
pub struct ExpiredChallenges {
    db: Store,
    every: Duration,
}

impl ExpiredChallenges {
    /// Sweeps `db` every `every`.
    #[must_use]
    pub fn new(db: Store, every: Duration) -> Self {
        Self { db, every }
    }
}

impl Job for ExpiredChallenges {
    fn name(&self) -> &'static str {
        "passkey-challenges"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            let now = ctx.clock().now();
            let outcome = match self.db.purge_expired_challenges(now).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "removing expired passkey challenges failed");
                    Err(format!("removing expired passkey challenges failed: {e}"))
                }
            };
            let outcome = match (outcome, self.db.sweep_throttles(now).await) {
                (outcome, Ok(_)) => outcome,
                (Err(e), Err(_)) => Err(e),
                (Ok(()), Err(e)) => {
                    tracing::warn!(error = %e, "removing expired throttle counts failed");
                    Err(format!("removing expired throttle counts failed: {e}"))
                }
            };
            ctx.report(outcome);
        }
    }
}
