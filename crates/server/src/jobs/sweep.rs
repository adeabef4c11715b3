//! The sweep of expired passkey ceremonies: public sign-in can create challenges, so expired
//! ones are removed on a short cadence (each is refused once expired whether or not it was
//! swept; the sweep only keeps the table small).

use std::time::Duration;

use store::Store;

use super::{Job, JobContext};

/// Removes expired passkey challenges every `every`, as the runtime role.
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
            let outcome = match self.db.purge_expired_challenges(ctx.clock().now()).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "removing expired passkey challenges failed");
                    Err(format!("removing expired passkey challenges failed: {e}"))
                }
            };
            ctx.report(outcome);
        }
    }
}
