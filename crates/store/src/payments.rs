//! Payments of online bookings: the hold a booking of a paid service makes, its settlement by
//! the payment processor's verified webhooks, the release of holds not paid in time, and what
//! staff and the client's return page see.
//!
//! # Guarantees
//! - A booking of a service whose policy asks for a deposit, a prepayment or a card on file
//!   is *held* ([`hold`], called by [`crate::booking::PublicBooking::book`] in the booking's
//!   transaction): its appointment (status `held`) claims the slot like any booking, no
//!   confirmation is queued, and one `booking_payment` row records what is due and until
//!   when ([`HOLD_MINUTES`]). The row's id is the only reference the processor is given.
//! - Settlement ([`crate::OwnerStore::settle_payment`]) runs as the owner role in the practice
//!   the reference names, in one transaction that also records the event id
//!   (`webhook_event`): a replay changes nothing, and an event is acted on exactly once. A
//!   settled hold becomes the booking it would have been (`booked`, with its confirmation
//!   queued through [`crate::booking::queue_confirmation`]: once per booking; or `requested`
//!   where the practice approves new clients first). A failure or an expiry releases it.
//!   Money that arrives after a release is recorded as `paid_after_release` for the practice
//!   to refund; the slot is not taken back.
//! - A hold not paid by its expiry is released by [`crate::OwnerStore::release_expired_holds`]
//!   (the payments job): appointment `cancelled`, booking `expired`, the slot free again.
//! - Every settlement and release appends one audit event (`payment.settle`,
//!   `payment.expire`) with ids and outcomes only; staff reads append `payment.list`.
//! - Nothing here is PHI: ids, states, amounts, the processor's own ids.

use chrono::{DateTime, Duration, Utc};
use domain::booking::PaymentPolicy;
use domain::{
    AppointmentId, AuditAction, AuditObject, BookingId, PatientId, PaymentId, PracticeId,
};
use outbound::LinkToken;
use serde::Serialize;
use sqlx::PgConnection;

use crate::entry::{Audited, EnteredLink};
use crate::outbox::Contacts;
use crate::{OwnerStore, StoreError, TenantTx};

/// How long a held booking waits for its payment.
pub const HOLD_MINUTES: i64 = 30;
/// How long the return page's link works after the hold's expiry.
pub const PAY_LINK_DAYS: i64 = 7;
/// The most holds one pass of the job releases per practice.
pub const RELEASE_BATCH: i64 = 500;

/// What a payment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// A deposit taken at booking.
    Deposit,
    /// The full price taken at booking.
    Prepay,
    /// A card saved at booking, nothing charged.
    CardOnFile,
    /// A late-cancellation fee (recorded).
    LateCancelFee,
    /// A no-show fee (recorded).
    NoShowFee,
}

impl PaymentKind {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::Prepay => "prepay",
            Self::CardOnFile => "card_on_file",
            Self::LateCancelFee => "late_cancel_fee",
            Self::NoShowFee => "no_show_fee",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "deposit" => Self::Deposit,
            "prepay" => Self::Prepay,
            "card_on_file" => Self::CardOnFile,
            "late_cancel_fee" => Self::LateCancelFee,
            "no_show_fee" => Self::NoShowFee,
            _ => return Err(StoreError::Corrupt("booking_payment.kind")),
        })
    }

    /// The kind a service's policy asks for at booking, with the amount due now.
    #[must_use]
    pub const fn at_booking(policy: PaymentPolicy) -> Option<(Self, u32)> {
        match policy {
            PaymentPolicy::None => None,
            PaymentPolicy::Deposit { amount_minor } => Some((Self::Deposit, amount_minor)),
            PaymentPolicy::Prepay { amount_minor } => Some((Self::Prepay, amount_minor)),
            PaymentPolicy::CardOnFile => Some((Self::CardOnFile, 0)),
        }
    }
}

/// A hold the public page just made: what to ask the processor for, and the return link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The payment (the processor's opaque reference).
    pub payment_id: PaymentId,
    /// Deposit, prepayment or card on file.
    pub kind: PaymentKind,
    /// Minor units due now (0 for a card on file).
    pub amount_minor: u32,
    /// The practice's currency (ISO 4217, lower case).
    pub currency: String,
    /// When the hold is released if unpaid.
    pub expires_at: DateTime<Utc>,
    /// The return page's token (`/pay/{token}`; only its digest is stored).
    pub pay_token: LinkToken,
}

/// Inserts the hold of a booking the caller's public-page transaction just made (its
/// appointment and booking are `held`), and the return page's link. No audit event of its
/// own: the booking's `booking.create` covers it.
#[expect(
    clippy::too_many_arguments,
    reason = "the booking's parts, called by the booking transaction only"
)]
pub(crate) async fn hold(
    conn: &mut PgConnection,
    practice: PracticeId,
    booking: BookingId,
    patient: PatientId,
    kind: PaymentKind,
    amount_minor: u32,
    currency: &str,
    then_status: &str,
    now: DateTime<Utc>,
) -> Result<Hold, StoreError> {
    let payment = PaymentId::new();
    let expires_at = now + Duration::minutes(HOLD_MINUTES);
    sqlx::query(
        "insert into booking_payment (practice_id, payment_id, booking_id, kind, state,
                amount_minor, currency, then_status, hold_expires_at, created_at, updated_at,
                patient_id)
         values ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $9, $10)",
    )
    .bind(practice)
    .bind(payment)
    .bind(booking)
    .bind(kind.as_str())
    .bind(i32::try_from(amount_minor).unwrap_or(i32::MAX))
    .bind(currency)
    .bind(then_status)
    .bind(expires_at)
    .bind(now)
    .bind(patient)
    .execute(&mut *conn)
    .await?;
    let link = crate::links::insert(
        conn,
        practice,
        crate::links::Purpose::BookingPay,
        patient,
        payment.as_uuid(),
        None,
        now,
        expires_at + Duration::days(PAY_LINK_DAYS),
    )
    .await?;
    Ok(Hold {
        payment_id: payment,
        kind,
        amount_minor,
        currency: currency.to_owned(),
        expires_at,
        pay_token: link.token,
    })
}

/// Records a fee (late cancellation) against `booking`: a `booking_payment` row in state
/// `recorded`, not charged. The caller audits the change that caused it.
#[expect(
    clippy::too_many_arguments,
    reason = "one row's columns, called by the manage link's cancellation only"
)]
pub(crate) async fn record_fee(
    conn: &mut PgConnection,
    practice: PracticeId,
    booking: BookingId,
    patient: PatientId,
    kind: PaymentKind,
    amount_minor: u32,
    currency: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into booking_payment (practice_id, payment_id, booking_id, kind, state,
                amount_minor, currency, created_at, updated_at, patient_id)
         values ($1, $2, $3, $4, 'recorded', $5, $6, $7, $7, $8)",
    )
    .bind(practice)
    .bind(PaymentId::new())
    .bind(booking)
    .bind(kind.as_str())
    .bind(i32::try_from(amount_minor).unwrap_or(i32::MAX))
    .bind(currency)
    .bind(now)
    .bind(patient)
    .execute(conn)
    .await?;
    Ok(())
}

/// A booking's payment as staff see it: states, amounts, the processor's ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Payment {
    /// Id (the processor's reference).
    pub payment_id: PaymentId,
    /// The booking.
    pub booking_id: BookingId,
    /// `deposit`, `prepay`, `card_on_file`, `late_cancel_fee` or `no_show_fee`.
    pub kind: String,
    /// `pending`, `paid`, `card_saved`, `failed`, `expired`, `paid_after_release` or
    /// `recorded`.
    pub state: String,
    /// Minor units due.
    pub amount_minor: i32,
    /// Minor units the processor reported received.
    pub received_minor: Option<i32>,
    /// ISO 4217, lower case.
    pub currency: String,
    /// When an unpaid hold is released.
    pub hold_expires_at: Option<DateTime<Utc>>,
    /// The Checkout Session (`cs_…`).
    pub stripe_session: Option<String>,
    /// The `PaymentIntent` (`pi_…`).
    pub stripe_payment_intent: Option<String>,
    /// The `SetupIntent` (`seti_…`).
    pub stripe_setup_intent: Option<String>,
    /// The customer (`cus_…`).
    pub stripe_customer: Option<String>,
    /// The saved payment method (`pm_…`).
    pub stripe_payment_method: Option<String>,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// Settled (paid, saved, failed, expired).
    pub settled_at: Option<DateTime<Utc>>,
}

const PAYMENT_COLUMNS: &str = "payment_id, booking_id, kind, state, amount_minor, received_minor,
    currency, hold_expires_at, stripe_session, stripe_payment_intent, stripe_setup_intent,
    stripe_customer, stripe_payment_method, created_at, settled_at";

/// The payments of one booking of the caller's practice (the scheduling roles; RLS refuses
/// others), oldest first; `None` when there is no such booking. Audited `payment.list`.
pub async fn for_booking(
    tx: &mut TenantTx,
    booking: BookingId,
) -> Result<Option<Vec<Payment>>, StoreError> {
    let practice = tx.practice();
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from online_booking where practice_id = $1 and booking_id = $2)",
    )
    .bind(practice)
    .bind(booking)
    .fetch_one(tx.conn())
    .await?;
    if !exists {
        return Ok(None);
    }
    let rows: Vec<Payment> = sqlx::query_as(&format!(
        "select {PAYMENT_COLUMNS} from booking_payment
          where practice_id = $1 and booking_id = $2 order by created_at, payment_id limit 50"
    ))
    .bind(practice)
    .bind(booking)
    .fetch_all(tx.conn())
    .await?;
    tx.audit(
        AuditAction::PaymentList,
        None,
        Some(AuditObject::online_booking(booking)),
    )
    .await?;
    Ok(Some(rows))
}

// ---------------------------------------------------------------------------------------
// Settlement (the webhook, as the owner role) and release (the job).
// ---------------------------------------------------------------------------------------

/// What a verified processor event says about a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Paid (a deposit or prepayment), or a card saved.
    Succeeded,
    /// Payment failed: the hold is released.
    Failed,
    /// The checkout expired unpaid: the hold is released.
    Expired,
    /// Nothing settles yet (e.g. a completed checkout whose payment is still processing):
    /// only the processor's ids are recorded.
    Noted,
}

/// The processor's own ids and figures an event carried (each already checked against its
/// documented shape by the adapter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessorFacts {
    /// `cs_…`.
    pub session: Option<String>,
    /// `pi_…`.
    pub payment_intent: Option<String>,
    /// `seti_…`.
    pub setup_intent: Option<String>,
    /// `cus_…`.
    pub customer: Option<String>,
    /// `pm_…`.
    pub payment_method: Option<String>,
    /// Minor units received (payments).
    pub received_minor: Option<u64>,
    /// Currency received (payments).
    pub currency: Option<String>,
    /// The setup flow (card on file) rather than a payment.
    pub setup: bool,
}

/// A verified processor event, as it is recorded against replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessorEvent<'a> {
    /// The vendor (`stripe`).
    pub provider: &'a str,
    /// The vendor's event id (`evt_…`).
    pub event_id: &'a str,
    /// The event's type (`checkout.session.completed`, …), for the audit event.
    pub kind: &'static str,
}

/// What settling an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The event id was acted on before: nothing changed.
    Replay,
    /// No payment has this reference: the event is recorded, nothing else changes.
    UnknownReference,
    /// The hold was confirmed: the booking is `booked` (confirmation queued) or `requested`.
    Confirmed,
    /// The hold was released (failure, expiry).
    Released,
    /// Money arrived after the hold was released: recorded for a refund.
    PaidAfterRelease,
    /// The figures do not match what was due: nothing settles (audited).
    Mismatch,
    /// Already settled, or nothing to settle: ids recorded only.
    Unchanged,
}

impl Settled {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::UnknownReference => "unknown_reference",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::PaidAfterRelease => "paid_after_release",
            Self::Mismatch => "mismatch",
            Self::Unchanged => "unchanged",
        }
    }
}

type HeldRow = (
    String,
    String,
    i32,
    String,
    Option<String>,
    BookingId,
    String,
    AppointmentId,
    PatientId,
);

/// Releases a held booking: appointment cancelled, booking expired, payment `state`.
async fn release(
    conn: &mut PgConnection,
    practice: PracticeId,
    payment: PaymentId,
    booking: BookingId,
    appointment: AppointmentId,
    state: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update booking_payment set state = $3, hold_expires_at = null, settled_at = $4,
                updated_at = $4
          where practice_id = $1 and payment_id = $2",
    )
    .bind(practice)
    .bind(payment)
    .bind(state)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update online_booking set status = 'expired', payment = $3, updated_at = $4
          where practice_id = $1 and booking_id = $2 and status = 'held'",
    )
    .bind(practice)
    .bind(booking)
    .bind(if state == "failed" {
        "failed"
    } else {
        "expired"
    })
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update appointment set status = 'cancelled', updated_at = $3
          where practice_id = $1 and appointment_id = $2 and status = 'held'",
    )
    .bind(practice)
    .bind(appointment)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl OwnerStore {
    /// The practice a payment reference belongs to (the owner role reads `booking_payment`
    /// across practices only through `owner_payment_lookup`, keyed by the setting this sets
    /// in its own transaction).
    async fn payment_practice(&self, payment: PaymentId) -> Result<Option<PracticeId>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.payment_ref', $1, true)")
            .bind(payment.to_string())
            .execute(&mut *tx)
            .await?;
        let practice: Option<PracticeId> = sqlx::query_scalar(
            "select practice_id from booking_payment where payment_id = $1 limit 1",
        )
        .bind(payment)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(practice)
    }

    /// Acts on one verified processor event about the payment `payment`, in one transaction
    /// with the record of its id (`provider`, `event_id`): a replay changes nothing
    /// ([`Settled::Replay`]). [`Outcome::Succeeded`] confirms a pending hold when the figures
    /// match what was due (a payment: at least the amount, in the currency; a card on file:
    /// the setup flow) and queues the booking's confirmation (the client's contacts on record
    /// are opened to address it); [`Outcome::Failed`] and [`Outcome::Expired`] release it.
    /// Appends `payment.settle` (ids, the outcome, the event's kind) whenever a state changes
    /// or a mismatch is refused.
    ///
    /// # Errors
    /// Database and key errors (nothing is recorded: the processor retries).
    #[expect(
        clippy::too_many_lines,
        reason = "one transaction in order: the replay check, the row, the transition, the confirmation, the audit event"
    )]
    pub async fn settle_payment(
        &self,
        event: &ProcessorEvent<'_>,
        payment: PaymentId,
        outcome: Outcome,
        facts: &ProcessorFacts,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let (provider, event_id, event_kind) = (event.provider, event.event_id, event.kind);
        let Some(practice) = self.payment_practice(payment).await? else {
            return Ok(
                if self.record_webhook_event(provider, event_id, now).await? {
                    Settled::UnknownReference
                } else {
                    Settled::Replay
                },
            );
        };
        let keyring = self.keyring()?.clone();
        let mut tx = self.begin_at(practice, now).await?;
        let fresh = sqlx::query(
            "insert into webhook_event (provider, event_id, received_at) values ($1, $2, $3)
             on conflict do nothing",
        )
        .bind(provider)
        .bind(event_id)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            return Ok(Settled::Replay);
        }
        let row: Option<HeldRow> = sqlx::query_as(
            "select p.state, p.kind, p.amount_minor, p.currency, p.then_status, p.booking_id,
                    b.status, b.appointment_id, b.patient_id
               from booking_payment p
               join online_booking b on b.practice_id = p.practice_id and b.booking_id = p.booking_id
              where p.practice_id = $1 and p.payment_id = $2
              for update of p, b",
        )
        .bind(practice)
        .bind(payment)
        .fetch_optional(tx.conn())
        .await?;
        let Some((
            state,
            kind,
            amount,
            currency,
            then_status,
            booking,
            status,
            appointment,
            patient,
        )) = row
        else {
            tx.commit().await?;
            return Ok(Settled::UnknownReference);
        };
        let kind = PaymentKind::parse(&kind)?;
        // The processor's ids, whatever else happens (never overwriting one already set).
        sqlx::query(
            "update booking_payment set stripe_session = coalesce(stripe_session, $3),
                    stripe_payment_intent = coalesce(stripe_payment_intent, $4),
                    stripe_setup_intent = coalesce(stripe_setup_intent, $5),
                    stripe_customer = coalesce(stripe_customer, $6),
                    stripe_payment_method = coalesce(stripe_payment_method, $7),
                    received_minor = coalesce($8, received_minor), updated_at = $9
              where practice_id = $1 and payment_id = $2",
        )
        .bind(practice)
        .bind(payment)
        .bind(&facts.session)
        .bind(&facts.payment_intent)
        .bind(&facts.setup_intent)
        .bind(&facts.customer)
        .bind(&facts.payment_method)
        .bind(facts.received_minor.and_then(|m| i32::try_from(m).ok()))
        .bind(now)
        .execute(tx.conn())
        .await?;
        let pending = state == "pending" && status == "held";
        let settled = match outcome {
            Outcome::Failed | Outcome::Expired if pending => {
                let state = if outcome == Outcome::Failed {
                    "failed"
                } else {
                    "expired"
                };
                release(
                    tx.conn(),
                    practice,
                    payment,
                    booking,
                    appointment,
                    state,
                    now,
                )
                .await?;
                Settled::Released
            }
            Outcome::Noted | Outcome::Failed | Outcome::Expired => Settled::Unchanged,
            Outcome::Succeeded => {
                let figures_match = if kind == PaymentKind::CardOnFile {
                    facts.setup
                } else {
                    !facts.setup
                        && facts
                            .received_minor
                            .is_some_and(|m| m >= u64::try_from(amount).unwrap_or(u64::MAX))
                        && facts.currency.as_deref().is_none_or(|c| c == currency)
                };
                if !figures_match {
                    Settled::Mismatch
                } else if pending {
                    let then = then_status.as_deref().unwrap_or("booked");
                    let (paid_state, booking_payment) = if kind == PaymentKind::CardOnFile {
                        ("card_saved", "card_on_file")
                    } else {
                        ("paid", "paid")
                    };
                    sqlx::query(
                        "update booking_payment set state = $3, hold_expires_at = null,
                                settled_at = $4, updated_at = $4
                          where practice_id = $1 and payment_id = $2",
                    )
                    .bind(practice)
                    .bind(payment)
                    .bind(paid_state)
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
                    sqlx::query(
                        "update online_booking set status = $3, payment = $4, updated_at = $5
                          where practice_id = $1 and booking_id = $2",
                    )
                    .bind(practice)
                    .bind(booking)
                    .bind(then)
                    .bind(booking_payment)
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
                    let booked: crate::booking::BookedAppointment = sqlx::query_as(
                        "update appointment set status = $3, updated_at = $4
                          where practice_id = $1 and appointment_id = $2
                         returning appointment_id, patient_id, starts_at, ends_at",
                    )
                    .bind(practice)
                    .bind(appointment)
                    .bind(then)
                    .bind(now)
                    .fetch_one(tx.conn())
                    .await?;
                    if then == "booked"
                        && let Some(p) =
                            crate::patients::get_as_owner(&mut tx, &keyring, patient).await?
                    {
                        let tz = crate::booking::practice_time_zone(tx.conn(), practice).await?;
                        let contacts = Contacts {
                            phone: p.phone.as_deref(),
                            email: p.email.as_deref(),
                        };
                        crate::booking::queue_confirmation(
                            &mut tx, &keyring, booking, &booked, tz, contacts,
                        )
                        .await?;
                    }
                    Settled::Confirmed
                } else if matches!(state.as_str(), "failed" | "expired") {
                    sqlx::query(
                        "update booking_payment set state = 'paid_after_release', updated_at = $3
                          where practice_id = $1 and payment_id = $2",
                    )
                    .bind(practice)
                    .bind(payment)
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
                    Settled::PaidAfterRelease
                } else {
                    Settled::Unchanged
                }
            }
        };
        if settled != Settled::Unchanged {
            tx.audit(
                AuditAction::PaymentSettle,
                Some(AuditObject::booking_payment(payment)),
                Some(patient),
                Some(serde_json::json!({
                    "outcome": settled.as_str(), "event": event_kind, "kind": kind.as_str(),
                    "booking_id": booking,
                })),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(settled)
    }

    /// Releases the holds of `practice` unpaid at `now` (at most [`RELEASE_BATCH`]): each
    /// appointment is cancelled (its slot free again), its booking `expired`, its payment
    /// `expired`; one `payment.expire` event each. The number released.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_expired_holds(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let due: Vec<(PaymentId, BookingId, AppointmentId, PatientId)> = sqlx::query_as(
            "select p.payment_id, p.booking_id, b.appointment_id, b.patient_id
               from booking_payment p
               join online_booking b on b.practice_id = p.practice_id and b.booking_id = p.booking_id
              where p.practice_id = $1 and p.state = 'pending' and p.hold_expires_at <= $2
              order by p.hold_expires_at, p.payment_id
              limit $3
              for update of p, b skip locked",
        )
        .bind(practice)
        .bind(now)
        .bind(RELEASE_BATCH)
        .fetch_all(tx.conn())
        .await?;
        let mut events = Vec::with_capacity(due.len());
        for &(payment, booking, appointment, patient) in &due {
            release(
                tx.conn(),
                practice,
                payment,
                booking,
                appointment,
                "expired",
                now,
            )
            .await?;
            let mut e = tx.event(AuditAction::PaymentExpire);
            e.object = Some(AuditObject::booking_payment(payment));
            e.patient = Some(patient);
            e.details = Some(serde_json::json!({ "booking_id": booking }));
            events.push(e);
        }
        if !events.is_empty() {
            tx.append(&events).await?;
        }
        tx.commit().await?;
        Ok(due.len() as u64)
    }
}

// ---------------------------------------------------------------------------------------
// The return page (`/pay/{token}`).
// ---------------------------------------------------------------------------------------

/// A return link holder's transaction: entered through `app.enter_link` with purpose
/// `booking_pay`; it reads its own payment only. Dropping it rolls back.
#[derive(Debug)]
pub struct PayLink {
    inner: Audited,
    link: EnteredLink,
}

/// A payment as its return page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayStatus {
    /// The practice's name.
    pub practice_name: String,
    /// What it is for.
    pub kind: PaymentKind,
    /// Its state (see [`Payment::state`]).
    pub state: String,
    /// Minor units due.
    pub amount_minor: u32,
    /// ISO 4217.
    pub currency: String,
    /// When an unpaid hold is released.
    pub hold_expires_at: Option<DateTime<Utc>>,
    /// Whether the booking waits for the practice's approval once paid.
    pub needs_approval: bool,
}

impl crate::Store {
    /// Enters the practice of a return link's `token`; `None` when the link is unknown,
    /// expired, revoked or of another purpose (not told apart).
    pub async fn pay_link(
        &self,
        token: &LinkToken,
        now: DateTime<Utc>,
    ) -> Result<Option<PayLink>, StoreError> {
        crate::entry::link_holder(
            &self.pool,
            token,
            crate::links::Purpose::BookingPay,
            now,
            |inner, link| PayLink { inner, link },
        )
        .await
    }
}

type StatusRow = (
    String,
    String,
    i32,
    String,
    Option<DateTime<Utc>>,
    Option<String>,
);

impl PayLink {
    /// The payment's state; `None` when it is gone. Reads ids and states only (no audit
    /// event: nothing sealed is opened).
    pub async fn status(&mut self) -> Result<Option<PayStatus>, StoreError> {
        let practice = self.inner.practice();
        let row: Option<StatusRow> = sqlx::query_as(
            "select kind, state, amount_minor, currency, hold_expires_at, then_status
               from booking_payment where practice_id = $1 and payment_id = $2",
        )
        .bind(practice)
        .bind(self.link.subject)
        .fetch_optional(self.inner.conn())
        .await?;
        let Some((kind, state, amount, currency, hold_expires_at, then_status)) = row else {
            return Ok(None);
        };
        let practice_name = self.inner.practice_name().await?;
        Ok(Some(PayStatus {
            practice_name,
            kind: PaymentKind::parse(&kind)?,
            state,
            amount_minor: u32::try_from(amount)
                .map_err(|_| StoreError::Corrupt("booking_payment"))?,
            currency,
            hold_expires_at,
            needs_approval: then_status.as_deref() == Some("requested"),
        }))
    }

    /// Ends the read.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}
