//! Outbound messages a receiver can verify: Chartroom's Web Push messages are signed (VAPID,
//! an ES256 JWS, RFC 8292) and encrypted with authentication (RFC 8291 `aes128gcm`), so the
//! receiving push service and browser detect a modified payload, a forged or altered signature
//! and a replay past the token's window. (Inbound provider webhooks — modified body, bad
//! signature, stale timestamp, replay — are proven per provider where each verifier is tested:
//! `outbox_webhooks`, `payments`, egress's `messaging_contract`, testkit's Resend tests.)

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use egress::send::{IdempotencyKey, PushRequest, PushSender as _, PushSubscription, SendError};
use egress::webpush::{Urgency, VapidKey, WebPush, WebPushConfig};
use outbound::{PushPayload, Scanner};
use serde_json::Value;
use testkit::messaging_standins::{PushServiceStandIn, StandInSubscription};

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn sender(vapid: VapidKey, clock: Arc<dyn domain::Clock>) -> WebPush {
    WebPush::new(WebPushConfig {
        vapid,
        subject: "mailto:operator@chartroom.example.invalid".to_owned(),
        ttl: Duration::from_secs(3600),
        urgency: Urgency::Normal,
        clock,
        limits: egress::Limits {
            timeout: Duration::from_secs(5),
            ..egress::messaging_limits()
        },
    })
    .unwrap()
}

fn subscription(s: &StandInSubscription) -> PushSubscription {
    PushSubscription {
        endpoint: url::Url::parse(&s.endpoint).unwrap(),
        p256dh: s.p256dh.clone(),
        auth: s.auth.clone(),
    }
}

fn scanner() -> Scanner {
    Scanner::new(
        &[],
        ["chartroom.example.invalid".to_owned()],
        &[],
        &[],
        None,
    )
    .unwrap()
}

async fn push(sender: &WebPush, sub: &PushSubscription) -> Result<(), SendError> {
    sender
        .send_push(
            &scanner(),
            PushRequest {
                subscription: sub,
                payload: PushPayload::update(),
                key: IdempotencyKey(uuid::Uuid::new_v4()),
            },
        )
        .await
        .map(|_| ())
}

/// Posts `body` with `authorization` to `endpoint` as a push message: the receiver's status.
async fn post(endpoint: &str, authorization: &str, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(endpoint)
        .header("authorization", authorization)
        .header("content-encoding", "aes128gcm")
        .header("ttl", "3600")
        .header("topic", egress::webpush::TOPIC)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `vapid t=H.C.S, k=K` → (H, C, S, K).
fn parts(authorization: &str) -> (String, String, String, String) {
    let rest = authorization.strip_prefix("vapid ").unwrap();
    let (t, k) = rest.split_once(", k=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut it = t.split('.');
    let (h, c, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    (h.into(), c.into(), s.into(), k.into())
}

// req: TX-03 — the receiver fixture (a push service that verifies VAPID and decrypts as a
// browser does) accepts Chartroom's message and rejects it modified (ciphertext, salt, key),
// with altered claims, with a signature that is not the sender's, and replayed past the
// token's window.
#[tokio::test]
async fn a_receiver_rejects_modified_forged_and_expired_push_messages() {
    let service = PushServiceStandIn::start().await;
    let vapid = VapidKey::generate().unwrap();
    let genuine = sender(vapid.clone(), Arc::new(domain::SystemClock));
    let sub = service.subscribe();
    push(&genuine, &subscription(&sub)).await.unwrap();
    let received = service.received();
    assert_eq!(received.len(), 1);
    let original = received[0].clone();
    assert_eq!(original.plaintext, PushPayload::update().as_bytes());
    assert_eq!(original.vapid_key, vapid.public_key_base64url());

    // The same request again is well-formed (a push service keeps no replay list; the
    // payload is the one content-free sentence, and `Topic` collapses repeats).
    assert_eq!(
        post(
            &sub.endpoint,
            &original.authorization,
            original.ciphertext.clone()
        )
        .await,
        201
    );

    // Modified payload: any byte of the record, the salt or the sender's public key.
    let n = original.ciphertext.len();
    for (what, at) in [
        ("the tag", n - 1),
        ("the record", n - 20),
        ("the salt", 3),
        ("the key id", 30),
    ] {
        let mut body = original.ciphertext.clone();
        body[at] ^= 0x01;
        assert_eq!(
            post(&sub.endpoint, &original.authorization, body).await,
            400,
            "{what} modified"
        );
    }

    // Altered claims under the original signature: another audience, a later expiry.
    let (h, c, s, k) = parts(&original.authorization);
    let claims: Value = serde_json::from_slice(&b64().decode(&c).unwrap()).unwrap();
    for (field, value) in [
        ("aud", Value::from("https://push.elsewhere.example.invalid")),
        ("exp", Value::from(claims["exp"].as_i64().unwrap() + 3600)),
        (
            "sub",
            Value::from("mailto:attacker@elsewhere.example.invalid"),
        ),
    ] {
        let mut altered = claims.clone();
        altered[field] = value;
        let c2 = b64().encode(serde_json::to_vec(&altered).unwrap());
        let auth = format!("vapid t={h}.{c2}.{s}, k={k}");
        assert_eq!(
            post(&sub.endpoint, &auth, original.ciphertext.clone()).await,
            401,
            "{field} altered"
        );
    }
    // A signature by another key, presented as the sender's; a signature byte flipped.
    let other = VapidKey::generate().unwrap();
    let auth = format!("vapid t={h}.{c}.{s}, k={}", other.public_key_base64url());
    assert_eq!(
        post(&sub.endpoint, &auth, original.ciphertext.clone()).await,
        401
    );
    let mut sig = b64().decode(&s).unwrap();
    sig[5] ^= 0x01;
    let auth = format!("vapid t={h}.{c}.{}, k={k}", b64().encode(sig));
    assert_eq!(
        post(&sub.endpoint, &auth, original.ciphertext.clone()).await,
        401
    );

    // Past the window: a message signed 13 hours ago (its 12-hour token has expired) is
    // refused, exactly as a replay of today's message will be tomorrow.
    let earlier = domain::ManualClock::new(chrono::Utc::now() - chrono::Duration::hours(13));
    let stale = sender(vapid.clone(), Arc::new(earlier));
    assert!(matches!(
        push(&stale, &subscription(&sub)).await,
        Err(SendError::Rejected { status: 401 })
    ));
    // Only the genuine message and its in-window repeat were accepted.
    assert_eq!(service.received().len(), 2);
    assert!(
        service
            .received()
            .iter()
            .all(|r| r.plaintext == PushPayload::update().as_bytes())
    );
}
