//! The release of unpaid holds: a booking of a paid service holds its slot until its payment
//! is settled ([`store::payments`]); a hold not paid by its expiry is released here (the
//! appointment cancelled, the slot free again, `payment.expire` audited), on every practice,
//! as the owner role. A Checkout that expires at Stripe releases its hold sooner, through the
//! webhook.

use std::time::Duration;

use store::OwnerStore;

use super::{Job, JobContext};

/// How often the job looks for expired holds.
pub const EVERY: Duration = Duration::from_secs(60);

/// Releases expired holds every `every`.
#[derive(Debug)]
pub struct ExpiredHolds {
    owner: OwnerStore,
    every: Duration,
}

impl ExpiredHolds {
    /// The job on `owner`, every `every`.
    #[must_use]
    pub fn new(owner: OwnerStore, every: Duration) -> Self {
        Self { owner, every }
    }

    /// One pass over `only` (or every practice) at `now`: the holds released.
    ///
    /// # Errors
    /// The first database error (the next pass tries again).
    pub async fn pass(
        &self,
        only: Option<domain::PracticeId>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, store::StoreError> {
        let mut released = 0;
        for p in super::practices(&self.owner, only).await? {
            released += self.owner.release_expired_holds(p, now).await?;
        }
        Ok(released)
    }
}

impl Job for ExpiredHolds {
    fn name(&self) -> &'static str {
        "payment-holds"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            let outcome = match self.pass(None, ctx.clock().now()).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(released = n, "unpaid booking holds were released");
                    }
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "releasing unpaid booking holds failed");
                    Err(format!("releasing unpaid booking holds failed: {e}"))
                }
            };
            ctx.report(outcome);
        }
    }
}
