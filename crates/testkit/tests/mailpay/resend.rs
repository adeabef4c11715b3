//! `egress::resend` against the Resend stand-in; its Svix-signed webhooks.

use std::time::Duration;

use egress::ApiKey;
use egress::outbound::Finding;
use egress::resend::{ResendMailer, ResendWebhook, SvixSecret};
use egress::send::{
    DeliveryStatus, EmailRequest, Idempotency, Inbound, Mailer, SendError, WebhookError,
    WebhookRequest, WebhookVerifier,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use testkit::mailpay_standins::{Failure, ResendStandIn};

use super::{SENDER, client_email, confirmation, key, practice, scanner, send_to_client};

const API_KEY: &str = "re_test_5tandIn";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn mailer(base: &str) -> ResendMailer {
    ResendMailer::new(
        base,
        ApiKey::new(API_KEY.into()),
        egress::send::EmailAddress::parse(SENDER).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap()
}

// req: EGR-01
#[tokio::test]
async fn the_request_is_the_documented_json_with_our_idempotency_key() {
    let standin = ResendStandIn::start(API_KEY).await;
    let m = mailer(&standin.url());
    assert_eq!(m.idempotency(), Idempotency::Provider);
    let rendered = confirmation(practice()).render();
    let to = client_email();
    let k = key();
    let request = || EmailRequest {
        to: &to,
        body: rendered.email(),
        key: k,
    };
    let first = m.send_email(&scanner(), request()).await.unwrap();
    let again = m.send_email(&scanner(), request()).await.unwrap();
    assert_eq!(first, again, "a repeat answers the first result");
    let emails = standin.emails();
    assert_eq!(emails.len(), 1, "and sends nothing again");
    assert_eq!(emails[0].id, first.provider_id);
    assert_eq!(emails[0].from, SENDER);
    assert_eq!(emails[0].to, vec![to.as_str().to_owned()]);
    assert_eq!(emails[0].subject, rendered.email().subject());
    assert_eq!(emails[0].text, rendered.email().text());

    let recorded = standin.recorded();
    assert_eq!(recorded.len(), 2);
    for r in &recorded {
        assert_eq!(r.path, "/emails");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {API_KEY}").as_str())
        );
        assert_eq!(
            r.header("idempotency-key"),
            Some(k.0.as_hyphenated().to_string().as_str())
        );
        let json = r.json().unwrap();
        let mut fields: Vec<&String> = json.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["from", "subject", "text", "to"]);
        let body = String::from_utf8_lossy(&r.body);
        for datum in super::client_data() {
            assert!(!body.contains(&datum), "client data in the request");
        }
    }
}

// req: EGR-01
#[tokio::test]
async fn failures_map_to_retry_reject_and_malformed() {
    let standin = ResendStandIn::start(API_KEY).await;
    let m = mailer(&standin.url());
    let rendered = confirmation(practice()).render();
    let to = client_email();
    let sc = scanner();
    let send = || {
        m.send_email(
            &sc,
            EmailRequest {
                to: &to,
                body: rendered.email(),
                key: key(),
            },
        )
    };
    standin.script(Failure::RateLimited {
        retry_after_secs: 7,
    });
    assert!(matches!(
        send().await,
        Err(SendError::Retry {
            retry_after_secs: Some(7)
        })
    ));
    standin.script(Failure::Status(500));
    assert!(matches!(send().await, Err(SendError::Retry { .. })));
    standin.script(Failure::Status(422));
    assert!(matches!(
        send().await,
        Err(SendError::Rejected { status: 422 })
    ));
    standin.script(Failure::Malformed);
    assert!(matches!(send().await, Err(SendError::Malformed)));
    standin.script(Failure::Oversized(100_000));
    assert!(matches!(send().await, Err(SendError::Malformed)));
    assert!(standin.emails().is_empty());

    // A wrong key is a rejection.
    let wrong = ResendMailer::new(
        &standin.url(),
        ApiKey::new("re_wrong".into()),
        egress::send::EmailAddress::parse(SENDER).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let e = send_to_client(&wrong, rendered.email()).await.unwrap_err();
    assert!(matches!(e, SendError::Rejected { status: 401 }), "{e:?}");

    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = mailer(&format!("http://127.0.0.1:{port}"));
    let e = send_to_client(&gone, rendered.email()).await.unwrap_err();
    assert!(matches!(e, SendError::Unreachable), "{e:?}");
    // Only https for a real vendor.
    assert!(
        ResendMailer::new(
            "http://api.resend.com",
            ApiKey::new(API_KEY.into()),
            egress::send::EmailAddress::parse(SENDER).unwrap(),
            Duration::from_secs(1)
        )
        .is_err()
    );
}

// req: EGR-01
#[tokio::test]
async fn a_scanner_finding_sends_no_request() {
    let standin = ResendStandIn::start(API_KEY).await;
    let m = mailer(&standin.url());
    let leaky = super::leaky_practice(5);
    let rendered = confirmation(leaky).render();
    let e = send_to_client(&m, rendered.email()).await.unwrap_err();
    assert!(
        matches!(e, SendError::Refused(Finding::ClientName)),
        "{e:?}"
    );
    assert!(standin.recorded().is_empty());
}

fn headers(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn verify(
    pairs: &[(String, String)],
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Inbound>, WebhookError> {
    let verifier = ResendWebhook::new(SvixSecret::parse(SECRET).unwrap());
    assert_eq!(verifier.vendor(), "resend");
    let h = headers(pairs);
    verifier.verify(
        &WebhookRequest {
            url: "https://chartroom.example.test/webhooks/resend",
            headers: &h,
            body,
        },
        now,
    )
}

// req: EGR-06, TX-03
#[test]
fn webhooks_are_verified_before_they_are_read() {
    let now = super::now();
    let t = now.timestamp();
    for (kind, status) in [
        ("email.sent", DeliveryStatus::Sent),
        ("email.delivered", DeliveryStatus::Delivered),
        ("email.bounced", DeliveryStatus::Failed),
    ] {
        let (h, body) =
            ResendStandIn::webhook(SECRET, kind, "4ef9a417-02e9-4d39-ad75-9611e0fcc33c", t);
        let events = verify(&h, &body, now).unwrap();
        assert_eq!(
            events,
            vec![Inbound::Delivery {
                event_id: h[0].1.clone(),
                provider_id: "4ef9a417-02e9-4d39-ad75-9611e0fcc33c".into(),
                key: None,
                status,
            }]
        );
    }
    let (h, body) = ResendStandIn::webhook(SECRET, "email.opened", "4ef9a417", t);
    assert!(matches!(
        verify(&h, &body, now).unwrap().as_slice(),
        [Inbound::Ignored { .. }]
    ));

    // Bad signature (another secret), tampered body, stale or future timestamp, no headers.
    let (h, body) = ResendStandIn::webhook(
        "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=",
        "email.delivered",
        "4ef9a417",
        t,
    );
    assert_eq!(verify(&h, &body, now), Err(WebhookError::BadSignature));
    let (h, body) = ResendStandIn::webhook(SECRET, "email.delivered", "4ef9a417", t);
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("email.delivered", "email.bounced");
    assert_eq!(
        verify(&h, tampered.as_bytes(), now),
        Err(WebhookError::BadSignature)
    );
    let (h, body) = ResendStandIn::webhook(SECRET, "email.delivered", "4ef9a417", t - 301);
    assert_eq!(verify(&h, &body, now), Err(WebhookError::Stale));
    let (h, body) = ResendStandIn::webhook(SECRET, "email.delivered", "4ef9a417", t + 301);
    assert_eq!(verify(&h, &body, now), Err(WebhookError::Stale));
    assert_eq!(verify(&[], &body, now), Err(WebhookError::BadSignature));
    // The id is signed too: a replay under another svix-id does not verify.
    let (mut h, body) = ResendStandIn::webhook(SECRET, "email.delivered", "4ef9a417", t);
    h[0].1 = "msg_other".into();
    assert_eq!(verify(&h, &body, now), Err(WebhookError::BadSignature));
    // Several signatures (a rotated secret): one good one is enough.
    let (mut h, body) = ResendStandIn::webhook(SECRET, "email.delivered", "4ef9a417", t);
    h[2].1 = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {}", h[2].1);
    assert!(verify(&h, &body, now).is_ok());
    // A signed body that is not the documented shape is malformed, not half-read.
    let h = ResendStandIn::sign(SECRET, "msg_1", t, b"{\"type\":\"email.delivered\"}");
    assert_eq!(
        verify(&h, b"{\"type\":\"email.delivered\"}", now),
        Err(WebhookError::Malformed)
    );
}
