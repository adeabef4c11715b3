//! Payments of online bookings through Stripe, which never sees PHI (req EGR-02): starting the
//! Checkout of a held booking, and `POST /webhooks/stripe`.
//!
//! # Guarantees
//! - A booking of a paid service is made *held* in the public page's transaction
//!   ([`store::payments`]); the Checkout Session is created inside that transaction, before it
//!   commits ([`commit_booking`]): if Stripe cannot be reached, refuses, or the outbound scanner
//!   refuses the request, the transaction rolls back and nothing is held (`503 PAY-0001`). A
//!   commit that fails after the session was made leaves an unused session with a reference
//!   no payment row has: its events are recorded and change nothing, and it expires.
//! - The request carries only typed fields ([`egress::stripe::CheckoutRequest`]): the amount
//!   and currency, the payment's id as the opaque reference, a fixed generic description, and
//!   the return page's opaque link (`/pay/{token}`). The scanner reads the final bytes first,
//!   seeded with the client's own name, phone and email from the booking form (the only
//!   personal data in the request's reach) and allowing links to the link origin only. A
//!   refusal is audited (`payment.refused`, the finding's kind, never the payload).
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
use domain::{Clock, PaymentId, RequestId};
use egress::send::{SendError, WebhookError, WebhookRequest};
use egress::stripe::{CheckoutPurpose, CheckoutRequest, Stripe, StripeEvent, StripeWebhook};
use outbound::payment::{Amount, Currency, Description, OpaqueRef};
use outbound::{KnownClient, LinkOrigin, LinkPurpose, OpaqueLink, PracticeName, Scanner};
use store::OwnerStore;
use store::booking::{Booked, ClientDetails, PublicBooking};
use store::payments::{Hold, Outcome, PaymentKind, ProcessorEvent, ProcessorFacts, Settled};

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
            PaymentKind::LateCancelFee | PaymentKind::NoShowFee => return None,
        })
    }

    /// Creates the Checkout Session of `hold`, scanned against the booking client's own
    /// details; `None` when the hold cannot be expressed (a currency or amount Stripe is not
    /// used for).
    async fn checkout(
        &self,
        hold: &Hold,
        client: &ClientDetails,
        practice_name: &str,
    ) -> Result<Option<url::Url>, SendError> {
        let Some(purpose) = Self::purpose(hold) else {
            return Ok(None);
        };
        let known = KnownClient {
            given: client.given_name.clone(),
            family: client.family_name.clone(),
            phones: vec![client.phone.clone()],
            emails: vec![client.email.clone()],
            ..KnownClient::default()
        };
        let name = PracticeName::new(practice_name).ok();
        let Ok(scanner) = Scanner::new(
            [&known],
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
                },
            )
            .await?;
        Ok(Some(session.url))
    }
}

/// Commits a booking the public page made in `tx`. A booking without a payment commits as
/// it is (`None`). A held one first gets its Checkout Session: the hosted page's URL once the
/// booking committed; `503 PAY-0001` with nothing held when payments are not configured, the
/// hold cannot be expressed, the scanner refuses (audited) or Stripe fails.
///
/// # Errors
/// [`AppError::PaymentUnavailable`], and database errors.
pub async fn commit_booking(
    state: &AppState,
    mut tx: PublicBooking,
    booked: &Booked,
    client: &ClientDetails,
    request: RequestId,
) -> Result<Option<url::Url>, AppError> {
    let Some(hold) = &booked.hold else {
        tx.commit().await?;
        return Ok(None);
    };
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
            Ok(Some(url))
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
        StripeEvent::Ignored { .. } => None,
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
            None => Ok(
                if w.owner.record_webhook_event(VENDOR, &event_id, now).await? {
                    Settled::Unchanged
                } else {
                    Settled::Replay
                },
            ),
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
