//! The SMS and push adapters against their loopback stand-ins (Telnyx, Twilio, a Web Push
//! service), and the webhook verifiers against webhooks the stand-ins sign like the real
//! providers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines,
    reason = "integration tests: failures must be loud"
)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use egress::ApiKey;
use egress::outbound::{
    KnownClient, LinkOrigin, LinkPurpose, LinkToken, Message, OpaqueLink, PracticeName,
    PracticePhone, PushPayload, Rendered, Scanner,
};
use egress::send::{
    DeliveryStatus, IdempotencyKey, Inbound, Keyword, PhoneNumber, PushRequest, PushSender,
    PushSubscription, SendError, SmsCarrier, SmsRequest, WebhookError, WebhookRequest,
    WebhookVerifier,
};
use egress::telnyx::{Telnyx, TelnyxConfig, TelnyxSender, TelnyxWebhooks};
use egress::twilio::{Twilio, TwilioAuth, TwilioConfig, TwilioSender, TwilioWebhooks};
use egress::webpush::{Urgency, VapidKey, WebPush, WebPushConfig};
use egress::{Limits, outbound};
use testkit::messaging_standins::{
    MessagingReply, PushServiceStandIn, SignedWebhook, TelnyxStandIn, TwilioStandIn,
};

const TELNYX_KEY: &str = "KEY0123456789_stand_in";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "stand-in-auth-token-0123456789ab";
const OWN_NUMBER: &str = "+15550100199";
const TELNYX_CALLBACK: &str = "https://chartroom.example/webhooks/telnyx";
const TWILIO_CALLBACK: &str = "https://chartroom.example/webhooks/twilio";

fn practice() -> PracticeName {
    PracticeName::new("Harbour Dental").unwrap()
}

/// Two synthetic clients of the practice: the one messaged, and another with another phone.
fn clients() -> (
    domain::synthetic::SyntheticPatient,
    domain::synthetic::SyntheticPatient,
) {
    let mut g = domain::synthetic::Generator::new(19);
    let first = g.patient();
    let other = std::iter::repeat_with(|| g.patient())
        .find(|p| p.phone != first.phone && p.family_name != first.family_name)
        .unwrap();
    (first, other)
}

/// The client messaged.
fn client() -> domain::synthetic::SyntheticPatient {
    clients().0
}

/// Another client of the practice.
fn other_client() -> domain::synthetic::SyntheticPatient {
    clients().1
}

fn known(c: &domain::synthetic::SyntheticPatient) -> KnownClient {
    KnownClient {
        given: c.given_name.clone(),
        family: c.family_name.clone(),
        phones: vec![c.phone.clone()],
        emails: vec![c.email.clone()],
        address_lines: vec![],
    }
}

fn scanner_for(hosts: &[&str], clients: &[KnownClient]) -> Scanner {
    Scanner::new(
        clients,
        hosts.iter().map(|h| (*h).to_owned()),
        &[PracticePhone::new(OWN_NUMBER).unwrap()],
        &[],
        Some(&practice()),
    )
    .unwrap()
}

/// The practice's scanner: its own clients, links to its booking origin only.
fn scanner() -> Scanner {
    scanner_for(
        &["book.harbour.test"],
        &[known(&client()), known(&other_client())],
    )
}

fn intake_request() -> Rendered {
    Message::IntakeRequest {
        practice: practice(),
        link: OpaqueLink::new(
            &LinkOrigin::parse("https://book.harbour.test").unwrap(),
            LinkPurpose::Intake,
            &LinkToken::generate(),
        ),
    }
    .render()
}

fn recipient() -> PhoneNumber {
    PhoneNumber::parse(&client().phone).unwrap()
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(2),
        ..egress::messaging_limits()
    }
}

fn key() -> IdempotencyKey {
    IdempotencyKey(uuid::Uuid::new_v4())
}

/// A loopback URL nothing listens on.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn telnyx_config(base: &str, api_key: &str) -> TelnyxConfig {
    TelnyxConfig {
        base_url: url::Url::parse(base).unwrap(),
        api_key: ApiKey::new(api_key.to_owned()),
        sender: TelnyxSender::Number(PhoneNumber::parse(OWN_NUMBER).unwrap()),
        callback: url::Url::parse(TELNYX_CALLBACK).unwrap(),
        limits: limits(),
    }
}

fn twilio_config(base: &str, token: &str) -> TwilioConfig {
    TwilioConfig {
        base_url: url::Url::parse(base).unwrap(),
        account_sid: ACCOUNT.to_owned(),
        auth: TwilioAuth::AuthToken(ApiKey::new(token.to_owned())),
        sender: TwilioSender::Number(PhoneNumber::parse(OWN_NUMBER).unwrap()),
        callback: url::Url::parse(TWILIO_CALLBACK).unwrap(),
        limits: limits(),
    }
}

async fn send_sms(
    carrier: &dyn SmsCarrier,
    scanner: &Scanner,
    rendered: &Rendered,
    key: IdempotencyKey,
) -> Result<egress::send::Receipt, SendError> {
    carrier
        .send_sms(
            scanner,
            SmsRequest {
                to: &recipient(),
                body: rendered.sms(),
                key,
            },
        )
        .await
}

fn verify(
    verifier: &dyn WebhookVerifier,
    webhook: &SignedWebhook,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<Inbound>, WebhookError> {
    verifier.verify(
        &WebhookRequest {
            url: &webhook.url,
            headers: &webhook.header_map(),
            body: &webhook.body,
        },
        now,
    )
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()
}

// ---------------------------------------------------------------------------------------
// Telnyx

#[tokio::test]
async fn telnyx_sends_the_rendered_text_and_returns_the_message_id() {
    let standin = TelnyxStandIn::start(TELNYX_KEY).await;
    let telnyx = Telnyx::new(telnyx_config(&standin.url(), TELNYX_KEY)).unwrap();
    assert_eq!(
        telnyx.idempotency(),
        egress::send::Idempotency::CallbackOnly
    );
    let rendered = intake_request();
    let k = key();
    let receipt = send_sms(&telnyx, &scanner(), &rendered, k).await.unwrap();
    let sent = standin.messages();
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(receipt.provider_id, m.id);
    assert_eq!(m.to, recipient().as_str());
    assert_eq!(m.from.as_deref(), Some(OWN_NUMBER));
    assert_eq!(m.text, rendered.sms().as_str());
    assert_eq!(
        m.webhook_url.as_deref(),
        Some(format!("{TELNYX_CALLBACK}?key={}", k.0).as_str())
    );
    let body: serde_json::Value = serde_json::from_slice(&m.raw).unwrap();
    assert_eq!(body["use_profile_webhooks"], false);
    assert!(body.get("messaging_profile_id").is_none());

    // From a messaging profile's number pool instead of one number.
    let profile = uuid::Uuid::new_v4();
    let mut config = telnyx_config(&standin.url(), TELNYX_KEY);
    config.sender = TelnyxSender::Profile(profile);
    assert!(!format!("{config:?}").contains(TELNYX_KEY));
    let pooled = Telnyx::new(config).unwrap();
    send_sms(&pooled, &scanner(), &rendered, key())
        .await
        .unwrap();
    let m = &standin.messages()[1];
    assert_eq!(m.from, None);
    assert_eq!(m.messaging_profile_id, Some(profile.to_string()));
}

#[tokio::test]
async fn telnyx_maps_failures_to_send_errors() {
    let standin = TelnyxStandIn::start(TELNYX_KEY).await;
    let telnyx = Telnyx::new(telnyx_config(&standin.url(), TELNYX_KEY)).unwrap();
    let (s, r) = (scanner(), intake_request());
    standin.script(MessagingReply::Status(403));
    assert!(matches!(
        send_sms(&telnyx, &s, &r, key()).await,
        Err(SendError::Rejected { status: 403 })
    ));
    standin.script(MessagingReply::RateLimited {
        retry_after_secs: 7,
    });
    assert!(matches!(
        send_sms(&telnyx, &s, &r, key()).await,
        Err(SendError::Retry {
            retry_after_secs: Some(7)
        })
    ));
    standin.script(MessagingReply::Status(503));
    let e = send_sms(&telnyx, &s, &r, key()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }) && e.is_retryable());
    standin.script(MessagingReply::Oversized(100_000));
    assert!(matches!(
        send_sms(&telnyx, &s, &r, key()).await,
        Err(SendError::Malformed)
    ));
    standin.script(MessagingReply::Malformed);
    assert!(matches!(
        send_sms(&telnyx, &s, &r, key()).await,
        Err(SendError::Malformed)
    ));
    // A wrong key is refused by the stand-in as by Telnyx.
    let wrong = Telnyx::new(telnyx_config(&standin.url(), "KEY_wrong")).unwrap();
    assert!(matches!(
        send_sms(&wrong, &s, &r, key()).await,
        Err(SendError::Rejected { status: 401 })
    ));
    assert_eq!(standin.requests(), 6);
}

#[tokio::test]
async fn telnyx_timeouts_and_unreachable_are_told_apart() {
    let standin = TelnyxStandIn::start(TELNYX_KEY).await;
    let mut config = telnyx_config(&standin.url(), TELNYX_KEY);
    config.limits.timeout = Duration::from_millis(300);
    let telnyx = Telnyx::new(config).unwrap();
    standin.script(MessagingReply::Hang);
    // The request arrived: it may have been sent, so it is a retry, not "unreachable".
    assert!(matches!(
        send_sms(&telnyx, &scanner(), &intake_request(), key()).await,
        Err(SendError::Retry {
            retry_after_secs: None
        })
    ));
    let nowhere = Telnyx::new(telnyx_config(&closed_port().await, TELNYX_KEY)).unwrap();
    assert!(matches!(
        send_sms(&nowhere, &scanner(), &intake_request(), key()).await,
        Err(SendError::Unreachable)
    ));
}

// req: EGR-01 — the final request bytes pass the scanner; a finding sends nothing.
#[tokio::test]
async fn telnyx_refused_by_the_scanner_never_connects() {
    let standin = TelnyxStandIn::start(TELNYX_KEY).await;
    let telnyx = Telnyx::new(telnyx_config(&standin.url(), TELNYX_KEY)).unwrap();
    let patient = other_client();
    // The link's host is not on this practice's allow-list.
    let elsewhere = scanner_for(&["book.other-practice.test"], &[known(&patient)]);
    assert!(matches!(
        send_sms(&telnyx, &elsewhere, &intake_request(), key()).await,
        Err(SendError::Refused(outbound::Finding::LinkHost))
    ));
    // Another client's name typed into the practice-name slot.
    let named = Message::StopConfirmed {
        practice: PracticeName::new(&format!("{} {}", patient.given_name, patient.family_name))
            .unwrap(),
    }
    .render();
    assert!(matches!(
        send_sms(&telnyx, &scanner(), &named, key()).await,
        Err(SendError::Refused(outbound::Finding::ClientName))
    ));
    // Another client's mobile typed into the practice-phone slot.
    let phoned = Message::Help {
        practice: practice(),
        phone: PracticePhone::new(&patient.phone).unwrap(),
    }
    .render();
    assert!(matches!(
        send_sms(&telnyx, &scanner(), &phoned, key()).await,
        Err(SendError::Refused(outbound::Finding::ClientPhone))
    ));
    // A sender number the scanner does not know as the practice's own is a digit run.
    let mut config = telnyx_config(&standin.url(), TELNYX_KEY);
    config.sender = TelnyxSender::Number(PhoneNumber::parse("+15550177788").unwrap());
    let unknown_sender = Telnyx::new(config).unwrap();
    assert!(matches!(
        send_sms(&unknown_sender, &scanner(), &intake_request(), key()).await,
        Err(SendError::Refused(_))
    ));
    assert_eq!(standin.requests(), 0);
}

// req: EGR-06, TX-03 — delivery webhooks are read only after the Ed25519 signature and timestamp hold.
#[tokio::test]
async fn telnyx_webhooks_are_verified_before_they_are_read() {
    let standin = TelnyxStandIn::start(TELNYX_KEY).await;
    let telnyx = Telnyx::new(telnyx_config(&standin.url(), TELNYX_KEY)).unwrap();
    let k = key();
    let receipt = send_sms(&telnyx, &scanner(), &intake_request(), k)
        .await
        .unwrap();
    let verifier = TelnyxWebhooks::from_base64(&standin.public_key_base64()).unwrap();
    let at = now().timestamp();

    for (status, expected) in [
        ("sent", DeliveryStatus::Sent),
        ("delivered", DeliveryStatus::Delivered),
        ("delivery_failed", DeliveryStatus::Failed),
    ] {
        let (url, event) = standin.delivery_event(&receipt.provider_id, status);
        let events = verify(&verifier, &standin.signed(&url, &event, at), now()).unwrap();
        assert_eq!(
            events,
            vec![Inbound::Delivery {
                event_id: event["data"]["id"].as_str().unwrap().to_owned(),
                provider_id: receipt.provider_id.clone(),
                key: Some(k),
                status: expected,
            }]
        );
    }

    let (url, event) = standin.delivery_event(&receipt.provider_id, "delivered");
    let good = standin.signed(&url, &event, at);
    // Telnyx does not sign the URL: the key is read from the signed body, not the query.
    let mut requeried = good.clone();
    requeried.url = format!("{TELNYX_CALLBACK}?key={}", uuid::Uuid::new_v4());
    assert!(matches!(
        verify(&verifier, &requeried, now()).unwrap().as_slice(),
        [Inbound::Delivery { key: Some(found), .. }] if *found == k
    ));
    // Within the tolerance either way.
    assert!(verify(&verifier, &good, now() + chrono::Duration::seconds(299)).is_ok());
    // Stale: signed more than 300 s before now.
    let stale = standin.signed(&url, &event, at - 301);
    assert_eq!(verify(&verifier, &stale, now()), Err(WebhookError::Stale));
    // Tampered body.
    let mut tampered = good.clone();
    let text = String::from_utf8(tampered.body.clone()).unwrap();
    tampered.body = text.replace("delivered", "delivery_failed").into_bytes();
    assert_eq!(
        verify(&verifier, &tampered, now()),
        Err(WebhookError::BadSignature)
    );
    // A timestamp changed after signing.
    let mut moved = good.clone();
    moved.headers.retain(|(n, _)| n != "telnyx-timestamp");
    moved
        .headers
        .push(("telnyx-timestamp".into(), (at + 1).to_string()));
    assert_eq!(
        verify(&verifier, &moved, now()),
        Err(WebhookError::BadSignature)
    );
    // Signed with another key.
    let other = TelnyxStandIn::start(TELNYX_KEY).await;
    assert_eq!(
        verify(&verifier, &other.signed(&url, &event, at), now()),
        Err(WebhookError::BadSignature)
    );
    // No signature at all.
    let mut unsigned = good.clone();
    unsigned
        .headers
        .retain(|(n, _)| n != "telnyx-signature-ed25519");
    assert_eq!(
        verify(&verifier, &unsigned, now()),
        Err(WebhookError::BadSignature)
    );
    // Signed, but not JSON of the documented shape.
    let garbage = standin.signed(&url, &serde_json::json!({"data": 1}), at);
    assert_eq!(
        verify(&verifier, &garbage, now()),
        Err(WebhookError::Malformed)
    );
}

// req: EGR-06 — STOP / START / HELP are mirrored; any other text is dropped unread.
#[tokio::test]
async fn telnyx_inbound_keywords() {
    let standin = TelnyxStandIn::start(TELNYX_KEY).await;
    let verifier = TelnyxWebhooks::from_base64(&standin.public_key_base64()).unwrap();
    let from = client().phone;
    let url = "https://chartroom.example/webhooks/telnyx";
    let read = |text: &str| {
        let event = TelnyxStandIn::inbound_event(&from, OWN_NUMBER, text, url);
        let events = verify(
            &verifier,
            &standin.signed(url, &event, now().timestamp()),
            now(),
        )
        .unwrap();
        (event["data"]["id"].as_str().unwrap().to_owned(), events)
    };
    for (text, keyword) in [
        ("STOP", Keyword::Stop),
        (" stop all ", Keyword::Stop),
        ("Unsubscribe", Keyword::Stop),
        ("START", Keyword::Start),
        ("unstop", Keyword::Start),
        ("help", Keyword::Help),
        ("INFO", Keyword::Help),
    ] {
        let (event_id, events) = read(text);
        assert_eq!(
            events,
            vec![Inbound::Keyword {
                event_id,
                from: PhoneNumber::parse(&from).unwrap(),
                keyword,
            }],
            "{text}"
        );
    }
    for text in ["I have a toothache since Monday", "stop it please", "yes"] {
        let (event_id, events) = read(text);
        assert_eq!(events, vec![Inbound::Ignored { event_id }], "{text}");
    }
}

/// A webhook receiver on loopback that verifies what it is sent (as the server's route will).
async fn receiver(
    verifier: Arc<dyn WebhookVerifier>,
) -> (String, Arc<std::sync::Mutex<Vec<Inbound>>>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (state_seen, state_origin) = (Arc::clone(&seen), origin.clone());
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let (verifier, seen, origin) = (
            Arc::clone(&verifier),
            Arc::clone(&state_seen),
            state_origin.clone(),
        );
        async move {
            let url = format!("{origin}{uri}");
            let request = WebhookRequest {
                url: &url,
                headers: &headers,
                body: &body,
            };
            match verifier.verify(&request, now()) {
                Ok(events) => {
                    seen.lock().unwrap().extend(events);
                    StatusCode::OK
                }
                Err(_) => StatusCode::UNAUTHORIZED,
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (origin, seen)
}

#[tokio::test]
async fn telnyx_stand_in_posts_signed_webhooks_to_a_url() {
    let standin = TelnyxStandIn::start(TELNYX_KEY).await;
    let verifier = TelnyxWebhooks::from_base64(&standin.public_key_base64()).unwrap();
    let (origin, seen) = receiver(Arc::new(verifier)).await;
    let url = format!("{origin}/webhooks/telnyx");
    let event = TelnyxStandIn::inbound_event(&client().phone, OWN_NUMBER, "STOP", &url);
    assert_eq!(
        standin.signed(&url, &event, now().timestamp()).post().await,
        200
    );
    let stale = standin.signed(&url, &event, now().timestamp() - 3600);
    assert_eq!(stale.post().await, 401);
    let seen = seen.lock().unwrap().clone();
    assert!(matches!(
        seen.as_slice(),
        [Inbound::Keyword {
            keyword: Keyword::Stop,
            ..
        }]
    ));
}

// ---------------------------------------------------------------------------------------
// Twilio

#[tokio::test]
async fn twilio_sends_the_rendered_text_and_returns_the_sid() {
    let standin = TwilioStandIn::start(ACCOUNT, AUTH_TOKEN).await;
    let twilio = Twilio::new(twilio_config(&standin.url(), AUTH_TOKEN)).unwrap();
    assert_eq!(
        twilio.idempotency(),
        egress::send::Idempotency::CallbackOnly
    );
    let rendered = intake_request();
    let k = key();
    let receipt = send_sms(&twilio, &scanner(), &rendered, k).await.unwrap();
    let sent = standin.messages();
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(receipt.provider_id, m.sid);
    assert_eq!(m.user, ACCOUNT);
    assert_eq!(m.field("To"), Some(recipient().as_str()));
    assert_eq!(m.field("From"), Some(OWN_NUMBER));
    assert_eq!(m.field("Body"), Some(rendered.sms().as_str()));
    assert_eq!(
        m.field("StatusCallback"),
        Some(format!("{TWILIO_CALLBACK}?key={}", k.0).as_str())
    );
}

#[tokio::test]
async fn twilio_authenticates_with_an_api_key_and_a_messaging_service() {
    let standin = TwilioStandIn::start(ACCOUNT, AUTH_TOKEN).await;
    let key_sid = "SK0123456789abcdef0123456789abcdef";
    standin.add_api_key(key_sid, "api-key-secret");
    let mut config = twilio_config(&standin.url(), AUTH_TOKEN);
    config.auth = TwilioAuth::ApiKey {
        sid: key_sid.to_owned(),
        secret: ApiKey::new("api-key-secret".to_owned()),
    };
    config.sender = TwilioSender::MessagingService("MG0123456789abcdef0123456789abcdef".into());
    let twilio = Twilio::new(config.clone()).unwrap();
    send_sms(&twilio, &scanner(), &intake_request(), key())
        .await
        .unwrap();
    let m = &standin.messages()[0];
    assert_eq!(m.user, key_sid);
    assert_eq!(m.field("From"), None);
    assert_eq!(
        m.field("MessagingServiceSid"),
        Some("MG0123456789abcdef0123456789abcdef")
    );
    assert!(!format!("{config:?}").contains("api-key-secret"));
    config.sender = TwilioSender::MessagingService("not-a-sid".into());
    assert!(Twilio::new(config).is_err());
}

#[tokio::test]
async fn twilio_maps_failures_to_send_errors() {
    let standin = TwilioStandIn::start(ACCOUNT, AUTH_TOKEN).await;
    let twilio = Twilio::new(twilio_config(&standin.url(), AUTH_TOKEN)).unwrap();
    let (s, r) = (scanner(), intake_request());
    standin.script(MessagingReply::Status(400));
    assert!(matches!(
        send_sms(&twilio, &s, &r, key()).await,
        Err(SendError::Rejected { status: 400 })
    ));
    standin.script(MessagingReply::RateLimited {
        retry_after_secs: 3,
    });
    assert!(matches!(
        send_sms(&twilio, &s, &r, key()).await,
        Err(SendError::Retry {
            retry_after_secs: Some(3)
        })
    ));
    standin.script(MessagingReply::Status(500));
    assert!(matches!(
        send_sms(&twilio, &s, &r, key()).await,
        Err(SendError::Retry { .. })
    ));
    standin.script(MessagingReply::Oversized(100_000));
    assert!(matches!(
        send_sms(&twilio, &s, &r, key()).await,
        Err(SendError::Malformed)
    ));
    let wrong = Twilio::new(twilio_config(&standin.url(), "wrong-token")).unwrap();
    assert!(matches!(
        send_sms(&wrong, &s, &r, key()).await,
        Err(SendError::Rejected { status: 401 })
    ));
    let mut config = twilio_config(&standin.url(), AUTH_TOKEN);
    config.limits.timeout = Duration::from_millis(300);
    standin.script(MessagingReply::Hang);
    assert!(matches!(
        send_sms(&Twilio::new(config).unwrap(), &s, &r, key()).await,
        Err(SendError::Retry {
            retry_after_secs: None
        })
    ));
    assert_eq!(standin.requests(), 6);
    let nowhere = Twilio::new(twilio_config(&closed_port().await, AUTH_TOKEN)).unwrap();
    assert!(matches!(
        send_sms(&nowhere, &s, &r, key()).await,
        Err(SendError::Unreachable)
    ));
}

// req: EGR-01 — the final form bytes pass the scanner; a finding sends nothing.
#[tokio::test]
async fn twilio_refused_by_the_scanner_never_connects() {
    let standin = TwilioStandIn::start(ACCOUNT, AUTH_TOKEN).await;
    let twilio = Twilio::new(twilio_config(&standin.url(), AUTH_TOKEN)).unwrap();
    let patient = other_client();
    let elsewhere = scanner_for(&["book.other-practice.test"], &[known(&patient)]);
    assert!(matches!(
        send_sms(&twilio, &elsewhere, &intake_request(), key()).await,
        Err(SendError::Refused(outbound::Finding::LinkHost))
    ));
    let cancelled = Message::BookingCancelled {
        practice: practice(),
        time: outbound::AppointmentTime::new(
            chrono::NaiveDate::from_ymd_opt(2026, 12, 9)
                .unwrap()
                .and_hms_opt(10, 0, 0)
                .unwrap(),
        ),
        phone: PracticePhone::new(&patient.phone).unwrap(),
    }
    .render();
    assert!(matches!(
        send_sms(&twilio, &scanner(), &cancelled, key()).await,
        Err(SendError::Refused(outbound::Finding::ClientPhone))
    ));
    assert_eq!(standin.requests(), 0);
}

// req: EGR-06, TX-03 — status callbacks are read only after the HMAC over URL and fields holds.
#[tokio::test]
async fn twilio_webhooks_are_verified_before_they_are_read() {
    let standin = TwilioStandIn::start(ACCOUNT, AUTH_TOKEN).await;
    let twilio = Twilio::new(twilio_config(&standin.url(), AUTH_TOKEN)).unwrap();
    let k = key();
    let receipt = send_sms(&twilio, &scanner(), &intake_request(), k)
        .await
        .unwrap();
    let verifier = TwilioWebhooks::new(ApiKey::new(AUTH_TOKEN.to_owned()));
    for (status, expected) in [
        ("sent", DeliveryStatus::Sent),
        ("delivered", DeliveryStatus::Delivered),
        ("undelivered", DeliveryStatus::Failed),
        ("failed", DeliveryStatus::Failed),
    ] {
        let webhook = standin.status_callback(&receipt.provider_id, status);
        assert_eq!(
            verify(&verifier, &webhook, now()).unwrap(),
            vec![Inbound::Delivery {
                event_id: format!("{}:{status}", receipt.provider_id),
                provider_id: receipt.provider_id.clone(),
                key: Some(k),
                status: expected,
            }]
        );
    }
    let queued = standin.status_callback(&receipt.provider_id, "queued");
    assert_eq!(
        verify(&verifier, &queued, now()).unwrap(),
        vec![Inbound::Ignored {
            event_id: format!("{}:queued", receipt.provider_id)
        }]
    );

    let good = standin.status_callback(&receipt.provider_id, "delivered");
    // Another URL than the one signed (another key in the query, another host).
    let mut moved = good.clone();
    moved.url = format!("{TWILIO_CALLBACK}?key={}", uuid::Uuid::new_v4());
    assert_eq!(
        verify(&verifier, &moved, now()),
        Err(WebhookError::BadSignature)
    );
    let mut host = good.clone();
    host.url = good.url.replace("chartroom.example", "evil.example");
    assert_eq!(
        verify(&verifier, &host, now()),
        Err(WebhookError::BadSignature)
    );
    // A field changed after signing.
    let mut tampered = good.clone();
    tampered.body = String::from_utf8(good.body.clone())
        .unwrap()
        .replace("MessageStatus=delivered", "MessageStatus=failed")
        .into_bytes();
    assert_eq!(
        verify(&verifier, &tampered, now()),
        Err(WebhookError::BadSignature)
    );
    // Another account's token.
    let other = TwilioWebhooks::new(ApiKey::new("another-token".to_owned()));
    assert_eq!(
        verify(&other, &good, now()),
        Err(WebhookError::BadSignature)
    );
    let mut unsigned = good.clone();
    unsigned.headers.retain(|(n, _)| n != "x-twilio-signature");
    assert_eq!(
        verify(&verifier, &unsigned, now()),
        Err(WebhookError::BadSignature)
    );
}

// req: EGR-06 — STOP / START / HELP (and Twilio's OptOutType) are mirrored; other text dropped.
#[tokio::test]
async fn twilio_inbound_keywords() {
    let standin = TwilioStandIn::start(ACCOUNT, AUTH_TOKEN).await;
    let verifier = TwilioWebhooks::new(ApiKey::new(AUTH_TOKEN.to_owned()));
    let from = client().phone;
    let url = "https://chartroom.example/webhooks/twilio/inbound";
    let read = |body: &str, opt_out: Option<&str>| {
        let webhook = standin.inbound(url, &from, OWN_NUMBER, body, opt_out);
        let sid = url::form_urlencoded::parse(&webhook.body)
            .find(|(n, _)| n == "MessageSid")
            .unwrap()
            .1
            .into_owned();
        (sid, verify(&verifier, &webhook, now()).unwrap())
    };
    for (body, opt_out, keyword) in [
        ("STOP", Some("STOP"), Keyword::Stop),
        ("revoke", None, Keyword::Stop),
        ("optout", None, Keyword::Stop),
        ("Arrêt", Some("STOP"), Keyword::Stop),
        ("yes", None, Keyword::Start),
        ("START", Some("START"), Keyword::Start),
        ("help", Some("HELP"), Keyword::Help),
        ("info", None, Keyword::Help),
    ] {
        let (event_id, events) = read(body, opt_out);
        assert_eq!(
            events,
            vec![Inbound::Keyword {
                event_id,
                from: PhoneNumber::parse(&from).unwrap(),
                keyword,
            }],
            "{body}"
        );
    }
    let (event_id, events) = read("my crown fell out, can I come today?", None);
    assert_eq!(events, vec![Inbound::Ignored { event_id }]);
}

// ---------------------------------------------------------------------------------------
// Web Push

fn subscription(s: &testkit::messaging_standins::StandInSubscription) -> PushSubscription {
    PushSubscription {
        endpoint: url::Url::parse(&s.endpoint).unwrap(),
        p256dh: s.p256dh.clone(),
        auth: s.auth.clone(),
    }
}

fn webpush(vapid: VapidKey) -> WebPush {
    WebPush::new(WebPushConfig {
        vapid,
        subject: "mailto:operator@chartroom.example".to_owned(),
        ttl: Duration::from_secs(86_400),
        urgency: Urgency::Normal,
        clock: Arc::new(domain::SystemClock),
        limits: limits(),
    })
    .unwrap()
}

async fn push(
    sender: &WebPush,
    scanner: &Scanner,
    sub: &PushSubscription,
) -> Result<egress::send::Receipt, SendError> {
    sender
        .send_push(
            scanner,
            PushRequest {
                subscription: sub,
                payload: PushPayload::update(),
                key: key(),
            },
        )
        .await
}

// req: EGR-03 — what the push service decrypts is exactly the content-free payload.
#[tokio::test]
async fn web_push_arrives_encrypted_and_decrypts_to_the_content_free_payload() {
    let service = PushServiceStandIn::start().await;
    let vapid = VapidKey::generate().unwrap();
    let sender = webpush(vapid.clone());
    let sub = service.subscribe();
    push(&sender, &scanner(), &subscription(&sub))
        .await
        .unwrap();
    push(&sender, &scanner(), &subscription(&sub))
        .await
        .unwrap();
    let received = service.received();
    assert_eq!(received.len(), 2);
    for r in &received {
        assert_eq!(r.subscription, sub.id);
        assert_eq!(r.plaintext, PushPayload::update().as_bytes());
        assert_eq!(r.ttl, 86_400);
        assert_eq!(r.urgency.as_deref(), Some("normal"));
        assert_eq!(r.topic.as_deref(), Some(egress::webpush::TOPIC));
        assert_eq!(r.vapid_subject, "mailto:operator@chartroom.example");
        assert_eq!(r.vapid_key, vapid.public_key_base64url());
        assert!(
            !r.ciphertext.windows(6).any(|w| w == b"update"),
            "the body on the wire is not the plaintext"
        );
    }
    // A fresh key pair and salt per message.
    assert_ne!(received[0].ciphertext, received[1].ciphertext);
}

#[tokio::test]
async fn web_push_gone_subscriptions_and_failures() {
    let service = PushServiceStandIn::start().await;
    let sender = webpush(VapidKey::generate().unwrap());
    let sub = service.subscribe();
    service.script(MessagingReply::RateLimited {
        retry_after_secs: 30,
    });
    assert!(matches!(
        push(&sender, &scanner(), &subscription(&sub)).await,
        Err(SendError::Retry {
            retry_after_secs: Some(30)
        })
    ));
    service.script(MessagingReply::Status(502));
    assert!(matches!(
        push(&sender, &scanner(), &subscription(&sub)).await,
        Err(SendError::Retry { .. })
    ));
    service.script(MessagingReply::Oversized(100_000));
    assert!(matches!(
        push(&sender, &scanner(), &subscription(&sub)).await,
        Err(SendError::Malformed)
    ));
    service.expire(&sub.id);
    assert!(matches!(
        push(&sender, &scanner(), &subscription(&sub)).await,
        Err(SendError::Rejected { status: 410 })
    ));
    let mut unknown = subscription(&sub);
    unknown.endpoint = url::Url::parse(&format!("{}/push/unknown", service.url())).unwrap();
    assert!(matches!(
        push(&sender, &scanner(), &unknown).await,
        Err(SendError::Rejected { status: 404 })
    ));
    assert_eq!(service.requests(), 5);
    // Keys that are not a subscription's: refused here, nothing sent.
    let mut broken = subscription(&service.subscribe());
    broken.p256dh.truncate(33);
    assert!(matches!(
        push(&sender, &scanner(), &broken).await,
        Err(SendError::Rejected { status: 0 })
    ));
    assert_eq!(service.requests(), 5);
    let mut nowhere = subscription(&sub);
    nowhere.endpoint = url::Url::parse(&format!("{}/push/x", closed_port().await)).unwrap();
    assert!(matches!(
        push(&sender, &scanner(), &nowhere).await,
        Err(SendError::Unreachable)
    ));
}

// req: EGR-03 — the push plaintext passes the scanner before it is encrypted.
#[tokio::test]
async fn web_push_refused_by_the_scanner_never_connects() {
    let service = PushServiceStandIn::start().await;
    let sender = webpush(VapidKey::generate().unwrap());
    let sub = service.subscribe();
    // A (synthetic) client whose family name is a word of the payload: fail closed.
    let update = KnownClient {
        given: "Ada".into(),
        family: "Update".into(),
        ..KnownClient::default()
    };
    let strict = scanner_for(&["book.harbour.test"], &[update]);
    assert!(matches!(
        push(&sender, &strict, &subscription(&sub)).await,
        Err(SendError::Refused(outbound::Finding::ClientName))
    ));
    assert_eq!(service.requests(), 0);
}
