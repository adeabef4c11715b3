//! The outbox's throughput end to end (issue 19, BENCHMARKS.md "messages/s through the gate and
//! scanner into the stand-ins"), run by `chartroom-bench outbox` and, briefly, by the test
//! suite.
//!
//! A practice of synthetic clients (the generator's names, phones and emails) in a real
//! PostgreSQL database ([`TestDb`]); each round queues `messages` messages as reception (a mix
//! of SMS and email, booking confirmations and reminders, each for one of the clients, queued
//! through `store::outbox::enqueue` 50 to a transaction) and then, alternating the order round
//! by round, sends the same number three ways:
//!
//! - **outbox**: the real job ([`Outbox::pass`], repeated until nothing is due): claim, open
//!   and audit, quiet hours, caps, render, the `sending` mark, the adapter (registry gate and
//!   scanner on the final bytes), settle;
//! - **adapters**: the same rendered messages straight through the same adapters (gate and
//!   scanner included), without the database;
//! - **raw**: the same request bodies posted straight to the stand-ins with a plain HTTP
//!   client (no gate, no scanner, no database): the floor.
//!
//! SMS go to the Telnyx stand-in and email to the Resend stand-in (the stand-ins the outbox
//! tests use), both on loopback. Each round runs on its own day at noon UTC (inside the
//! default quiet hours; the daily cap of 4 per client resets), so nothing is deferred: every
//! queued message must be sent, and the stand-ins must have received exactly what was sent.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, TimeZone as _, Utc};
use egress::ApiKey;
use egress::send::{
    EmailAddress, EmailRequest, IdempotencyKey, Mailer, PhoneNumber, SmsCarrier, SmsRequest,
};
use egress::telnyx::{Telnyx, TelnyxConfig, TelnyxSender};
use outbound::{
    AppointmentTime, KnownClient, LinkOrigin, LinkPurpose, LinkToken, Message, OpaqueLink,
    PracticeName, PracticePhone, Scanner,
};
use server::jobs::outbox::{Channels, Outbox, OwnContacts};
use store::outbox::{Cause, Channel, NewMessage, Recipient, Slots};

use crate::mailpay_standins::ResendStandIn;
use crate::messaging_standins::TelnyxStandIn;
use crate::{TestDb, World};

const OWN_NUMBER: &str = "+15550100999";
const SENDER: &str = "appointments@practice-a.example.invalid";
const ORIGIN: &str = "https://book.practice-a.example.invalid";
const TELNYX_KEY: &str = "KEY0123456789ABCDEF";
const RESEND_KEY: &str = "re_bench_key";
const CALLBACK: &str = "https://chartroom.example.invalid/webhooks/telnyx";

/// Messages queued in one transaction.
const PER_TX: usize = 50;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct OutboxBenchOptions {
    /// Messages per round (and per path).
    pub messages: usize,
    /// Synthetic clients of the practice (at least `messages / 4`: the daily cap).
    pub clients: usize,
    /// Rounds (each path once per round; the order alternates).
    pub rounds: usize,
}

/// One path's measurement in one round.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Messages sent.
    pub messages: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Measured {
    /// Messages per second.
    #[must_use]
    #[expect(clippy::cast_precision_loss, reason = "a rate for a report")]
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One round.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// Queueing the round's messages (as reception, through `enqueue`).
    pub queue: Measured,
    /// The outbox job draining them.
    pub outbox: Measured,
    /// Outbox passes it took.
    pub passes: usize,
    /// The same sends through the adapters only.
    pub adapters: Measured,
    /// The same request bodies posted raw.
    pub raw: Measured,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct OutboxBenchReport {
    /// What was run.
    pub options: OutboxBenchOptions,
    /// Each round, in order.
    pub rounds: Vec<Round>,
    /// SMS and emails the stand-ins received in all (3 paths × rounds × messages).
    pub received: (usize, usize),
}

impl OutboxBenchReport {
    /// The best (fastest) of the rounds for a path.
    fn best(&self, f: impl Fn(&Round) -> Measured) -> f64 {
        self.rounds
            .iter()
            .map(|r| f(r).rate())
            .fold(0.0_f64, f64::max)
    }

    /// The median of the rounds for a path.
    fn median(&self, f: impl Fn(&Round) -> Measured) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(|r| f(r).rate()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }

    /// Best outbox messages/s.
    #[must_use]
    pub fn outbox_rate(&self) -> f64 {
        self.best(|r| r.outbox)
    }
}

impl fmt::Display for OutboxBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.options;
        writeln!(
            f,
            "outbox throughput: {} messages per round (SMS/email alternating, confirmations and reminders), {} synthetic clients, {} rounds (order alternating)",
            o.messages, o.clients, o.rounds
        )?;
        for (i, r) in self.rounds.iter().enumerate() {
            writeln!(
                f,
                "round {}: queue {:>7.0}/s  outbox {:>7.0}/s ({} passes)  adapters {:>7.0}/s  raw {:>7.0}/s",
                i + 1,
                r.queue.rate(),
                r.outbox.rate(),
                r.passes,
                r.adapters.rate(),
                r.raw.rate()
            )?;
        }
        let (ob, ad, raw, q) = (
            self.best(|r| r.outbox),
            self.best(|r| r.adapters),
            self.best(|r| r.raw),
            self.best(|r| r.queue),
        );
        writeln!(
            f,
            "best   : queue {q:.0}/s, outbox {ob:.0}/s, adapters (gate + scanner) {ad:.0}/s, raw HTTP {raw:.0}/s"
        )?;
        let (mo, ma, mr) = (
            self.median(|r| r.outbox),
            self.median(|r| r.adapters),
            self.median(|r| r.raw),
        );
        writeln!(
            f,
            "median : outbox {mo:.0}/s, adapters {ma:.0}/s, raw {mr:.0}/s"
        )?;
        writeln!(
            f,
            "ratios (best): outbox / raw = {:.2}, adapters / raw = {:.2}, outbox / adapters = {:.2}",
            ob / raw.max(1e-9),
            ad / raw.max(1e-9),
            ob / ad.max(1e-9)
        )?;
        write!(
            f,
            "stand-ins received {} SMS and {} emails",
            self.received.0, self.received.1
        )
    }
}

/// A queued message's plan: which client, which channel, which template.
#[derive(Clone)]
struct Planned {
    patient: domain::PatientId,
    channel: Channel,
    reminder: bool,
    phone: String,
    email: String,
}

fn synthetic_time(day: DateTime<Utc>) -> chrono::NaiveDateTime {
    (day + chrono::Duration::days(3)).naive_utc()
}

fn render(
    p: &Planned,
    practice: &PracticeName,
    origin: &LinkOrigin,
    day: DateTime<Utc>,
) -> Message {
    let time = AppointmentTime::new(synthetic_time(day));
    let link = OpaqueLink::new(origin, LinkPurpose::Manage, &LinkToken::generate());
    if p.reminder {
        Message::BookingReminder {
            practice: practice.clone(),
            time,
            link,
        }
    } else {
        Message::BookingConfirmed {
            practice: practice.clone(),
            time,
            link,
        }
    }
}

/// Runs the benchmark.
///
/// # Errors
/// A fixture that cannot be built, a send that fails, or counts that do not add up.
#[expect(clippy::too_many_lines, reason = "one benchmark, read top to bottom")]
pub async fn run(o: OutboxBenchOptions) -> anyhow::Result<OutboxBenchReport> {
    ensure!(
        o.messages > 0 && o.rounds > 0,
        "messages and rounds must be positive"
    );
    ensure!(
        o.clients > 0 && o.messages <= o.clients * 4,
        "at most 4 messages per client per round (the default daily cap): raise --clients"
    );
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let practice = w.a.id;
    let owner = db.owner().await;
    let store = db.store().await;
    let keyring = db.keyring(pgcluster::DbRole::Runtime).await;
    let mut generator = domain::synthetic::Generator::new(1919);
    let mut clients = Vec::with_capacity(o.clients);
    let mut known = Vec::with_capacity(o.clients);
    for _ in 0..o.clients {
        let p = generator.patient();
        let phone: String = p.phone.chars().filter(|c| *c != ' ').collect();
        let email = p.email.clone();
        known.push(KnownClient {
            given: p.given_name.clone(),
            family: p.family_name.clone(),
            phones: vec![phone.clone()],
            emails: vec![email.clone()],
            ..KnownClient::default()
        });
        let id = owner
            .seed_patient(
                practice,
                &store::patients::NewPatient {
                    given_name: p.given_name,
                    family_name: p.family_name,
                    date_of_birth: Some(p.date_of_birth),
                    phone: Some(phone.clone()),
                    email: Some(email.clone()),
                },
                Utc::now(),
            )
            .await
            .context("seeding a client")?;
        clients.push((id, phone, email));
    }
    let telnyx = TelnyxStandIn::start(TELNYX_KEY).await;
    let resend = ResendStandIn::start(RESEND_KEY).await;
    let sms: Arc<dyn SmsCarrier> = Arc::new(Telnyx::new(TelnyxConfig {
        base_url: url::Url::parse(&telnyx.url())?,
        api_key: ApiKey::new(TELNYX_KEY.to_owned()),
        sender: TelnyxSender::Number(PhoneNumber::parse(OWN_NUMBER)?),
        callback: url::Url::parse(CALLBACK)?,
        limits: egress::messaging_limits(),
    })?);
    let mail: Arc<dyn Mailer> = Arc::new(egress::resend::ResendMailer::new(
        &resend.url(),
        ApiKey::new(RESEND_KEY.into()),
        EmailAddress::parse(SENDER)?,
        Duration::from_secs(10),
    )?);
    let origin = LinkOrigin::parse(ORIGIN)?;
    let own_phone = PracticePhone::new(OWN_NUMBER)?;
    let job = Outbox::new(
        owner.clone(),
        Channels {
            sms: Some(Arc::clone(&sms)),
            email: Some(Arc::clone(&mail)),
            push: None,
        },
        origin.clone(),
        OwnContacts {
            phones: vec![own_phone.clone()],
            emails: vec![SENDER.into()],
        },
        Duration::from_secs(1),
    );
    // The practice's name as the job reads it (World names it "Practice a").
    let practice_name = PracticeName::new("Practice a")?;
    let raw_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let reception = crate::session_token(&store, w.a.user("reception")).await;

    let plan: Vec<Planned> = (0..o.messages)
        .map(|i| {
            let (patient, phone, email) = clients[i % clients.len()].clone();
            Planned {
                patient,
                channel: if i % 2 == 0 {
                    Channel::Sms
                } else {
                    Channel::Email
                },
                reminder: i % 4 >= 2,
                phone,
                email,
            }
        })
        .collect();
    let first_day = {
        let d = (Utc::now() + chrono::Duration::days(1)).date_naive();
        Utc.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap_or_default())
    };

    let mut rounds = Vec::with_capacity(o.rounds);
    for round in 0..o.rounds {
        let day = first_day + chrono::Duration::days(i64::try_from(round)?);
        // Queue (not part of the send measurement; reported on its own).
        let started = Instant::now();
        for chunk in plan.chunks(PER_TX) {
            let mut tx = crate::enter_practice(&store, &reception, practice).await?;
            for p in chunk {
                let m = NewMessage {
                    patient: Some(p.patient),
                    template: if p.reminder {
                        "booking_reminder"
                    } else {
                        "booking_confirmed"
                    },
                    channel: p.channel,
                    cause: Cause::OnlineBooking,
                    cause_id: uuid::Uuid::new_v4(),
                    recipient: Recipient(match p.channel {
                        Channel::Sms => p.phone.clone(),
                        _ => p.email.clone(),
                    }),
                    slots: Slots {
                        time: Some(synthetic_time(day)),
                        link_token: Some(LinkToken::generate().expose_for_sealing().to_owned()),
                        ..Slots::default()
                    },
                    time_zone: None,
                    not_before: None,
                };
                ensure!(
                    store::outbox::enqueue(&mut tx, &keyring, &m).await?,
                    "a message was not queued"
                );
            }
            tx.commit().await?;
        }
        let queue = Measured {
            messages: o.messages,
            elapsed: started.elapsed(),
        };

        let mut outbox = None;
        let mut passes = 0;
        let mut adapters = None;
        let mut raw = None;
        let order: [u8; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for path in order {
            match path {
                0 => {
                    let started = Instant::now();
                    let mut sent = 0u64;
                    loop {
                        let r = job
                            .pass(Some(practice), day)
                            .await
                            .map_err(|e| anyhow::anyhow!("outbox pass: {e}"))?;
                        passes += 1;
                        ensure!(
                            r.failed + r.refused + r.retried + r.deferred + r.uncertain + r.skipped
                                == 0,
                            "the outbox did not send everything: {r:?}"
                        );
                        if r.sent == 0 {
                            break;
                        }
                        sent += r.sent;
                    }
                    let elapsed = started.elapsed();
                    if sent != u64::try_from(o.messages)? {
                        bail!("the outbox sent {sent} of {}", o.messages);
                    }
                    outbox = Some(Measured {
                        messages: o.messages,
                        elapsed,
                    });
                }
                1 => {
                    // The scanner as the job builds it (the practice's clients, its origin,
                    // its own contacts), built outside the measurement.
                    let scanner = Scanner::new(
                        &known,
                        [origin.host().to_owned()],
                        std::slice::from_ref(&own_phone),
                        &[SENDER.to_owned()],
                        Some(&practice_name),
                    )?;
                    let started = Instant::now();
                    for p in &plan {
                        let rendered = render(p, &practice_name, &origin, day).render();
                        let key = IdempotencyKey(uuid::Uuid::new_v4());
                        if p.channel == Channel::Sms {
                            let to = PhoneNumber::parse(&p.phone)?;
                            sms.send_sms(
                                &scanner,
                                SmsRequest {
                                    to: &to,
                                    body: rendered.sms(),
                                    key,
                                },
                            )
                            .await
                            .map_err(|e| anyhow::anyhow!("adapter SMS: {e}"))?;
                        } else {
                            let to = EmailAddress::parse(&p.email)?;
                            mail.send_email(
                                &scanner,
                                EmailRequest {
                                    to: &to,
                                    body: rendered.email(),
                                    key,
                                },
                            )
                            .await
                            .map_err(|e| anyhow::anyhow!("adapter email: {e}"))?;
                        }
                    }
                    adapters = Some(Measured {
                        messages: o.messages,
                        elapsed: started.elapsed(),
                    });
                }
                _ => {
                    let started = Instant::now();
                    for p in &plan {
                        let rendered = render(p, &practice_name, &origin, day).render();
                        let key = uuid::Uuid::new_v4();
                        let request = match p.channel {
                            Channel::Sms => raw_client
                                .post(format!("{}/v2/messages", telnyx.url()))
                                .bearer_auth(TELNYX_KEY)
                                .json(&serde_json::json!({
                                    "from": OWN_NUMBER,
                                    "to": p.phone,
                                    "text": rendered.sms().as_str(),
                                    "webhook_url": format!("{CALLBACK}?key={key}"),
                                    "use_profile_webhooks": false,
                                })),
                            _ => raw_client
                                .post(format!("{}/emails", resend.url()))
                                .bearer_auth(RESEND_KEY)
                                .header("Idempotency-Key", key.to_string())
                                .json(&serde_json::json!({
                                    "from": SENDER,
                                    "to": [p.email],
                                    "subject": rendered.email().subject(),
                                    "text": rendered.email().text(),
                                })),
                        };
                        let reply = request.send().await?;
                        ensure!(
                            reply.status().is_success(),
                            "raw send answered {}",
                            reply.status()
                        );
                        let _ = reply.bytes().await?;
                    }
                    raw = Some(Measured {
                        messages: o.messages,
                        elapsed: started.elapsed(),
                    });
                }
            }
        }
        let (Some(outbox), Some(adapters), Some(raw)) = (outbox, adapters, raw) else {
            bail!("a path did not run");
        };
        rounds.push(Round {
            queue,
            outbox,
            passes,
            adapters,
            raw,
        });
    }
    let received = (telnyx.messages().len(), resend.emails().len());
    let sms_each = o.messages.div_ceil(2);
    let expected = (
        sms_each * 3 * o.rounds,
        (o.messages - sms_each) * 3 * o.rounds,
    );
    ensure!(
        received == expected,
        "the stand-ins received {received:?}, expected {expected:?}"
    );
    owner.close().await;
    Ok(OutboxBenchReport {
        options: o,
        rounds,
        received,
    })
}
