//! Issue 19.2, verified delivery webhooks (`POST /webhooks/{provider}`): a bad signature, a
//! stale timestamp and a replay are refused and change nothing; a verified delivery status
//! settles its message; STOP and START are mirrored into the opt-outs.

use std::sync::Arc;

use chrono::Utc;
use egress::telnyx::TelnyxWebhooks;
use store::outbox::Channel;
use testkit::messaging_standins::TelnyxStandIn;

use crate::outbox::{CLIENT_PHONE, Harness, OWN_NUMBER, row, tomorrow_at};

/// Serves the webhook routes on loopback; their base URL.
async fn serve(h: &Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let verifier = TelnyxWebhooks::from_base64(&h.telnyx.public_key_base64()).unwrap();
    let webhooks = server::webhooks::Webhooks::new(
        h.owner.clone(),
        Arc::new(domain::SystemClock),
        vec![Arc::new(verifier)],
        url::Url::parse(&base).unwrap(),
    );
    tokio::spawn(async move {
        axum::serve(listener, server::webhooks::router(webhooks))
            .await
            .unwrap();
    });
    base
}

async fn events(su: &mut sqlx::PgConnection) -> i64 {
    crate::util::count_all(su, "webhook_event").await
}

// req: EGR-04, TX-03 — bad signature, stale timestamp and replay are refused with nothing changed;
// a verified delivery event settles the message it names (by the key in the signed body).
#[tokio::test]
async fn delivery_webhooks_are_verified_and_replays_refused() {
    let h = Harness::new().await;
    let base = serve(&h).await;
    let url = format!("{base}/webhooks/telnyx");
    let cause = h.queue(Channel::Sms, 1).await[0];
    h.job().pass(Some(h.w.a.id), tomorrow_at(12)).await.unwrap();
    let mut su = h.su().await;
    assert_eq!(row(&mut su, cause).await.0, "sent");
    let id = h.telnyx.messages()[0].id.clone();
    let (_, delivered) = h.telnyx.delivery_event(&id, "delivered");
    let now = Utc::now().timestamp();

    // Tampered body: the signature no longer holds.
    let mut tampered = h.telnyx.signed(&url, &delivered, now);
    tampered.body.extend_from_slice(b" ");
    assert_eq!(tampered.post().await, 401);
    // Signed by someone else.
    let other = TelnyxStandIn::start("KEY-OTHER").await;
    assert_eq!(other.signed(&url, &delivered, now).post().await, 401);
    // Stale.
    assert_eq!(
        h.telnyx.signed(&url, &delivered, now - 600).post().await,
        401
    );
    // Unknown provider.
    let mut elsewhere = h.telnyx.signed(&url, &delivered, now);
    elsewhere.url = format!("{base}/webhooks/nobody");
    assert_eq!(elsewhere.post().await, 404);
    assert_eq!(row(&mut su, cause).await.0, "sent", "nothing changed");
    assert_eq!(events(&mut su).await, 0);

    // Verified: delivered.
    assert_eq!(h.telnyx.signed(&url, &delivered, now).post().await, 204);
    assert_eq!(row(&mut su, cause).await.0, "delivered");
    assert_eq!(events(&mut su).await, 1);

    // A replay of the event id, even with another (validly signed) status: refused, nothing
    // changes.
    let (_, mut failed) = h.telnyx.delivery_event(&id, "delivery_failed");
    failed["data"]["id"] = delivered["data"]["id"].clone();
    assert_eq!(h.telnyx.signed(&url, &delivered, now).post().await, 409);
    assert_eq!(h.telnyx.signed(&url, &failed, now).post().await, 409);
    assert_eq!(row(&mut su, cause).await.0, "delivered");
    assert_eq!(events(&mut su).await, 1);
}

// req: EGR-05 — a client texts STOP: mirrored into the opt-outs (by blind index), their next
// SMS is skipped; START lifts it and the next SMS is sent.
#[tokio::test]
async fn stop_then_start_is_mirrored_from_the_carrier() {
    let h = Harness::new().await;
    let base = serve(&h).await;
    let url = format!("{base}/webhooks/telnyx");
    let job = h.job();
    let mut su = h.su().await;
    let now = Utc::now().timestamp();

    let stop = TelnyxStandIn::inbound_event(CLIENT_PHONE, OWN_NUMBER, "Stop", &url);
    assert_eq!(h.telnyx.signed(&url, &stop, now).post().await, 204);
    let out: Vec<bool> =
        sqlx::query_scalar("select opted_out from sms_opt_out where practice_id = $1")
            .bind(h.w.a.id)
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert_eq!(out, vec![true]);
    let details: Vec<serde_json::Value> = sqlx::query_scalar(
        "select details from audit_event where action = 'sms.opt_out' and practice_id = $1",
    )
    .bind(h.w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(details, vec![serde_json::json!({"opted_out": true})]);

    let skipped = h.queue(Channel::Sms, 1).await[0];
    job.pass(Some(h.w.a.id), tomorrow_at(12)).await.unwrap();
    assert_eq!(row(&mut su, skipped).await.0, "skipped");
    assert_eq!(h.telnyx.requests(), 0);

    let start = TelnyxStandIn::inbound_event(CLIENT_PHONE, OWN_NUMBER, "START", &url);
    assert_eq!(h.telnyx.signed(&url, &start, now).post().await, 204);
    let sent = h.queue(Channel::Sms, 1).await[0];
    job.pass(Some(h.w.a.id), tomorrow_at(12)).await.unwrap();
    assert_eq!(row(&mut su, sent).await.0, "sent");
    assert_eq!(h.telnyx.messages().len(), 1);

    // Any other text is dropped unread: nothing recorded but the event id.
    let chatter = TelnyxStandIn::inbound_event(CLIENT_PHONE, OWN_NUMBER, "see you then", &url);
    assert_eq!(h.telnyx.signed(&url, &chatter, now).post().await, 204);
    let out: Vec<bool> =
        sqlx::query_scalar("select opted_out from sms_opt_out where practice_id = $1")
            .bind(h.w.a.id)
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert_eq!(out, vec![false]);
}
