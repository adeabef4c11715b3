//! `egress::stripe` against the Stripe stand-in; `Stripe-Signature` webhooks.

use std::time::Duration;

use egress::ApiKey;
use egress::outbound::payment::{Amount, Currency, Description, OpaqueRef};
use egress::outbound::{Finding, LinkOrigin, LinkPurpose, LinkToken, OpaqueLink};
use egress::send::{SendError, WebhookError, WebhookRequest};
use egress::stripe::{
    CheckoutPurpose, CheckoutRequest, RefundRequest, SavedCardCharge, Stripe, StripeEvent,
    StripeId, StripeWebhook, StripeWebhookSecret,
};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;
use testkit::mailpay_standins::{Failure, StripeStandIn};

use super::{link, scanner};

const SECRET: &str = "whsec_test_3b1f0c5e9a7d4c2b8e6f1a0d9c8b7a6e";

fn stripe(base: &str) -> Stripe {
    Stripe::new(
        base,
        ApiKey::new("sk_test_51StandIn".into()),
        Duration::from_secs(10),
    )
    .unwrap()
}

/// The stand-in, on the tests' fixed clock.
async fn start() -> StripeStandIn {
    let standin = StripeStandIn::start().await;
    standin.use_clock(std::sync::Arc::new(domain::ManualClock::new(super::now())));
    standin
}

/// A Checkout Session's expiry Stripe accepts: 31 minutes after its creation.
fn expiry() -> chrono::DateTime<chrono::Utc> {
    super::now() + chrono::Duration::minutes(31)
}

fn deposit() -> CheckoutPurpose {
    CheckoutPurpose::Payment {
        amount: Amount::new(5000, Currency::Usd).unwrap(),
        description: Description::Deposit,
    }
}

/// Every field of every captured request is one the adapter builds from typed values, and
/// no client datum is in any body.
fn only_typed_fields(standin: &StripeStandIn) {
    for r in standin.recorded() {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        for datum in super::client_data()
            .into_iter()
            .chain(super::clients().into_iter().flat_map(|c| c.emails))
        {
            assert!(!body.contains(&datum), "client data in a Stripe request");
        }
        for (name, value) in r.form() {
            let typed = match name.as_str() {
                "mode" => ["payment", "setup"].contains(&value.as_str()),
                "currency" | "line_items[0][price_data][currency]" => {
                    ["usd", "cad", "eur", "gbp", "aud"].contains(&value.as_str())
                }
                "amount" | "line_items[0][price_data][unit_amount]" => value.parse::<u64>().is_ok(),
                "line_items[0][quantity]" => value == "1",
                "line_items[0][price_data][product_data][name]"
                | "payment_intent_data[description]"
                | "setup_intent_data[description]"
                | "description" => [
                    Description::Deposit,
                    Description::Prepayment,
                    Description::LateCancellationFee,
                    Description::NoShowFee,
                    Description::CardOnFile,
                ]
                .iter()
                .any(|d| d.text() == value),
                "metadata[ref]"
                | "client_reference_id"
                | "payment_intent_data[metadata][ref]"
                | "setup_intent_data[metadata][ref]" => uuid::Uuid::parse_str(&value).is_ok(),
                "success_url" | "cancel_url" => value.starts_with(super::ORIGIN),
                "customer_creation" => value == "always",
                "customer" => value.starts_with("cus_"),
                "payment_method" => value.starts_with("pm_"),
                "payment_intent" => value.starts_with("pi_"),
                "off_session" | "confirm" => value == "true",
                "expires_at" => value.parse::<i64>().is_ok(),
                _ => false,
            };
            assert!(typed, "untyped field {name}");
        }
    }
}

// req: EGR-02
#[tokio::test]
async fn checkout_sessions_carry_only_typed_fields_and_replay_on_the_same_key() {
    let standin = start().await;
    let s = stripe(&standin.url());
    let reference = OpaqueRef::new(uuid::Uuid::new_v4());
    let pay_link = link(LinkPurpose::Pay);
    let request = CheckoutRequest {
        purpose: deposit(),
        reference,
        return_link: &pay_link,
        expires_at: expiry(),
    };
    let session = s.create_checkout(&scanner(), &request).await.unwrap();
    assert!(session.id.as_str().starts_with("cs_"));
    assert!(session.url.as_str().contains(session.id.as_str()));
    let again = s.create_checkout(&scanner(), &request).await.unwrap();
    assert_eq!(session, again, "the same key answers the same session");
    assert_eq!(standin.objects().len(), 1, "and creates nothing new");

    let recorded = standin.recorded();
    assert_eq!(recorded.len(), 2);
    let r = &recorded[0];
    assert_eq!(r.path, "/v1/checkout/sessions");
    assert_eq!(
        r.header("idempotency-key"),
        Some(format!("checkout-{}", reference.to_text()).as_str())
    );
    assert_eq!(r.header("authorization"), Some("Bearer sk_test_51StandIn"));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    );
    let form = r.form();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("mode"), Some("payment"));
    assert_eq!(get("line_items[0][price_data][unit_amount]"), Some("5000"));
    assert_eq!(get("line_items[0][price_data][currency]"), Some("usd"));
    assert_eq!(
        get("line_items[0][price_data][product_data][name]"),
        Some("Appointment deposit")
    );
    assert_eq!(get("metadata[ref]"), Some(reference.to_text().as_str()));
    assert_eq!(
        get("client_reference_id"),
        Some(reference.to_text().as_str())
    );
    assert_eq!(get("success_url"), Some(pay_link.as_str()));
    assert_eq!(get("cancel_url"), Some(pay_link.as_str()));
    let expires = expiry().timestamp().to_string();
    assert_eq!(get("expires_at"), Some(expires.as_str()));
    assert_eq!(
        standin.objects()[0].json["expires_at"].as_i64(),
        Some(expiry().timestamp())
    );
    assert_eq!(recorded[1].body, r.body, "the repeat is byte-identical");

    // A card on file.
    let card = s
        .create_checkout(
            &scanner(),
            &CheckoutRequest {
                purpose: CheckoutPurpose::Setup {
                    currency: Currency::Cad,
                },
                reference: OpaqueRef::new(uuid::Uuid::new_v4()),
                return_link: &pay_link,
                expires_at: expiry(),
            },
        )
        .await
        .unwrap();
    assert_ne!(card.id, session.id);
    let setup = standin.recorded().last().unwrap().form();
    assert!(setup.contains(&("mode".into(), "setup".into())));
    assert!(setup.contains(&("currency".into(), "cad".into())));
    only_typed_fields(&standin);
}

// req: EGR-02
#[tokio::test]
async fn saved_card_charges_refunds_and_failures() {
    let standin = start().await;
    let s = stripe(&standin.url());
    let charge = SavedCardCharge {
        amount: Amount::new(2500, Currency::Usd).unwrap(),
        description: Description::LateCancellationFee,
        reference: OpaqueRef::new(uuid::Uuid::new_v4()),
        customer: StripeId::parse("cus_test_000001", "cus_").unwrap(),
        payment_method: StripeId::parse("pm_card_visa", "pm_").unwrap(),
    };
    standin.script(Failure::Status(402));
    let e = s.charge_saved_card(&scanner(), &charge).await.unwrap_err();
    assert!(matches!(e, SendError::Rejected { status: 402 }), "{e:?}");
    standin.script(Failure::Status(500));
    assert!(matches!(
        s.charge_saved_card(&scanner(), &charge).await,
        Err(SendError::Retry { .. })
    ));
    standin.script(Failure::RateLimited {
        retry_after_secs: 2,
    });
    assert!(matches!(
        s.charge_saved_card(&scanner(), &charge).await,
        Err(SendError::Retry {
            retry_after_secs: Some(2)
        })
    ));
    standin.script(Failure::Malformed);
    assert!(matches!(
        s.charge_saved_card(&scanner(), &charge).await,
        Err(SendError::Malformed)
    ));
    let pi = s.charge_saved_card(&scanner(), &charge).await.unwrap();
    assert!(pi.id.as_str().starts_with("pi_"));
    assert_eq!(pi.status, "succeeded");
    let r = standin.recorded().last().unwrap().clone();
    assert_eq!(
        r.header("idempotency-key"),
        Some(format!("charge-{}", charge.reference.to_text()).as_str())
    );

    // The same key with other parameters is refused, nothing created.
    let mut changed = charge.clone();
    changed.amount = Amount::new(9999, Currency::Usd).unwrap();
    let before = standin.objects().len();
    assert!(matches!(
        s.charge_saved_card(&scanner(), &changed).await,
        Err(SendError::Rejected { status: 400 })
    ));
    assert_eq!(standin.objects().len(), before);

    let refund = s
        .refund(
            &scanner(),
            &RefundRequest {
                payment_intent: pi.id.clone(),
                amount: None,
                reference: OpaqueRef::new(uuid::Uuid::new_v4()),
            },
        )
        .await
        .unwrap();
    assert!(refund.id.as_str().starts_with("re_"));
    let form = standin.recorded().last().unwrap().form();
    assert!(form.contains(&("payment_intent".into(), pi.id.as_str().into())));
    only_typed_fields(&standin);
}

// req: EGR-02
#[tokio::test]
async fn a_scanner_finding_sends_no_request() {
    let standin = start().await;
    let s = stripe(&standin.url());
    // A return link on a host that is not the practice's.
    let foreign = OpaqueLink::new(
        &LinkOrigin::parse("https://pay.elsewhere.test").unwrap(),
        LinkPurpose::Pay,
        &LinkToken::generate(),
    );
    let e = s
        .create_checkout(
            &scanner(),
            &CheckoutRequest {
                purpose: deposit(),
                reference: OpaqueRef::new(uuid::Uuid::new_v4()),
                return_link: &foreign,
                expires_at: expiry(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::Refused(Finding::LinkHost)), "{e:?}");
    assert!(standin.recorded().is_empty());
}

// req: EGR-05 — a session must expire 30 minutes to 24 hours after its creation, as Stripe
// requires; outside that the stand-in refuses it as Stripe does and creates nothing.
#[tokio::test]
async fn a_checkout_expiry_outside_stripes_bounds_is_refused() {
    let standin = start().await;
    let s = stripe(&standin.url());
    let pay_link = link(LinkPurpose::Pay);
    let minutes = |m: i64| super::now() + chrono::Duration::minutes(m);
    for (at, ok) in [
        (minutes(29), false),
        (minutes(30), true),
        (minutes(24 * 60), true),
        (minutes(24 * 60 + 1), false),
    ] {
        let made = s
            .create_checkout(
                &scanner(),
                &CheckoutRequest {
                    purpose: deposit(),
                    reference: OpaqueRef::new(uuid::Uuid::new_v4()),
                    return_link: &pay_link,
                    expires_at: at,
                },
            )
            .await;
        match made {
            Ok(_) => assert!(ok, "{at} accepted"),
            Err(SendError::Rejected { status }) => {
                assert!(!ok, "{at} refused");
                assert_eq!(status, 400);
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(
        standin.objects().len(),
        2,
        "only the two in bounds were made"
    );
}

fn verify(
    verifier: &StripeWebhook,
    signature: Option<&str>,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<StripeEvent, WebhookError> {
    let mut h = HeaderMap::new();
    if let Some(sig) = signature {
        h.insert("stripe-signature", HeaderValue::from_str(sig).unwrap());
    }
    verifier.verify(
        &WebhookRequest {
            url: "https://chartroom.example.test/webhooks/stripe",
            headers: &h,
            body,
        },
        now,
    )
}

// req: EGR-06
#[tokio::test]
async fn stripe_webhooks_are_verified_then_parsed() {
    let standin = start().await;
    let s = stripe(&standin.url());
    let reference = OpaqueRef::new(uuid::Uuid::new_v4());
    let pay_link = link(LinkPurpose::Pay);
    let session = s
        .create_checkout(
            &scanner(),
            &CheckoutRequest {
                purpose: deposit(),
                reference,
                return_link: &pay_link,
                expires_at: expiry(),
            },
        )
        .await
        .unwrap();
    let verifier = StripeWebhook::new(StripeWebhookSecret::new(SECRET.into()));
    let now = super::now();
    let t = now.timestamp();

    let object = standin.completed_session(session.id.as_str()).unwrap();
    let (sig, body) = StripeStandIn::signed_event(SECRET, "checkout.session.completed", &object, t);
    match verify(&verifier, Some(&sig), &body, now).unwrap() {
        StripeEvent::CheckoutCompleted {
            event_id,
            session: got,
            reference: r,
            setup,
            amount_total,
            payment_status,
            payment_intent,
            ..
        } => {
            assert!(event_id.starts_with("evt_"));
            assert_eq!(got, session.id);
            assert_eq!(r, Some(reference));
            assert!(!setup);
            assert_eq!(amount_total, Some(5000));
            assert_eq!(payment_status, "paid");
            assert!(payment_intent.is_some());
        }
        other => panic!("{other:?}"),
    }

    let ref_text = reference.to_text();
    let pi = json!({"id": "pi_test_1", "object": "payment_intent", "amount": 5000,
        "amount_received": 5000, "currency": "usd", "status": "succeeded",
        "metadata": {"ref": ref_text}});
    let (sig, body) = StripeStandIn::signed_event(SECRET, "payment_intent.succeeded", &pi, t);
    assert!(matches!(
        verify(&verifier, Some(&sig), &body, now).unwrap(),
        StripeEvent::PaymentSucceeded { amount: 5000, ref currency, reference: Some(r), .. }
            if currency == "usd" && r == reference
    ));
    let (sig, body) = StripeStandIn::signed_event(SECRET, "payment_intent.payment_failed", &pi, t);
    assert!(matches!(
        verify(&verifier, Some(&sig), &body, now).unwrap(),
        StripeEvent::PaymentFailed { .. }
    ));
    let seti = json!({"id": "seti_test_1", "object": "setup_intent", "customer": "cus_test_1",
        "payment_method": "pm_test_1", "status": "succeeded", "metadata": {"ref": ref_text}});
    let (sig, body) = StripeStandIn::signed_event(SECRET, "setup_intent.succeeded", &seti, t);
    match verify(&verifier, Some(&sig), &body, now).unwrap() {
        StripeEvent::SetupSucceeded {
            customer,
            payment_method,
            reference: r,
            ..
        } => {
            assert_eq!(customer.unwrap().as_str(), "cus_test_1");
            assert_eq!(payment_method.unwrap().as_str(), "pm_test_1");
            assert_eq!(r, Some(reference));
        }
        other => panic!("{other:?}"),
    }
    let charge = json!({"id": "ch_test_1", "object": "charge", "payment_intent": "pi_test_1",
        "amount_refunded": 5000});
    let (sig, body) = StripeStandIn::signed_event(SECRET, "charge.refunded", &charge, t);
    assert!(matches!(
        verify(&verifier, Some(&sig), &body, now).unwrap(),
        StripeEvent::ChargeRefunded {
            amount_refunded: 5000,
            ..
        }
    ));
    // An event type Chartroom does not act on.
    let (sig, body) = StripeStandIn::signed_event(SECRET, "payment_intent.created", &pi, t);
    let ignored = verify(&verifier, Some(&sig), &body, now).unwrap();
    assert!(matches!(ignored, StripeEvent::Ignored { .. }));
    assert!(ignored.event_id().starts_with("evt_"));

    // Refused: another secret, a tampered body, stale and future timestamps, no header.
    let (sig, body) =
        StripeStandIn::signed_event("whsec_other", "payment_intent.succeeded", &pi, t);
    assert_eq!(
        verify(&verifier, Some(&sig), &body, now),
        Err(WebhookError::BadSignature)
    );
    let (sig, body) = StripeStandIn::signed_event(SECRET, "payment_intent.succeeded", &pi, t);
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("5000", "5");
    assert_eq!(
        verify(&verifier, Some(&sig), tampered.as_bytes(), now),
        Err(WebhookError::BadSignature)
    );
    let (sig, body) = StripeStandIn::signed_event(SECRET, "payment_intent.succeeded", &pi, t - 301);
    assert_eq!(
        verify(&verifier, Some(&sig), &body, now),
        Err(WebhookError::Stale)
    );
    let (sig, body) = StripeStandIn::signed_event(SECRET, "payment_intent.succeeded", &pi, t + 301);
    assert_eq!(
        verify(&verifier, Some(&sig), &body, now),
        Err(WebhookError::Stale)
    );
    assert_eq!(
        verify(&verifier, None, &body, now),
        Err(WebhookError::BadSignature)
    );
    // The signed timestamp cannot be swapped for a fresh one.
    let (sig, body) =
        StripeStandIn::signed_event(SECRET, "payment_intent.succeeded", &pi, t - 3600);
    let moved = sig.replace(&format!("t={}", t - 3600), &format!("t={t}"));
    assert_eq!(
        verify(&verifier, Some(&moved), &body, now),
        Err(WebhookError::BadSignature)
    );
    // Several v1 signatures (a secret being rolled): one good one is enough.
    let (sig, body) = StripeStandIn::signed_event(SECRET, "payment_intent.succeeded", &pi, t);
    let old = StripeStandIn::signature("whsec_old", t, &body);
    let v1 = |s: &str| s.split(',').nth(1).unwrap().to_owned();
    let both = format!("t={t},{},{}", v1(&old), v1(&sig));
    assert!(verify(&verifier, Some(&both), &body, now).is_ok(), "{both}");
    // A narrower tolerance.
    let strict = StripeWebhook::with_tolerance(StripeWebhookSecret::new(SECRET.into()), 10);
    let (sig, body) = StripeStandIn::signed_event(SECRET, "payment_intent.succeeded", &pi, t - 11);
    assert_eq!(
        verify(&strict, Some(&sig), &body, now),
        Err(WebhookError::Stale)
    );
}

// req: EGR-06
#[tokio::test]
async fn the_stand_in_delivers_signed_events_to_a_url() {
    use axum::body::Bytes;
    use axum::http::HeaderMap as AxumHeaders;
    use std::sync::{Arc, Mutex};

    let seen: Arc<Mutex<Vec<Result<String, WebhookError>>>> = Arc::default();
    let verifier = Arc::new(StripeWebhook::new(StripeWebhookSecret::new(SECRET.into())));
    let app = {
        let seen = Arc::clone(&seen);
        axum::Router::new().route(
            "/webhooks/stripe",
            axum::routing::post(move |headers: AxumHeaders, body: Bytes| {
                let seen = Arc::clone(&seen);
                let verifier = Arc::clone(&verifier);
                async move {
                    let got = verifier
                        .verify(
                            &WebhookRequest {
                                url: "http://127.0.0.1/webhooks/stripe",
                                headers: &headers,
                                body: &body,
                            },
                            super::now(),
                        )
                        .map(|e| e.event_id().to_owned());
                    let status = if got.is_ok() { 200 } else { 400 };
                    seen.lock().unwrap().push(got);
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/webhooks/stripe");
    let object = json!({"id": "seti_test_9", "object": "setup_intent", "status": "succeeded"});
    let t = super::now().timestamp();
    assert_eq!(
        StripeStandIn::send_event(&url, SECRET, "setup_intent.succeeded", &object, t).await,
        200
    );
    assert_eq!(
        StripeStandIn::send_event(&url, "whsec_wrong", "setup_intent.succeeded", &object, t).await,
        400
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen[0].as_ref().is_ok_and(|id| id.starts_with("evt_")));
    assert_eq!(seen[1], Err(WebhookError::BadSignature));
    server.abort();
}
