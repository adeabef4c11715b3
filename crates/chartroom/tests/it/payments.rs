//! Issue 19.1, 19.3 and 19.5, payments in the online booking flow through Stripe (its
//! loopback stand-in): a booking of a paid service is held and sent to Checkout with typed
//! fields only (none of the practice's clients' names, phones or emails, nor the service's
//! name, reach the processor); the verified `Stripe-Signature` webhook confirms it and queues
//! exactly one confirmation; an unpaid hold is released and its slot freed; bad signatures,
//! stale timestamps and replays change nothing; practices stay apart; the staff route's
//! authorization matrix. Fees are charged off session; deposits are refunded when the client
//! cancels outside the window and, in full, whenever the practice cancels; a refund is done
//! only when the refunded amount covers it.

use std::sync::Arc;

use chrono::Duration;
use domain::Clock as _;
use egress::stripe::{Stripe, StripeWebhook, StripeWebhookSecret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::mailpay_standins::StripeStandIn;
use testkit::{TestApp, TestDb, World};

use crate::booking_api::set_up_for;
use crate::util::call;

pub(crate) const SECRET: &str = "whsec_test_payments";
pub(crate) const LINK_ORIGIN: &str = "https://chartroom.example";
/// A service name the processor must never see.
const SERVICE_NAME: &str = "Periodontal therapy consult";

struct Harness {
    db: TestDb,
    w: World,
    app: TestApp,
    stripe: StripeStandIn,
    owner: store::OwnerStore,
    hooks: String,
}

/// The app on `store` with payments through the Stripe stand-in at `stripe`, whose clock is
/// then the app's.
pub(crate) async fn app_with_stripe(store: store::Store, stripe: &StripeStandIn) -> TestApp {
    let payments = payments_through(stripe);
    let app = TestApp::start_adjusted(
        store,
        |_| {},
        |r| r,
        server::assistant::Assistant::default(),
        move |mut s| {
            s.payments = Some(payments);
            s
        },
    )
    .await;
    stripe.use_clock(Arc::new(app.clock.clone()));
    app
}

/// Payments through the Stripe stand-in, returning clients to [`LINK_ORIGIN`].
pub(crate) fn payments_through(stripe: &StripeStandIn) -> Arc<server::payments::Payments> {
    let adapter = Stripe::new(
        &stripe.url(),
        egress::ApiKey::new("sk_test_payments".into()),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let links = outbound::LinkOrigin::parse(LINK_ORIGIN).unwrap();
    Arc::new(server::payments::Payments::new(adapter, links))
}

/// `POST /webhooks/stripe` on its own loopback listener, sharing the app's clock; its URL.
pub(crate) async fn stripe_webhooks(app: &TestApp, owner: &store::OwnerStore) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
    let routes = server::payments::webhook_router(server::payments::StripeWebhooks::new(
        owner.clone(),
        Arc::new(app.clock.clone()),
        StripeWebhook::new(StripeWebhookSecret::new(SECRET.into())),
    ));
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    hooks
}

/// The app with payments through the stand-in, and the webhook route.
async fn harness() -> Harness {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(db.store().await, &stripe).await;
    let owner = db.owner().await;
    let hooks = stripe_webhooks(&app, &owner).await;
    Harness {
        db,
        w,
        app,
        stripe,
        owner,
        hooks,
    }
}

/// Online booking on for `w` (new clients booked at once) and a service with `payment`.
pub(crate) async fn paid_service(
    app: &TestApp,
    w: &testkit::PracticeFixture,
    payment: Value,
) -> String {
    set_up_for(app, w, "allowed").await;
    let owner = app.token(w.user("owner")).await;
    let (s, b) = call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{}/booking/services", w.id),
        Some(&owner),
        Some(
            &json!({"name": SERVICE_NAME, "duration_minutes": 60, "payment": payment,
                     "active": true, "clinicians": [w.user("clinician")]}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["service_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn slots(app: &TestApp, p: domain::PracticeId, service: &str) -> Vec<String> {
    let (s, b) = call(
        app,
        Method::GET,
        &format!("/api/v1/public/practices/{p}/booking/slots?service_id={service}&days=3"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["starts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn client(seed: u64) -> Value {
    let p = domain::synthetic::Generator::new(seed).patient();
    json!({"given_name": p.given_name, "family_name": p.family_name,
           "date_of_birth": p.date_of_birth, "phone": p.phone, "email": p.email})
}

pub(crate) async fn book(
    app: &TestApp,
    p: domain::PracticeId,
    service: &str,
    at: &str,
    seed: u64,
) -> Value {
    let (s, b) = call(
        app,
        Method::POST,
        &format!("/api/v1/public/practices/{p}/booking"),
        None,
        Some(&json!({"service_id": service, "starts_at": at, "client": client(seed)})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b
}

/// (booking status, appointment status, payment state, payment id) of the practice's one
/// online booking.
async fn states(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
) -> (String, String, String, uuid::Uuid) {
    sqlx::query_as(
        "select b.status, a.status, p.state, p.payment_id
           from online_booking b
           join appointment a on a.practice_id = b.practice_id and a.appointment_id = b.appointment_id
           join booking_payment p on p.practice_id = b.practice_id and p.booking_id = b.booking_id
          where b.practice_id = $1",
    )
    .bind(p)
    .fetch_one(su)
    .await
    .unwrap()
}

async fn confirmations(su: &mut sqlx::PgConnection, p: domain::PracticeId) -> Vec<String> {
    sqlx::query_scalar(
        "select channel from outbox_message where practice_id = $1 and template = 'booking_confirmed'
          order by channel",
    )
    .bind(p)
    .fetch_all(su)
    .await
    .unwrap()
}

/// A booking the public page made of a paid service, held for its payment.
struct Held {
    /// The service.
    service: String,
    /// Its start (the slot as the public page offers it).
    at: String,
    /// The public page's answer (`payment_required`, the Checkout URL, `pay_by`).
    answer: Value,
}

impl Harness {
    fn now(&self) -> i64 {
        self.app.clock.now().timestamp()
    }

    /// The payments tests' one booking setup: online booking on for `w`, a service asking
    /// for `payment`, and synthetic client `seed` booking its `slot`-th free slot (held).
    async fn held(
        &self,
        w: &testkit::PracticeFixture,
        payment: Value,
        slot: usize,
        seed: u64,
    ) -> Held {
        let service = paid_service(&self.app, w, payment).await;
        let at = slots(&self.app, w.id, &service).await[slot].clone();
        let answer = book(&self.app, w.id, &service, &at, seed).await;
        Held {
            service,
            at,
            answer,
        }
    }

    /// The one Checkout Session the stand-in created: its id and the return link's token.
    fn session(&self) -> (String, String) {
        let objects = self.stripe.objects();
        assert_eq!(objects.len(), 1, "one session");
        let o = &objects[0];
        let back = o.json["success_url"].as_str().unwrap();
        let token = back.rsplit('/').next().unwrap().to_owned();
        assert_eq!(back, format!("{LINK_ORIGIN}/pay/{token}"));
        (o.id.clone(), token)
    }

    async fn post(&self, signature: &str, body: &[u8]) -> u16 {
        reqwest::Client::new()
            .post(&self.hooks)
            .header("Stripe-Signature", signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn pay_page(&self, token: &str) -> String {
        self.app
            .http
            .get(self.app.url(&format!("/pay/{token}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

// req: EGR-02, EGR-04, EGR-05 — a deposit booking is held and sent to Checkout with no PHI in
// the request; the signed webhook confirms it and exactly one confirmation is queued.
#[tokio::test]
async fn a_deposit_is_paid_through_checkout_and_the_webhook_confirms_the_booking() {
    let h = harness().await;
    let p = h.w.a.id;
    // The practice's own clients (synthetic), whose details must never reach Stripe.
    let clin = h.app.token(h.w.a.user("clinician")).await;
    let mut phi: Vec<String> = Vec::new();
    for seed in 900..905u64 {
        let c = domain::synthetic::Generator::new(seed).patient();
        let (s, b) = call(
            &h.app,
            Method::POST,
            &format!("/api/v1/practices/{p}/patients"),
            Some(&clin),
            Some(
                &json!({"given_name": c.given_name, "family_name": c.family_name,
                         "phone": c.phone, "email": c.email}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        phi.extend([c.given_name, c.family_name, c.phone, c.email]);
    }
    let booker = domain::synthetic::Generator::new(77).patient();
    phi.extend([
        booker.given_name.clone(),
        booker.family_name.clone(),
        booker.phone.clone(),
        booker.email.clone(),
    ]);

    let Held {
        service,
        at,
        answer,
    } = h
        .held(
            &h.w.a,
            json!({"kind": "deposit", "amount_minor": 5000}),
            0,
            77,
        )
        .await;
    assert_eq!(answer["status"], "payment_required");
    let checkout = answer["checkout_url"].as_str().unwrap();
    assert!(checkout.starts_with(&h.stripe.url()), "{checkout}");
    assert!(answer["pay_by"].is_string());

    // What Stripe received: typed fields only. The return link's token (random) is taken
    // out first; names are matched as words, emails as text, phones as digit runs.
    let recorded = h.stripe.recorded();
    assert_eq!(recorded.len(), 1);
    let (_, token) = h.session();
    let raw = String::from_utf8(recorded[0].body.clone()).unwrap();
    let decoded: String = recorded[0]
        .form()
        .iter()
        .map(|(k, v)| [k.as_str(), "=", v.as_str(), "\n"].concat())
        .collect();
    let split = |t: &str| -> Vec<String> {
        t.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for view in [raw.replace(&token, " "), decoded.replace(&token, " ")] {
        let words = split(&view);
        let digits: String = view.chars().filter(char::is_ascii_digit).collect();
        for needle in phi.iter().chain([&SERVICE_NAME.to_owned()]) {
            if needle.contains('@') {
                assert!(
                    !view.to_lowercase().contains(&needle.to_lowercase()),
                    "an email reached the processor"
                );
                continue;
            }
            let d: String = needle.chars().filter(char::is_ascii_digit).collect();
            if d.len() >= 7 {
                assert!(
                    !digits.contains(&d[d.len() - 7..]),
                    "a phone number reached the processor"
                );
                continue;
            }
            for w in split(needle) {
                assert!(!words.contains(&w), "a name reached the processor");
            }
        }
    }
    let form = recorded[0].form();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field("mode").as_deref(), Some("payment"));
    assert_eq!(
        field("line_items[0][price_data][unit_amount]").as_deref(),
        Some("5000")
    );
    assert_eq!(
        field("line_items[0][price_data][currency]").as_deref(),
        Some("usd")
    );
    assert_eq!(
        field("line_items[0][price_data][product_data][name]").as_deref(),
        Some("Appointment deposit")
    );
    // The session stops taking money when the hold ends, to the second, and no sooner than
    // Stripe allows (the stand-in refuses an expiry under 30 minutes after creation).
    let pay_by: chrono::DateTime<chrono::Utc> = answer["pay_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        field("expires_at"),
        Some(pay_by.timestamp().to_string()),
        "the Checkout Session ends with the hold"
    );
    assert_eq!(pay_by.timestamp_subsec_nanos(), 0);
    assert!(pay_by >= h.app.clock.now() + Duration::minutes(30));
    assert_eq!(
        h.stripe.objects()[0].json["expires_at"].as_i64(),
        Some(pay_by.timestamp())
    );

    // Held: the slot is taken, nothing is confirmed yet.
    let mut su = h.db.superuser_unsafe().await;
    let (b, a, state, payment) = states(&mut su, p).await;
    assert_eq!(
        (b.as_str(), a.as_str(), state.as_str()),
        ("held", "held", "pending")
    );
    assert_eq!(field("client_reference_id"), Some(payment.to_string()));
    assert_eq!(field("metadata[ref]"), Some(payment.to_string()));
    assert!(
        !slots(&h.app, p, &service).await.contains(&at),
        "the held slot is not offered"
    );
    assert!(confirmations(&mut su, p).await.is_empty());
    let (session, _) = h.session();
    assert!(h.pay_page(&token).await.contains("id=\"pending\""));

    // Stripe says it is paid: confirmed, one confirmation per channel.
    let completed = h.stripe.completed_session(&session).unwrap();
    let (sig, body) =
        StripeStandIn::signed_event(SECRET, "checkout.session.completed", &completed, h.now());
    assert_eq!(h.post(&sig, &body).await, 204);
    let (b, a, state, _) = states(&mut su, p).await;
    assert_eq!(
        (b.as_str(), a.as_str(), state.as_str()),
        ("booked", "booked", "paid")
    );
    assert_eq!(confirmations(&mut su, p).await, ["email", "sms"]);
    // The replay of that event: refused, nothing changes.
    assert_eq!(h.post(&sig, &body).await, 409);
    // The payment intent's own success event: already settled, still one confirmation.
    let pi = json!({"id": "pi_test_900001", "object": "payment_intent", "amount": 5000,
                    "amount_received": 5000, "currency": "usd", "metadata": {"ref": payment.to_string()}});
    let status =
        StripeStandIn::send_event(&h.hooks, SECRET, "payment_intent.succeeded", &pi, h.now()).await;
    assert_eq!(status, 204);
    assert_eq!(confirmations(&mut su, p).await, ["email", "sms"]);
    assert!(h.pay_page(&token).await.contains("id=\"paid\""));

    // Staff see the payment record with Stripe's ids; the audit rows carry no PHI.
    let booking: uuid::Uuid =
        sqlx::query_scalar("select booking_id from online_booking where practice_id = $1")
            .bind(p)
            .fetch_one(&mut su)
            .await
            .unwrap();
    let reception = h.app.token(h.w.a.user("reception")).await;
    let (s, rows) = call(
        &h.app,
        Method::GET,
        &format!("/api/v1/practices/{p}/booking/bookings/{booking}/payments"),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{rows}");
    assert_eq!(rows[0]["state"], "paid");
    assert_eq!(rows[0]["kind"], "deposit");
    assert_eq!(rows[0]["amount_minor"], 5000);
    assert_eq!(rows[0]["stripe_session"], session.as_str());
    assert_eq!(rows[0]["stripe_payment_intent"], "pi_test_900001");
    let (s, list) = call(
        &h.app,
        Method::GET,
        &format!("/api/v1/practices/{p}/booking/bookings"),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list[0]["payment"], "paid");
    let audit: Vec<String> = sqlx::query_scalar(
        "select coalesce(details::text, '') from audit_event where practice_id = $1 and action like 'payment.%'",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(!audit.is_empty());
    for row in &audit {
        for needle in &phi {
            assert!(!row.contains(needle.as_str()), "PHI in an audit row");
        }
    }
}

// req: EGR-05 — an unpaid hold is released by the job and its slot offered again; money that
// arrives after the release is recorded for a refund and takes nothing back; a Checkout that
// expires at Stripe releases its hold through the webhook.
#[tokio::test]
async fn unpaid_holds_are_released_and_their_slots_freed() {
    let h = harness().await;
    let p = h.w.a.id;
    let Held {
        service,
        at,
        answer,
    } = h
        .held(
            &h.w.a,
            json!({"kind": "prepay", "amount_minor": 12000}),
            0,
            11,
        )
        .await;
    let (session, token) = h.session();
    let mut su = h.db.superuser_unsafe().await;
    assert!(!slots(&h.app, p, &service).await.contains(&at));

    // The hold ends when its Checkout Session does: released at that second, not before.
    let ends: chrono::DateTime<chrono::Utc> = answer["pay_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        h.stripe.objects()[0].json["expires_at"].as_i64(),
        Some(ends.timestamp())
    );
    let job =
        server::jobs::payments::ExpiredHolds::new(h.owner.clone(), server::jobs::payments::EVERY);
    assert_eq!(
        job.pass(Some(p), ends - Duration::seconds(1))
            .await
            .unwrap(),
        0,
        "not yet"
    );
    assert_eq!(job.pass(Some(p), ends).await.unwrap(), 1);
    let (b, a, state, _) = states(&mut su, p).await;
    assert_eq!(
        (b.as_str(), a.as_str(), state.as_str()),
        ("expired", "cancelled", "expired")
    );
    assert!(
        slots(&h.app, p, &service).await.contains(&at),
        "the slot is free again"
    );
    assert!(h.pay_page(&token).await.contains("id=\"released\""));
    let expired: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'payment.expire'",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(expired, 1);

    // Paid after all, too late: recorded, the booking stays released, nothing is queued.
    let completed = h.stripe.completed_session(&session).unwrap();
    let status = StripeStandIn::send_event(
        &h.hooks,
        SECRET,
        "checkout.session.completed",
        &completed,
        h.now(),
    )
    .await;
    assert_eq!(status, 204);
    let (b, _, state, _) = states(&mut su, p).await;
    assert_eq!(
        (b.as_str(), state.as_str()),
        ("expired", "paid_after_release")
    );
    assert!(confirmations(&mut su, p).await.is_empty());
    assert!(h.pay_page(&token).await.contains("id=\"late\""));

    // Another booking whose Checkout expires at Stripe: released at once.
    let at2 = slots(&h.app, p, &service).await[1].clone();
    book(&h.app, p, &service, &at2, 12).await;
    let second = h.stripe.objects().last().unwrap().json.clone();
    let status = StripeStandIn::send_event(
        &h.hooks,
        SECRET,
        "checkout.session.expired",
        &second,
        h.now(),
    )
    .await;
    assert_eq!(status, 204);
    let released: Vec<String> = sqlx::query_scalar(
        "select state from booking_payment where practice_id = $1 order by created_at",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(released, ["paid_after_release", "expired"]);
    assert!(slots(&h.app, p, &service).await.contains(&at2));
}

// req: EGR-04, TX-03 — a bad signature, a stale timestamp, a malformed body and a replay are refused
// and change nothing; any of several `v1` signatures may match.
#[tokio::test]
async fn stripe_webhooks_refuse_bad_signatures_stale_timestamps_and_replays() {
    let h = harness().await;
    let p = h.w.a.id;
    h.held(
        &h.w.a,
        json!({"kind": "deposit", "amount_minor": 2500}),
        0,
        21,
    )
    .await;
    let (session, _) = h.session();
    let completed = h.stripe.completed_session(&session).unwrap();
    let now = h.now();
    let (sig, body) =
        StripeStandIn::signed_event(SECRET, "checkout.session.completed", &completed, now);
    let mut su = h.db.superuser_unsafe().await;
    let unchanged = |s: (String, String, String, uuid::Uuid)| {
        assert_eq!(
            (s.0.as_str(), s.1.as_str(), s.2.as_str()),
            ("held", "held", "pending")
        );
    };

    // Tampered body.
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(h.post(&sig, &tampered).await, 401);
    // Signed with another secret.
    assert_eq!(
        h.post(&StripeStandIn::signature("whsec_other", now, &body), &body)
            .await,
        401
    );
    // No signature header value that parses.
    assert_eq!(h.post("garbage", &body).await, 401);
    // Stale, and from the future.
    let (old_sig, old_body) =
        StripeStandIn::signed_event(SECRET, "checkout.session.completed", &completed, now - 301);
    assert_eq!(h.post(&old_sig, &old_body).await, 401);
    let (new_sig, new_body) =
        StripeStandIn::signed_event(SECRET, "checkout.session.completed", &completed, now + 301);
    assert_eq!(h.post(&new_sig, &new_body).await, 401);
    // Signed, but not an event.
    let junk = b"{\"not\": \"an event\"}";
    assert_eq!(
        h.post(&StripeStandIn::signature(SECRET, now, junk), junk)
            .await,
        400
    );
    unchanged(states(&mut su, p).await);
    assert_eq!(crate::util::count_all(&mut su, "webhook_event").await, 0);
    assert!(confirmations(&mut su, p).await.is_empty());

    // A rotated secret: the header carries two `v1`, the second one holds.
    let good = StripeStandIn::signature(SECRET, now, &body);
    let v1 = good.split("v1=").nth(1).unwrap();
    let two = format!("t={now},v1={},v1={v1}", "0".repeat(64));
    assert_eq!(h.post(&two, &body).await, 204);
    assert_eq!(states(&mut su, p).await.0, "booked");
    assert_eq!(confirmations(&mut su, p).await.len(), 2);
    // Replays: the same delivery, and the same event id re-signed later.
    assert_eq!(h.post(&sig, &body).await, 409);
    let later = StripeStandIn::signature(SECRET, now + 60, &body);
    assert_eq!(h.post(&later, &body).await, 409);
    assert_eq!(crate::util::count_all(&mut su, "webhook_event").await, 1);
    assert_eq!(confirmations(&mut su, p).await.len(), 2);
}

// req: EGR-02 — a card on file goes through Checkout in setup mode; the practices stay apart:
// one practice's webhook settles only its own payment, and neither practice's staff can read
// the other's payments.
#[tokio::test]
async fn a_card_on_file_is_saved_and_practices_stay_apart() {
    let h = harness().await;
    let (a, b) = (h.w.a.id, h.w.b.id);
    h.held(
        &h.w.a,
        json!({"kind": "deposit", "amount_minor": 4000}),
        0,
        31,
    )
    .await;
    h.held(&h.w.b, json!({"kind": "card_on_file"}), 0, 32).await;
    let objects = h.stripe.objects();
    assert_eq!(objects.len(), 2);
    let setup = objects.iter().find(|o| o.json["mode"] == "setup").unwrap();
    assert!(
        setup
            .form
            .iter()
            .any(|(k, v)| k == "setup_intent_data[description]"
                && v == "Card saved for appointments")
    );

    let mut su = h.db.superuser_unsafe().await;
    let completed = h.stripe.completed_session(&setup.id).unwrap();
    let status = StripeStandIn::send_event(
        &h.hooks,
        SECRET,
        "checkout.session.completed",
        &completed,
        h.now(),
    )
    .await;
    assert_eq!(status, 204);
    let (bb, ab, sb, _) = states(&mut su, b).await;
    assert_eq!(
        (bb.as_str(), ab.as_str(), sb.as_str()),
        ("booked", "booked", "card_saved")
    );
    let (ba, _, sa, payment_a) = states(&mut su, a).await;
    assert_eq!(
        (ba.as_str(), sa.as_str()),
        ("held", "pending"),
        "the other practice is untouched"
    );
    assert!(confirmations(&mut su, a).await.is_empty());
    assert_eq!(confirmations(&mut su, b).await.len(), 2);

    // A setup event naming practice A's deposit does not pay it (the figures do not match).
    let seti = json!({"id": "seti_test_000009", "object": "setup_intent", "customer": "cus_test_1",
                      "payment_method": "pm_test_1", "metadata": {"ref": payment_a.to_string()}});
    let status =
        StripeStandIn::send_event(&h.hooks, SECRET, "setup_intent.succeeded", &seti, h.now()).await;
    assert_eq!(status, 204);
    assert_eq!(states(&mut su, a).await.2, "pending");

    // Staff of B cannot read A's payments (404), nor see them in SQL as the runtime role.
    let booking_a: uuid::Uuid =
        sqlx::query_scalar("select booking_id from online_booking where practice_id = $1")
            .bind(a)
            .fetch_one(&mut su)
            .await
            .unwrap();
    let outsider = h.app.token(h.w.b.user("reception")).await;
    let (s, _) = call(
        &h.app,
        Method::GET,
        &format!("/api/v1/practices/{b}/booking/bookings/{booking_a}/payments"),
        Some(&outsider),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &h.app,
        Method::GET,
        &format!("/api/v1/practices/{a}/booking/bookings/{booking_a}/payments"),
        Some(&outsider),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let mut conn = h.db.runtime_conn().await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    sqlx::query(
        "select set_config('chartroom.practice_id', $1, true),
                set_config('chartroom.roles', '{clinician,reception}', true)",
    )
    .bind(b.to_string())
    .execute(&mut *tx)
    .await
    .unwrap();
    let seen: Vec<uuid::Uuid> = sqlx::query_scalar("select practice_id from booking_payment")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        seen,
        [b.as_uuid()],
        "only its own payment, as the runtime role"
    );
}

// A service that asks for a payment, on a deployment without a payment processor: nothing is
// held, the client is told to try later.
#[tokio::test]
async fn without_a_processor_a_paid_service_books_nothing() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let service = paid_service(&app, &w.a, json!({"kind": "deposit", "amount_minor": 5000})).await;
    let at = slots(&app, p, &service).await[0].clone();
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/api/v1/public/practices/{p}/booking"),
        None,
        Some(&json!({"service_id": service, "starts_at": at, "client": client(41)})),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["error"]["code"], "PAY-0001");
    let mut su = db.superuser_unsafe().await;
    assert_eq!(crate::util::count_all(&mut su, "online_booking").await, 0);
    assert_eq!(crate::util::count_all(&mut su, "booking_payment").await, 0);
    assert!(slots(&app, p, &service).await.contains(&at));
}

// The staff route's authorization matrix: anonymous 401, other practice 404, wrong role 403,
// right role 200 (with its `payment.list` audit event).
#[tokio::test]
async fn booking_payments_route_authorization_matrix() {
    let h = harness().await;
    let p = h.w.a.id;
    h.held(
        &h.w.a,
        json!({"kind": "deposit", "amount_minor": 1000}),
        0,
        51,
    )
    .await;
    let mut su = h.db.superuser_unsafe().await;
    let booking: uuid::Uuid =
        sqlx::query_scalar("select booking_id from online_booking where practice_id = $1")
            .bind(p)
            .fetch_one(&mut su)
            .await
            .unwrap();
    let path = format!("/api/v1/practices/{p}/booking/bookings/{booking}/payments");
    let (s, _) = call(&h.app, Method::GET, &path, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let outsider = h.app.token(h.w.b.user("owner")).await;
    let (s, _) = call(&h.app, Method::GET, &path, Some(&outsider), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for role in ["owner", "admin"] {
        let t = h.app.token(h.w.a.user(role)).await;
        let (s, _) = call(&h.app, Method::GET, &path, Some(&t), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role}");
    }
    for role in ["clinician", "reception"] {
        let t = h.app.token(h.w.a.user(role)).await;
        let (s, b) = call(&h.app, Method::GET, &path, Some(&t), None).await;
        assert_eq!(s, StatusCode::OK, "{role}: {b}");
        assert_eq!(b.as_array().unwrap().len(), 1);
    }
    let unknown = format!(
        "/api/v1/practices/{p}/booking/bookings/{}/payments",
        uuid::Uuid::new_v4()
    );
    let t = h.app.token(h.w.a.user("reception")).await;
    let (s, _) = call(&h.app, Method::GET, &unknown, Some(&t), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let listed: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'payment.list'",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(listed, 2);
}

/// The payments of the booking of `appointment`, as reception reads them on the API.
async fn payments_of(h: &Harness, su: &mut sqlx::PgConnection, appointment: &str) -> Vec<Value> {
    let booking: uuid::Uuid =
        sqlx::query_scalar("select booking_id from online_booking where appointment_id = $1::uuid")
            .bind(appointment)
            .fetch_one(su)
            .await
            .unwrap();
    let reception = h.app.token(h.w.a.user("reception")).await;
    let (s, rows) = call(
        &h.app,
        Method::GET,
        &format!(
            "/api/v1/practices/{}/booking/bookings/{booking}/payments",
            h.w.a.id
        ),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{rows}");
    rows.as_array().unwrap().clone()
}

/// The one row of `kind`.
fn of_kind(rows: Vec<Value>, kind: &str) -> Value {
    let mut of: Vec<Value> = rows.into_iter().filter(|r| r["kind"] == kind).collect();
    assert_eq!(of.len(), 1, "one {kind}");
    of.remove(0)
}

impl Harness {
    /// Books `at` of `service` for synthetic client `seed` and completes its Checkout
    /// ([`pay_last_checkout`]). The appointment.
    async fn book_and_pay(
        &self,
        service: &str,
        at: &str,
        seed: u64,
        payment_method: &str,
    ) -> String {
        let p = self.w.a.id;
        book(&self.app, p, service, at, seed).await;
        pay_last_checkout(&self.stripe, &self.hooks, self.now(), seed, payment_method).await;
        let mut su = self.db.superuser_unsafe().await;
        let appointment: uuid::Uuid = sqlx::query_scalar(
            "select appointment_id from appointment where practice_id = $1 and starts_at = $2::timestamptz
                and status = 'booked'",
        )
        .bind(p)
        .bind(at)
        .fetch_one(&mut su)
        .await
        .unwrap();
        appointment.to_string()
    }

    /// The fees-and-refunds job through the same stand-in.
    fn fees(&self) -> server::jobs::payments::FeesAndRefunds {
        server::jobs::payments::FeesAndRefunds::new(
            self.owner.clone(),
            payments_through(&self.stripe),
            server::jobs::payments::EVERY,
        )
    }

    /// A manage link for `appointment` (as its confirmation carries one): the token's text.
    async fn manage_token(&self, appointment: &str) -> String {
        let mut tx = crate::sealed_columns::as_member(
            &self.app,
            &self.app.store,
            self.w.a.user("reception"),
            self.w.a.id,
        )
        .await;
        let token = store::links::create_booking_manage_link(
            &mut tx,
            domain::AppointmentId::from_uuid(appointment.parse().unwrap()),
        )
        .await
        .unwrap()
        .unwrap();
        tx.commit().await.unwrap();
        outbound::OpaqueLink::new(
            &outbound::LinkOrigin::parse(LINK_ORIGIN).unwrap(),
            outbound::LinkPurpose::Manage,
            &token,
        )
        .as_str()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
    }

    async fn cancel_by_link(&self, appointment: &str) {
        let token = self.manage_token(appointment).await;
        let res = self
            .app
            .http
            .post(self.app.url(&format!("/manage/{token}/cancel")))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// Staff (`role` of practice `w`) cancel `appointment` on the API: the status.
    async fn cancel_by_staff(
        &self,
        w: &testkit::PracticeFixture,
        role: &str,
        appointment: &str,
    ) -> StatusCode {
        let t = self.app.token(w.user(role)).await;
        let (s, b) = call(
            &self.app,
            Method::PATCH,
            &format!("/api/v1/practices/{}/appointments/{appointment}", w.id),
            Some(&t),
            Some(&json!({"status": "cancelled"})),
        )
        .await;
        assert!(s != StatusCode::OK || b["status"] == "cancelled", "{b}");
        s
    }

    /// Sends Stripe's `charge.refunded` for `payment_intent` (a charge of `amount`, of which
    /// `refunded` is refunded so far), signed; the webhook's status.
    async fn charge_refunded(&self, payment_intent: &str, amount: u64, refunded: u64) -> u16 {
        let charge = StripeStandIn::refunded_charge(payment_intent, amount, refunded);
        StripeStandIn::send_event(&self.hooks, SECRET, "charge.refunded", &charge, self.now()).await
    }

    async fn no_show(&self, appointment: &str) {
        let reception = self.app.token(self.w.a.user("reception")).await;
        let (s, b) = call(
            &self.app,
            Method::PATCH,
            &format!(
                "/api/v1/practices/{}/appointments/{appointment}",
                self.w.a.id
            ),
            Some(&reception),
            Some(&json!({"status": "no_show"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

/// Every field of the off-session charges and refunds Stripe received is a typed one.
fn typed_charges_only(stripe: &StripeStandIn, phi: &[String]) {
    for r in stripe.recorded() {
        if r.path == "/v1/checkout/sessions" {
            continue;
        }
        let body = String::from_utf8_lossy(&r.body).to_lowercase();
        for needle in phi {
            assert!(
                !body.contains(&needle.to_lowercase()),
                "client data reached the processor"
            );
        }
        assert!(r.header("idempotency-key").is_some());
        for (name, value) in r.form() {
            let typed = match name.as_str() {
                "amount" => value.parse::<u64>().is_ok(),
                "currency" => value == "usd",
                "description" => {
                    ["Late cancellation fee", "Missed appointment fee"].contains(&value.as_str())
                }
                "customer" => value.starts_with("cus_"),
                "payment_method" | "payment_intent" => {
                    value.starts_with("pm_") || value.starts_with("pi_")
                }
                "off_session" | "confirm" => value == "true",
                "metadata[ref]" => uuid::Uuid::parse_str(&value).is_ok(),
                _ => false,
            };
            assert!(typed, "untyped field {name}={value}");
        }
    }
}

// req: EGR-02, EGR-05 — fees are charged off session with the card saved at booking, through
// the typed gate and exactly once: a late cancellation (the manage link) and no-shows (staff);
// a processor outage is retried with the same idempotency key; a declined card and one whose
// bank wants the client are recorded and shown to staff; the webhook settles what was left
// in flight. A cancellation outside the window refunds the deposit (Refund API), and
// `charge.refunded` settles a refund. Stripe sees typed fields only.
#[tokio::test]
async fn fees_are_charged_off_session_and_deposits_refunded() {
    use testkit::mailpay_standins::Failure;

    let h = harness().await;
    let p = h.w.a.id;
    let card = paid_service(&h.app, &h.w.a, json!({"kind": "card_on_file"})).await;
    let times = slots(&h.app, p, &card).await;
    // The practice's window is 24 hours; the first slots are inside it.
    let late = h.book_and_pay(&card, &times[0], 41, "pm_card_visa").await;
    let declined = h
        .book_and_pay(&card, &times[1], 42, "pm_card_chargeDeclined")
        .await;
    let action = h
        .book_and_pay(&card, &times[2], 43, "pm_card_authenticationRequired")
        .await;
    let mut su = h.db.superuser_unsafe().await;
    let fees = h.fees();

    // Nothing is due yet.
    assert!(
        fees.pass(Some(p), h.app.clock.now())
            .await
            .unwrap()
            .is_empty()
    );

    // The client cancels late: the fee is queued with the cancellation; the processor is
    // down on the first try, so it stays due with backoff and nothing was created.
    h.cancel_by_link(&late).await;
    let fee = &of_kind(payments_of(&h, &mut su, &late).await, "late_cancel_fee");
    assert_eq!(
        (fee["kind"].as_str(), fee["state"].as_str()),
        (Some("late_cancel_fee"), Some("due"))
    );
    assert_eq!(fee["amount_minor"], 2500);
    h.stripe.script(Failure::Status(503));
    let before = h.stripe.objects().len();
    let now = h.app.clock.now();
    assert_eq!(fees.pass(Some(p), now).await.unwrap(), ["due"]);
    let fee = &of_kind(payments_of(&h, &mut su, &late).await, "late_cancel_fee");
    assert_eq!(fee["attempts"], 1);
    assert_eq!(fee["last_error"], "processor_unavailable");
    assert_eq!(h.stripe.objects().len(), before);
    assert!(
        fees.pass(Some(p), now).await.unwrap().is_empty(),
        "backing off"
    );
    let later = now + Duration::minutes(2);
    assert_eq!(fees.pass(Some(p), later).await.unwrap(), ["paid"]);
    let fee = &of_kind(payments_of(&h, &mut su, &late).await, "late_cancel_fee");
    assert_eq!(fee["state"], "paid");
    let pi = fee["stripe_payment_intent"].as_str().unwrap().to_owned();
    // One PaymentIntent, off session, with the saved card and the row's own key.
    let charges: Vec<_> = h
        .stripe
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/v1/payment_intents")
        .collect();
    assert_eq!(charges.len(), 2, "the outage, then the charge");
    assert_eq!(
        charges[0].header("idempotency-key"),
        charges[1].header("idempotency-key")
    );
    let form = charges[1].form();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field("amount").as_deref(), Some("2500"));
    assert_eq!(field("off_session").as_deref(), Some("true"));
    assert_eq!(field("confirm").as_deref(), Some("true"));
    assert_eq!(field("customer").as_deref(), Some("cus_test_000001"));
    assert_eq!(field("payment_method").as_deref(), Some("pm_card_visa"));
    assert_eq!(
        field("metadata[ref]"),
        fee["payment_id"].as_str().map(str::to_owned)
    );
    assert!(h.stripe.objects().iter().any(|o| o.id == pi));
    // Worked once: the next pass has nothing.
    assert!(fees.pass(Some(p), later).await.unwrap().is_empty());

    // Two no-shows: a declined card, and a bank that wants the client.
    h.no_show(&declined).await;
    h.no_show(&action).await;
    let mut done = fees.pass(Some(p), later).await.unwrap();
    done.sort_unstable();
    assert_eq!(done, ["declined", "requires_action"]);
    let d = &of_kind(payments_of(&h, &mut su, &declined).await, "no_show_fee");
    assert_eq!(
        (d["kind"].as_str(), d["state"].as_str()),
        (Some("no_show_fee"), Some("declined"))
    );
    assert_eq!(d["last_error"], "card_declined");
    assert_eq!(d["amount_minor"], 5000);
    let a = &of_kind(payments_of(&h, &mut su, &action).await, "no_show_fee");
    assert_eq!(a["state"], "requires_action");
    assert_eq!(a["last_error"], "requires_action");
    // Not retried: a person must act.
    assert!(
        fees.pass(Some(p), later + Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    // The client authenticates later: the webhook settles the fee.
    let pi = json!({"id": a["stripe_payment_intent"], "object": "payment_intent", "amount": 5000,
        "amount_received": 5000, "currency": "usd", "metadata": {"ref": a["payment_id"]}});
    let status =
        StripeStandIn::send_event(&h.hooks, SECRET, "payment_intent.succeeded", &pi, h.now()).await;
    assert_eq!(status, 204);
    assert_eq!(
        of_kind(payments_of(&h, &mut su, &action).await, "no_show_fee")["state"],
        "paid"
    );

    // A deposit, cancelled outside the window: refunded through the Refund API.
    let deposit = paid_service(
        &h.app,
        &h.w.a,
        json!({"kind": "deposit", "amount_minor": 3000}),
    )
    .await;
    let far = slots(&h.app, p, &deposit).await.last().unwrap().clone();
    let paid = h.book_and_pay(&deposit, &far, 44, "").await;
    h.cancel_by_link(&paid).await;
    let rows = payments_of(&h, &mut su, &paid).await;
    assert_eq!(of_kind(rows.clone(), "refund")["state"], "due");
    assert_eq!(of_kind(rows, "refund")["amount_minor"], 3000);
    assert_eq!(fees.pass(Some(p), later).await.unwrap(), ["refunded"]);
    let rows = payments_of(&h, &mut su, &paid).await;
    let (paid_row, refund_row) = (of_kind(rows.clone(), "deposit"), of_kind(rows, "refund"));
    assert_eq!(refund_row["state"], "refunded");
    assert!(
        refund_row["stripe_refund"]
            .as_str()
            .unwrap()
            .starts_with("re_")
    );
    let refund = h
        .stripe
        .recorded()
        .into_iter()
        .rfind(|r| r.path == "/v1/refunds")
        .unwrap();
    let form = refund.form();
    assert!(form.contains(&(
        "payment_intent".into(),
        paid_row["stripe_payment_intent"].as_str().unwrap().into()
    )));
    assert!(form.contains(&("amount".into(), "3000".into())));
    let payment: String =
        sqlx::query_scalar("select payment from online_booking where appointment_id = $1::uuid")
            .bind(&paid)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(payment, "refunded");

    // Another, whose refund the processor could not take at first: `charge.refunded` settles
    // it, and the job then has nothing to ask.
    let far2 = slots(&h.app, p, &deposit).await.last().unwrap().clone();
    let paid2 = h.book_and_pay(&deposit, &far2, 45, "").await;
    h.cancel_by_link(&paid2).await;
    h.stripe.script(Failure::Status(500));
    assert_eq!(fees.pass(Some(p), later).await.unwrap(), ["due"]);
    let deposit_row = of_kind(payments_of(&h, &mut su, &paid2).await, "deposit");
    let charge = json!({"id": "ch_test_000009", "object": "charge", "amount": 3000,
        "amount_refunded": 3000, "refunded": true, "currency": "usd",
        "payment_intent": deposit_row["stripe_payment_intent"]});
    let (sig, body) = StripeStandIn::signed_event(SECRET, "charge.refunded", &charge, h.now());
    assert_eq!(h.post(&sig, &body).await, 204);
    assert_eq!(h.post(&sig, &body).await, 409, "a replay changes nothing");
    assert_eq!(
        of_kind(payments_of(&h, &mut su, &paid2).await, "refund")["state"],
        "refunded"
    );
    assert!(
        fees.pass(Some(p), later + Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );

    // Stripe saw typed fields only; every step is on the audit chain without PHI.
    let mut phi = Vec::new();
    for seed in 41..=45u64 {
        let c = domain::synthetic::Generator::new(seed).patient();
        phi.extend([c.given_name, c.family_name, c.phone, c.email]);
    }
    typed_charges_only(&h.stripe, &phi);
    let audit: Vec<String> = sqlx::query_scalar(
        "select details::text from audit_event where practice_id = $1 and action = 'payment.charge'",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(audit.len(), 6, "{audit:?}");
    for row in &audit {
        for needle in &phi {
            assert!(!row.contains(needle.as_str()), "PHI in an audit row");
        }
    }
}

/// The online booking's payment column of `appointment`.
async fn booking_payment(su: &mut sqlx::PgConnection, appointment: &str) -> String {
    sqlx::query_scalar("select payment from online_booking where appointment_id = $1::uuid")
        .bind(appointment)
        .fetch_one(su)
        .await
        .unwrap()
}

/// Completes the last Checkout Session the stand-in made, as Stripe's signed webhooks to
/// `hooks` at `t` say: paid with its own `PaymentIntent` (named after `seed`), or for a card
/// on file, set up and then saving `payment_method` through the `SetupIntent`'s event.
pub(crate) async fn pay_last_checkout(
    stripe: &StripeStandIn,
    hooks: &str,
    t: i64,
    seed: u64,
    payment_method: &str,
) {
    let session = stripe.objects().last().unwrap().clone();
    let mut completed = stripe.completed_session(&session.id).unwrap();
    if completed["mode"] == "payment" {
        // Each booking's own PaymentIntent, as Stripe makes one per session.
        completed["payment_intent"] = json!(format!("pi_test_{:06}", 800_000 + seed));
    }
    let status =
        StripeStandIn::send_event(hooks, SECRET, "checkout.session.completed", &completed, t).await;
    assert_eq!(status, 204);
    if completed["mode"] == "setup" {
        let reference = session.json["metadata"]["ref"].clone();
        let setup = json!({"id": completed["setup_intent"], "object": "setup_intent",
            "customer": completed["customer"], "payment_method": payment_method,
            "status": "succeeded", "metadata": {"ref": reference}});
        let status =
            StripeStandIn::send_event(hooks, SECRET, "setup_intent.succeeded", &setup, t).await;
        assert_eq!(status, 204);
    }
}

/// `(state, refunded_minor, settled)` of the one refund row.
fn refund_state(rows: Vec<Value>) -> (String, Option<i64>, bool) {
    let r = of_kind(rows, "refund");
    (
        r["state"].as_str().unwrap().to_owned(),
        r["refunded_minor"].as_i64(),
        !r["settled_at"].is_null(),
    )
}

// req: EGR-02, EGR-05 — the practice cancels a paid booking: what the client paid is refunded
// in full (inside the client's cancellation window too, and never a late-cancellation fee),
// queued with the cancellation and worked by the payments job with the row's idempotency key;
// a processor outage is retried with the same key; staff see it on the payments route; a
// second cancellation refunds nothing more; another practice cannot cancel it.
#[tokio::test]
async fn a_practice_cancellation_refunds_the_client_in_full() {
    use testkit::mailpay_standins::Failure;

    let h = harness().await;
    let p = h.w.a.id;
    let deposit = paid_service(
        &h.app,
        &h.w.a,
        json!({"kind": "deposit", "amount_minor": 3000}),
    )
    .await;
    // The first slot: well inside the practice's 24-hour window.
    let soon = slots(&h.app, p, &deposit).await[0].clone();
    let paid = h.book_and_pay(&deposit, &soon, 61, "").await;
    let mut su = h.db.superuser_unsafe().await;
    let fees = h.fees();

    // Another practice's staff: 404, nothing queued.
    assert_eq!(
        h.cancel_by_staff(&h.w.b, "reception", &paid).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(payments_of(&h, &mut su, &paid).await.len(), 1);

    assert_eq!(
        h.cancel_by_staff(&h.w.a, "reception", &paid).await,
        StatusCode::OK
    );
    let rows = payments_of(&h, &mut su, &paid).await;
    assert_eq!(
        rows.len(),
        2,
        "the deposit and its refund, no fee: {rows:?}"
    );
    let refund = of_kind(rows.clone(), "refund");
    assert_eq!(
        (refund["state"].as_str(), refund["amount_minor"].as_i64()),
        (Some("due"), Some(3000))
    );
    let (status, late): (String, bool) = sqlx::query_as(
        "select status, late_cancel from online_booking where appointment_id = $1::uuid",
    )
    .bind(&paid)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((status.as_str(), late), ("cancelled", false));
    let details: Value = sqlx::query_scalar(
        "select details from audit_event where action = 'appointment.update' and object_id = $1::uuid",
    )
    .bind(&paid)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(details, json!({"refund": "practice_cancelled"}));

    // Stripe is down: due again with backoff, nothing refunded; then it goes through.
    h.stripe.script(Failure::Status(503));
    let now = h.app.clock.now();
    assert_eq!(fees.pass(Some(p), now).await.unwrap(), ["due"]);
    let refund = of_kind(payments_of(&h, &mut su, &paid).await, "refund");
    assert_eq!(refund["attempts"], 1);
    assert_eq!(refund["last_error"], "processor_unavailable");
    assert!(
        fees.pass(Some(p), now).await.unwrap().is_empty(),
        "backing off"
    );
    let later = now + Duration::minutes(2);
    assert_eq!(fees.pass(Some(p), later).await.unwrap(), ["refunded"]);
    let rows = payments_of(&h, &mut su, &paid).await;
    assert_eq!(
        refund_state(rows.clone()),
        ("refunded".to_owned(), Some(3000), true)
    );
    let deposit_pi = of_kind(rows, "deposit")["stripe_payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    let refunds: Vec<_> = h
        .stripe
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/v1/refunds")
        .collect();
    assert_eq!(refunds.len(), 2, "the outage, then the refund");
    assert_eq!(
        refunds[0].header("idempotency-key"),
        refunds[1].header("idempotency-key")
    );
    let form = refunds[1].form();
    assert!(form.contains(&("payment_intent".into(), deposit_pi)));
    assert!(form.contains(&("amount".into(), "3000".into())));
    let payment: String =
        sqlx::query_scalar("select payment from online_booking where appointment_id = $1::uuid")
            .bind(&paid)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(payment, "refunded");

    // Booked again and cancelled again: nothing more is refunded.
    let reception = h.app.token(h.w.a.user("reception")).await;
    let (s, b) = call(
        &h.app,
        Method::PATCH,
        &format!("/api/v1/practices/{p}/appointments/{paid}"),
        Some(&reception),
        Some(&json!({"status": "booked"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        h.cancel_by_staff(&h.w.a, "clinician", &paid).await,
        StatusCode::OK
    );
    assert_eq!(payments_of(&h, &mut su, &paid).await.len(), 2);
    assert!(
        fees.pass(Some(p), later + Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );

    // A card on file, nothing paid: cancelled by the practice, nothing to refund, no fee.
    let card = paid_service(&h.app, &h.w.a, json!({"kind": "card_on_file"})).await;
    let at = slots(&h.app, p, &card).await[0].clone();
    let saved = h.book_and_pay(&card, &at, 62, "pm_card_visa").await;
    assert_eq!(
        h.cancel_by_staff(&h.w.a, "reception", &saved).await,
        StatusCode::OK
    );
    let rows = payments_of(&h, &mut su, &saved).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["kind"], "card_on_file");

    // Stripe saw typed fields only.
    let mut phi = Vec::new();
    for seed in 61..=62u64 {
        let c = domain::synthetic::Generator::new(seed).patient();
        phi.extend([c.given_name, c.family_name, c.phone, c.email]);
    }
    typed_charges_only(&h.stripe, &phi);
}

// req: EGR-05 — a refund is done only when the refunded amount covers it: the Refund API's
// answer and Stripe's signed `charge.refunded` (its real shape: the charge, with its
// cumulative `amount_refunded`) carry amounts; less than the refund's amount leaves the row
// `refund_partial` (not settled, not retried, `refunded_minor` showing what came back) until
// the charge's total covers it; a pending refund waits for the webhook; another currency
// settles nothing.
#[tokio::test]
async fn a_refund_is_done_only_when_the_refunded_amount_covers_it() {
    let h = harness().await;
    let p = h.w.a.id;
    let deposit = paid_service(
        &h.app,
        &h.w.a,
        json!({"kind": "deposit", "amount_minor": 3000}),
    )
    .await;
    let mut su = h.db.superuser_unsafe().await;
    let fees = h.fees();
    let now = h.app.clock.now();

    // The Refund API answers with less than was asked.
    let far = slots(&h.app, p, &deposit).await.last().unwrap().clone();
    let first = h.book_and_pay(&deposit, &far, 71, "").await;
    h.cancel_by_link(&first).await;
    h.stripe.script_refund(json!({"amount": 1000}));
    assert_eq!(fees.pass(Some(p), now).await.unwrap(), ["refund_partial"]);
    let rows = payments_of(&h, &mut su, &first).await;
    assert_eq!(
        refund_state(rows.clone()),
        ("refund_partial".to_owned(), Some(1000), false)
    );
    let pi = of_kind(rows, "deposit")["stripe_payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(booking_payment(&mut su, &first).await, "paid");
    // Not retried: asking again could refund more than was paid.
    assert!(
        fees.pass(Some(p), now + Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    // Stripe's event for more, still short of the amount: partial, with the new total.
    assert_eq!(h.charge_refunded(&pi, 3000, 2000).await, 204);
    assert_eq!(
        refund_state(payments_of(&h, &mut su, &first).await),
        ("refund_partial".to_owned(), Some(2000), false)
    );
    // The rest refunded (by the practice at Stripe): the charge's total covers it — done.
    let charge = StripeStandIn::refunded_charge(&pi, 3000, 3000);
    let (sig, body) = StripeStandIn::signed_event(SECRET, "charge.refunded", &charge, h.now());
    assert_eq!(h.post(&sig, &body).await, 204);
    assert_eq!(h.post(&sig, &body).await, 409, "a replay changes nothing");
    assert_eq!(
        refund_state(payments_of(&h, &mut su, &first).await),
        ("refunded".to_owned(), Some(3000), true)
    );
    assert_eq!(booking_payment(&mut su, &first).await, "refunded");
    // A tampered amount does not verify: nothing changes.
    let (sig, body) = StripeStandIn::signed_event(SECRET, "charge.refunded", &charge, h.now());
    let tampered = String::from_utf8(body).unwrap().replace("3000", "9000");
    assert_eq!(h.post(&sig, tampered.as_bytes()).await, 401);

    // A refund Stripe leaves pending: not done; a partial event, then another currency, then
    // the whole amount.
    let far2 = slots(&h.app, p, &deposit).await.last().unwrap().clone();
    let second = h.book_and_pay(&deposit, &far2, 72, "").await;
    h.cancel_by_link(&second).await;
    h.stripe.script_refund(json!({"status": "pending"}));
    assert_eq!(fees.pass(Some(p), now).await.unwrap(), ["refund_pending"]);
    assert_eq!(
        refund_state(payments_of(&h, &mut su, &second).await),
        ("refund_pending".to_owned(), None, false)
    );
    let pi2 = of_kind(payments_of(&h, &mut su, &second).await, "deposit")["stripe_payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(pi, pi2);
    assert_eq!(h.charge_refunded(&pi2, 3000, 1500).await, 204);
    assert_eq!(
        refund_state(payments_of(&h, &mut su, &second).await),
        ("refund_partial".to_owned(), Some(1500), false)
    );
    let mut eur = StripeStandIn::refunded_charge(&pi2, 3000, 3000);
    eur["currency"] = json!("eur");
    let status =
        StripeStandIn::send_event(&h.hooks, SECRET, "charge.refunded", &eur, h.now()).await;
    assert_eq!(status, 204);
    assert_eq!(
        refund_state(payments_of(&h, &mut su, &second).await).0,
        "refund_partial",
        "another currency settles nothing"
    );
    assert_eq!(h.charge_refunded(&pi2, 3000, 3000).await, 204);
    assert_eq!(
        refund_state(payments_of(&h, &mut su, &second).await),
        ("refunded".to_owned(), Some(3000), true)
    );
    assert_eq!(booking_payment(&mut su, &second).await, "refunded");

    // Each step is on the audit chain, ids and outcomes only.
    let mut outcomes: Vec<String> = sqlx::query_scalar(
        "select details ->> 'outcome' from audit_event
          where practice_id = $1 and action = 'payment.settle' and details ->> 'kind' = 'refund'",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        [
            "mismatch",
            "refund_partial",
            "refund_partial",
            "refunded",
            "refunded"
        ]
    );
}
