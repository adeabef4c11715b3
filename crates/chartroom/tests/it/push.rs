//! Issue 19.3, Web Push, content-free: staff register their browsers' push subscriptions
//! (checked: the endpoint's host must be a push service the registry allows, sizes limited;
//! sealed per practice and member), the outbox job queues one update per subscription of a
//! clinician or receptionist when an intake form waits for review, and sends it through the
//! RFC 8291 adapter to the loopback push-service stand-in, which checks the RFC 8030 request
//! (`TTL`, `Content-Encoding: aes128gcm`, VAPID) and decrypts the payload with the
//! subscription's private key: the one content-free sentence, no PHI. A `410` from the push
//! service deletes the subscription. Beyond intake review, staff get the same update for a
//! new online booking, an accepted waitlist offer, a client's cancellation and a payment that
//! needs them, by role ([`store::push`]'s table), never for another practice's events.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use domain::Clock as _;
use egress::outbound::{LinkOrigin, PushPayload};
use egress::webpush::{Urgency, VapidKey, WebPush, WebPushConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::jobs::outbox::{Channels, Outbox, OwnContacts};
use testkit::messaging_standins::{PushServiceStandIn, StandInSubscription};
use testkit::{TestApp, TestDb, World};

use crate::sealed_columns::as_member;
use crate::util::call;
use crate::web_pages::client;

const ORIGIN: &str = "https://book.practice-a.example.invalid";
const SUBJECT: &str = "mailto:operator@chartroom.example.invalid";

/// Tomorrow at noon UTC (the practice's zone): inside the sending window, after anything
/// queued now.
fn noon_tomorrow() -> DateTime<Utc> {
    let day = (Utc::now() + chrono::Duration::days(1)).date_naive();
    Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).unwrap())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn body(sub: &StandInSubscription) -> Value {
    json!({"endpoint": sub.endpoint, "expirationTime": null,
           "keys": {"p256dh": b64(&sub.p256dh), "auth": b64(&sub.auth)}})
}

struct Harness {
    db: TestDb,
    w: World,
    app: TestApp,
    service: PushServiceStandIn,
    vapid: VapidKey,
}

impl Harness {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let w = World::build(&db).await;
        let store = db.store().await;
        // The installation's VAPID key: made on first use, the same afterwards.
        let vapid = store.vapid_key().await.unwrap();
        assert_eq!(
            store.vapid_key().await.unwrap().public_key(),
            vapid.public_key()
        );
        let app = TestApp::start_with_push(
            store,
            server::PushSettings {
                application_server_key: vapid.public_key_base64url(),
                hosts: vec!["127.0.0.1".into()],
            },
        )
        .await;
        let service = PushServiceStandIn::start().await;
        Self {
            db,
            w,
            app,
            service,
            vapid,
        }
    }

    fn base(&self) -> String {
        format!("/api/v1/practices/{}/push-subscriptions", self.w.a.id)
    }

    /// Registers a stand-in subscription for `role`; returns it and its id.
    async fn subscribe(&self, role: &str) -> (StandInSubscription, String) {
        let sub = self.service.subscribe();
        let t = self.app.token(self.w.a.user(role)).await;
        let (s, row) = call(
            &self.app,
            Method::POST,
            &self.base(),
            Some(&t),
            Some(&body(&sub)),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{row}");
        assert_eq!(row["endpoint_host"], "127.0.0.1");
        (sub, row["subscription_id"].as_str().unwrap().to_owned())
    }

    /// A client signs an intake form of A's patient: a form waits for review.
    async fn intake_submitted(&self) {
        let mut tx = as_member(
            &self.app,
            &self.app.store,
            self.w.a.user("reception"),
            self.w.a.id,
        )
        .await;
        let made =
            store::intake::create_intake_link(&mut tx, self.w.a.patient, "consent_to_treatment")
                .await
                .unwrap()
                .unwrap();
        tx.commit().await.unwrap();
        let url = made.url(&LinkOrigin::parse(ORIGIN).unwrap());
        let token = url.as_str().rsplit('/').next().unwrap().to_owned();
        let res = client()
            .post(self.app.url(&format!("/intake/{token}")))
            .header("sec-fetch-site", "same-origin")
            .form(&[
                ("full_name", "Ada Example"),
                ("date_of_birth", "1980-05-06"),
                ("understand_treatment", "yes"),
                ("consent_treatment", "yes"),
                ("withdraw", "yes"),
                ("questions", "Push-canary-Qx7"),
                ("esign_consent", "yes"),
                ("signer_name", "Ada Example"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// The outbox job with Web Push as its only channel.
    async fn outbox(&self) -> Outbox {
        push_only_outbox(self.db.owner().await, &self.vapid)
    }
}

/// The outbox job on `owner` with Web Push (signed with `vapid`) as its only channel.
fn push_only_outbox(owner: store::OwnerStore, vapid: &VapidKey) -> Outbox {
    let sender = WebPush::new(WebPushConfig {
        vapid: vapid.clone(),
        subject: SUBJECT.into(),
        ttl: Duration::from_secs(86_400),
        urgency: Urgency::Normal,
        clock: Arc::new(domain::SystemClock),
        limits: egress::Limits {
            timeout: Duration::from_secs(5),
            ..egress::messaging_limits()
        },
    })
    .unwrap();
    Outbox::new(
        owner,
        Channels {
            push: Some(Arc::new(sender)),
            ..Channels::default()
        },
        LinkOrigin::parse(ORIGIN).unwrap(),
        OwnContacts::default(),
        Duration::from_secs(5),
    )
}

async fn push_rows(su: &mut sqlx::PgConnection) -> Vec<(String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "select status, provider, last_error from outbox_message where channel = 'push' order by created_at",
    )
    .fetch_all(su)
    .await
    .unwrap()
}

// req: EGR-03 — every push payload equals the content-free template: end to end from a
// client's intake form through the outbox to the push service, decrypted there.
#[tokio::test]
async fn a_push_update_goes_through_the_outbox_to_the_push_service_and_carries_no_phi() {
    let h = Harness::new().await;
    let reception = h.app.token(h.w.a.user("reception")).await;
    let (s, list) = call(&h.app, Method::GET, &h.base(), Some(&reception), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        list["application_server_key"],
        h.vapid.public_key_base64url().as_str()
    );
    assert_eq!(list["subscriptions"], json!([]));

    let (sub, id) = h.subscribe("reception").await;
    // The owner holds no scheduling role: no intake updates for them.
    let (owner_sub, _) = h.subscribe("owner").await;
    let (s, list) = call(&h.app, Method::GET, &h.base(), Some(&reception), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        list["subscriptions"].as_array().unwrap().len(),
        1,
        "own only"
    );
    assert!(
        !list.to_string().contains(&sub.endpoint),
        "no endpoint listed"
    );

    // Sealed at rest: neither the endpoint nor the keys in the clear.
    let mut su = h.db.superuser_unsafe().await;
    let (enc, host): (Vec<u8>, String) = sqlx::query_as(
        "select subscription_enc, endpoint_host from push_subscription where subscription_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(host, "127.0.0.1");
    for needle in [
        sub.endpoint.as_bytes(),
        &sub.p256dh,
        &sub.auth,
        sub.id.as_bytes(),
    ] {
        assert!(!enc.windows(needle.len()).any(|w| w == needle));
    }

    // Nothing waits for review: nothing to push.
    let outbox = h.outbox().await;
    let report = outbox.pass(Some(h.w.a.id), noon_tomorrow()).await.unwrap();
    assert_eq!((report.push_queued, report.sent), (0, 0));

    h.intake_submitted().await;
    let report = outbox.pass(Some(h.w.a.id), noon_tomorrow()).await.unwrap();
    assert_eq!((report.push_queued, report.sent), (1, 1), "{report:?}");
    let received = h.service.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.subscription, sub.id);
    assert_ne!(r.subscription, owner_sub.id);
    assert_eq!(r.plaintext, PushPayload::update().as_bytes());
    assert_eq!(
        String::from_utf8(r.plaintext.clone()).unwrap(),
        r#"{"title":"Update","body":"You have an update."}"#
    );
    // No PHI: not the patient's name, not an answer, not a link or its token.
    let plain = String::from_utf8_lossy(&r.plaintext).to_lowercase();
    for phi in [
        "ada example",
        "push-canary-qx7",
        "http",
        "intake",
        "consent",
    ] {
        assert!(!plain.contains(phi), "{phi} in {plain}");
    }
    assert_eq!(r.ttl, 86_400);
    assert_eq!(r.topic.as_deref(), Some(egress::webpush::TOPIC));
    assert_eq!(r.vapid_subject, SUBJECT);
    assert_eq!(r.vapid_key, h.vapid.public_key_base64url());
    assert_eq!(
        push_rows(&mut su).await,
        vec![("sent".to_owned(), Some("webpush".to_owned()), None)]
    );

    // Once: the next pass queues and sends nothing more for the same form.
    let report = outbox.pass(Some(h.w.a.id), noon_tomorrow()).await.unwrap();
    assert_eq!((report.push_queued, report.sent), (0, 0));
    assert_eq!(h.service.received().len(), 1);
}

// A subscription the push service says is gone (410) is deleted by the job, audited, and
// never pushed to again.
#[tokio::test]
async fn a_410_from_the_push_service_deletes_the_subscription() {
    let h = Harness::new().await;
    let (sub, id) = h.subscribe("clinician").await;
    h.service.expire(&sub.id);
    h.intake_submitted().await;
    let outbox = h.outbox().await;
    let report = outbox.pass(Some(h.w.a.id), noon_tomorrow()).await.unwrap();
    assert_eq!(
        (
            report.push_queued,
            report.sent,
            report.failed,
            report.push_gone
        ),
        (1, 0, 1, 1),
        "{report:?}"
    );
    assert_eq!(h.service.requests(), 1);
    assert!(h.service.received().is_empty());
    let mut su = h.db.superuser_unsafe().await;
    let left: i64 = sqlx::query_scalar("select count(*) from push_subscription")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        push_rows(&mut su).await,
        vec![("failed".to_owned(), None, Some("rejected".to_owned()))]
    );
    let details: Value = sqlx::query_scalar(
        "select details from audit_event where action = 'push.unsubscribe' and object_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(details, json!({"by": "push_service"}));

    // Another form: nothing is queued for the deleted subscription, nothing sent.
    h.intake_submitted().await;
    let report = outbox.pass(Some(h.w.a.id), noon_tomorrow()).await.unwrap();
    assert_eq!((report.push_queued, report.sent), (0, 0));
    assert_eq!(h.service.requests(), 1);
}

// Subscriptions are checked before anything is stored: the endpoint's host must be a push
// service the registry allows; sizes and shapes are limited; 400 and nothing stored.
#[tokio::test]
async fn bad_subscriptions_are_refused_and_nothing_is_stored() {
    let h = Harness::new().await;
    let t = h.app.token(h.w.a.user("clinician")).await;
    let sub = h.service.subscribe();
    let good = body(&sub);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "host not allowed",
            with(&|b| b["endpoint"] = json!("https://push.elsewhere.example.invalid/push/abc")),
        ),
        (
            "plain http off loopback",
            with(&|b| b["endpoint"] = json!("http://push.example.invalid/push/abc")),
        ),
        (
            "credentials",
            with(&|b| b["endpoint"] = json!(sub.endpoint.replace("http://", "http://u:p@"))),
        ),
        (
            "oversize endpoint",
            with(&|b| b["endpoint"] = json!(format!("{}/{}", sub.endpoint, "a".repeat(1100)))),
        ),
        ("not a URL", with(&|b| b["endpoint"] = json!("not a url"))),
        (
            "oversize p256dh",
            with(&|b| b["keys"]["p256dh"] = json!(b64(&[4u8; 66]))),
        ),
        (
            "short p256dh",
            with(&|b| b["keys"]["p256dh"] = json!(b64(&[4u8; 33]))),
        ),
        (
            "huge p256dh",
            with(&|b| b["keys"]["p256dh"] = json!("A".repeat(5000))),
        ),
        (
            "oversize auth",
            with(&|b| b["keys"]["auth"] = json!(b64(&[1u8; 17]))),
        ),
        (
            "auth not base64",
            with(&|b| b["keys"]["auth"] = json!("!!!!")),
        ),
        ("unknown field", with(&|b| b["extra"] = json!(1))),
    ];
    for (what, b) in &cases {
        let (s, v) = call(&h.app, Method::POST, &h.base(), Some(&t), Some(b)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
    }
    let mut su = h.db.superuser_unsafe().await;
    let (rows, events): (i64, i64) = sqlx::query_as(
        "select (select count(*) from push_subscription),
                (select count(*) from audit_event where action = 'push.subscribe')",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((rows, events), (0, 0), "nothing stored");

    // The same endpoint twice is one subscription (the newer keys).
    let (s, first) = call(&h.app, Method::POST, &h.base(), Some(&t), Some(&good)).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, second) = call(&h.app, Method::POST, &h.base(), Some(&t), Some(&good)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_ne!(first["subscription_id"], second["subscription_id"]);
    let rows: i64 = sqlx::query_scalar("select count(*) from push_subscription")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    // Without Web Push on the installation: 409, nothing stored.
    let plain = TestApp::start(&h.db).await;
    let t2 = plain.token(h.w.a.user("clinician")).await;
    let (s, _) = call(
        &plain,
        Method::POST,
        &h.base(),
        Some(&t2),
        Some(&body(&h.service.subscribe())),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

// req: AC-02, AC-03, AC-04 — the push routes: anonymous 401; another practice 404; every
// member manages their own subscriptions only (another member's is 404 and stays).
#[tokio::test]
async fn push_routes_authorization_matrix() {
    let h = Harness::new().await;
    let (_, reception_sub) = h.subscribe("reception").await;
    let base = h.base();
    let outsider = h.app.token(h.w.b.user("owner")).await;
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, base.clone(), None),
        (
            Method::POST,
            base.clone(),
            Some(body(&h.service.subscribe())),
        ),
        (Method::DELETE, format!("{base}/{reception_sub}"), None),
    ];
    for (method, path, b) in &routes {
        let (s, _) = call(&h.app, method.clone(), path, None, b.as_ref()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} anonymous");
        let (s, _) = call(&h.app, method.clone(), path, Some(&outsider), b.as_ref()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path} other practice");
        let cross = path.replace(&h.w.a.id.to_string(), &h.w.b.id.to_string());
        if *method == Method::DELETE {
            let (s, _) = call(&h.app, method.clone(), &cross, Some(&outsider), None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "A's subscription on B's path");
        }
    }
    // Another member of the same practice cannot remove it: 404, it stays.
    let clinician = h.app.token(h.w.a.user("clinician")).await;
    let (s, _) = call(
        &h.app,
        Method::DELETE,
        &format!("{base}/{reception_sub}"),
        Some(&clinician),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let mut su = h.db.superuser_unsafe().await;
    let left: i64 = sqlx::query_scalar(
        "select count(*) from push_subscription where subscription_id = $1::uuid",
    )
    .bind(&reception_sub)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(left, 1);
    // Every role may manage its own (the right role), each leaving its audit event.
    for role in ["owner", "admin", "clinician", "reception"] {
        let t = h.app.token(h.w.a.user(role)).await;
        let (s, _) = call(&h.app, Method::GET, &base, Some(&t), None).await;
        assert_eq!(s, StatusCode::OK, "{role}");
        let (s, row) = call(
            &h.app,
            Method::POST,
            &base,
            Some(&t),
            Some(&body(&h.service.subscribe())),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{role}: {row}");
        let id = row["subscription_id"].as_str().unwrap();
        let (s, _) = call(
            &h.app,
            Method::DELETE,
            &format!("{base}/{id}"),
            Some(&t),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{role}");
        let (s, _) = call(
            &h.app,
            Method::DELETE,
            &format!("{base}/{id}"),
            Some(&t),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{role}: gone");
        let n: i64 = sqlx::query_scalar(
            "select count(*) from audit_event where practice_id = $1 and actor_id = $2
                and action in ('push.subscribe', 'push.unsubscribe')",
        )
        .bind(h.w.a.id)
        .bind(h.w.a.user(role))
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert!(n >= 2, "{role}: subscribe and unsubscribe audited");
    }
}

/// Registers a stand-in subscription for `user` in practice `p`.
async fn subscribe_as(
    app: &TestApp,
    service: &PushServiceStandIn,
    p: domain::PracticeId,
    user: domain::UserId,
) -> StandInSubscription {
    let sub = service.subscribe();
    let t = app.token(user).await;
    let (s, row) = call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/push-subscriptions"),
        Some(&t),
        Some(&body(&sub)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{row}");
    sub
}

// req: EGR-03 — staff get the content-free update for the other events that need them: a new
// online booking, a client's cancellation, an accepted waitlist offer (reception, and the
// clinician it is with), a fee the card declined (reception only); owners and admins without
// a scheduling role, a clinician whose schedule it is not, and the other practice's staff get
// none. Every payload, decrypted at the push service, is the one sentence and passes the
// outbound scanner seeded with the practice's own clients.
#[tokio::test]
async fn staff_get_content_free_updates_for_bookings_offers_cancellations_and_payments() {
    use testkit::mailpay_standins::StripeStandIn;

    let h = crate::outbox::Harness::new().await;
    let w = &h.w;
    let (a, b) = (w.a.id, w.b.id);
    let vapid = h.store.vapid_key().await.unwrap();
    let stripe = StripeStandIn::start().await;
    let payments = crate::payments::payments_through(&stripe);
    let settings = server::PushSettings {
        application_server_key: vapid.public_key_base64url(),
        hosts: vec!["127.0.0.1".into()],
    };
    let app = TestApp::start_adjusted(
        h.db.store().await,
        |_| {},
        |r| r,
        server::assistant::Assistant::default(),
        move |mut s| {
            s.payments = Some(payments);
            s.push = Some(Arc::new(settings));
            s
        },
    )
    .await;
    stripe.use_clock(Arc::new(app.clock.clone()));
    let hooks = crate::payments::stripe_webhooks(&app, &h.owner).await;
    let service = PushServiceStandIn::start().await;

    // A second clinician in A, with nothing on their schedule.
    let now = Utc::now();
    let other_clinician = h
        .owner
        .create_user(
            &format!(
                "clinician2.{}@test.example.invalid",
                uuid::Uuid::new_v4().simple()
            ),
            "clinician two",
            testkit::password_hash(),
            now,
        )
        .await
        .unwrap();
    h.owner
        .add_member(
            a,
            other_clinician,
            domain::RoleSet::from_iter([domain::Role::Clinician]),
            now,
        )
        .await
        .unwrap();
    let mut subs = Vec::new();
    for (name, p, user) in [
        ("reception A", a, w.a.user("reception")),
        ("clinician A", a, w.a.user("clinician")),
        ("other clinician A", a, other_clinician),
        ("owner A", a, w.a.user("owner")),
        ("admin A", a, w.a.user("admin")),
        ("reception B", b, w.b.user("reception")),
        ("clinician B", b, w.b.user("clinician")),
    ] {
        subs.push((name, subscribe_as(&app, &service, p, user).await));
    }

    // A new online booking in each practice (free, booked at once).
    let free_a = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let free_b = crate::booking_api::set_up_for(&app, &w.b, "allowed").await;
    let far = crate::payments::slots(&app, a, &free_a)
        .await
        .last()
        .unwrap()
        .clone();
    crate::payments::book(&app, a, &free_a, &far, 81).await;
    let at_b = crate::payments::slots(&app, b, &free_b).await[0].clone();
    crate::payments::book(&app, b, &free_b, &at_b, 82).await;
    // A booking with a card on file that will be declined.
    let card = crate::payments::paid_service(&app, &w.a, json!({"kind": "card_on_file"})).await;
    let at_card = crate::payments::slots(&app, a, &card).await[0].clone();
    crate::payments::book(&app, a, &card, &at_card, 83).await;
    crate::payments::pay_last_checkout(
        &stripe,
        &hooks,
        app.clock.now().timestamp(),
        83,
        "pm_card_chargeDeclined",
    )
    .await;

    // The first push pass: the three new bookings.
    let outbox = push_only_outbox(h.owner.clone(), &vapid);
    let report = outbox.pass(None, noon_tomorrow()).await.unwrap();
    assert_eq!(report.push_queued, 6, "{report:?}");

    // A client on A's waitlist; the far booking's client cancels through their manage link,
    // which offers the slot; the waitlisted client accepts it.
    let reception = app.token(w.a.user("reception")).await;
    let waiting = crate::waitlist::clients(&h, a, 1, 84).await;
    crate::waitlist::add_entry(
        &app,
        &reception,
        a,
        waiting[0].id,
        &free_a,
        crate::waitlist::at(&app, 1, 0),
        crate::waitlist::at(&app, 6, 0),
    )
    .await;
    let mut su = h.su().await;
    let appointment_at = |at: String| {
        sqlx::query_scalar::<_, uuid::Uuid>(
            "select appointment_id from appointment where practice_id = $1
                and starts_at = $2::timestamptz and status = 'booked'",
        )
        .bind(a)
        .bind(at)
    };
    let cancelled = appointment_at(far.clone())
        .fetch_one(&mut su)
        .await
        .unwrap();
    let mut tx = as_member(&app, &app.store, w.a.user("reception"), a).await;
    let manage = store::links::create_booking_manage_link(
        &mut tx,
        domain::AppointmentId::from_uuid(cancelled),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
    let manage = outbound::OpaqueLink::new(
        &LinkOrigin::parse(ORIGIN).unwrap(),
        outbound::LinkPurpose::Manage,
        &manage,
    );
    let manage = manage.as_str().rsplit('/').next().unwrap();
    let res = app
        .http
        .post(app.url(&format!("/manage/{manage}/cancel")))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let offers = crate::waitlist::send_offers(&h).await;
    let (_, offer) = offers
        .iter()
        .find(|(to, _)| *to == waiting[0].phone)
        .unwrap();
    let mut holder = app
        .store
        .offer_link(
            &outbound::LinkToken::parse(offer).unwrap(),
            domain::RequestId::new(),
            app.clock.now(),
        )
        .await
        .unwrap()
        .unwrap();
    let accepted = holder.accept(app.store.keyring().unwrap()).await.unwrap();
    holder.commit().await.unwrap();
    assert!(
        matches!(accepted, store::waitlist::AcceptOutcome::Booked(_)),
        "{accepted:?}"
    );

    // The card booking is a no-show: its fee is declined by the card.
    let no_show = appointment_at(at_card.clone())
        .fetch_one(&mut su)
        .await
        .unwrap();
    let (s, v) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/practices/{a}/appointments/{no_show}"),
        Some(&reception),
        Some(&json!({"status": "no_show"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let fees = server::jobs::payments::FeesAndRefunds::new(
        h.owner.clone(),
        crate::payments::payments_through(&stripe),
        server::jobs::payments::EVERY,
    );
    assert!(
        fees.pass(Some(a), app.clock.now())
            .await
            .unwrap()
            .contains(&"declined")
    );

    // The second pass: the cancellation, the accepted offer, the declined fee. One update
    // per event and subscription whose work it is, in all.
    let report = outbox.pass(None, noon_tomorrow()).await.unwrap();
    assert_eq!(report.push_queued, 5, "{report:?}");
    let received = service.received();
    let count = |name: &str| {
        let sub = &subs.iter().find(|(n, _)| *n == name).unwrap().1;
        received.iter().filter(|r| r.subscription == sub.id).count()
    };
    let counts: Vec<(&str, usize)> = subs.iter().map(|(n, _)| (*n, count(n))).collect();
    assert_eq!(
        counts,
        [
            // Two bookings, the cancellation, the accepted offer, the declined fee.
            ("reception A", 5),
            // The same but the fee.
            ("clinician A", 4),
            ("other clinician A", 0),
            ("owner A", 0),
            ("admin A", 0),
            // B's own booking only.
            ("reception B", 1),
            ("clinician B", 1),
        ]
    );
    let causes: Vec<(String, i64)> = sqlx::query_as(
        "select cause, count(*) from outbox_message where practice_id = $1 and channel = 'push'
          group by cause order by cause",
    )
    .bind(a)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        causes,
        [
            ("appointment".to_owned(), 2),
            ("online_booking".to_owned(), 4),
            ("payment".to_owned(), 1),
            ("waitlist".to_owned(), 2),
        ]
    );

    // Every payload: the one content-free sentence, passing the scanner built with the
    // practice's own clients (the booking clients, the waitlisted one, the fixture's).
    let mut known = Vec::new();
    for seed in [81u64, 82, 83, 84, u64::from(b'a'), u64::from(b'b')] {
        let c = domain::synthetic::Generator::new(seed).patient();
        known.push(outbound::KnownClient {
            given: c.given_name,
            family: c.family_name,
            phones: vec![c.phone],
            emails: vec![c.email],
            ..outbound::KnownClient::default()
        });
    }
    known.push(outbound::KnownClient {
        given: waiting[0].given.clone(),
        family: waiting[0].family.clone(),
        phones: vec![waiting[0].phone.clone()],
        ..outbound::KnownClient::default()
    });
    let scanner = outbound::Scanner::new(
        &known,
        [LinkOrigin::parse(ORIGIN).unwrap().host().to_owned()],
        &[],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(received.len(), 11);
    for r in &received {
        assert_eq!(r.plaintext, PushPayload::update().as_bytes());
        assert!(
            scanner.scan(&r.plaintext, None).is_ok(),
            "the scanner refuses it"
        );
        let plain = String::from_utf8_lossy(&r.plaintext).to_lowercase();
        for leak in [
            "http", "book", "cancel", "waitlist", "offer", "pay", "fee", "card",
        ] {
            assert!(!plain.contains(leak), "{leak} in {plain}");
        }
    }

    // Once: the next pass queues nothing more.
    let report = outbox.pass(None, noon_tomorrow()).await.unwrap();
    assert_eq!(report.push_queued, 0, "{report:?}");
    assert_eq!(service.received().len(), 11);
}
