//! Payments of online bookings: the hold a booking of a paid service makes, its settlement by
//! the payment processor's verified webhooks, the release of holds not paid in time, and what
//! staff and the client's return page see.
//!
//! # Guarantees
//! - A booking of a service whose policy asks for a deposit, a prepayment or a card on file
//!   is *held* ([`hold`], called by [`crate::booking::PublicBooking::book`] in the booking's
//!   transaction): its appointment (status `held`) claims the slot like any booking, no
//!   confirmation is queued, and one `booking_payment` row records what is due and until
//!   when ([`hold_end`]: the end of the Checkout Session the processor is asked for, to the
//!   second). The row's id is the only reference the processor is given.
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
//! - A refund returns what the booking paid, in full: queued when the client cancels outside
//!   the cancellation window and whenever the practice cancels ([`practice_cancelled`]), at
//!   most one live refund per booking. It is `refunded` only once the amount the processor
//!   reports refunded covers it (the Refund API's answer, or `charge.refunded`'s total);
//!   less is `refund_partial`, not done and not asked again ([`DueWork::finish`],
//!   [`crate::OwnerStore::settle_refund`]).
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

/// How long a held booking waits for its payment, at the least: Stripe's shortest Checkout
/// Session.
pub const HOLD_MINUTES: i64 = 30;
/// What the hold adds to [`HOLD_MINUTES`] so that its end can be its Checkout Session's
/// expiry: the session is created a moment after the hold, on the processor's clock, and
/// Stripe refuses an expiry sooner than 30 minutes after the session's creation.
pub const HOLD_SLACK_SECONDS: i64 = 120;

/// When a hold made at `now` ends, in whole seconds (a Checkout Session's `expires_at` is in
/// seconds): the hold and its session end at the same instant, so the processor cannot take
/// money for a slot already released, nor stop taking it while the slot is still held.
#[must_use]
pub fn hold_end(now: DateTime<Utc>) -> DateTime<Utc> {
    let end = now + Duration::minutes(HOLD_MINUTES) + Duration::seconds(HOLD_SLACK_SECONDS);
    DateTime::from_timestamp(end.timestamp(), 0).unwrap_or(end)
}
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
    /// The refund of what the booking paid (a client's cancellation outside the window).
    Refund,
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
            Self::Refund => "refund",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "deposit" => Self::Deposit,
            "prepay" => Self::Prepay,
            "card_on_file" => Self::CardOnFile,
            "late_cancel_fee" => Self::LateCancelFee,
            "no_show_fee" => Self::NoShowFee,
            "refund" => Self::Refund,
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
    let expires_at = hold_end(now);
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

/// Queues a fee (a late cancellation, a no-show) or a refund against `booking`: a
/// `booking_payment` row `due`, which the payments job works ([`OwnerStore::next_due_work`]):
/// a fee is charged off session with the card saved at booking (or marked `recorded` when
/// there is none), a refund returns what the booking paid. The caller audits the change that
/// caused it.
#[expect(
    clippy::too_many_arguments,
    reason = "one row's columns, called by the cancellation and the no-show only"
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
                amount_minor, currency, created_at, updated_at, patient_id, next_attempt_at)
         values ($1, $2, $3, $4, 'due', $5, $6, $7, $7, $8, $7)",
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

/// Queues the refund of what `booking` paid (a deposit or a prepayment), in full, when it
/// paid anything and no refund of it is queued, in flight or done already: a `refund` row
/// `due` for the payments job, for the whole deposit or prepayment the booking took (a
/// settled payment covered at least that). Called in the transaction of the cancellation
/// that causes it: the
/// client's outside the cancellation window ([`crate::booking::ManageBooking::cancel`]) and
/// the practice's at any time ([`practice_cancelled`]). Whether it queued one.
pub(crate) async fn queue_refund(
    conn: &mut PgConnection,
    practice: PracticeId,
    booking: BookingId,
    patient: PatientId,
    currency: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    // The booking's own record of what it took (the manage link's holder reads its booking,
    // not the payment rows; the refund check below is then the database's to make for the
    // roles that see them — a client cancels only once).
    let paid: Option<i32> = sqlx::query_scalar(
        "select b.amount_minor from online_booking b
          where b.practice_id = $1 and b.booking_id = $2 and b.payment = 'paid'
            and not exists (select 1 from booking_payment r
                             where r.practice_id = b.practice_id and r.booking_id = b.booking_id
                               and r.kind = 'refund' and r.state <> 'failed')",
    )
    .bind(practice)
    .bind(booking)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(Ok(amount @ 1..)) = paid.map(u32::try_from) else {
        return Ok(false);
    };
    record_fee(
        conn,
        practice,
        booking,
        patient,
        PaymentKind::Refund,
        amount,
        currency,
        now,
    )
    .await?;
    Ok(true)
}

/// Staff cancelled `appointment` in `tx` (the practice cancelled, not the client): when it
/// was booked online, its booking is `cancelled` too, and what the client paid for it (a
/// deposit or a prepayment) is queued for a refund in full whatever the cancellation window
/// says ([`queue_refund`]; never a late-cancellation fee). A booking still held for its
/// payment is cancelled with it: money that arrives for it afterwards is
/// `paid_after_release`. Whether a refund was queued. The caller audits the change.
pub async fn practice_cancelled(
    tx: &mut TenantTx,
    appointment: AppointmentId,
) -> Result<bool, StoreError> {
    let practice = tx.practice();
    let now = tx.now();
    let booking: Option<(BookingId, PatientId)> = sqlx::query_as(
        "update online_booking set status = 'cancelled', cancelled_at = $3, late_cancel = false,
                updated_at = $3
          where practice_id = $1 and appointment_id = $2
            and status in ('held', 'requested', 'booked')
         returning booking_id, patient_id",
    )
    .bind(practice)
    .bind(appointment)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let Some((booking, patient)) = booking else {
        return Ok(false);
    };
    let settings = crate::booking::read_settings(tx.conn(), practice).await?;
    queue_refund(
        tx.conn(),
        practice,
        booking,
        patient,
        &settings.currency,
        now,
    )
    .await
}

/// Staff marked `appointment` a no-show in `tx`: when it was booked online and the practice
/// charges a no-show fee, the fee is queued ([`record_fee`]). Whether a fee was queued. The
/// caller audits the change.
pub async fn record_no_show(
    tx: &mut TenantTx,
    appointment: AppointmentId,
) -> Result<bool, StoreError> {
    let practice = tx.practice();
    let now = tx.now();
    let settings = crate::booking::read_settings(tx.conn(), practice).await?;
    let fee = settings.cancellation.no_show_fee_minor;
    if fee == 0 {
        return Ok(false);
    }
    let booking: Option<(BookingId, PatientId)> = sqlx::query_as(
        "select booking_id, patient_id from online_booking
          where practice_id = $1 and appointment_id = $2",
    )
    .bind(practice)
    .bind(appointment)
    .fetch_optional(tx.conn())
    .await?;
    let Some((booking, patient)) = booking else {
        return Ok(false);
    };
    record_fee(
        tx.conn(),
        practice,
        booking,
        patient,
        PaymentKind::NoShowFee,
        fee,
        &settings.currency,
        now,
    )
    .await?;
    Ok(true)
}

/// A booking's payment as staff see it: states, amounts, the processor's ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Payment {
    /// Id (the processor's reference).
    pub payment_id: PaymentId,
    /// The booking.
    pub booking_id: BookingId,
    /// `deposit`, `prepay`, `card_on_file`, `late_cancel_fee`, `no_show_fee` or `refund`.
    pub kind: String,
    /// `pending`, `paid`, `card_saved`, `failed`, `expired`, `paid_after_release`,
    /// `recorded` (a fee with no card to charge), `due` (queued for the payments job),
    /// `processing`, `requires_action`, `declined`, `refund_pending`, `refunded`, or
    /// `refund_partial` (the processor refunded less than the row's amount: not done, see
    /// `refunded_minor`; staff refund the rest, and `charge.refunded` then settles it).
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
    /// Settled (paid, saved, failed, expired, refunded, declined).
    pub settled_at: Option<DateTime<Utc>>,
    /// The refund (`re_…`).
    pub stripe_refund: Option<String>,
    /// How many times the payments job asked the processor (fees and refunds).
    pub attempts: i32,
    /// Minor units the processor reported refunded (a refund): the whole amount once
    /// `refunded`, less while `refund_partial`.
    pub refunded_minor: Option<i32>,
    /// When a `due` fee or refund is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why a fee or refund did not go through: `card_declined`, `requires_action`, `no_card`,
    /// `nothing_paid`, `processor_unavailable`, `processor_rejected` or `scanner_refused`.
    pub last_error: Option<String>,
}

const PAYMENT_COLUMNS: &str = "payment_id, booking_id, kind, state, amount_minor, received_minor,
    currency, hold_expires_at, stripe_session, stripe_payment_intent, stripe_setup_intent,
    stripe_customer, stripe_payment_method, created_at, settled_at, stripe_refund, attempts,
    refunded_minor, next_attempt_at, last_error";

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
    /// A fee charged off session was paid.
    Charged,
    /// A fee charged off session failed at the processor.
    Declined,
    /// A refund went through.
    Refunded,
    /// Less than the refund's amount was refunded: `refund_partial`, not done.
    PartlyRefunded,
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
            Self::Charged => "charged",
            Self::Declined => "declined",
            Self::Refunded => "refunded",
            Self::PartlyRefunded => "refund_partial",
            Self::Unchanged => "unchanged",
        }
    }
}

/// A refund `charge.refunded` may settle: id, booking, client, amount, currency, refunded so
/// far.
type RefundRow = (PaymentId, BookingId, PatientId, i32, String, Option<i32>);

/// The largest amount a row holds (`booking_payment_amount`, `booking_payment_refunded`).
const MAX_MINOR: i32 = 1_000_000;

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

/// Releases a held booking: appointment cancelled, booking expired, payment `state`; a
/// waitlist entry the hold had booked waits again ([`crate::waitlist::unbook_released`]). The
/// callers then offer the freed slot to the waitlist ([`crate::waitlist::offer_freed_slot`]).
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
    crate::waitlist::unbook_released(conn, practice, appointment, now).await?;
    Ok(())
}

impl OwnerStore {
    /// The practice a payment reference belongs to (the owner role reads `booking_payment`
    /// across practices only through `owner_payment_lookup`, keyed by the setting this sets
    /// in its own transaction).
    async fn payment_practice(&self, payment: PaymentId) -> Result<Option<PracticeId>, StoreError> {
        self.practice_by(
            "select set_config('chartroom.payment_ref', $1, true)",
            "select practice_id from booking_payment where payment_id = $1::uuid limit 1",
            &payment.to_string(),
        )
        .await
    }

    /// The practice of the payment a lookup `setting` statement keys, read by `select` (both
    /// binding `key`) in a transaction of its own, rolled back.
    async fn practice_by(
        &self,
        setting: &str,
        select: &str,
        key: &str,
    ) -> Result<Option<PracticeId>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(setting).bind(key).execute(&mut *tx).await?;
        let practice: Option<PracticeId> = sqlx::query_scalar(select)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(practice)
    }

    /// The transaction acting on `event` in `practice`, with the event's id recorded in it;
    /// `Err` with what to answer when there is nothing to act on: no practice (the event is
    /// recorded alone) or a replay.
    async fn event_tx(
        &self,
        practice: Option<PracticeId>,
        event: &ProcessorEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<Result<crate::OwnerTx, Settled>, StoreError> {
        let Some(practice) = practice else {
            return Ok(Err(
                if self
                    .record_webhook_event(event.provider, event.event_id, now)
                    .await?
                {
                    Settled::UnknownReference
                } else {
                    Settled::Replay
                },
            ));
        };
        let mut tx = self.begin_at(practice, now).await?;
        let fresh = sqlx::query(
            "insert into webhook_event (provider, event_id, received_at) values ($1, $2, $3)
             on conflict do nothing",
        )
        .bind(event.provider)
        .bind(event.event_id)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            return Ok(Err(Settled::Replay));
        }
        Ok(Ok(tx))
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
        let event_kind = event.kind;
        let found = self.payment_practice(payment).await?;
        let keyring = self.keyring()?.clone();
        let mut tx = match self.event_tx(found, event, now).await? {
            Ok(tx) => tx,
            Err(settled) => return Ok(settled),
        };
        let practice = tx.practice();
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
        let fee_in_flight = matches!(kind, PaymentKind::LateCancelFee | PaymentKind::NoShowFee)
            && matches!(
                state.as_str(),
                "due" | "processing" | "requires_action" | "declined"
            );
        let settled = match outcome {
            Outcome::Succeeded | Outcome::Failed if fee_in_flight => {
                let paid = outcome == Outcome::Succeeded
                    && facts
                        .received_minor
                        .is_some_and(|m| m >= u64::try_from(amount).unwrap_or(u64::MAX));
                let (to, error) = if paid {
                    ("paid", None)
                } else {
                    ("declined", Some("card_declined"))
                };
                sqlx::query(
                    "update booking_payment set state = $3, last_error = $4, next_attempt_at = null,
                            settled_at = $5, updated_at = $5
                      where practice_id = $1 and payment_id = $2",
                )
                .bind(practice)
                .bind(payment)
                .bind(to)
                .bind(error)
                .bind(now)
                .execute(tx.conn())
                .await?;
                if paid {
                    Settled::Charged
                } else {
                    Settled::Declined
                }
            }
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
                crate::waitlist::offer_freed_slot(&mut tx, &keyring, appointment, None).await?;
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
                } else if matches!(state.as_str(), "failed" | "expired")
                    || (state == "pending" && status == "cancelled")
                {
                    // Released, or cancelled by the practice while it waited for the money.
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

    /// Acts on a verified `charge.refunded` event about the `PaymentIntent` `payment_intent`
    /// (which names no reference of ours), in one transaction with the record of the event id
    /// (a replay changes nothing). `amount_refunded` is the charge's total refunded so far;
    /// the booking that paid with it has its queued, pending or partial refund marked
    /// `refunded` only once that total covers the refund's amount, in the refund's currency
    /// (`currency`, when the event names one: another is a [`Settled::Mismatch`]); a smaller
    /// total marks it `refund_partial` with the total in `refunded_minor` (not done, not
    /// retried: [`Settled::PartlyRefunded`]). `payment.settle` appended whenever it changes.
    ///
    /// # Errors
    /// Database errors (nothing is recorded: the processor retries).
    pub async fn settle_refund(
        &self,
        event: &ProcessorEvent<'_>,
        payment_intent: &str,
        amount_refunded: u64,
        currency: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let found = self
            .practice_by(
                "select set_config('chartroom.payment_intent', $1, true)",
                "select practice_id from booking_payment where stripe_payment_intent = $1 limit 1",
                payment_intent,
            )
            .await?;
        let mut tx = match self.event_tx(found, event, now).await? {
            Ok(tx) => tx,
            Err(settled) => return Ok(settled),
        };
        let practice = tx.practice();
        let refund: Option<RefundRow> = sqlx::query_as(
            "select r.payment_id, r.booking_id, r.patient_id, r.amount_minor, r.currency,
                    r.refunded_minor
               from booking_payment paid
               join booking_payment r on r.practice_id = paid.practice_id
                                     and r.booking_id = paid.booking_id
              where paid.practice_id = $1 and paid.stripe_payment_intent = $2
                and paid.kind in ('deposit', 'prepay')
                and r.kind = 'refund' and r.state in ('due', 'refund_pending', 'refund_partial')
              order by r.created_at limit 1
              for update of r",
        )
        .bind(practice)
        .bind(payment_intent)
        .fetch_optional(tx.conn())
        .await?;
        let Some((payment, booking, patient, amount, due_currency, refunded_before)) = refund
        else {
            tx.commit().await?;
            return Ok(Settled::Unchanged);
        };
        let total = i32::try_from(amount_refunded).unwrap_or(i32::MAX);
        let settled = if currency.is_some_and(|c| c != due_currency) {
            Settled::Mismatch
        } else if total >= amount {
            sqlx::query(
                "update booking_payment set state = 'refunded', refunded_minor = $3,
                        last_error = null, next_attempt_at = null, settled_at = $4, updated_at = $4
                  where practice_id = $1 and payment_id = $2",
            )
            .bind(practice)
            .bind(payment)
            .bind(total.min(MAX_MINOR))
            .bind(now)
            .execute(tx.conn())
            .await?;
            mark_refunded(tx.conn(), practice, booking, now).await?;
            Settled::Refunded
        } else if total > refunded_before.unwrap_or(0) {
            sqlx::query(
                "update booking_payment set state = 'refund_partial', refunded_minor = $3,
                        next_attempt_at = null, updated_at = $4
                  where practice_id = $1 and payment_id = $2",
            )
            .bind(practice)
            .bind(payment)
            .bind(total)
            .bind(now)
            .execute(tx.conn())
            .await?;
            Settled::PartlyRefunded
        } else {
            Settled::Unchanged
        };
        if settled != Settled::Unchanged {
            tx.audit(
                AuditAction::PaymentSettle,
                Some(AuditObject::booking_payment(payment)),
                Some(patient),
                Some(serde_json::json!({
                    "outcome": settled.as_str(), "event": event.kind,
                    "kind": PaymentKind::Refund.as_str(), "booking_id": booking,
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
        let keyring = self.keyring()?.clone();
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
            // The slot is free again: offered to the waitlist like a cancelled one.
            crate::waitlist::offer_freed_slot(&mut tx, &keyring, appointment, None).await?;
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
// Fees and refunds (the payments job, as the owner role).
// ---------------------------------------------------------------------------------------

/// How many times the job asks the processor for one fee or refund before it gives up.
pub const MAX_ATTEMPTS: i32 = 6;

/// The card saved at booking (from the card-on-file setup's webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCard {
    /// `cus_…`.
    pub customer: String,
    /// `pm_…`.
    pub payment_method: String,
}

/// What a queued row asks of the processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Charge a fee off session with the saved card.
    Charge {
        /// Late cancellation or no-show.
        kind: PaymentKind,
        /// Minor units.
        amount_minor: u32,
        /// ISO 4217, lower case.
        currency: String,
        /// The card.
        card: SavedCard,
    },
    /// Refund what the booking paid.
    Refund {
        /// Minor units.
        amount_minor: u32,
        /// ISO 4217, lower case.
        currency: String,
        /// The paid `PaymentIntent` (`pi_…`).
        payment_intent: String,
    },
}

/// A queued fee or refund the job claimed: its row stays locked in this owner transaction
/// until [`DueWork::finish`] records what the processor said (a crash in between rolls
/// back, and the next pass asks again with the same idempotency key: nothing is charged
/// twice). Dropping it rolls back.
#[derive(Debug)]
pub struct DueWork {
    tx: crate::OwnerTx,
    /// The row (the processor's reference and idempotency key).
    pub payment_id: PaymentId,
    booking: BookingId,
    patient: PatientId,
    kind: PaymentKind,
    attempts: i32,
    /// What to ask for.
    pub work: Work,
    /// The client's own name, phone and email from the chart: what the request's scanner
    /// must not let through.
    pub client: outbound::KnownClient,
}

/// What the processor said about a fee or refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkResult {
    /// A `PaymentIntent` was made; Stripe's status (`succeeded`, `processing`,
    /// `requires_action`, `declined`, …).
    Charged {
        /// `pi_…`.
        payment_intent: String,
        /// Its status.
        status: String,
    },
    /// A refund was made; its status (`succeeded`, `pending`, `failed`, …) and what the
    /// processor says it refunded.
    Refunded {
        /// `re_…`.
        refund: String,
        /// Its status.
        status: String,
        /// Minor units it refunded (`None`: the reply did not say).
        amount_minor: Option<u64>,
        /// Its currency (`None`: the reply did not say).
        currency: Option<String>,
    },
    /// The processor could not be reached or asked to retry: tried again later.
    Unavailable,
    /// The card was declined and no `PaymentIntent` was named.
    Declined,
    /// The processor refused the request for good.
    Rejected,
    /// The outbound scanner refused the request: nothing was sent.
    ScannerRefused,
}

/// What a due row asks for: the refund of what its booking paid, or a charge on the booking's
/// saved card; `None` when there is nothing to refund or no card.
async fn due_work(
    tx: &mut crate::OwnerTx,
    practice: PracticeId,
    booking: BookingId,
    kind: PaymentKind,
    amount_minor: u32,
    currency: &str,
) -> Result<Option<Work>, StoreError> {
    Ok(if kind == PaymentKind::Refund {
        let paid: Option<String> = sqlx::query_scalar(
            "select stripe_payment_intent from booking_payment
              where practice_id = $1 and booking_id = $2 and kind in ('deposit', 'prepay')
                and state = 'paid' and stripe_payment_intent is not null
              order by created_at limit 1",
        )
        .bind(practice)
        .bind(booking)
        .fetch_optional(tx.conn())
        .await?;
        paid.map(|payment_intent| Work::Refund {
            amount_minor,
            currency: currency.to_owned(),
            payment_intent,
        })
    } else {
        let card: Option<(String, String)> = sqlx::query_as(
            "select stripe_customer, stripe_payment_method from booking_payment
              where practice_id = $1 and booking_id = $2 and kind = 'card_on_file'
                and state = 'card_saved' and stripe_customer is not null
                and stripe_payment_method is not null
              order by settled_at desc limit 1",
        )
        .bind(practice)
        .bind(booking)
        .fetch_optional(tx.conn())
        .await?;
        card.map(|(customer, payment_method)| Work::Charge {
            kind,
            amount_minor,
            currency: currency.to_owned(),
            card: SavedCard {
                customer,
                payment_method,
            },
        })
    })
}

type DueRow = (PaymentId, BookingId, PatientId, String, i32, String, i32);

impl OwnerStore {
    /// Claims the next fee or refund of `practice` due at `now`, locking its row (`skip
    /// locked`: passes running together take different rows). A fee with no saved card is
    /// marked `recorded` (`no_card`) and a refund of a booking with nothing paid `failed`
    /// (`nothing_paid`) right here, audited `payment.charge`, and the next row is taken.
    /// `None` when nothing is due.
    ///
    /// # Errors
    /// Database and key errors.
    pub async fn next_due_work(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<Option<DueWork>, StoreError> {
        let keyring = self.keyring()?.clone();
        loop {
            let mut tx = self.begin_at(practice, now).await?;
            let row: Option<DueRow> = sqlx::query_as(
                "select payment_id, booking_id, patient_id, kind, amount_minor, currency, attempts
                   from booking_payment
                  where practice_id = $1 and state = 'due' and next_attempt_at <= $2
                  order by next_attempt_at, payment_id
                  limit 1
                  for update skip locked",
            )
            .bind(practice)
            .bind(now)
            .fetch_optional(tx.conn())
            .await?;
            let Some((payment, booking, patient, kind, amount, currency, attempts)) = row else {
                return Ok(None);
            };
            let kind = PaymentKind::parse(&kind)?;
            let amount_minor =
                u32::try_from(amount).map_err(|_| StoreError::Corrupt("booking_payment"))?;
            let work = due_work(&mut tx, practice, booking, kind, amount_minor, &currency).await?;
            let Some(work) = work else {
                let (state, error) = if kind == PaymentKind::Refund {
                    ("failed", "nothing_paid")
                } else {
                    ("recorded", "no_card")
                };
                let mut due = DueWork {
                    tx,
                    payment_id: payment,
                    booking,
                    patient,
                    kind,
                    attempts,
                    work: Work::Refund {
                        amount_minor,
                        currency,
                        payment_intent: String::new(),
                    },
                    client: outbound::KnownClient::default(),
                };
                due.settle(state, Some(error), None, None, None, now)
                    .await?;
                due.tx.commit().await?;
                continue;
            };
            let client = crate::patients::get_as_owner(&mut tx, &keyring, patient)
                .await?
                .map_or_else(outbound::KnownClient::default, |p| outbound::KnownClient {
                    given: p.given_name,
                    family: p.family_name,
                    phones: p.phone.into_iter().collect(),
                    emails: p.email.into_iter().collect(),
                    ..outbound::KnownClient::default()
                });
            return Ok(Some(DueWork {
                tx,
                payment_id: payment,
                booking,
                patient,
                kind,
                attempts,
                work,
                client,
            }));
        }
    }
}

impl DueWork {
    /// Records the row's new state (and the processor's id), appends `payment.charge` (the
    /// kind, the state, the reason; ids only).
    async fn settle(
        &mut self,
        state: &str,
        error: Option<&str>,
        payment_intent: Option<&str>,
        refund: Option<&str>,
        refunded_minor: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let practice = self.tx.practice();
        let retry = state == "due";
        let attempts = if retry || payment_intent.is_some() || refund.is_some() {
            self.attempts.saturating_add(1)
        } else {
            self.attempts
        };
        // Backoff: 1, 2, 4, 8, 16 minutes.
        let next = retry.then(|| now + Duration::minutes(1_i64 << (attempts - 1).clamp(0, 10)));
        let settled = !matches!(
            state,
            "due" | "processing" | "refund_pending" | "refund_partial"
        );
        sqlx::query(
            "update booking_payment set state = $3, last_error = $4,
                    stripe_payment_intent = coalesce(stripe_payment_intent, $5),
                    stripe_refund = coalesce(stripe_refund, $6), attempts = $7,
                    next_attempt_at = $8, settled_at = case when $9 then $10 else settled_at end,
                    updated_at = $10, refunded_minor = coalesce($11, refunded_minor)
              where practice_id = $1 and payment_id = $2",
        )
        .bind(practice)
        .bind(self.payment_id)
        .bind(state)
        .bind(error)
        .bind(payment_intent)
        .bind(refund)
        .bind(attempts)
        .bind(next)
        .bind(settled)
        .bind(now)
        .bind(refunded_minor)
        .execute(self.tx.conn())
        .await?;
        if state == "refunded" {
            mark_refunded(self.tx.conn(), practice, self.booking, now).await?;
        }
        self.tx
            .audit(
                AuditAction::PaymentCharge,
                Some(AuditObject::booking_payment(self.payment_id)),
                Some(self.patient),
                Some(serde_json::json!({
                    "kind": self.kind.as_str(), "state": state, "error": error,
                    "attempt": attempts, "booking_id": self.booking,
                })),
            )
            .await
    }

    /// Records what the processor said and commits: a fee `paid`, `processing`,
    /// `requires_action` or `declined`; a refund `refunded` only when the amount the
    /// processor says it refunded covers the row's, in its currency (less: `refund_partial`,
    /// not done; not said: `refund_pending`, for `charge.refunded` to settle), or
    /// `refund_pending` or `failed`; when unavailable, `due` again with backoff until
    /// [`MAX_ATTEMPTS`], then `failed`. The state it recorded.
    ///
    /// # Errors
    /// Database errors (the row stays due; the next pass asks again with the same key).
    pub async fn finish(
        mut self,
        result: &WorkResult,
        now: DateTime<Utc>,
    ) -> Result<&'static str, StoreError> {
        let (due_minor, due_currency) = match &self.work {
            Work::Refund {
                amount_minor,
                currency,
                ..
            }
            | Work::Charge {
                amount_minor,
                currency,
                ..
            } => (u64::from(*amount_minor), currency.clone()),
        };
        let mut refunded_minor = None;
        let (state, error, pi, re): (&'static str, Option<&str>, Option<&str>, Option<&str>) =
            match result {
                WorkResult::Charged {
                    payment_intent,
                    status,
                } => {
                    let (state, error) = match status.as_str() {
                        "succeeded" => ("paid", None),
                        "requires_action" | "requires_payment_method" | "requires_confirmation" => {
                            ("requires_action", Some("requires_action"))
                        }
                        "declined" | "canceled" => ("declined", Some("card_declined")),
                        _ => ("processing", None),
                    };
                    (state, error, Some(payment_intent.as_str()), None)
                }
                WorkResult::Refunded {
                    refund,
                    status,
                    amount_minor,
                    currency,
                } => {
                    let same_currency = currency.as_deref().is_none_or(|c| c == due_currency);
                    let (state, error) = match (status.as_str(), *amount_minor) {
                        ("failed" | "canceled", _) => ("failed", Some("processor_rejected")),
                        ("succeeded", Some(got)) if got >= due_minor && same_currency => {
                            refunded_minor = i32::try_from(got).ok().map(|g| g.min(MAX_MINOR));
                            ("refunded", None)
                        }
                        ("succeeded", Some(got)) if same_currency => {
                            refunded_minor = i32::try_from(got).ok();
                            ("refund_partial", None)
                        }
                        _ => ("refund_pending", None),
                    };
                    (state, error, None, Some(refund.as_str()))
                }
                WorkResult::Unavailable if self.attempts + 1 < MAX_ATTEMPTS => {
                    ("due", Some("processor_unavailable"), None, None)
                }
                WorkResult::Unavailable => ("failed", Some("processor_unavailable"), None, None),
                WorkResult::Declined => ("declined", Some("card_declined"), None, None),
                WorkResult::Rejected => ("failed", Some("processor_rejected"), None, None),
                WorkResult::ScannerRefused => ("failed", Some("scanner_refused"), None, None),
            };
        self.settle(state, error, pi, re, refunded_minor, now)
            .await?;
        self.tx.commit().await?;
        Ok(state)
    }
}

/// The booking's payment is refunded.
async fn mark_refunded(
    conn: &mut PgConnection,
    practice: PracticeId,
    booking: BookingId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update online_booking set payment = 'refunded', updated_at = $3
          where practice_id = $1 and booking_id = $2",
    )
    .bind(practice)
    .bind(booking)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
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
