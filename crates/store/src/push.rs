//! Web Push subscriptions of staff, and the content-free push messages the outbox sends them.
//!
//! # Guarantees
//! - **Sealed, per member.** A subscription (the browser's RFC 8030 endpoint and its RFC 8291
//!   keys) is sealed with the practice's data key as one JSON value, bound to (practice,
//!   `push_subscription`, `subscription`, row id) ([`crate::sealed_columns::PUSH_SUBSCRIPTION`]).
//!   Forced RLS gives each member their own rows only; the outbox job (owner role) reads them
//!   to send. The endpoint is a capability to send to a browser: it is never listed, logged or
//!   audited; only its push service's host is kept in the clear.
//! - **Checked before stored.** [`check`] refuses (nothing stored) an endpoint that is not
//!   `https` (plain `http` only on a loopback address: the test stand-in), carries credentials
//!   or a fragment, or is longer than [`MAX_ENDPOINT_LEN`]; a `p256dh` that is not a 65-byte
//!   uncompressed P-256 point; an `auth` that is not 16 bytes. Whether the host may be called
//!   at all is the subprocessor registry's decision, made by the caller.
//! - **Bounded.** At most [`MAX_PER_MEMBER`] subscriptions per member and practice; the same
//!   endpoint again replaces the old row (new keys), never a second row.
//! - **Content-free messages.** A push message is the outbox template [`PUSH_TEMPLATE`]: the
//!   outbox sends `outbound::PushPayload::update()` and nothing else, whatever caused it (no
//!   name, time, service or amount: the member opens the app to see what changed). The
//!   outbox job queues one per event and subscription ([`crate::OwnerStore::queue_push_updates`]),
//!   at most once each, for events after the subscription was made, to the members whose
//!   work the event is (a member with several roles gets the union; see [`PushEvent`]):
//!
//!   | Event | Reception | Clinician | Owner / admin only |
//!   |---|---|---|---|
//!   | An intake form waits for review | yes | yes | no |
//!   | A new online booking (booked, or waiting for approval) | yes | their own appointments | no |
//!   | A waitlist offer accepted | yes | their own appointments | no |
//!   | A client cancelled through their manage link | yes | their own appointments | no |
//!   | A payment needs staff (a fee `requires_action`, `declined` or `failed`; a refund `failed` or `refund_partial`; money `paid_after_release`) | yes | no | no |
//!
//!   Owners and admins without a scheduling role get none: every one of these leads to a
//!   scheduling or payments screen that row-level security does not open to them. Events of
//!   another practice never reach a member (each pass runs in one practice).
//!   Booking events older than [`PUSH_LOOKBACK_DAYS`] are not pushed.
//! - **Gone is gone.** When the push service answers `404` or `410`, the job deletes the
//!   subscription ([`crate::OwnerStore::drop_push_subscription`], audited `push.unsubscribe`).

use chrono::{DateTime, Utc};
use crypto::Keyring;
use domain::{AuditAction, AuditObject, PracticeId, PushSubscriptionId};
use egress::send::PushSubscription;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sqlx::PgConnection;

use crate::sealed_columns::{PUSH_SUBSCRIPTION, seal_field};
use crate::{OwnerStore, StoreError, TenantTx};

/// The outbox template of every push message (content-free).
pub const PUSH_TEMPLATE: &str = "push_update";

/// Longest endpoint URL accepted, in bytes (the browser vendors' are a few hundred).
pub const MAX_ENDPOINT_LEN: usize = 1024;

/// A `p256dh` key's length: an uncompressed P-256 point (RFC 8291 §3.1).
pub const P256DH_LEN: usize = 65;

/// An `auth` secret's length (RFC 8291 §3.2).
pub const AUTH_LEN: usize = 16;

/// Most subscriptions one member keeps in one practice (one per browser).
pub const MAX_PER_MEMBER: i64 = 10;

/// How far back the booking and payment events of a staff push update reach: an update about
/// something older is no longer worth a notification (the screens list it all the same).
pub const PUSH_LOOKBACK_DAYS: i64 = 7;

/// What a staff push update is about (the outbox message's cause; never in the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushEvent {
    /// An intake form waits for review: clinicians and reception.
    IntakeReview,
    /// A new online booking: reception, and the clinician it is with.
    NewBooking,
    /// A waitlist offer was accepted: reception, and the clinician it is with.
    OfferAccepted,
    /// A client cancelled: reception, and the clinician it was with.
    ClientCancelled,
    /// A payment needs staff: reception.
    PaymentNeedsAction,
}

impl PushEvent {
    /// Every event, in the order of the module docs' table.
    pub const ALL: [Self; 5] = [
        Self::IntakeReview,
        Self::NewBooking,
        Self::OfferAccepted,
        Self::ClientCancelled,
        Self::PaymentNeedsAction,
    ];

    /// The name the sweep's query uses.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IntakeReview => "intake",
            Self::NewBooking => "booking",
            Self::OfferAccepted => "offer",
            Self::ClientCancelled => "cancel",
            Self::PaymentNeedsAction => "payment",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The outbox cause its messages are recorded under.
    #[must_use]
    pub const fn cause(self) -> crate::outbox::Cause {
        use crate::outbox::Cause;
        match self {
            Self::IntakeReview => Cause::Intake,
            Self::NewBooking => Cause::OnlineBooking,
            Self::OfferAccepted => Cause::Waitlist,
            Self::ClientCancelled => Cause::Appointment,
            Self::PaymentNeedsAction => Cause::Payment,
        }
    }
}

/// The staff push sweep: every (event, subscription) pair of practice `$1` not queued yet,
/// with the outbox cause id of the pair (md5 of the event's key and the subscription id, as
/// a uuid: a pair is queued once, two subscriptions are two messages). `$2` is the push
/// template, `$3` the lookback bound. Recipients by role as in the module docs' table.
const PUSH_SWEEP: &str = "
with subs as (
    select s.subscription_id, s.user_id, s.created_at,
           m.roles && array['reception'] as reception,
           m.roles && array['clinician'] as clinician
      from push_subscription s
      join membership m on m.practice_id = s.practice_id and m.user_id = s.user_id
     where s.practice_id = $1 and m.roles && array['clinician', 'reception']
), events as (
    -- An intake form waiting for review (its key is the request id alone, as it always was).
    select 'intake' as what, 'intake' as cause, r.request_id::text as key, r.submitted_at as at,
           null::uuid as clinician_id
      from intake_request r
     where r.practice_id = $1 and r.status = 'submitted'
    union all
    -- A new online booking, booked or waiting for approval (not one a waitlist offer made).
    select 'booking', 'online_booking', 'booking:' || b.booking_id::text, b.created_at,
           a.clinician_id
      from online_booking b
      join appointment a on a.practice_id = b.practice_id and a.appointment_id = b.appointment_id
     where b.practice_id = $1 and b.status in ('booked', 'requested') and b.created_at >= $3
       and not exists (select 1 from waitlist_offer o
                        where o.practice_id = b.practice_id
                          and o.booked_appointment_id = b.appointment_id)
    union all
    -- A waitlist offer a client accepted.
    select 'offer', 'waitlist', 'offer:' || o.offer_id::text, o.closed_at, o.clinician_id
      from waitlist_offer o
     where o.practice_id = $1 and o.state = 'accepted' and o.closed_at >= $3
    union all
    -- A client's own cancellation (a staff cancellation leaves client_cancelled_at null).
    select 'cancel', 'appointment', 'cancel:' || a.appointment_id::text, a.client_cancelled_at,
           a.clinician_id
      from appointment a
     where a.practice_id = $1 and a.status = 'cancelled' and a.client_cancelled_at >= $3
    union all
    -- A payment that needs staff, once per state it reaches.
    select 'payment', 'payment', 'payment:' || p.state || ':' || p.payment_id::text,
           p.updated_at, null::uuid
      from booking_payment p
     where p.practice_id = $1 and p.updated_at >= $3
       and ((p.kind in ('late_cancel_fee', 'no_show_fee')
             and p.state in ('requires_action', 'declined', 'failed'))
            or (p.kind = 'refund' and p.state in ('failed', 'refund_partial'))
            or p.state = 'paid_after_release')
)
select e.what, md5(e.key || s.subscription_id::text)::uuid as cause_id, s.subscription_id
  from events e
  join subs s on e.at >= s.created_at
 where case e.what
         when 'intake' then true
         when 'payment' then s.reception
         else s.reception or (s.clinician and s.user_id = e.clinician_id)
       end
   and not exists (
        select 1 from outbox_message o
         where o.practice_id = $1 and o.cause = e.cause
           and o.cause_id = md5(e.key || s.subscription_id::text)::uuid
           and o.template = $2 and o.channel = 'push')
 order by e.at, s.subscription_id
 limit 500";

/// Why a subscription was refused (nothing stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The endpoint is not a usable push endpoint URL.
    #[error("endpoint: must be an https URL of at most 1024 bytes, without credentials")]
    Endpoint,
    /// `p256dh` is not an uncompressed P-256 public key.
    #[error("keys.p256dh: must be a 65-byte uncompressed P-256 public key (base64url)")]
    P256dh,
    /// `auth` is not 16 bytes.
    #[error("keys.auth: must be 16 bytes (base64url)")]
    Auth,
}

/// Checks a browser's subscription (see the module docs).
///
/// # Errors
/// [`SubscriptionError`] naming the first part that is wrong.
pub fn check(
    endpoint: &str,
    p256dh: &[u8],
    auth: &[u8],
) -> Result<PushSubscription, SubscriptionError> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(SubscriptionError::Endpoint);
    }
    let url = url::Url::parse(endpoint).map_err(|_| SubscriptionError::Endpoint)?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(SubscriptionError::Endpoint);
    }
    if p256dh.len() != P256DH_LEN || p256dh.first() != Some(&4) {
        return Err(SubscriptionError::P256dh);
    }
    if auth.len() != AUTH_LEN {
        return Err(SubscriptionError::Auth);
    }
    Ok(PushSubscription {
        endpoint: url,
        p256dh: p256dh.to_vec(),
        auth: auth.to_vec(),
    })
}

/// The push service's host of an endpoint, lowercase (what the registry allows).
#[must_use]
pub fn endpoint_host(sub: &PushSubscription) -> String {
    sub.endpoint
        .host_str()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The sealed form: endpoint and keys (base64url).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    endpoint: String,
    p256dh: String,
    auth: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// A subscription as its member sees it: no endpoint, no keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SubscriptionRow {
    /// Id (to unsubscribe).
    pub subscription_id: PushSubscriptionId,
    /// The push service's host.
    pub endpoint_host: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// Registers `sub` (checked with [`check`]; its host allowed by the caller) for the actor in
/// the practice, replacing a row of the same endpoint; seals it; appends `push.subscribe`
/// (the host in the details). [`StoreError::Conflict`] (`push_subscription_limit`) past
/// [`MAX_PER_MEMBER`]; nothing stored then.
///
/// # Errors
/// Database and key errors.
pub async fn subscribe(
    tx: &mut TenantTx,
    keyring: &Keyring,
    sub: &PushSubscription,
) -> Result<SubscriptionRow, StoreError> {
    use base64::Engine as _;
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    let digest = sha2::Sha256::digest(sub.endpoint.as_str().as_bytes()).to_vec();
    let replaced = sqlx::query(
        "delete from push_subscription
          where practice_id = $1 and user_id = $2 and endpoint_digest = $3",
    )
    .bind(practice)
    .bind(actor)
    .bind(&digest)
    .execute(tx.conn())
    .await?
    .rows_affected();
    let count: i64 = sqlx::query_scalar(
        "select count(*) from push_subscription where practice_id = $1 and user_id = $2",
    )
    .bind(practice)
    .bind(actor)
    .fetch_one(tx.conn())
    .await?;
    if count >= MAX_PER_MEMBER {
        return Err(StoreError::Conflict("push_subscription_limit".into()));
    }
    let id = PushSubscriptionId::new();
    let sealed = zeroize::Zeroizing::new(
        serde_json::to_vec(&Sealed {
            endpoint: sub.endpoint.as_str().to_owned(),
            p256dh: b64().encode(&sub.p256dh),
            auth: b64().encode(&sub.auth),
        })
        .map_err(|_| StoreError::Invalid("push.subscription".into()))?,
    );
    let enc = seal_field(
        keyring,
        &PUSH_SUBSCRIPTION.context(practice, "subscription", id.as_uuid().as_bytes()),
        &sealed,
    )
    .await?;
    let host = endpoint_host(sub);
    sqlx::query(
        "insert into push_subscription (practice_id, subscription_id, user_id, endpoint_digest,
                endpoint_host, subscription_enc, created_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(practice)
    .bind(id)
    .bind(actor)
    .bind(&digest)
    .bind(&host)
    .bind(&enc)
    .bind(now)
    .execute(tx.conn())
    .await?;
    tx.audit_details(
        AuditAction::PushSubscribe,
        None,
        Some(AuditObject::push_subscription(id)),
        Some(serde_json::json!({"host": host, "replaced": replaced > 0})),
    )
    .await?;
    Ok(SubscriptionRow {
        subscription_id: id,
        endpoint_host: host,
        created_at: now,
    })
}

/// The actor's own subscriptions in the practice, newest first (nothing opened, no audit).
///
/// # Errors
/// Database errors.
pub async fn mine(tx: &mut TenantTx) -> Result<Vec<SubscriptionRow>, StoreError> {
    let (practice, actor) = (tx.practice(), tx.actor());
    let rows: Vec<(PushSubscriptionId, String, DateTime<Utc>)> = sqlx::query_as(
        "select subscription_id, endpoint_host, created_at from push_subscription
          where practice_id = $1 and user_id = $2 order by created_at desc, subscription_id",
    )
    .bind(practice)
    .bind(actor)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(subscription_id, endpoint_host, created_at)| SubscriptionRow {
                subscription_id,
                endpoint_host,
                created_at,
            },
        )
        .collect())
}

/// Removes one of the actor's own subscriptions; appends `push.unsubscribe`. `false` when the
/// actor has no such subscription in the practice (nothing changes).
///
/// # Errors
/// Database errors.
pub async fn unsubscribe(tx: &mut TenantTx, id: PushSubscriptionId) -> Result<bool, StoreError> {
    let (practice, actor) = (tx.practice(), tx.actor());
    let n = sqlx::query(
        "delete from push_subscription
          where practice_id = $1 and subscription_id = $2 and user_id = $3",
    )
    .bind(practice)
    .bind(id)
    .bind(actor)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    tx.audit_details(
        AuditAction::PushUnsubscribe,
        None,
        Some(AuditObject::push_subscription(id)),
        Some(serde_json::json!({"by": "member"})),
    )
    .await?;
    Ok(true)
}

/// Opens a subscription for the outbox job (in its claim, whose `outbox.send` event covers
/// the opening). `None` when it is gone.
pub(crate) async fn open_for_send(
    conn: &mut PgConnection,
    opener: &crate::entry::Opener<'_>,
    practice: PracticeId,
    id: PushSubscriptionId,
) -> Result<Option<PushSubscription>, StoreError> {
    use base64::Engine as _;
    let enc: Option<Vec<u8>> = sqlx::query_scalar(
        "select subscription_enc from push_subscription
          where practice_id = $1 and subscription_id = $2",
    )
    .bind(practice)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    let Some(enc) = enc else {
        return Ok(None);
    };
    let plain = zeroize::Zeroizing::new(
        opener
            .open(
                &PUSH_SUBSCRIPTION.context(practice, "subscription", id.as_uuid().as_bytes()),
                &enc,
            )
            .await?,
    );
    let corrupt = || StoreError::Corrupt("push_subscription.subscription");
    let s: Sealed = serde_json::from_slice(&plain).map_err(|_| corrupt())?;
    let p256dh = b64().decode(&s.p256dh).map_err(|_| corrupt())?;
    let auth = b64().decode(&s.auth).map_err(|_| corrupt())?;
    check(&s.endpoint, &p256dh, &auth)
        .map(Some)
        .map_err(|_| corrupt())
}

impl OwnerStore {
    /// The outbox job's step before it claims: queues one content-free push message
    /// ([`PUSH_TEMPLATE`]) per staff event of `practice` and subscription of a member whose
    /// work it is (see the module docs' table), for events since the subscription was made,
    /// each at most once (the outbox's once-per-cause rule, keyed by the event and the
    /// subscription). Nothing is opened; the message's recipient is the subscription's id.
    /// Returns how many were queued.
    ///
    /// # Errors
    /// Database and key errors; no keyring ([`StoreError::Invalid`]).
    pub async fn queue_push_updates(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        use crate::outbox::{Channel, NewMessage, Recipient, Slots, enqueue};
        let keyring = self.keyring()?.clone();
        let mut tx = self.begin_at(practice, now).await?;
        let pairs: Vec<(String, uuid::Uuid, PushSubscriptionId)> = sqlx::query_as(PUSH_SWEEP)
            .bind(practice)
            .bind(PUSH_TEMPLATE)
            .bind(now - chrono::Duration::days(PUSH_LOOKBACK_DAYS))
            .fetch_all(tx.conn())
            .await?;
        if pairs.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let mut queued = 0;
        for (what, cause_id, subscription) in pairs {
            let event = PushEvent::parse(&what).ok_or(StoreError::Corrupt("push event"))?;
            let m = NewMessage {
                patient: None,
                template: PUSH_TEMPLATE,
                channel: Channel::Push,
                cause: event.cause(),
                cause_id,
                recipient: Recipient(subscription.to_string()),
                slots: Slots::default(),
                time_zone: None,
                not_before: None,
            };
            if enqueue(&mut tx, &keyring, &m).await? {
                queued += 1;
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Deletes a subscription the push service says is gone (`404`/`410`); appends
    /// `push.unsubscribe` (`{"by": "push_service"}`). `false` when it was gone already.
    ///
    /// # Errors
    /// Database errors.
    pub async fn drop_push_subscription(
        &self,
        practice: PracticeId,
        id: PushSubscriptionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let n = sqlx::query(
            "delete from push_subscription where practice_id = $1 and subscription_id = $2",
        )
        .bind(practice)
        .bind(id)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut e = tx.event(AuditAction::PushUnsubscribe);
        e.object = Some(AuditObject::push_subscription(id));
        e.details = Some(serde_json::json!({"by": "push_service"}));
        tx.append(&[e]).await?;
        tx.commit().await?;
        Ok(true)
    }
}
