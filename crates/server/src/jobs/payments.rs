//! The payments jobs, on every practice, as the owner role.
//!
//! - [`ExpiredHolds`]: a booking of a paid service holds its slot until its payment is
//!   settled ([`store::payments`]); a hold not paid by its expiry is released here (the
//!   appointment cancelled, the slot free again, `payment.expire` audited). A Checkout that
//!   expires at Stripe releases its hold sooner, through the webhook.
//! - [`FeesAndRefunds`]: the fees (late cancellation, no-show) and refunds queued `due` in
//!   the transaction of their cause are asked of Stripe one row at a time, the row locked
//!   while it is asked and its id the idempotency key (a crash repeats the request with the
//!   same key: never charged twice); what Stripe said is recorded and audited
//!   (`payment.charge`); an unreachable processor is retried with backoff, up to
//!   [`store::payments::MAX_ATTEMPTS`].

use std::sync::Arc;
use std::time::Duration;

use store::OwnerStore;

use crate::payments::Payments;

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

/// The most fees and refunds one pass works per practice.
pub const WORK_BATCH: usize = 100;

/// Charges queued fees and refunds every `every`.
#[derive(Debug)]
pub struct FeesAndRefunds {
    owner: OwnerStore,
    payments: Arc<Payments>,
    every: Duration,
}

impl FeesAndRefunds {
    /// The job on `owner` through `payments`, every `every`.
    #[must_use]
    pub fn new(owner: OwnerStore, payments: Arc<Payments>, every: Duration) -> Self {
        Self {
            owner,
            payments,
            every,
        }
    }

    /// One pass over `only` (or every practice) at `now`: the states recorded, in order.
    ///
    /// # Errors
    /// The first database error (the row it was working stays due).
    pub async fn pass(
        &self,
        only: Option<domain::PracticeId>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<&'static str>, store::StoreError> {
        let mut done = Vec::new();
        for p in super::practices(&self.owner, only).await? {
            for _ in 0..WORK_BATCH {
                let Some(due) = self.owner.next_due_work(p, now).await? else {
                    break;
                };
                let result = self.payments.work(&due).await;
                done.push(due.finish(&result, now).await?);
            }
        }
        Ok(done)
    }
}

impl Job for FeesAndRefunds {
    fn name(&self) -> &'static str {
        "payment-fees"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            let outcome = match self.pass(None, ctx.clock().now()).await {
                Ok(done) => {
                    if !done.is_empty() {
                        tracing::info!(
                            worked = done.len(),
                            "fees and refunds were asked of the payment processor"
                        );
                    }
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "charging fees and refunds failed");
                    Err(format!("charging fees and refunds failed: {e}"))
                }
            };
            ctx.report(outcome);
        }
    }
}
