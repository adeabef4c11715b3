//! Payments of online bookings through Stripe, which never sees PHI (req EGR-02): starting the
//! Checkout of a held booking, and `POST /webhooks/stripe`.
//!
//! # Guarantees
//! - A booking of a paid service is made *held* in the public page's transaction
//!   ([`store::payments`]); the Checkout Session is created inside that transaction, before it
//!   commits ([`commit_held`], for the public page and for an accepted waitlist offer of a
//!   paid service alike): if Stripe cannot be reached, refuses, or the outbound scanner
//!   refuses the request, the transaction rolls back and nothing is held (`503 PAY-0001`). A
//!   commit that fails after the session was made leaves an unused session with a reference
//!   no payment row has: its events are recorded and change nothing, and it expires.
//! - The request carries only typed fields ([`egress::stripe::CheckoutRequest`]): the amount
//!   and currency, the payment's id as the opaque reference, a fixed generic description, the
//!   return page's opaque link (`/pay/{token}`), and the session's `expires_at`, which is the
//!   hold's end to the second (the page stops taking money when the slot is released). The
//!   scanner reads the final bytes first, seeded with the client's own name, phone and email
//!   from the booking form (the only personal data in the request's reach) and allowing
//!   links to the link origin only. A refusal is audited (`payment.refused`, the finding's
//!   kind, never the payload).
//! - `POST /webhooks/stripe`: nothing is read before `Stripe-Signature` holds (HMAC-SHA256
//!   over `t.body`, any `v1`, timestamp within 300 s): a bad signature or a stale timestamp is
//!   `401`, a malformed body `400`. An event id already acted on is `409` (`webhook_event`,
//!   recorded in the settlement's own transaction); nothing changes. A verified event is
//!   `204` whether or not its reference is known (so Stripe stops retrying).
//! - Logs carry the outcome and the event kind; never a body, an id of Stripe's or a client's.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use domain::{Clock, PaymentId, PracticeId, RequestId};
use egress::send::{SendError, WebhookError, WebhookRequest};
use egress::stripe::{
    CheckoutPurpose, CheckoutRequest, RefundRequest, SavedCardCharge, Stripe, StripeEvent,
    StripeId, StripeWebhook,
};
use outbound::payment::{Amount, Currency, Description, OpaqueRef};
use outbound::{KnownClient, LinkOrigin, LinkPurpose, OpaqueLink, PracticeName, Scanner};
use store::booking::{Booked, ClientDetails, PublicBooking};
use store::payments::{
    DueWork, Hold, Outcome, PaymentKind, ProcessorEvent, ProcessorFacts, Settled, Work, WorkResult,
};
use store::waitlist::OfferHolder;
use store::{OwnerStore, StoreError};

use crate::{AppError, AppState};

/// The vendor name webhook events are recorded under.
pub const VENDOR: &str = "stripe";
/// The largest webhook body read.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// The payment processor as the booking pages use it: the Stripe adapter and the origin the
/// return links point at.
pub struct Payments {
    stripe: Stripe,
    links: LinkOrigin,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("stripe", &self.stripe)
            .finish_non_exhaustive()
    }
}

fn currency(code: &str) -> Option<Currency> {
    Some(match code {
        "usd" => Currency::Usd,
        "cad" => Currency::Cad,
        "eur" => Currency::Eur,
        "gbp" => Currency::Gbp,
        "aud" => Currency::Aud,
        _ => return None,
    })
}

impl Payments {
    /// Payments through `stripe`, returning clients to pages on `links`.
    #[must_use]
    pub fn new(stripe: Stripe, links: LinkOrigin) -> Self {
        Self { stripe, links }
    }

    /// The Checkout request of a hold: typed fields only.
    fn purpose(hold: &Hold) -> Option<CheckoutPurpose> {
        let currency = currency(&hold.currency)?;
        Some(match hold.kind {
            PaymentKind::CardOnFile => CheckoutPurpose::Setup { currency },
            PaymentKind::Deposit => CheckoutPurpose::Payment {
                amount: Amount::new(u64::from(hold.amount_minor), currency).ok()?,
                description: Description::Deposit,
            },
            PaymentKind::Prepay => CheckoutPurpose::Payment {
                amount: Amount::new(u64::from(hold.amount_minor), currency).ok()?,
                description: Description::Prepayment,
            },
            PaymentKind::LateCancelFee | PaymentKind::NoShowFee | PaymentKind::Refund => {
                return None;
            }
        })
    }

    /// Creates the Checkout Session of `hold`, scanned against the booking client's own
    /// details; `None` when the hold cannot be expressed (a currency or amount Stripe is not
    /// used for).
    async fn checkout(
        &self,
        hold: &Hold,
        client: &KnownClient,
        practice_name: &str,
    ) -> Result<Option<url::Url>, SendError> {
        let Some(purpose) = Self::purpose(hold) else {
            return Ok(None);
        };
        let name = PracticeName::new(practice_name).ok();
        let Ok(scanner) = Scanner::new(
            [client],
            [self.links.host().to_owned()],
            &[],
            &[],
            name.as_ref(),
        ) else {
            return Ok(None);
        };
        let link = OpaqueLink::new(&self.links, LinkPurpose::Pay, &hold.pay_token);
        let session = self
            .stripe
            .create_checkout(
                &scanner,
                &CheckoutRequest {
                    purpose,
                    reference: OpaqueRef::new(hold.payment_id.as_uuid()),
                    return_link: &link,
                    expires_at: hold.expires_at,
                },
            )
            .await?;
        Ok(Some(session.url))
    }
}

impl Payments {
    /// Asks Stripe for a queued fee or refund ([`store::payments::DueWork`]): typed fields
    /// only (the amount, the currency, a fixed description, the saved card's or the paid
    /// `PaymentIntent`'s Stripe ids, the row's id as the reference and in the idempotency
    /// key), scanned first against the client's own details. Never fails: what happened is
    /// the [`WorkResult`] the job records.
    pub async fn work(&self, due: &DueWork) -> WorkResult {
        let Ok(scanner) = Scanner::new(
            [&due.client],
            [self.links.host().to_owned()],
            &[],
            &[],
            None,
        ) else {
            return WorkResult::Rejected;
        };
        let reference = OpaqueRef::new(due.payment_id.as_uuid());
        let outcome = match &due.work {
            Work::Charge {
                kind,
                amount_minor,
                currency: code,
                card,
            } => {
                let (Some(amount), Ok(customer), Ok(payment_method)) = (
                    currency(code).and_then(|c| Amount::new(u64::from(*amount_minor), c).ok()),
                    StripeId::parse(&card.customer, "cus_"),
                    StripeId::parse(&card.payment_method, "pm_"),
                ) else {
                    return WorkResult::Rejected;
                };
                let description = if *kind == PaymentKind::NoShowFee {
                    Description::NoShowFee
                } else {
                    Description::LateCancellationFee
                };
                self.stripe
                    .charge_saved_card(
                        &scanner,
                        &SavedCardCharge {
                            amount,
                            description,
                            reference,
                            customer,
                            payment_method,
                        },
                    )
                    .await
                    .map(|pi| WorkResult::Charged {
                        payment_intent: pi.id.as_str().to_owned(),
                        status: pi.status,
                    })
            }
            Work::Refund {
                amount_minor,
                currency: code,
                payment_intent,
            } => {
                let (Some(amount), Ok(payment_intent)) = (
                    currency(code).and_then(|c| Amount::new(u64::from(*amount_minor), c).ok()),
                    StripeId::parse(payment_intent, "pi_"),
                ) else {
                    return WorkResult::Rejected;
                };
                self.stripe
                    .refund(
                        &scanner,
                        &RefundRequest {
                            payment_intent,
                            amount: Some(amount),
                            reference,
                        },
                    )
                    .await
                    .map(|r| WorkResult::Refunded {
                        refund: r.id.as_str().to_owned(),
                        status: r.status,
                        amount_minor: r.amount,
                        currency: r.currency,
                    })
            }
        };
        match outcome {
            Ok(result) => result,
            Err(SendError::Refused(finding)) => {
                tracing::warn!(
                    finding = finding.name(),
                    "the outbound scanner refused a fee or refund request; nothing was sent"
                );
                WorkResult::ScannerRefused
            }
            Err(SendError::Rejected { status: 402 }) => WorkResult::Declined,
            // Asked again later with the same idempotency key: never charged twice.
            Err(SendError::Retry { .. } | SendError::Unreachable | SendError::Malformed) => {
                WorkResult::Unavailable
            }
            Err(e) => {
                tracing::warn!(error = %e, "the payment processor refused a fee or refund");
                WorkResult::Rejected
            }
        }
    }
}

/// A client's transaction that may just have made a hold: the public booking page's
/// ([`PublicBooking`]) or a waitlist offer's ([`OfferHolder`]). [`commit_held`] commits it
/// only once the hold's Checkout Session exists.
pub trait HoldingTx: Sized + Send {
    /// The practice entered.
    fn practice(&self) -> PracticeId;
    /// The practice's name (for the scanner).
    fn practice_name(&mut self) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Commits.
    fn commit(self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl HoldingTx for PublicBooking {
    fn practice(&self) -> PracticeId {
        Self::practice(self)
    }
    fn practice_name(&mut self) -> impl Future<Output = Result<String, StoreError>> + Send {
        Self::practice_name(self)
    }
    fn commit(self) -> impl Future<Output = Result<(), StoreError>> + Send {
        Self::commit(self)
    }
}

impl HoldingTx for OfferHolder {
    fn practice(&self) -> PracticeId {
        Self::practice(self)
    }
    fn practice_name(&mut self) -> impl Future<Output = Result<String, StoreError>> + Send {
        Self::practice_name(self)
    }
    fn commit(self) -> impl Future<Output = Result<(), StoreError>> + Send {
        Self::commit(self)
    }
}

/// Commits a booking the public page made in `tx`. A booking without a payment commits as
/// it is (`None`); a held one goes through [`commit_held`] with the booking form's own
/// name, phone and email as what the scanner must refuse.
///
/// # Errors
/// As [`commit_held`].
pub async fn commit_booking(
    state: &AppState,
    tx: PublicBooking,
    booked: &Booked,
    client: &ClientDetails,
    request: RequestId,
) -> Result<Option<url::Url>, AppError> {
    let Some(hold) = &booked.hold else {
        tx.commit().await?;
        return Ok(None);
    };
    let known = KnownClient {
        given: client.given_name.clone(),
        family: client.family_name.clone(),
        phones: vec![client.phone.clone()],
        emails: vec![client.email.clone()],
        ..KnownClient::default()
    };
    commit_held(state, tx, hold, &known, request)
        .await
        .map(Some)
}

/// Commits `tx`, which has just made `hold`, once the hold's Checkout Session exists: the
/// hosted page's URL. `503 PAY-0001` with nothing held (`tx` rolled back) when payments are
/// not configured, the hold cannot be expressed, the scanner (seeded with `client`) refuses
/// (audited `payment.refused`) or Stripe fails. The one way a hold is committed.
///
/// # Errors
/// [`AppError::PaymentUnavailable`], and database errors.
pub async fn commit_held<T: HoldingTx>(
    state: &AppState,
    mut tx: T,
    hold: &Hold,
    client: &KnownClient,
    request: RequestId,
) -> Result<url::Url, AppError> {
    let Some(payments) = state.payments.as_ref() else {
        tracing::warn!(
            "a service asks for a payment and no payment processor is configured: nothing was booked"
        );
        return Err(AppError::PaymentUnavailable);
    };
    let practice = tx.practice();
    let practice_name = tx.practice_name().await?;
    match payments.checkout(hold, client, &practice_name).await {
        Ok(Some(url)) => {
            tx.commit().await?;
            Ok(url)
        }
        Ok(None) => {
            tracing::warn!(
                "a hold's currency or amount cannot be charged through Stripe: nothing was booked"
            );
            Err(AppError::PaymentUnavailable)
        }
        Err(SendError::Refused(finding)) => {
            drop(tx);
            tracing::warn!(
                finding = finding.name(),
                "the outbound scanner refused a payment request; nothing was sent or booked"
            );
            if let Some(mut audit) = state
                .store
                .online_booking(practice, request, state.clock.now())
                .await?
            {
                audit.record_payment_refused(finding.name()).await?;
                audit.commit().await?;
            }
            Err(AppError::PaymentUnavailable)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the payment processor failed; nothing was booked");
            Err(AppError::PaymentUnavailable)
        }
    }
}

// ---------------------------------------------------------------------------------------
// POST /webhooks/stripe
// ---------------------------------------------------------------------------------------

/// What the Stripe webhook route needs.
#[derive(Clone)]
pub struct StripeWebhooks {
    owner: OwnerStore,
    clock: Arc<dyn Clock>,
    verifier: Arc<StripeWebhook>,
}

impl std::fmt::Debug for StripeWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeWebhooks").finish_non_exhaustive()
    }
}

impl StripeWebhooks {
    /// Events verified by `verifier`, acted on as the owner role (its keyring opens the
    /// client's contacts to address the confirmation).
    #[must_use]
    pub fn new(owner: OwnerStore, clock: Arc<dyn Clock>, verifier: StripeWebhook) -> Self {
        Self {
            owner,
            clock,
            verifier: Arc::new(verifier),
        }
    }
}

/// `POST /webhooks/stripe`, ready to merge into the application.
pub fn webhook_router(webhooks: StripeWebhooks) -> Router {
    Router::new()
        .route("/webhooks/stripe", post(receive))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
        .with_state(webhooks)
}

/// What an event asks of its payment: the reference, the outcome, the facts, the kind.
fn reading(event: &StripeEvent) -> Option<(PaymentId, Outcome, ProcessorFacts, &'static str)> {
    let id = |r: &Option<OpaqueRef>| r.map(|r| PaymentId::from_uuid(r.as_uuid()));
    let s = |i: &Option<egress::stripe::StripeId>| i.as_ref().map(|i| i.as_str().to_owned());
    match event {
        StripeEvent::CheckoutCompleted {
            session,
            reference,
            setup,
            amount_total,
            payment_status,
            customer,
            payment_intent,
            setup_intent,
            ..
        } => {
            let outcome = if *setup || payment_status == "paid" {
                Outcome::Succeeded
            } else {
                Outcome::Noted
            };
            Some((
                id(reference)?,
                outcome,
                ProcessorFacts {
                    session: Some(session.as_str().to_owned()),
                    payment_intent: s(payment_intent),
                    setup_intent: s(setup_intent),
                    customer: s(customer),
                    payment_method: None,
                    received_minor: if *setup { None } else { *amount_total },
                    currency: None,
                    setup: *setup,
                },
                "checkout.session.completed",
            ))
        }
        StripeEvent::CheckoutExpired {
            session, reference, ..
        } => Some((
            id(reference)?,
            Outcome::Expired,
            ProcessorFacts {
                session: Some(session.as_str().to_owned()),
                ..ProcessorFacts::default()
            },
            "checkout.session.expired",
        )),
        StripeEvent::PaymentSucceeded {
            payment_intent,
            reference,
            amount,
            currency,
            ..
        } => Some((
            id(reference)?,
            Outcome::Succeeded,
            ProcessorFacts {
                payment_intent: Some(payment_intent.as_str().to_owned()),
                received_minor: Some(*amount),
                currency: Some(currency.clone()),
                ..ProcessorFacts::default()
            },
            "payment_intent.succeeded",
        )),
        StripeEvent::PaymentFailed {
            payment_intent,
            reference,
            ..
        } => Some((
            id(reference)?,
            Outcome::Failed,
            ProcessorFacts {
                payment_intent: Some(payment_intent.as_str().to_owned()),
                ..ProcessorFacts::default()
            },
            "payment_intent.payment_failed",
        )),
        StripeEvent::SetupSucceeded {
            setup_intent,
            reference,
            customer,
            payment_method,
            ..
        } => Some((
            id(reference)?,
            Outcome::Succeeded,
            ProcessorFacts {
                setup_intent: Some(setup_intent.as_str().to_owned()),
                customer: s(customer),
                payment_method: s(payment_method),
                setup: true,
                ..ProcessorFacts::default()
            },
            "setup_intent.succeeded",
        )),
        StripeEvent::ChargeRefunded { .. } | StripeEvent::Ignored { .. } => None,
    }
}

async fn receive(State(w): State<StripeWebhooks>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = w.clock.now();
    let request = WebhookRequest {
        url: "",
        headers: &headers,
        body: &body,
    };
    let event = match w.verifier.verify(&request, now) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(provider = VENDOR, refusal = %e, "a webhook was refused");
            return match e {
                WebhookError::BadSignature | WebhookError::Stale => StatusCode::UNAUTHORIZED,
                WebhookError::Malformed => StatusCode::BAD_REQUEST,
            };
        }
    };
    let event_id = event.event_id().to_owned();
    let outcome = async {
        if w.owner.webhook_event_seen(VENDOR, &event_id).await? {
            return Ok::<_, store::StoreError>(Settled::Replay);
        }
        match reading(&event) {
            Some((payment, outcome, facts, kind)) => {
                let event = ProcessorEvent {
                    provider: VENDOR,
                    event_id: &event_id,
                    kind,
                };
                w.owner
                    .settle_payment(&event, payment, outcome, &facts, now)
                    .await
            }
            None => match &event {
                StripeEvent::ChargeRefunded {
                    payment_intent,
                    amount_refunded,
                    currency,
                    ..
                } => {
                    let event = ProcessorEvent {
                        provider: VENDOR,
                        event_id: &event_id,
                        kind: "charge.refunded",
                    };
                    w.owner
                        .settle_refund(
                            &event,
                            payment_intent.as_str(),
                            *amount_refunded,
                            currency.as_deref(),
                            now,
                        )
                        .await
                }
                _ => Ok(
                    if w.owner.record_webhook_event(VENDOR, &event_id, now).await? {
                        Settled::Unchanged
                    } else {
                        Settled::Replay
                    },
                ),
            },
        }
    }
    .await;
    match outcome {
        Ok(Settled::Replay) => {
            tracing::warn!(provider = VENDOR, "a replayed webhook was refused");
            StatusCode::CONFLICT
        }
        Ok(settled) => {
            tracing::info!(provider = VENDOR, outcome = ?settled, "a payment event was applied");
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            tracing::error!(provider = VENDOR, error = %e, "a verified payment event could not be applied");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}
