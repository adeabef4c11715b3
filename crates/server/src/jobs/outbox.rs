//! The outbox job: sends the messages queued in `outbox_message` through the configured
//! channel adapters, and queues booking reminders.
//!
//! Each pass, for every practice, the booking reminders that have come due are queued
//! ([`store::OwnerStore::queue_reminders`]: email [`REMINDERS`] 48 h and SMS 24 h before the
//! appointment, the SMS not once the client has confirmed, each at most once) and, with a
//! push channel, the content-free push updates to staff browsers
//! ([`store::OwnerStore::queue_push_updates`]: intake forms waiting for review, new online
//! bookings, accepted waitlist offers, clients' cancellations, payments that need staff; to
//! the roles [`store::push`] lists), then
//! [`store::OwnerStore::claim_outbox`] claims the due messages
//! (`for update skip locked`; their recipients and slots opened and audited as
//! `outbox.send`), then for each:
//! 1. **Interrupted sends** (a row still `sending` after its lease: the job crashed between
//!    marking it and settling it) are repeated only where the adapter's [`Idempotency`] makes
//!    a repeat harmless ([`Idempotency::Provider`]: the provider answers the same key with the
//!    first result). With [`Idempotency::CallbackOnly`] (Telnyx, Twilio) or
//!    [`Idempotency::None`] (SMTP) the message may already have gone out, so it is marked
//!    `uncertain` and never sent again; a delivery webhook carrying its key settles it later.
//!    This is the rule that keeps a crash from sending a message twice.
//! 2. **Opt-outs**: an SMS to a number that texted STOP is `skipped`.
//! 3. **Attempts**: a message that has had [`MAX_ATTEMPTS`] attempts is `failed`.
//! 4. **Quiet hours**: outside the practice's sending window in the client's time zone (the
//!    message's zone, else the practice's; default 08:00–20:00) it is deferred to the next
//!    opening, never dropped.
//! 5. **Caps**: a client who has had the practice's daily cap of messages today (local day)
//!    has the message deferred to the next day's opening.
//! 6. Otherwise it is rendered from the catalogue ([`outbound::Message`]; a push message is
//!    always [`outbound::PushPayload::update`], to the staff subscription it names) and marked
//!    `sending` with a lease of [`LEASE`]; the claim commits (so the mark is durable) and only
//!    then is the adapter called, with the row's idempotency key and the practice's
//!    [`outbound::Scanner`] (its own clients' names and contact points; links only to the
//!    configured origin).
//!
//! Outcomes: accepted → `sent` (provider and message id kept); a retryable error
//! ([`SendError::is_retryable`]) → back to `queued` after an exponential [`backoff`] (or the
//! provider's `Retry-After`, whichever is later) until [`MAX_ATTEMPTS`]; rejected or refused
//! by the gate → `failed` (a push service's `404`/`410` also deletes the subscription, audited
//! `push.unsubscribe`); refused by the scanner → `refused`, with an `outbox.refused` audit
//! event naming the finding's kind (never the payload) and an alert log line on the
//! `chartroom::alert` target with ids only.
//!
//! A timeout after the request went out is reported by the adapters as retryable; with a
//! provider that has no idempotency key this retry could repeat a message that did arrive.
//! The providers answer 429 and 5xx without accepting the message, which is the common case;
//! the remaining window (an accepted request whose reply was lost) is the same as a crash and
//! is logged.
//!
//! Logs carry practice and message ids, templates, channels and causes; never a recipient,
//! a slot value or a body.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use domain::{PatientId, PracticeId};
use egress::send::{
    EmailAddress, EmailRequest, Idempotency, IdempotencyKey, Mailer, PhoneNumber, PushRequest,
    PushSender, SendError, SmsCarrier, SmsRequest,
};
use outbound::{
    AppointmentTime, KnownClient, LinkOrigin, LinkPurpose, LinkToken, Message, NoticeDate,
    OpaqueLink, PracticeName, PracticePhone, PublicPage, PublicPageLink, Rendered, Scanner,
    SubprocessorName,
};
use store::OwnerStore;
use store::outbox::{Channel, Due, Final, OutboxSettings, Reason, Settle};

use super::{Job, JobContext};

/// Attempts before a message is given up (`failed`).
pub const MAX_ATTEMPTS: i32 = 6;

/// How long a `sending` mark holds before the message counts as interrupted.
pub const LEASE: chrono::Duration = chrono::Duration::minutes(10);

/// The first retry's delay; each further one doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: chrono::Duration = chrono::Duration::seconds(30);

/// The longest delay between two attempts.
pub const MAX_BACKOFF: chrono::Duration = chrono::Duration::hours(6);

/// Most messages one practice gets in one pass (the others wait for the next).
pub const PER_PRACTICE: i64 = 50;

/// How often `serve` runs a pass.
pub const EVERY: Duration = Duration::from_secs(5);

/// The delay before the attempt after `attempts` attempts: 30 s, 60 s, 120 s, … at most
/// [`MAX_BACKOFF`].
#[must_use]
pub fn backoff(attempts: i32) -> chrono::Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    FIRST_BACKOFF
        .checked_mul(2_i32.saturating_pow(doublings))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// The local wall-clock instant `day` at `time` in `tz` (the earliest one across a DST fold,
/// the first after a gap).
fn at_local(tz: Tz, day: chrono::NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = day.and_time(time);
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc)),
    }
}

/// When a message may be sent: `now` when inside the practice's window in `tz`, else the
/// window's next opening.
#[must_use]
pub fn quiet_hours_release(settings: &OutboxSettings, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&tz);
    let (day, time) = (local.date_naive(), local.time());
    if time >= settings.quiet_end && time < settings.quiet_start {
        now
    } else if time < settings.quiet_end {
        at_local(tz, day, settings.quiet_end)
    } else {
        at_local(tz, day.succ_opt().unwrap_or(day), settings.quiet_end)
    }
}

/// The start of the client's local day containing `now`, and the next day's window opening.
fn local_day(
    settings: &OutboxSettings,
    tz: Tz,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = now.with_timezone(&tz).date_naive();
    let next = day.succ_opt().unwrap_or(day);
    (
        at_local(tz, day, NaiveTime::MIN),
        at_local(tz, next, settings.quiet_end),
    )
}

/// The manage link of a booking message: `{origin}/manage/{token}`. The page behind it
/// resolves the token by its digest.
#[must_use]
pub fn booking_manage_link(origin: &LinkOrigin, token: &LinkToken) -> OpaqueLink {
    OpaqueLink::new(origin, LinkPurpose::Manage, token)
}

/// The channel adapters the job sends through (each built with the registry's host
/// allow-list); a channel without one is left queued.
#[derive(Clone, Default)]
pub struct Channels {
    /// The SMS carrier.
    pub sms: Option<Arc<dyn SmsCarrier>>,
    /// The mail service.
    pub email: Option<Arc<dyn Mailer>>,
    /// Web Push (content-free messages to staff subscriptions).
    pub push: Option<Arc<dyn PushSender>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("sms", &self.sms.as_ref().map(|s| s.vendor()))
            .field("email", &self.email.as_ref().map(|m| m.vendor()))
            .field("push", &self.push.is_some())
            .finish()
    }
}

impl Channels {
    /// Whether any channel is configured (`serve` starts the job only then).
    #[must_use]
    pub fn any(&self) -> bool {
        self.sms.is_some() || self.email.is_some() || self.push.is_some()
    }

    fn idempotency(&self, channel: Channel) -> Option<Idempotency> {
        match channel {
            Channel::Sms => self.sms.as_ref().map(|s| s.idempotency()),
            Channel::Email => self.email.as_ref().map(|m| m.idempotency()),
            // A push service takes no idempotency key: an interrupted push is not repeated
            // (it is content-free; a lost one is replaced by the next).
            Channel::Push => self.push.as_ref().map(|_| Idempotency::None),
        }
    }
}

/// What the scanner may let through of the practice's own: its phone numbers (an SMS sender
/// number appears in the request) and email addresses (the `From`).
#[derive(Debug, Clone, Default)]
pub struct OwnContacts {
    /// The practice's (or the installation's sending) phone numbers.
    pub phones: Vec<PracticePhone>,
    /// The sending email addresses.
    pub emails: Vec<String>,
}

/// What a pass did (counts only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Accepted by a provider.
    pub sent: u64,
    /// Put back for a retry.
    pub retried: u64,
    /// Deferred by quiet hours or the cap.
    pub deferred: u64,
    /// Given up (rejected, gate, attempts).
    pub failed: u64,
    /// Refused by the scanner.
    pub refused: u64,
    /// Skipped (opted out).
    pub skipped: u64,
    /// Interrupted and not repeatable: `uncertain`.
    pub uncertain: u64,
    /// Booking reminders queued.
    pub reminders: u64,
    /// Push updates queued (staff events, per subscription of a member whose work it is).
    pub push_queued: u64,
    /// Push subscriptions removed because the push service said they are gone.
    pub push_gone: u64,
}

/// The outbox job.
#[derive(Debug)]
pub struct Outbox {
    owner: OwnerStore,
    channels: Channels,
    origin: LinkOrigin,
    own: OwnContacts,
    every: Duration,
}

/// A message ready to go.
struct Ready {
    due: Due,
    /// The catalogue's rendering (`None` for push: its payload is the one content-free one).
    rendered: Option<Rendered>,
}

impl Outbox {
    /// Sends `owner`'s queued messages (opened with the owner store's keyring) through
    /// `channels`, with links on `origin`, every `every`.
    #[must_use]
    pub fn new(
        owner: OwnerStore,
        channels: Channels,
        origin: LinkOrigin,
        own: OwnContacts,
        every: Duration,
    ) -> Self {
        Self {
            owner,
            channels,
            origin,
            own,
            every,
        }
    }

    /// One pass over every practice (or `only`) at `now`.
    ///
    /// # Errors
    /// The first practice's error (the other practices still run); ids and causes only.
    pub async fn pass(
        &self,
        only: Option<PracticeId>,
        now: DateTime<Utc>,
    ) -> Result<PassReport, String> {
        let mut report = PassReport::default();
        let mut first_error = None;
        let practices = super::practices(&self.owner, only)
            .await
            .map_err(|e| format!("listing practices failed: {e}"))?;
        for practice in practices {
            if let Err(e) = self.practice_pass(practice, now, &mut report).await {
                tracing::warn!(%practice, error = %e, "an outbox pass failed for a practice");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(report), Err)
    }

    #[expect(
        clippy::too_many_lines,
        reason = "the per-message rules in the order the module docs list them"
    )]
    async fn practice_pass(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), String> {
        let [(_, email_before), (_, sms_before)] = REMINDERS;
        report.reminders += self
            .owner
            .queue_reminders(practice, now, email_before, sms_before)
            .await
            .map_err(|e| format!("queueing reminders failed: {e}"))?;
        if self.channels.push.is_some() {
            report.push_queued += self
                .owner
                .queue_push_updates(practice, now)
                .await
                .map_err(|e| format!("queueing push updates failed: {e}"))?;
        }
        let Some(mut claim) = self
            .owner
            .claim_outbox(practice, now, PER_PRACTICE)
            .await
            .map_err(|e| format!("claiming messages failed: {e}"))?
        else {
            return Ok(());
        };
        let name = PracticeName::new(&claim.practice_name).ok();
        let Some(scanner) =
            practice_scanner(&claim.clients, &self.origin, &self.own, name.as_ref())
        else {
            // Fail closed before anything is marked: the claim rolls back and the messages
            // stay due; nothing is sent without a scan.
            return Err("the outbound scanner could not be built".into());
        };
        let settings = claim.settings;
        let mut ready = Vec::new();
        let mut counted: HashMap<PatientId, i64> = HashMap::new();
        let db = |e: store::StoreError| format!("updating a claimed message failed: {e}");
        for due in std::mem::take(&mut claim.due) {
            let id = due.message_id;
            let Some(idempotency) = self.channels.idempotency(due.channel) else {
                claim
                    .defer(id, now + MAX_BACKOFF, Reason::NoChannel)
                    .await
                    .map_err(db)?;
                report.deferred += 1;
                continue;
            };
            if due.interrupted && idempotency != Idempotency::Provider {
                tracing::warn!(%practice, message = %id, channel = due.channel.as_str(),
                    "an interrupted send is not repeated (the provider has no idempotency key): marked uncertain");
                claim
                    .finish(id, Final::Uncertain, Reason::Interrupted)
                    .await
                    .map_err(db)?;
                report.uncertain += 1;
                continue;
            }
            if due.channel == Channel::Sms && due.opted_out {
                claim
                    .finish(id, Final::Skipped, Reason::OptedOut)
                    .await
                    .map_err(db)?;
                report.skipped += 1;
                continue;
            }
            if due.attempts >= MAX_ATTEMPTS {
                claim
                    .finish(id, Final::Failed, Reason::MaxAttempts)
                    .await
                    .map_err(db)?;
                report.failed += 1;
                continue;
            }
            let release = quiet_hours_release(&settings, due.time_zone, now);
            if release > now {
                claim
                    .defer(id, release, Reason::QuietHours)
                    .await
                    .map_err(db)?;
                report.deferred += 1;
                continue;
            }
            if let (Some(patient), false) = (due.patient, due.cause == "sms_keyword") {
                let (day_start, next_day) = local_day(&settings, due.time_zone, now);
                let sent = match counted.get(&patient) {
                    Some(n) => *n,
                    None => claim.sent_since(patient, day_start).await.map_err(db)?,
                };
                if sent >= i64::from(settings.daily_cap) {
                    claim.defer(id, next_day, Reason::Cap).await.map_err(db)?;
                    report.deferred += 1;
                    continue;
                }
                counted.insert(patient, sent + 1);
            }
            let rendered = name
                .as_ref()
                .and_then(|n| render(&due, n.clone(), &self.origin));
            if rendered.is_none() && due.channel != Channel::Push {
                claim
                    .finish(id, Final::Failed, Reason::Unreadable)
                    .await
                    .map_err(db)?;
                report.failed += 1;
                continue;
            }
            ready.push(Ready { due, rendered });
        }
        claim
            .commit()
            .await
            .map_err(|e| format!("committing the claim failed: {e}"))?;
        // Each message is marked `sending` (committed) only just before its own send, so a
        // crash leaves at most the one in flight undecided; the rest are still `queued` and
        // the next pass takes them. A message another runner took first is left to it.
        for r in ready {
            let taken = self
                .owner
                .start_sending(practice, r.due.message_id, now + LEASE, now)
                .await
                .map_err(db)?;
            if taken {
                self.send(practice, &scanner, r, now, report).await?;
            }
        }
        Ok(())
    }

    /// The push service says the subscription `due` names is gone (`404`/`410`): drop it, so
    /// nothing is sent to it again.
    async fn drop_gone(
        &self,
        practice: PracticeId,
        due: &Due,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), String> {
        let Ok(subscription) = due.recipient.0.parse::<domain::PushSubscriptionId>() else {
            return Ok(());
        };
        if self
            .owner
            .drop_push_subscription(practice, subscription, now)
            .await
            .map_err(|e| format!("dropping a gone push subscription failed: {e}"))?
        {
            report.push_gone += 1;
        }
        Ok(())
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one send per channel, then the outcome rules in the order the module docs list them"
    )]
    async fn send(
        &self,
        practice: PracticeId,
        scanner: &Scanner,
        r: Ready,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), String> {
        let due = &r.due;
        let key = IdempotencyKey(due.idempotency_key);
        let result = match due.channel {
            Channel::Sms => match (
                &self.channels.sms,
                PhoneNumber::parse(&due.recipient.0),
                &r.rendered,
            ) {
                (Some(sms), Ok(to), Some(rendered)) => {
                    let body = rendered.sms();
                    sms.send_sms(scanner, SmsRequest { to: &to, body, key })
                        .await
                        .map(|receipt| (sms.vendor(), receipt))
                }
                _ => Err(SendError::Rejected { status: 0 }),
            },
            Channel::Email => match (
                &self.channels.email,
                EmailAddress::parse(&due.recipient.0),
                &r.rendered,
            ) {
                (Some(mail), Ok(to), Some(rendered)) => {
                    let body = rendered.email();
                    mail.send_email(scanner, EmailRequest { to: &to, body, key })
                        .await
                        .map(|receipt| (mail.vendor(), receipt))
                }
                _ => Err(SendError::Rejected { status: 0 }),
            },
            Channel::Push => match (&self.channels.push, &due.push) {
                (Some(push), Some(subscription)) => push
                    .send_push(
                        scanner,
                        PushRequest {
                            subscription,
                            payload: outbound::PushPayload::update(),
                            key,
                        },
                    )
                    .await
                    .map(|receipt| (egress::webpush::VENDOR, receipt)),
                // The subscription was removed after the message was queued.
                _ => Err(SendError::Rejected { status: 0 }),
            },
        };
        if let (Channel::Push, Err(SendError::Rejected { status: 404 | 410 })) =
            (due.channel, &result)
        {
            self.drop_gone(practice, due, now, report).await?;
        }
        let attempts = due.attempts + 1;
        let settle = match result {
            Ok((provider, receipt)) => {
                report.sent += 1;
                Settle::Sent {
                    provider,
                    provider_id: receipt.provider_id,
                }
            }
            Err(SendError::Refused(finding)) => {
                tracing::error!(target: "chartroom::alert", %practice, message = %due.message_id,
                    template = %due.template, channel = due.channel.as_str(), finding = finding.name(),
                    "the outbound scanner refused a message; nothing was sent");
                report.refused += 1;
                Settle::Final {
                    status: Final::Refused,
                    reason: Reason::Scanner,
                    finding: Some(finding.name()),
                }
            }
            Err(e) if e.is_retryable() && attempts < MAX_ATTEMPTS => {
                let hint = match &e {
                    SendError::Retry {
                        retry_after_secs: Some(s),
                    } => chrono::Duration::seconds(i64::try_from((*s).min(86_400)).unwrap_or(0)),
                    _ => chrono::Duration::zero(),
                };
                let reason = match &e {
                    SendError::Unreachable => Reason::Unreachable,
                    SendError::Malformed => Reason::Malformed,
                    _ => Reason::Retry,
                };
                tracing::info!(%practice, message = %due.message_id, attempts, error = %e, "a send will be retried");
                report.retried += 1;
                Settle::Retry {
                    at: now + backoff(attempts).max(hint),
                    reason,
                }
            }
            Err(e) => {
                tracing::warn!(%practice, message = %due.message_id, attempts, error = %e, "a send failed for good");
                report.failed += 1;
                let reason = match e {
                    SendError::Gate(_) => Reason::Gate,
                    SendError::Rejected { .. } => Reason::Rejected,
                    SendError::Unreachable => Reason::Unreachable,
                    SendError::Malformed => Reason::Malformed,
                    SendError::Retry { .. } | SendError::Refused(_) => Reason::MaxAttempts,
                };
                Settle::Final {
                    status: Final::Failed,
                    reason,
                    finding: None,
                }
            }
        };
        self.owner
            .settle_outbox(practice, due.message_id, &settle, now)
            .await
            .map_err(|e| format!("settling a message failed: {e}"))?;
        Ok(())
    }
}

/// The outbound scanner for one practice: its own clients' names and contact points, links
/// only to `origin`, and `own` contact points let through; `None` when it cannot be built
/// (the caller fails closed). The job's and the templates preview's one scanner.
#[must_use]
pub fn practice_scanner(
    clients: &[store::patients::Patient],
    origin: &LinkOrigin,
    own: &OwnContacts,
    practice: Option<&PracticeName>,
) -> Option<Scanner> {
    let known: Vec<KnownClient> = clients
        .iter()
        .map(|p| KnownClient {
            given: p.given_name.clone(),
            family: p.family_name.clone(),
            phones: p.phone.iter().cloned().collect(),
            emails: p.email.iter().cloned().collect(),
            ..KnownClient::default()
        })
        .collect();
    Scanner::new(
        &known,
        [origin.host().to_owned()],
        &own.phones,
        &own.emails,
        practice,
    )
    .ok()
}

/// Renders a claimed message from the catalogue; `None` when its slots do not fit its
/// template (the message fails as `unreadable`).
fn render(due: &Due, practice: PracticeName, origin: &LinkOrigin) -> Option<Rendered> {
    let time = due.slots.time.map(AppointmentTime::new);
    let link = |purpose| {
        due.slots
            .link_token
            .as_deref()
            .and_then(|t| LinkToken::parse(t).ok())
            .map(|t| OpaqueLink::new(origin, purpose, &t))
    };
    let message = match due.template.as_str() {
        "booking_confirmed" => Message::BookingConfirmed {
            practice,
            time: time?,
            link: link(LinkPurpose::Manage)?,
        },
        "booking_reminder" => Message::BookingReminder {
            practice,
            time: time?,
            link: link(LinkPurpose::Manage)?,
        },
        "booking_rescheduled" => Message::BookingRescheduled {
            practice,
            time: time?,
            link: link(LinkPurpose::Manage)?,
        },
        "waitlist_offer" => Message::WaitlistOffer {
            practice,
            time: time?,
            link: link(LinkPurpose::Offer)?,
        },
        "intake_request" => Message::IntakeRequest {
            practice,
            link: link(LinkPurpose::Intake)?,
        },
        "payment_request" => Message::PaymentRequest {
            practice,
            link: link(LinkPurpose::Pay)?,
        },
        "waitlist_joined" => Message::WaitlistJoined {
            practice,
            link: link(LinkPurpose::Waitlist)?,
        },
        "subprocessor_change" => Message::SubprocessorChange {
            practice,
            vendor: SubprocessorName::from_registry(due.slots.vendor?.display_name()).ok()?,
            effective: NoticeDate::new(due.slots.effective?),
            link: PublicPageLink::new(origin, PublicPage::Subprocessors),
        },
        "stop_confirmed" => Message::StopConfirmed { practice },
        "start_confirmed" => Message::StartConfirmed { practice },
        _ => return None,
    };
    Some(message.render())
}

/// Reminders are queued this long before the appointment: email 48 h, SMS 24 h.
pub const REMINDERS: [(Channel, chrono::Duration); 2] = [
    (Channel::Email, chrono::Duration::hours(48)),
    (Channel::Sms, chrono::Duration::hours(24)),
];

impl Job for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            let now = ctx.clock().now();
            let outcome = self.pass(None, now).await.map(|_| ());
            ctx.report(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), chrono::Duration::seconds(30));
        assert_eq!(backoff(2), chrono::Duration::seconds(60));
        assert_eq!(backoff(3), chrono::Duration::seconds(120));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn quiet_hours_defer_to_the_next_opening_in_the_clients_zone() {
        let s = OutboxSettings::default();
        let tz: Tz = "America/New_York".parse().unwrap();
        // 02:00 UTC is 21:00 the day before in New York (EST): next 08:00 local = 13:00 UTC.
        let night = Utc.with_ymd_and_hms(2026, 12, 8, 2, 0, 0).unwrap();
        assert_eq!(
            quiet_hours_release(&s, tz, night),
            Utc.with_ymd_and_hms(2026, 12, 8, 13, 0, 0).unwrap()
        );
        // 11:00 UTC is 06:00 local: the same day's 08:00.
        let early = Utc.with_ymd_and_hms(2026, 12, 8, 11, 0, 0).unwrap();
        assert_eq!(
            quiet_hours_release(&s, tz, early),
            Utc.with_ymd_and_hms(2026, 12, 8, 13, 0, 0).unwrap()
        );
        // 15:00 UTC is 10:00 local: now.
        let day = Utc.with_ymd_and_hms(2026, 12, 8, 15, 0, 0).unwrap();
        assert_eq!(quiet_hours_release(&s, tz, day), day);
    }
}
