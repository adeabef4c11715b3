//! The durable outbox: messages to clients, queued in the transaction of the change that
//! causes them, claimed and settled by the outbox job, and updated by verified webhooks.
//!
//! # Guarantees
//! - **Queued with its cause.** [`enqueue`] writes into the caller's own transaction (a
//!   [`TenantTx`], the public booking page's [`crate::booking::PublicBooking`] or an
//!   [`OwnerTx`]): a rolled-back change leaves no message, a committed one always has its
//!   message. One message per (cause, cause id, template, channel): queueing the same one again
//!   is a no-op, so a reminder is queued at most once.
//! - **Sealed.** The recipient (phone number or email address) and the slot values (the
//!   appointment time, the link token) are sealed with the practice's data key, bound to
//!   (practice, `outbox_message`, column, message id). Only the job opens them, in an owner
//!   transaction that appends `outbox.send` for each message it opens.
//! - **Claimed once.** [`crate::OwnerStore::claim_outbox`] takes due rows with
//!   `for update skip locked`, so two workers never take the same message, and a message is
//!   marked `sending` (with a lease in `next_attempt_at`) and committed *before* the provider
//!   is called. A `sending` row whose lease has lapsed was interrupted (a crash mid-send); it
//!   comes back flagged [`Due::interrupted`] and the job decides, by the adapter's
//!   idempotency, whether a repeat is safe.
//! - **Opt-outs by blind index.** STOP / START are kept per practice under a keyed blind index
//!   of the number ([`crate::OwnerStore::set_sms_opt_out`]); the number is never stored.
//! - **Replays refused.** [`crate::OwnerStore::record_webhook_event`] records a verified
//!   provider event once; a second time it answers `false` and nothing changes.
//! - Staff see states, channels, templates, attempts and times ([`list`]); never a contact or
//!   a body.

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use crypto::Keyring;
use domain::{AuditAction, AuditObject, ObjectKind, PatientId, PracticeId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::entry::OwnerTx;
use crate::patients::DEFAULT_COUNTRY_CODE;
use crate::sealed_columns::{OUTBOX_MESSAGE, seal_field, write_keys};
use crate::{OwnerStore, StoreError, TenantTx};

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A text message.
    Sms,
    /// An email.
    Email,
    /// A content-free Web Push notification.
    Push,
}

impl Channel {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
            Self::Push => "push",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "sms" => Ok(Self::Sms),
            "email" => Ok(Self::Email),
            "push" => Ok(Self::Push),
            _ => Err(StoreError::Corrupt("outbox_message.channel")),
        }
    }
}

/// What kind of record caused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// An online booking (its id).
    OnlineBooking,
    /// An appointment (its id): reminders.
    Appointment,
    /// A keyword a client texted (the webhook event's id).
    SmsKeyword,
    /// An intake request (its id).
    Intake,
    /// A waitlist offer (its id).
    Waitlist,
    /// A booking's payment (its id): a staff push update about one that needs them.
    Payment,
    /// A subprocessor registry change, to one owner: the id is derived from the change and
    /// the owner ([`crate::subprocessors`]), so each owner is queued once per change.
    SubprocessorChange,
}

impl Cause {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OnlineBooking => "online_booking",
            Self::Appointment => "appointment",
            Self::SmsKeyword => "sms_keyword",
            Self::Intake => "intake",
            Self::Waitlist => "waitlist",
            Self::Payment => "payment",
            Self::SubprocessorChange => "subprocessor_change",
        }
    }
}

/// The typed slot values a template needs beyond the practice's own (sealed as one JSON
/// value). The job turns them into the catalogue's slot types when it renders.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    /// The appointment's wall-clock time in the client's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<NaiveDateTime>,
    /// The link token (its text; the link is built from the configured origin at render).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_token: Option<String>,
    /// The registry vendor a subprocessor notice is about (rendered by its fixed name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<egress::registry::Vendor>,
    /// The date a notice takes effect (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<chrono::NaiveDate>,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slots(…)")
    }
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The client it is for, when known.
    pub patient: Option<PatientId>,
    /// The catalogue template's stable name (`outbound::Message::TEMPLATES`).
    pub template: &'static str,
    /// How it travels.
    pub channel: Channel,
    /// What caused it.
    pub cause: Cause,
    /// The causing record's id.
    pub cause_id: uuid::Uuid,
    /// The phone number (E.164) or email address; sealed.
    pub recipient: Recipient,
    /// The slot values; sealed.
    pub slots: Slots,
    /// The client's time zone for quiet hours (`None`: the practice's).
    pub time_zone: Option<Tz>,
    /// Not before this time (a reminder's due time; `None`: now).
    pub not_before: Option<DateTime<Utc>>,
}

/// A recipient's address. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient(pub String);

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recipient(…)")
    }
}

/// The transactions a message can be queued in (sealed: the store's own).
pub trait QueueTx: private::Tx {}

mod private {
    /// The parts of a transaction [`super::enqueue`] needs.
    pub trait Tx {
        /// The connection, the practice and the transaction's time.
        fn parts(
            &mut self,
        ) -> (
            &mut sqlx::PgConnection,
            domain::PracticeId,
            chrono::DateTime<chrono::Utc>,
        );

        /// Whether this is the owner role's transaction (which may read the outbox and so
        /// inserts directly); the others queue through `app.outbox_enqueue`.
        fn as_owner(&self) -> bool {
            false
        }
    }
}

impl private::Tx for TenantTx {
    fn parts(&mut self) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
        let (p, now) = (self.practice(), self.now());
        (self.conn(), p, now)
    }
}
impl QueueTx for TenantTx {}

impl private::Tx for OwnerTx {
    fn parts(&mut self) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
        let (p, now) = (self.practice(), self.now());
        (self.conn(), p, now)
    }

    fn as_owner(&self) -> bool {
        true
    }
}
impl QueueTx for OwnerTx {}

impl private::Tx for crate::booking::PublicBooking {
    fn parts(&mut self) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
        self.queue_parts()
    }
}
impl QueueTx for crate::booking::PublicBooking {}

impl private::Tx for crate::booking::ManageBooking {
    fn parts(&mut self) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
        self.queue_parts()
    }
}
impl QueueTx for crate::booking::ManageBooking {}

impl private::Tx for crate::waitlist::OfferHolder {
    fn parts(&mut self) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
        self.queue_parts()
    }
}
impl QueueTx for crate::waitlist::OfferHolder {}
/// The owner role's installation-level transaction while it has entered one practice
/// ([`crate::entry::set_practice`]): the subprocessor notices, recorded once for the
/// installation and queued to each practice's owners in the same transaction.
pub(crate) struct PracticeQueue<'a> {
    pub(crate) conn: &'a mut PgConnection,
    pub(crate) practice: PracticeId,
    pub(crate) now: DateTime<Utc>,
}

impl private::Tx for PracticeQueue<'_> {
    fn parts(&mut self) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
        (&mut *self.conn, self.practice, self.now)
    }

    fn as_owner(&self) -> bool {
        true
    }
}
impl QueueTx for PracticeQueue<'_> {}

/// The connection, practice and time of a queueing transaction, for the rows a message's
/// cause writes beside it (its manage link).
pub(crate) fn tx_parts(tx: &mut impl QueueTx) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
    private::Tx::parts(tx)
}

/// Whether `tx` is the owner role's transaction (its policies reach every row of the
/// practice; the others enter pseudo-roles for what they may touch).
pub(crate) fn is_owner(tx: &impl QueueTx) -> bool {
    private::Tx::as_owner(tx)
}

/// Queues `m` in the caller's transaction (it commits or rolls back with the change that
/// causes it), sealing the recipient and the slots. `false` when the same message (cause,
/// cause id, template, channel) was already queued: nothing changes. No audit event of its
/// own: the causing change's event covers it, and sending is audited by the job.
///
/// # Errors
/// [`StoreError::Invalid`] for a template outside the catalogue or an empty recipient;
/// database and key errors.
pub async fn enqueue(
    tx: &mut impl QueueTx,
    keyring: &Keyring,
    m: &NewMessage,
) -> Result<bool, StoreError> {
    // Push carries the one content-free template; the other channels the catalogue's.
    let allowed = if m.channel == Channel::Push {
        m.template == crate::push::PUSH_TEMPLATE
    } else {
        outbound::Message::TEMPLATES.contains(&m.template)
    };
    if !allowed {
        return Err(StoreError::Invalid("outbox.template".into()));
    }
    if m.recipient.0.trim().is_empty() || m.recipient.0.len() > 254 {
        return Err(StoreError::Invalid("outbox.recipient".into()));
    }
    let as_owner = tx.as_owner();
    let (conn, practice, now) = tx.parts();
    let id = uuid::Uuid::new_v4();
    let recipient = seal_field(
        keyring,
        &OUTBOX_MESSAGE.context(practice, "recipient", id.as_bytes()),
        m.recipient.0.trim().as_bytes(),
    )
    .await?;
    let slots_json = zeroize::Zeroizing::new(
        serde_json::to_vec(&m.slots).map_err(|_| StoreError::Invalid("outbox.slots".into()))?,
    );
    let slots = seal_field(
        keyring,
        &OUTBOX_MESSAGE.context(practice, "slots", id.as_bytes()),
        &slots_json,
    )
    .await?;
    // The owner role (the job's reminders) inserts itself; the request roles may not read
    // the outbox, so they queue through the database function, which does the same insert.
    let sql = if as_owner {
        "with m as (insert into outbox_message (practice_id, message_id, patient_id, template,
                        channel, cause, cause_id, recipient_enc, slots_enc, time_zone, status,
                        attempts, next_attempt_at, idempotency_key, created_at, updated_at)
                    values (app.practice(), $1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0,
                        $10, $11, $12, $12)
                    on conflict (practice_id, cause, cause_id, template, channel) do nothing
                    returning 1)
         select exists (select 1 from m)"
    } else {
        "select app.outbox_enqueue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    };
    let queued: bool = sqlx::query_scalar(sql)
        .bind(id)
        .bind(m.patient)
        .bind(m.template)
        .bind(m.channel.as_str())
        .bind(m.cause.as_str())
        .bind(m.cause_id)
        .bind(&recipient)
        .bind(&slots)
        .bind(m.time_zone.map(|t| t.name().to_owned()))
        .bind(m.not_before.unwrap_or(now).max(now))
        .bind(uuid::Uuid::new_v4())
        .bind(now)
        .fetch_one(conn)
        .await?;
    Ok(queued)
}

/// The states of a message.
pub const STATUSES: [&str; 8] = [
    "queued",
    "sending",
    "sent",
    "delivered",
    "failed",
    "refused",
    "skipped",
    "uncertain",
];

/// Why a message is not (yet) sent: the closed set stored in `last_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A temporary provider failure (a retry is scheduled).
    Retry,
    /// The provider refused it for good.
    Rejected,
    /// The provider could not be reached.
    Unreachable,
    /// The provider's reply was not of its documented shape.
    Malformed,
    /// The registry gate refused the provider.
    Gate,
    /// The outbound scanner refused the final bytes.
    Scanner,
    /// The client texted STOP.
    OptedOut,
    /// Inside the quiet hours: deferred.
    QuietHours,
    /// The client's daily cap is reached: deferred.
    Cap,
    /// A send was interrupted and a repeat is not safe with this provider.
    Interrupted,
    /// Too many attempts.
    MaxAttempts,
    /// No adapter is configured for the channel.
    NoChannel,
    /// The sealed recipient or slots could not be used.
    Unreadable,
}

impl Reason {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Rejected => "rejected",
            Self::Unreachable => "unreachable",
            Self::Malformed => "malformed",
            Self::Gate => "gate",
            Self::Scanner => "scanner",
            Self::OptedOut => "opted_out",
            Self::QuietHours => "quiet_hours",
            Self::Cap => "cap",
            Self::Interrupted => "interrupted",
            Self::MaxAttempts => "max_attempts",
            Self::NoChannel => "no_channel",
            Self::Unreadable => "unreadable",
        }
    }
}

/// A practice's sending rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// Quiet hours end (local time): nothing is sent before it.
    pub quiet_end: NaiveTime,
    /// Quiet hours start (local time): nothing is sent from it on.
    pub quiet_start: NaiveTime,
    /// Messages per client per local day (keyword replies not counted).
    pub daily_cap: u32,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            quiet_end: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
            quiet_start: NaiveTime::from_hms_opt(20, 0, 0).unwrap_or(NaiveTime::MIN),
            daily_cap: 4,
        }
    }
}

/// Sets a practice's sending rules (owners and admins; RLS refuses others) and audits it.
///
/// # Errors
/// [`StoreError::Invalid`] when the window is empty or the cap is outside 1–50.
pub async fn put_settings(tx: &mut TenantTx, s: &OutboxSettings) -> Result<(), StoreError> {
    if s.quiet_end >= s.quiet_start || !(1..=50).contains(&s.daily_cap) {
        return Err(StoreError::Invalid("outbox_settings".into()));
    }
    let (practice, now) = (tx.practice(), tx.now());
    sqlx::query(
        "insert into outbox_settings (practice_id, quiet_end, quiet_start, daily_cap, updated_at)
         values ($1, $2, $3, $4, $5)
         on conflict (practice_id) do update set quiet_end = excluded.quiet_end,
                quiet_start = excluded.quiet_start, daily_cap = excluded.daily_cap,
                updated_at = excluded.updated_at",
    )
    .bind(practice)
    .bind(s.quiet_end)
    .bind(s.quiet_start)
    .bind(i32::try_from(s.daily_cap).unwrap_or(50))
    .bind(now)
    .execute(tx.conn())
    .await?;
    tx.audit(
        AuditAction::BookingSetup,
        None,
        Some(AuditObject::practice(practice)),
    )
    .await
}

async fn read_settings(
    conn: &mut PgConnection,
    practice: PracticeId,
) -> Result<OutboxSettings, StoreError> {
    let row: Option<(NaiveTime, NaiveTime, i32)> = sqlx::query_as(
        "select quiet_end, quiet_start, daily_cap from outbox_settings where practice_id = $1",
    )
    .bind(practice)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some((quiet_end, quiet_start, cap)) => OutboxSettings {
            quiet_end,
            quiet_start,
            daily_cap: u32::try_from(cap).map_err(|_| StoreError::Corrupt("outbox_settings"))?,
        },
        None => OutboxSettings::default(),
    })
}

/// A message as staff see it: no contact, no body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MessageSummary {
    /// Id.
    pub message_id: uuid::Uuid,
    /// The template's stable name.
    pub template: String,
    /// `sms`, `email` or `push`.
    pub channel: String,
    /// What caused it.
    pub cause: String,
    /// One of [`STATUSES`].
    pub status: String,
    /// Send attempts so far.
    pub attempts: i32,
    /// Why it is not (yet) sent, when it is not ([`Reason`]).
    pub last_error: Option<String>,
    /// When the job takes it next.
    pub next_attempt_at: DateTime<Utc>,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Handed to the provider.
    pub sent_at: Option<DateTime<Utc>>,
    /// Delivered, as the provider reported.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The practice's newest messages (at most 200), optionally one status; audited as a list.
/// The RLS policy lets owners, admins and reception read them.
///
/// # Errors
/// [`StoreError::Invalid`] for an unknown status.
pub async fn list(
    tx: &mut TenantTx,
    status: Option<&str>,
) -> Result<Vec<MessageSummary>, StoreError> {
    if status.is_some_and(|s| !STATUSES.contains(&s)) {
        return Err(StoreError::Invalid("status".into()));
    }
    let practice = tx.practice();
    let rows: Vec<MessageSummary> = sqlx::query_as(
        "select message_id, template, channel, cause, status, attempts, last_error,
                next_attempt_at, created_at, sent_at, delivered_at
           from outbox_message
          where practice_id = $1 and ($2::text is null or status = $2)
          order by created_at desc, message_id limit 200",
    )
    .bind(practice)
    .bind(status)
    .fetch_all(tx.conn())
    .await?;
    tx.audit(
        AuditAction::OutboxList,
        None,
        Some(AuditObject::practice(practice)),
    )
    .await?;
    Ok(rows)
}

/// The practice's own clients (names and contact points) for the outbound scanner of the
/// templates preview, opened in the member's transaction and audited as `outbox.preview`
/// (the number of clients in the details, no client named): the same list the outbox job
/// scans real sends with, for every role the page admits (owners, admins, reception),
/// read through `app.scanner_clients()` because row-level security shows owners and admins
/// no patient rows (migration 0042).
///
/// # Errors
/// Database and key errors.
pub async fn preview_clients(
    tx: &mut TenantTx,
    keyring: &Keyring,
) -> Result<Vec<crate::patients::Patient>, StoreError> {
    let clients = crate::patients::all_for_scanner(tx, keyring).await?;
    let practice = tx.practice();
    tx.audit_details(
        AuditAction::OutboxPreview,
        None,
        Some(AuditObject::practice(practice)),
        Some(serde_json::json!({ "clients": clients.len() })),
    )
    .await?;
    Ok(clients)
}

/// A claimed message, opened.
#[derive(Debug, Clone)]
pub struct Due {
    /// Id.
    pub message_id: uuid::Uuid,
    /// The client.
    pub patient: Option<PatientId>,
    /// The template's stable name.
    pub template: String,
    /// How it travels.
    pub channel: Channel,
    /// The causing record's kind.
    pub cause: String,
    /// The recipient, opened.
    pub recipient: Recipient,
    /// The slot values, opened.
    pub slots: Slots,
    /// The time zone quiet hours are read in (the client's, else the practice's).
    pub time_zone: Tz,
    /// Attempts before this one.
    pub attempts: i32,
    /// The key the provider sees.
    pub idempotency_key: uuid::Uuid,
    /// It was `sending` when claimed: a send was interrupted (a crash), and may have reached
    /// the provider.
    pub interrupted: bool,
    /// For SMS: the number has opted out (STOP).
    pub opted_out: bool,
    /// For push: the subscription the recipient names, opened (`None`: it is gone).
    pub push: Option<egress::send::PushSubscription>,
}

/// A practice's due messages claimed by the outbox job: its owner transaction holds their
/// row locks until [`OutboxClaim::commit`]. Each message must be given a next state
/// ([`OutboxClaim::sending`], [`OutboxClaim::defer`], [`OutboxClaim::finish`]); one left
/// alone keeps its state.
#[derive(Debug)]
pub struct OutboxClaim {
    tx: OwnerTx,
    /// The practice's name (the templates' practice slot).
    pub practice_name: String,
    /// The practice's time zone.
    pub practice_tz: Tz,
    /// Its sending rules.
    pub settings: OutboxSettings,
    /// The claimed messages, oldest due first.
    pub due: Vec<Due>,
    /// The practice's clients (names and contact points), for the outbound scanner.
    pub clients: Vec<crate::patients::Patient>,
}

type DueRow = (
    uuid::Uuid,
    Option<PatientId>,
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
    Option<String>,
    String,
    i32,
    uuid::Uuid,
);

impl OwnerStore {
    /// Claims up to `limit` due messages of `practice` (queued and due, or `sending` with a
    /// lapsed lease), oldest first, `for update skip locked`; opens their recipients and
    /// slots and appends `outbox.send` for each (template and channel in the details).
    ///
    /// # Errors
    /// Database and key errors; no keyring ([`StoreError::Invalid`]).
    pub async fn claim_outbox(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Option<OutboxClaim>, StoreError> {
        let keyring = self.keyring()?.clone();
        let mut tx = self.begin_at(practice, now).await?;
        let rows: Vec<DueRow> = sqlx::query_as(
            "select message_id, patient_id, template, channel, cause, recipient_enc, slots_enc,
                    time_zone, status, attempts, idempotency_key
               from outbox_message
              where practice_id = $1 and status in ('queued', 'sending') and next_attempt_at <= $2
              order by next_attempt_at, message_id
              limit $3
              for update skip locked",
        )
        .bind(practice)
        .bind(now)
        .bind(limit)
        .fetch_all(tx.conn())
        .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(None);
        }
        let (name, tz): (String, Option<String>) = sqlx::query_as(
            "select name, settings ->> 'time_zone' from practice where practice_id = $1",
        )
        .bind(practice)
        .fetch_one(tx.conn())
        .await?;
        let practice_tz: Tz = tz.and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC);
        let settings = read_settings(tx.conn(), practice).await?;
        let keys = write_keys(&keyring, practice).await?;
        let clients = crate::patients::all_for_scanner(&mut tx, &keyring).await?;
        let opener = tx.opener(&keyring);
        let mut due = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for (id, patient, template, channel, cause, r_enc, s_enc, zone, status, attempts, key) in
            rows
        {
            let channel = Channel::parse(&channel)?;
            let recipient = opener
                .open_text(
                    &OUTBOX_MESSAGE.context(practice, "recipient", id.as_bytes()),
                    &r_enc,
                )
                .await?;
            let slots_plain = zeroize::Zeroizing::new(
                opener
                    .open(
                        &OUTBOX_MESSAGE.context(practice, "slots", id.as_bytes()),
                        &s_enc,
                    )
                    .await?,
            );
            let slots: Slots = serde_json::from_slice(&slots_plain)
                .map_err(|_| StoreError::Corrupt("outbox_message.slots"))?;
            let opted_out = if channel == Channel::Sms {
                opted_out(tx.conn(), practice, &keys, &recipient).await?
            } else {
                false
            };
            let push = match (channel, recipient.parse::<domain::PushSubscriptionId>()) {
                (Channel::Push, Ok(sub)) => {
                    crate::push::open_for_send(tx.conn(), &opener, practice, sub).await?
                }
                _ => None,
            };
            let mut e = tx.event(AuditAction::OutboxSend);
            e.object = Some(AuditObject::new(ObjectKind::OutboxMessage, id));
            e.patient = patient;
            e.details = Some(serde_json::json!({
                "template": template, "channel": channel.as_str(), "attempt": attempts + 1,
            }));
            events.push(e);
            due.push(Due {
                message_id: id,
                patient,
                template,
                channel,
                cause,
                recipient: Recipient(recipient),
                slots,
                time_zone: zone.and_then(|z| z.parse().ok()).unwrap_or(practice_tz),
                attempts,
                idempotency_key: key,
                interrupted: status == "sending",
                opted_out,
                push,
            });
        }
        tx.append(&events).await?;
        Ok(Some(OutboxClaim {
            tx,
            practice_name: name,
            practice_tz,
            settings,
            due,
            clients,
        }))
    }

    /// Marks a claimed message `sending` until `lease_until` (committed) just before the job
    /// sends it: the one message a crash can leave undecided. It must still be `queued`, or
    /// `sending` with its lease lapsed (an interrupted send the job repeats with its key);
    /// `false` otherwise (another runner took it, or a webhook settled it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn start_sending(
        &self,
        practice: PracticeId,
        message: uuid::Uuid,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let n = sqlx::query(
            "update outbox_message set status = 'sending', attempts = least(attempts + 1, 100),
                    next_attempt_at = $3, updated_at = $4
              where practice_id = $1 and message_id = $2
                and (status = 'queued' or (status = 'sending' and next_attempt_at <= $4))",
        )
        .bind(practice)
        .bind(message)
        .bind(lease_until)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Settles a message after its send: `sent` (with the provider and its message id), a
    /// retry at `retry_at` (back to `queued`), or a final state with its reason. A scanner
    /// refusal also appends `outbox.refused` (the finding's kind only, never the payload).
    /// Changes only a message that is still `sending` (a webhook may have settled it first);
    /// `false` when there was none.
    ///
    /// # Errors
    /// Database errors.
    pub async fn settle_outbox(
        &self,
        practice: PracticeId,
        message: uuid::Uuid,
        outcome: &Settle,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let n = match outcome {
            Settle::Sent {
                provider,
                provider_id,
            } => sqlx::query(
                "update outbox_message set status = 'sent', provider = $3,
                            provider_message_id = $4, sent_at = $5, updated_at = $5,
                            last_error = null
                      where practice_id = $1 and message_id = $2 and status = 'sending'",
            )
            .bind(practice)
            .bind(message)
            .bind(*provider)
            .bind(provider_id)
            .bind(now)
            .execute(tx.conn())
            .await?
            .rows_affected(),
            Settle::Retry { at, reason } => sqlx::query(
                "update outbox_message set status = 'queued', next_attempt_at = $3,
                            last_error = $4, updated_at = $5
                      where practice_id = $1 and message_id = $2 and status = 'sending'",
            )
            .bind(practice)
            .bind(message)
            .bind(*at)
            .bind(reason.as_str())
            .bind(now)
            .execute(tx.conn())
            .await?
            .rows_affected(),
            Settle::Final {
                status,
                reason,
                finding,
            } => {
                let n = sqlx::query(
                    "update outbox_message set status = $3, last_error = $4, updated_at = $5
                      where practice_id = $1 and message_id = $2 and status = 'sending'",
                )
                .bind(practice)
                .bind(message)
                .bind(status.as_str())
                .bind(reason.as_str())
                .bind(now)
                .execute(tx.conn())
                .await?
                .rows_affected();
                if n == 1 && *status == Final::Refused {
                    let patient: Option<PatientId> = sqlx::query_scalar(
                        "select patient_id from outbox_message
                          where practice_id = $1 and message_id = $2",
                    )
                    .bind(practice)
                    .bind(message)
                    .fetch_one(tx.conn())
                    .await?;
                    tx.audit(
                        AuditAction::OutboxRefused,
                        Some(AuditObject::new(ObjectKind::OutboxMessage, message)),
                        patient,
                        Some(serde_json::json!({ "finding": finding.unwrap_or("unknown") })),
                    )
                    .await?;
                }
                n
            }
        };
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Records a verified provider event; `false` when it was recorded before (a replay:
    /// the caller changes nothing).
    ///
    /// # Errors
    /// Database errors.
    pub async fn record_webhook_event(
        &self,
        provider: &str,
        event_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "insert into webhook_event (provider, event_id, received_at) values ($1, $2, $3)
             on conflict do nothing",
        )
        .bind(provider)
        .bind(event_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues the booking reminders that have come due in `practice` at `now`, each at most
    /// once (the outbox's one-message-per-cause rule): an email from `email_before` before
    /// the appointment, an SMS from `sms_before` before it unless the client has confirmed
    /// (`online_booking.client_confirmed_at`). Only booked online bookings whose appointment
    /// is still booked and in the future. Each reminder carries a new manage-link token and
    /// the local start time in the practice's zone; the client's contacts on record are read
    /// to address it (`outbox.queue` audited per client, template and channels only). The
    /// number of messages queued.
    ///
    /// # Errors
    /// Database and key errors.
    #[expect(
        clippy::too_many_lines,
        reason = "one pass in order: the due appointments, their links and messages, the audit events"
    )]
    pub async fn queue_reminders(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
        email_before: chrono::Duration,
        sms_before: chrono::Duration,
    ) -> Result<u64, StoreError> {
        let keyring = self.keyring()?.clone();
        let mut tx = self.begin_at(practice, now).await?;
        let horizon = now + email_before.max(sms_before);
        let rows: Vec<ReminderRow> = sqlx::query_as(
            "select a.appointment_id, a.patient_id, a.starts_at, a.ends_at, b.created_at,
                    b.client_confirmed_at is not null,
                    coalesce((select array_agg(m.channel) from outbox_message m
                               where m.practice_id = a.practice_id and m.cause = 'appointment'
                                 and m.cause_id = a.appointment_id and m.template = 'booking_reminder'),
                             '{}')
               from online_booking b
               join appointment a on a.practice_id = b.practice_id and a.appointment_id = b.appointment_id
              where b.practice_id = $1 and b.status = 'booked' and a.status = 'booked'
                and a.starts_at > $2 and a.starts_at <= $3
              order by a.starts_at
              limit 500",
        )
        .bind(practice)
        .bind(now)
        .bind(horizon)
        .fetch_all(tx.conn())
        .await?;
        let (_, tz): (String, Option<String>) = sqlx::query_as(
            "select name, settings ->> 'time_zone' from practice where practice_id = $1",
        )
        .bind(practice)
        .fetch_one(tx.conn())
        .await?;
        let tz: Tz = tz.and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC);
        let mut queued = 0;
        let mut events = Vec::new();
        for (appointment, patient, starts_at, ends_at, booked_at, confirmed, done) in rows {
            // A reminder is due from its lead time before the start, once, and only for a
            // booking made before then: a later booking's confirmation already said when.
            let due = |lead: chrono::Duration, channel: &str| {
                starts_at - lead <= now
                    && booked_at < starts_at - lead
                    && !done.iter().any(|c| c == channel)
            };
            let mut channels = Vec::new();
            if due(email_before, "email") {
                channels.push(Channel::Email);
            }
            if due(sms_before, "sms") && !confirmed {
                channels.push(Channel::Sms);
            }
            if channels.is_empty() {
                continue;
            }
            let Some(p) = crate::patients::get_as_owner(&mut tx, &keyring, patient).await? else {
                continue;
            };
            let contacts = Contacts {
                phone: p.phone.as_deref(),
                email: p.email.as_deref(),
            };
            let sends: Vec<(Channel, String)> = channels
                .into_iter()
                .filter_map(|c| address(c, contacts).map(|to| (c, to)))
                .collect();
            if sends.is_empty() {
                continue;
            }
            // The reminder's own manage link (its digest in `client_link`, live until the
            // appointment ends).
            let token = crate::links::manage_link_for_new_booking(
                tx.conn(),
                practice,
                patient,
                domain::AppointmentId::from_uuid(appointment),
                now,
                ends_at,
            )
            .await?;
            let slots = Slots {
                time: Some(starts_at.with_timezone(&tz).naive_local()),
                link_token: Some(token.expose_for_sealing().to_owned()),
                ..Slots::default()
            };
            let mut names = Vec::new();
            for (channel, to) in sends {
                let m = NewMessage {
                    patient: Some(patient),
                    template: "booking_reminder",
                    channel,
                    cause: Cause::Appointment,
                    cause_id: appointment,
                    recipient: Recipient(to),
                    slots: slots.clone(),
                    time_zone: None,
                    not_before: None,
                };
                if enqueue(&mut tx, &keyring, &m).await? {
                    queued += 1;
                    names.push(channel.as_str());
                }
            }
            let mut e = tx.event(AuditAction::OutboxQueue);
            e.object = Some(AuditObject::appointment(domain::AppointmentId::from_uuid(
                appointment,
            )));
            e.patient = Some(patient);
            e.details = Some(serde_json::json!({
                "template": "booking_reminder",
                "email": names.contains(&"email"),
                "sms": names.contains(&"sms"),
            }));
            events.push(e);
        }
        if !events.is_empty() {
            tx.append(&events).await?;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Whether a provider event was recorded before (a replay).
    ///
    /// # Errors
    /// Database errors.
    pub async fn webhook_event_seen(
        &self,
        provider: &str,
        event_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "select exists (select 1 from webhook_event where provider = $1 and event_id = $2)",
        )
        .bind(provider)
        .bind(event_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Applies a verified delivery status to the message of `practice` it names (by our key,
    /// else by the provider's message id): `delivered` or `failed` (also from `sent`,
    /// `sending` or `uncertain`); `sent` only settles a `sending` or `uncertain` one. `false`
    /// when the practice has no such message.
    ///
    /// # Errors
    /// Database errors.
    pub async fn outbox_delivery(
        &self,
        practice: PracticeId,
        provider: &str,
        provider_id: &str,
        key: Option<uuid::Uuid>,
        status: Delivery,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let (to, from): (&str, &[&str]) = match status {
            Delivery::Sent => ("sent", &["sending", "uncertain"]),
            Delivery::Delivered => ("delivered", &["sending", "sent", "uncertain", "failed"]),
            Delivery::Failed => ("failed", &["sending", "sent", "uncertain"]),
        };
        let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
        let n = sqlx::query(
            "update outbox_message
                set status = $5, updated_at = $6,
                    provider = coalesce(provider, $3),
                    provider_message_id = coalesce(provider_message_id, $4),
                    sent_at = coalesce(sent_at, $6),
                    delivered_at = case when $5 = 'delivered' then $6 else delivered_at end,
                    last_error = case when $5 = 'failed' then 'rejected' else null end
              where practice_id = $1
                and (idempotency_key = $2 or ($2 is null and provider = $3 and provider_message_id = $4))
                and status = any($7)",
        )
        .bind(practice)
        .bind(key)
        .bind(provider)
        .bind(provider_id)
        .bind(to)
        .bind(now)
        .bind(&from)
        .execute(tx.conn())
        .await?
        .rows_affected();
        let known: bool = sqlx::query_scalar(
            "select exists (select 1 from outbox_message where practice_id = $1
                and (idempotency_key = $2 or ($2 is null and provider = $3 and provider_message_id = $4)))",
        )
        .bind(practice)
        .bind(key)
        .bind(provider)
        .bind(provider_id)
        .fetch_one(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(n > 0 || known)
    }

    /// Mirrors a carrier STOP (`true`) or START (`false`) for `phone` into `practice`'s
    /// opt-outs, by the number's blind index under the active data key; audited
    /// (`sms.opt_out`, no number). `false` for a number that is not one.
    ///
    /// # Errors
    /// Database and key errors.
    pub async fn set_sms_opt_out(
        &self,
        practice: PracticeId,
        phone: &str,
        stop: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let keyring = self.keyring()?.clone();
        let keys = write_keys(&keyring, practice).await?;
        let Ok(tags) = keys.phone_query_tags(phone, DEFAULT_COUNTRY_CODE) else {
            return Ok(false);
        };
        let Ok(tag) = keys.active().phone_tag(phone, DEFAULT_COUNTRY_CODE) else {
            return Ok(false);
        };
        let tags: Vec<Vec<u8>> = tags.iter().map(|t| t.as_bytes().to_vec()).collect();
        let mut tx = self.begin_at(practice, now).await?;
        sqlx::query("delete from sms_opt_out where practice_id = $1 and phone_tag = any($2)")
            .bind(practice)
            .bind(&tags)
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "insert into sms_opt_out (practice_id, phone_tag, opted_out, updated_at)
             values ($1, $2, $3, $4)",
        )
        .bind(practice)
        .bind(tag.as_bytes().to_vec())
        .bind(stop)
        .bind(now)
        .execute(tx.conn())
        .await?;
        tx.audit(
            AuditAction::SmsOptOut,
            Some(AuditObject::practice(practice)),
            None,
            Some(serde_json::json!({ "opted_out": stop })),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// An appointment a reminder may be due for: id, client, start, confirmed, the channels
/// already reminded on.
type ReminderRow = (
    uuid::Uuid,
    PatientId,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
    bool,
    Vec<String>,
);

/// A client's contact points for a message (either may be missing or unusable).
#[derive(Clone, Copy)]
pub struct Contacts<'a> {
    /// Mobile number.
    pub phone: Option<&'a str>,
    /// Email address.
    pub email: Option<&'a str>,
}

/// The address a message on `channel` goes to: a valid email address, or the mobile number
/// normalized to E.164 (national numbers in [`DEFAULT_COUNTRY_CODE`]); `None` when there is no
/// usable one (push has no address here).
#[must_use]
pub fn address(channel: Channel, contacts: Contacts<'_>) -> Option<String> {
    match channel {
        Channel::Email => contacts
            .email
            .and_then(|e| egress::send::EmailAddress::parse(e).ok())
            .map(|e| e.as_str().to_owned()),
        Channel::Sms => contacts
            .phone
            .and_then(|n| crypto::blind_index::normalize_phone(n, DEFAULT_COUNTRY_CODE).ok())
            .and_then(|n| {
                egress::send::PhoneNumber::parse(&format!("+{}", n.trim_start_matches('+'))).ok()
            })
            .map(|n| n.as_str().to_owned()),
        Channel::Push => None,
    }
}

/// Whether the number has opted out in the practice (any live key version's tag).
async fn opted_out(
    conn: &mut PgConnection,
    practice: PracticeId,
    keys: &crypto::PracticeKeys,
    phone: &str,
) -> Result<bool, StoreError> {
    let Ok(tags) = keys.phone_query_tags(phone, DEFAULT_COUNTRY_CODE) else {
        return Ok(false);
    };
    let tags: Vec<Vec<u8>> = tags.iter().map(|t| t.as_bytes().to_vec()).collect();
    Ok(sqlx::query_scalar(
        "select coalesce(bool_or(opted_out), false) from sms_opt_out
          where practice_id = $1 and phone_tag = any($2)",
    )
    .bind(practice)
    .bind(&tags)
    .fetch_one(conn)
    .await?)
}

/// A final state of a message the job gives up on or will not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// Failed for good.
    Failed,
    /// The scanner refused it (nothing was sent).
    Refused,
    /// Not sent on purpose (opted out).
    Skipped,
    /// A send was interrupted and may or may not have reached the client; not repeated. A
    /// later delivery webhook settles it.
    Uncertain,
}

impl Final {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Skipped => "skipped",
            Self::Uncertain => "uncertain",
        }
    }
}

/// What happened to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// The provider accepted it.
    Sent {
        /// The vendor.
        provider: &'static str,
        /// Its message id (opaque).
        provider_id: String,
    },
    /// Try again at `at`.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: Reason,
    },
    /// Done without a send.
    Final {
        /// The state.
        status: Final,
        /// Why.
        reason: Reason,
        /// For a scanner refusal: the finding's kind (`outbound::Finding::name`).
        finding: Option<&'static str>,
    },
}

/// A delivery status reported by a verified webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the network.
    Sent,
    /// Delivered.
    Delivered,
    /// Failed for good.
    Failed,
}

impl OutboxClaim {
    /// The practice.
    #[must_use]
    pub fn practice(&self) -> PracticeId {
        self.tx.practice()
    }

    /// Puts a claimed message back in the queue until `until` (quiet hours, the cap).
    ///
    /// # Errors
    /// Database errors.
    pub async fn defer(
        &mut self,
        message: uuid::Uuid,
        until: DateTime<Utc>,
        reason: Reason,
    ) -> Result<(), StoreError> {
        let (practice, now) = (self.tx.practice(), self.tx.now());
        sqlx::query(
            "update outbox_message set status = 'queued', next_attempt_at = $3, last_error = $4,
                    updated_at = $5
              where practice_id = $1 and message_id = $2",
        )
        .bind(practice)
        .bind(message)
        .bind(until)
        .bind(reason.as_str())
        .bind(now)
        .execute(self.tx.conn())
        .await?;
        Ok(())
    }

    /// Gives a claimed message a final state without sending it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn finish(
        &mut self,
        message: uuid::Uuid,
        status: Final,
        reason: Reason,
    ) -> Result<(), StoreError> {
        let (practice, now) = (self.tx.practice(), self.tx.now());
        sqlx::query(
            "update outbox_message set status = $3, last_error = $4, updated_at = $5
              where practice_id = $1 and message_id = $2",
        )
        .bind(practice)
        .bind(message)
        .bind(status.as_str())
        .bind(reason.as_str())
        .bind(now)
        .execute(self.tx.conn())
        .await?;
        Ok(())
    }

    /// Messages sent to `patient` since `since` (keyword replies not counted): what the daily
    /// cap counts.
    ///
    /// # Errors
    /// Database errors.
    pub async fn sent_since(
        &mut self,
        patient: PatientId,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let practice = self.tx.practice();
        Ok(sqlx::query_scalar(
            "select count(*) from outbox_message
              where practice_id = $1 and patient_id = $2 and sent_at >= $3
                and cause <> 'sms_keyword'",
        )
        .bind(practice)
        .bind(patient)
        .bind(since)
        .fetch_one(self.tx.conn())
        .await?)
    }

    /// Commits the claim (the messages' new states).
    ///
    /// # Errors
    /// Database errors.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await
    }
}
