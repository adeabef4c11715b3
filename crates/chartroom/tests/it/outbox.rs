//! Issue 19.2, the durable outbox: a message is queued in the transaction of its cause (and
//! rolled back with it), sent by the outbox job through the loopback provider stand-ins,
//! retried with backoff, never sent twice across a crash, deferred by quiet hours and the
//! daily cap, skipped for opted-out numbers, and refused (and audited without the payload)
//! by the outbound scanner.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use egress::ApiKey;
use egress::outbound::{LinkOrigin, LinkToken};
use egress::send::{
    EmailRequest, Idempotency, Mailer, PhoneNumber, Receipt, SendError, SmsCarrier, SmsRequest,
};
use egress::telnyx::{Telnyx, TelnyxConfig, TelnyxSender};
use server::jobs::outbox::{Channels, LEASE, Outbox, OwnContacts};
use sqlx::PgConnection;
use store::outbox::{Cause, Channel, NewMessage, Recipient, Slots};
use testkit::mailpay_standins::ResendStandIn;
use testkit::messaging_standins::{MessagingReply, TelnyxStandIn};
use testkit::{TestDb, World};

pub const OWN_NUMBER: &str = "+15550100999";
pub const SENDER: &str = "appointments@practice-a.example.invalid";
pub const ORIGIN: &str = "https://book.practice-a.example.invalid";
pub const TELNYX_KEY: &str = "KEY0123456789ABCDEF";
pub const CALLBACK: &str = "https://chartroom.example.invalid/webhooks/telnyx";
/// The synthetic client's contacts.
pub const CLIENT_PHONE: &str = "+15550100177";
pub const CLIENT_EMAIL: &str = "river.stone@patients.example.invalid";

/// Tomorrow at `hour`:00 UTC (the practice's zone is UTC): after anything queued now.
pub fn tomorrow_at(hour: u32) -> DateTime<Utc> {
    let day = (Utc::now() + chrono::Duration::days(1)).date_naive();
    Utc.from_utc_datetime(&day.and_hms_opt(hour, 0, 0).unwrap())
}

pub struct Harness {
    pub db: TestDb,
    pub w: World,
    pub owner: store::OwnerStore,
    pub keyring: Arc<store::crypto::Keyring>,
    pub store: store::Store,
    pub telnyx: TelnyxStandIn,
    pub resend: ResendStandIn,
    pub client: domain::PatientId,
}

impl Harness {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let w = World::build(&db).await;
        let owner = db.owner().await;
        let client = owner
            .seed_patient(
                w.a.id,
                &store::patients::NewPatient {
                    given_name: "River".into(),
                    family_name: "Stonebridge".into(),
                    date_of_birth: None,
                    phone: Some(CLIENT_PHONE.into()),
                    email: Some(CLIENT_EMAIL.into()),
                },
                Utc::now(),
            )
            .await
            .unwrap();
        let keyring = db.keyring(pgcluster::DbRole::Runtime).await;
        let store = db.store().await;
        let telnyx = TelnyxStandIn::start(TELNYX_KEY).await;
        let resend = ResendStandIn::start("re_test_key").await;
        Self {
            db,
            w,
            owner,
            keyring,
            store,
            telnyx,
            resend,
            client,
        }
    }

    pub fn sms(&self) -> Arc<dyn SmsCarrier> {
        Arc::new(
            Telnyx::new(TelnyxConfig {
                base_url: url::Url::parse(&self.telnyx.url()).unwrap(),
                api_key: ApiKey::new(TELNYX_KEY.to_owned()),
                sender: TelnyxSender::Number(PhoneNumber::parse(OWN_NUMBER).unwrap()),
                callback: url::Url::parse(CALLBACK).unwrap(),
                limits: egress::messaging_limits(),
            })
            .unwrap(),
        )
    }

    pub fn email(&self) -> Arc<dyn Mailer> {
        Arc::new(
            egress::resend::ResendMailer::new(
                &self.resend.url(),
                ApiKey::new("re_test_key".into()),
                egress::send::EmailAddress::parse(SENDER).unwrap(),
                Duration::from_secs(10),
            )
            .unwrap(),
        )
    }

    pub fn job_with(&self, channels: Channels) -> Outbox {
        Outbox::new(
            self.owner.clone(),
            channels,
            LinkOrigin::parse(ORIGIN).unwrap(),
            OwnContacts {
                phones: vec![egress::outbound::PracticePhone::new(OWN_NUMBER).unwrap()],
                emails: vec![SENDER.into()],
            },
            Duration::from_secs(1),
        )
    }

    pub fn job(&self) -> Outbox {
        self.job_with(Channels {
            sms: Some(self.sms()),
            email: Some(self.email()),
            push: None,
        })
    }

    pub async fn tx(&self, role: &str) -> store::TenantTx {
        let token = testkit::session_token(&self.store, self.w.a.user(role)).await;
        testkit::enter_practice(&self.store, &token, self.w.a.id)
            .await
            .unwrap()
    }

    pub fn message(&self, channel: Channel, cause_id: uuid::Uuid) -> NewMessage {
        NewMessage {
            patient: Some(self.client),
            template: "booking_confirmed",
            channel,
            cause: Cause::OnlineBooking,
            cause_id,
            recipient: Recipient(
                match channel {
                    Channel::Sms => CLIENT_PHONE,
                    _ => CLIENT_EMAIL,
                }
                .into(),
            ),
            slots: Slots {
                time: Some(tomorrow_at(0).naive_utc() + chrono::Duration::days(2)),
                link_token: Some(LinkToken::generate().expose_for_sealing().to_owned()),
                ..Slots::default()
            },
            time_zone: None,
            not_before: None,
        }
    }

    /// Queues `channel` messages (committed, as reception); their cause ids.
    pub async fn queue(&self, channel: Channel, n: usize) -> Vec<uuid::Uuid> {
        let mut tx = self.tx("reception").await;
        let mut ids = Vec::new();
        for _ in 0..n {
            let id = uuid::Uuid::new_v4();
            assert!(
                store::outbox::enqueue(&mut tx, &self.keyring, &self.message(channel, id))
                    .await
                    .unwrap()
            );
            ids.push(id);
        }
        tx.commit().await.unwrap();
        ids
    }

    pub async fn su(&self) -> PgConnection {
        self.db.superuser_unsafe().await
    }
}

/// `(status, attempts, last_error, next_attempt_at)` of the message caused by `cause`.
pub async fn row(
    su: &mut PgConnection,
    cause: uuid::Uuid,
) -> (String, i32, Option<String>, DateTime<Utc>) {
    sqlx::query_as(
        "select status, attempts, last_error, next_attempt_at from outbox_message where cause_id = $1",
    )
    .bind(cause)
    .fetch_one(su)
    .await
    .unwrap()
}

// req: EGR-04 — queued in the transaction of the change: a rollback leaves no message; the
// same message queued twice is one row; recipient and slots are stored sealed.
#[tokio::test]
async fn a_message_is_queued_with_its_cause_and_rolled_back_with_it() {
    let h = Harness::new().await;
    let mut su = h.su().await;

    let cause = uuid::Uuid::new_v4();
    let mut tx = h.tx("reception").await;
    assert!(
        store::outbox::enqueue(&mut tx, &h.keyring, &h.message(Channel::Sms, cause))
            .await
            .unwrap()
    );
    drop(tx);
    assert_eq!(crate::util::count_all(&mut su, "outbox_message").await, 0);

    let mut tx = h.tx("clinician").await;
    let m = h.message(Channel::Email, cause);
    assert!(
        store::outbox::enqueue(&mut tx, &h.keyring, &m)
            .await
            .unwrap()
    );
    assert!(
        !store::outbox::enqueue(&mut tx, &h.keyring, &m)
            .await
            .unwrap(),
        "the same message is queued once"
    );
    tx.commit().await.unwrap();
    assert_eq!(crate::util::count_all(&mut su, "outbox_message").await, 1);
    let (r, s): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("select recipient_enc, slots_enc from outbox_message")
            .fetch_one(&mut su)
            .await
            .unwrap();
    let hay = format!(
        "{}{}",
        String::from_utf8_lossy(&r),
        String::from_utf8_lossy(&s)
    );
    assert!(!hay.contains("river.stone") && !hay.contains("link_token"));

    // A template outside the catalogue is refused.
    let mut tx = h.tx("reception").await;
    let mut bad = h.message(Channel::Sms, uuid::Uuid::new_v4());
    bad.template = "free_text";
    assert!(matches!(
        store::outbox::enqueue(&mut tx, &h.keyring, &bad).await,
        Err(store::StoreError::Invalid(_))
    ));
}

// req: EGR-04 — the job sends through the stand-ins with the row's key, records the
// provider's id, audits `outbox.send` without contacts, and a pass with nothing due sends
// nothing.
#[tokio::test]
async fn the_job_sends_queued_messages_through_the_stand_ins() {
    let h = Harness::new().await;
    let sms = h.queue(Channel::Sms, 1).await[0];
    let email = h.queue(Channel::Email, 1).await[0];
    let job = h.job();
    let noon = tomorrow_at(12);
    let report = job.pass(Some(h.w.a.id), noon).await.unwrap();
    assert_eq!(report.sent, 2, "{report:?}");
    let sent = h.telnyx.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, CLIENT_PHONE);
    assert!(
        sent[0]
            .text
            .starts_with("Practice a: your appointment is booked")
    );
    assert!(sent[0].text.contains(&format!("{ORIGIN}/manage/")));
    let emails = h.resend.emails();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].to, vec![CLIENT_EMAIL.to_owned()]);

    let mut su = h.su().await;
    for cause in [sms, email] {
        let (status, attempts, err, _) = row(&mut su, cause).await;
        assert_eq!((status.as_str(), attempts, err), ("sent", 1, None));
    }
    let provider_id: String =
        sqlx::query_scalar("select provider_message_id from outbox_message where cause_id = $1")
            .bind(sms)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(provider_id, sent[0].id);
    let details: Vec<serde_json::Value> = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action = 'outbox.send'",
    )
    .bind(h.w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(details.len(), 2);
    for d in details {
        let t = d.to_string();
        assert!(!t.contains("0177") && !t.contains("river"), "{t}");
    }

    // Nothing due: nothing sent again.
    let again = job.pass(Some(h.w.a.id), noon).await.unwrap();
    assert_eq!(again.sent, 0);
    assert_eq!(h.telnyx.requests(), 1);
}

// req: EGR-04 — a retryable failure goes back to the queue with exponential backoff; the
// message is not taken before its time; after the last attempt it fails; a rejection fails
// at once.
#[tokio::test]
async fn retryable_failures_back_off_and_rejections_fail() {
    let h = Harness::new().await;
    let cause = h.queue(Channel::Sms, 1).await[0];
    let job = h.job();
    let mut su = h.su().await;
    let t0 = tomorrow_at(10);

    h.telnyx.script(MessagingReply::Status(503));
    job.pass(Some(h.w.a.id), t0).await.unwrap();
    let (status, attempts, err, next) = row(&mut su, cause).await;
    assert_eq!(
        (status.as_str(), attempts, err.as_deref()),
        ("queued", 1, Some("retry"))
    );
    assert_eq!(next, t0 + chrono::Duration::seconds(30));

    // Not before its time.
    job.pass(Some(h.w.a.id), t0 + chrono::Duration::seconds(20))
        .await
        .unwrap();
    assert_eq!(h.telnyx.requests(), 1);

    h.telnyx.script(MessagingReply::RateLimited {
        retry_after_secs: 300,
    });
    let t1 = t0 + chrono::Duration::seconds(31);
    job.pass(Some(h.w.a.id), t1).await.unwrap();
    let (status, attempts, _, next) = row(&mut su, cause).await;
    assert_eq!((status.as_str(), attempts), ("queued", 2));
    assert_eq!(
        next,
        t1 + chrono::Duration::seconds(300),
        "Retry-After wins over a shorter backoff"
    );

    // Then it goes through.
    job.pass(Some(h.w.a.id), next).await.unwrap();
    let (status, attempts, err, _) = row(&mut su, cause).await;
    assert_eq!((status.as_str(), attempts, err), ("sent", 3, None));
    assert_eq!(h.telnyx.messages().len(), 1);

    // A rejection fails for good.
    let rejected = h.queue(Channel::Sms, 1).await[0];
    h.telnyx.script(MessagingReply::Status(422));
    job.pass(Some(h.w.a.id), next).await.unwrap();
    let (status, _, err, _) = row(&mut su, rejected).await;
    assert_eq!(
        (status.as_str(), err.as_deref()),
        ("failed", Some("rejected"))
    );

    // Retryable failures until the last attempt: failed, not retried for ever.
    let tiring = h.queue(Channel::Sms, 1).await[0];
    let mut t = next;
    for _ in 0..server::jobs::outbox::MAX_ATTEMPTS {
        h.telnyx.script(MessagingReply::Status(500));
        job.pass(Some(h.w.a.id), t).await.unwrap();
        t += chrono::Duration::days(1);
    }
    let (status, attempts, err, _) = row(&mut su, tiring).await;
    assert_eq!(
        (status.as_str(), attempts, err.as_deref()),
        (
            "failed",
            server::jobs::outbox::MAX_ATTEMPTS,
            Some("max_attempts")
        )
    );
}

/// A carrier or mailer that hands the message to the real adapter and then never returns:
/// the job is "killed" while the call is in flight, after the provider has it.
struct CrashAfterSend<T: ?Sized> {
    inner: Arc<T>,
    sent: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl SmsCarrier for CrashAfterSend<dyn SmsCarrier> {
    fn vendor(&self) -> &'static str {
        self.inner.vendor()
    }
    fn idempotency(&self) -> Idempotency {
        self.inner.idempotency()
    }
    async fn send_sms(
        &self,
        scanner: &egress::outbound::Scanner,
        sms: SmsRequest<'_>,
    ) -> Result<Receipt, SendError> {
        self.inner.send_sms(scanner, sms).await?;
        self.sent.notify_one();
        std::future::pending().await
    }
}

#[async_trait::async_trait]
impl Mailer for CrashAfterSend<dyn Mailer> {
    fn vendor(&self) -> &'static str {
        self.inner.vendor()
    }
    fn idempotency(&self) -> Idempotency {
        self.inner.idempotency()
    }
    async fn send_email(
        &self,
        scanner: &egress::outbound::Scanner,
        email: EmailRequest<'_>,
    ) -> Result<Receipt, SendError> {
        self.inner.send_email(scanner, email).await?;
        self.sent.notify_one();
        std::future::pending().await
    }
}

// req: EGR-04 — a crash after the provider took a message and before the outbox settled it:
// that row alone stays `sending` (the others of the pass stay queued and go out later); after
// its lease a restarted job repeats it with the same key only where the provider deduplicates
// (Resend: the stand-in keeps one email), and marks it `uncertain` where a repeat would send
// again (Telnyx: still one SMS). Nothing is sent twice, nothing else is held back.
#[tokio::test]
async fn a_send_interrupted_by_a_crash_is_never_sent_twice() {
    let h = Harness::new().await;
    let email = h.queue(Channel::Email, 1).await[0];
    let sms = h.queue(Channel::Sms, 1).await[0];
    let noon = tomorrow_at(12);
    let mut su = h.su().await;

    // Email first (queued first), killed after Resend took it.
    let sent = Arc::new(tokio::sync::Notify::new());
    let crashing = h.job_with(Channels {
        sms: Some(Arc::new(CrashAfterSend {
            inner: h.sms(),
            sent: sent.clone(),
        })),
        email: Some(Arc::new(CrashAfterSend {
            inner: h.email(),
            sent: sent.clone(),
        })),
        push: None,
    });
    tokio::select! {
        _ = crashing.pass(Some(h.w.a.id), noon) => panic!("the pass cannot finish"),
        () = sent.notified() => {}
    }
    drop(crashing);
    assert_eq!(h.resend.emails().len(), 1);
    assert_eq!(row(&mut su, email).await.0, "sending");
    // Only the message in flight was marked `sending`: the SMS is still queued.
    assert_eq!(row(&mut su, sms).await.0, "queued");

    // After the email's lease, a restarted job repeats it with the same key (Resend keeps
    // one) and sends the SMS, which no crash touched.
    let later = noon + LEASE + chrono::Duration::minutes(1);
    let report = h.job().pass(Some(h.w.a.id), later).await.unwrap();
    assert_eq!((report.sent, report.uncertain), (2, 0), "{report:?}");
    assert_eq!(
        h.resend.emails().len(),
        1,
        "Resend kept one email for the key"
    );
    assert_eq!(h.telnyx.messages().len(), 1);
    assert_eq!(row(&mut su, email).await.0, "sent");
    assert_eq!(row(&mut su, sms).await.0, "sent");

    // An SMS killed after Telnyx took it: marked uncertain, never repeated.
    let sms2 = h.queue(Channel::Sms, 1).await[0];
    let crashing = h.job_with(Channels {
        sms: Some(Arc::new(CrashAfterSend {
            inner: h.sms(),
            sent: sent.clone(),
        })),
        email: Some(h.email()),
        push: None,
    });
    tokio::select! {
        _ = crashing.pass(Some(h.w.a.id), later) => panic!("the pass cannot finish"),
        () = sent.notified() => {}
    }
    drop(crashing);
    let restarted = h.job();
    let report = restarted
        .pass(Some(h.w.a.id), later + LEASE + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(report.uncertain, 1, "{report:?}");
    assert_eq!(h.telnyx.messages().len(), 2, "the second SMS went out once");
    assert_eq!(row(&mut su, sms2).await.0, "uncertain");
}

// req: EGR-04 — quiet hours (08:00–20:00 in the client's zone by default) defer, never drop;
// the daily cap defers to the next day's opening.
#[tokio::test]
async fn quiet_hours_and_the_daily_cap_defer_messages() {
    let h = Harness::new().await;
    let job = h.job();
    let mut su = h.su().await;

    let cause = h.queue(Channel::Sms, 1).await[0];
    let night = tomorrow_at(22);
    job.pass(Some(h.w.a.id), night).await.unwrap();
    let (status, attempts, err, next) = row(&mut su, cause).await;
    assert_eq!(
        (status.as_str(), attempts, err.as_deref()),
        ("queued", 0, Some("quiet_hours"))
    );
    assert_eq!(next, tomorrow_at(8) + chrono::Duration::days(1));
    assert_eq!(h.telnyx.requests(), 0);

    // The client's own zone wins over the practice's: 22:00 UTC is 14:00 in Los Angeles.
    let mut tx = h.tx("reception").await;
    let mut m = h.message(Channel::Sms, uuid::Uuid::new_v4());
    m.time_zone = Some("America/Los_Angeles".parse().unwrap());
    let west = m.cause_id;
    store::outbox::enqueue(&mut tx, &h.keyring, &m)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    job.pass(Some(h.w.a.id), night).await.unwrap();
    assert_eq!(row(&mut su, west).await.0, "sent");

    // Cap: one message per client per day.
    let mut tx = h.tx("owner").await;
    store::outbox::put_settings(
        &mut tx,
        &store::outbox::OutboxSettings {
            daily_cap: 1,
            ..store::outbox::OutboxSettings::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let next_morning = tomorrow_at(8) + chrono::Duration::days(1);
    let more = h.queue(Channel::Email, 2).await;
    job.pass(Some(h.w.a.id), next_morning).await.unwrap();
    // Three messages due for one client (the night's deferred SMS and two emails): one goes,
    // two wait for the next day's opening.
    let mut rows = Vec::new();
    for c in [cause, more[0], more[1]] {
        rows.push(row(&mut su, c).await);
    }
    let sent = rows.iter().filter(|r| r.0 == "sent").count();
    let capped: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "queued" && r.2.as_deref() == Some("cap"))
        .collect();
    assert_eq!((sent, capped.len()), (1, 2), "{rows:?}");
    for r in capped {
        assert_eq!(r.3, next_morning + chrono::Duration::days(1));
    }
}

// req: EGR-05 — a number that texted STOP gets no SMS (skipped, nothing sent); after START it
// does; email is not affected.
#[tokio::test]
async fn opted_out_numbers_are_skipped_until_start() {
    let h = Harness::new().await;
    let job = h.job();
    let mut su = h.su().await;
    let noon = tomorrow_at(12);
    assert!(
        h.owner
            .set_sms_opt_out(h.w.a.id, "+1 555 010 0177", true, Utc::now())
            .await
            .unwrap()
    );
    let sms = h.queue(Channel::Sms, 1).await[0];
    let email = h.queue(Channel::Email, 1).await[0];
    job.pass(Some(h.w.a.id), noon).await.unwrap();
    let (status, _, err, _) = row(&mut su, sms).await;
    assert_eq!(
        (status.as_str(), err.as_deref()),
        ("skipped", Some("opted_out"))
    );
    assert_eq!(row(&mut su, email).await.0, "sent");
    assert_eq!(h.telnyx.requests(), 0);
    let tags: Vec<Vec<u8>> = sqlx::query_scalar("select phone_tag from sms_opt_out")
        .fetch_all(&mut su)
        .await
        .unwrap();
    assert_eq!(tags.len(), 1);
    assert!(!String::from_utf8_lossy(&tags[0]).contains("0177"));

    h.owner
        .set_sms_opt_out(h.w.a.id, CLIENT_PHONE, false, Utc::now())
        .await
        .unwrap();
    let again = h.queue(Channel::Sms, 1).await[0];
    job.pass(Some(h.w.a.id), noon).await.unwrap();
    assert_eq!(row(&mut su, again).await.0, "sent");
}

// req: EGR-02 — a message whose final bytes carry a client's name is refused by the scanner:
// nothing reaches the provider, the row is `refused`, and the audit event names the kind of
// finding and never the payload.
#[tokio::test]
async fn a_scanner_refusal_is_audited_without_the_payload() {
    let h = Harness::new().await;
    // A synthetic client whose name is the practice's name ("Practice a"): every message of
    // the practice carries it.
    h.owner
        .seed_patient(
            h.w.a.id,
            &store::patients::NewPatient {
                given_name: "Practice".into(),
                family_name: "A".into(),
                date_of_birth: None,
                phone: None,
                email: None,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let cause = h.queue(Channel::Sms, 1).await[0];
    let report = h.job().pass(Some(h.w.a.id), tomorrow_at(12)).await.unwrap();
    assert_eq!(report.refused, 1, "{report:?}");
    assert_eq!(h.telnyx.requests(), 0, "nothing reached the provider");
    let mut su = h.su().await;
    let (status, _, err, _) = row(&mut su, cause).await;
    assert_eq!(
        (status.as_str(), err.as_deref()),
        ("refused", Some("scanner"))
    );
    let (details, object): (serde_json::Value, uuid::Uuid) = sqlx::query_as(
        "select details, object_id from audit_event where practice_id = $1 and action = 'outbox.refused'",
    )
    .bind(h.w.a.id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(details, serde_json::json!({"finding": "client_name"}));
    let id: uuid::Uuid =
        sqlx::query_scalar("select message_id from outbox_message where cause_id = $1")
            .bind(cause)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(object, id);
}
