//! Issue 19.2 and 19.5, booking messages: a booking made at once on the public page queues
//! its confirmation (email and SMS) in the booking's transaction; a booking approved by the
//! practice queues it on approval; reminders are queued once each, email 48 h and SMS 24 h
//! before, the SMS not once the client has confirmed.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::booking_api::set_up_for as set_up;
use crate::util::call;

/// Books the `n`th free slot from now for a synthetic client; its start. The slots are asked
/// for today and the next two days, so the 30th exists at any time of day (hourly slots).
async fn book(app: &TestApp, p: domain::PracticeId, service: &str, n: usize, seed: u64) -> String {
    let (s, b) = call(
        app,
        Method::GET,
        &format!("/api/v1/public/practices/{p}/booking/slots?service_id={service}&days=3"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let slot = b["starts"][n].as_str().unwrap().to_owned();
    let c = domain::synthetic::Generator::new(seed).patient();
    let client = json!({"given_name": c.given_name, "family_name": c.family_name,
        "date_of_birth": c.date_of_birth, "phone": c.phone, "email": c.email});
    let (s, b) = call(
        app,
        Method::POST,
        &format!("/api/v1/public/practices/{p}/booking"),
        None,
        Some(&json!({"service_id": service, "starts_at": slot, "client": client})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    slot
}

async fn messages(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "select template, channel, cause from outbox_message where practice_id = $1
          order by template, channel",
    )
    .bind(p)
    .fetch_all(su)
    .await
    .unwrap()
}

// req: EGR-05 — confirmations with the booking (at once, or on approval), reminders once each.
#[tokio::test]
async fn bookings_queue_their_confirmation_and_reminders() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let mut su = db.superuser_unsafe().await;
    let p = w.a.id;

    // Booked at once: email and SMS confirmations, queued with the booking.
    let service = set_up(&app, &w.a, "allowed").await;
    let starts = book(&app, p, &service, 30, 1901).await;
    let confirm = |c: &str| {
        (
            "booking_confirmed".to_owned(),
            c.to_owned(),
            "online_booking".to_owned(),
        )
    };
    assert_eq!(
        messages(&mut su, p).await,
        vec![confirm("email"), confirm("sms")]
    );
    let (booking, cause): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "select b.booking_id, m.cause_id from online_booking b, outbox_message m
          where b.practice_id = $1 and m.practice_id = b.practice_id limit 1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(booking, cause);

    // Reminders: email from 48 h before, SMS from 24 h before, each once.
    let owner = db.owner().await;
    let starts: chrono::DateTime<chrono::Utc> = starts.parse().unwrap();
    let (email, sms) = (chrono::Duration::hours(48), chrono::Duration::hours(24));
    // A booking made inside a reminder's lead time does not get that reminder: its
    // confirmation said when (this one was made less than 48 h before its start).
    let early = starts - chrono::Duration::hours(47);
    assert_eq!(
        owner.queue_reminders(p, early, email, sms).await.unwrap(),
        0
    );
    // Made a week before, it gets both.
    sqlx::query(
        "update online_booking set created_at = created_at - interval '7 days' where practice_id = $1",
    )
    .bind(p)
    .execute(&mut su)
    .await
    .unwrap();
    assert_eq!(
        owner.queue_reminders(p, early, email, sms).await.unwrap(),
        1
    );
    assert_eq!(
        owner.queue_reminders(p, early, email, sms).await.unwrap(),
        0,
        "once"
    );
    let late = starts - chrono::Duration::hours(23);
    assert_eq!(owner.queue_reminders(p, late, email, sms).await.unwrap(), 1);
    assert_eq!(
        owner.queue_reminders(p, late, email, sms).await.unwrap(),
        0,
        "once"
    );
    let remind = |c: &str| {
        (
            "booking_reminder".to_owned(),
            c.to_owned(),
            "appointment".to_owned(),
        )
    };
    assert_eq!(
        messages(&mut su, p).await,
        vec![
            confirm("email"),
            confirm("sms"),
            remind("email"),
            remind("sms")
        ]
    );
    let queued: Vec<String> = sqlx::query_scalar(
        "select details::text from audit_event where practice_id = $1 and action = 'outbox.queue'",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(queued.len(), 2);

    // A client who confirmed gets no SMS reminder (booked a week before).
    let second = book(&app, p, &service, 10, 1902).await;
    sqlx::query(
        "update online_booking set client_confirmed_at = now(), created_at = created_at - interval '7 days'
          where practice_id = $1 and appointment_id =
                (select appointment_id from appointment where practice_id = $1 and starts_at = $2)",
    )
    .bind(p)
    .bind(second.parse::<chrono::DateTime<chrono::Utc>>().unwrap())
    .execute(&mut su)
    .await
    .unwrap();
    let second: chrono::DateTime<chrono::Utc> = second.parse().unwrap();
    let late = second - chrono::Duration::hours(23);
    assert_eq!(
        owner.queue_reminders(p, late, email, sms).await.unwrap(),
        1,
        "email only"
    );

    // Held for approval: nothing until the practice approves, then the confirmation.
    let b = &w.b;
    let service = set_up(&app, b, "approval").await;
    book(&app, b.id, &service, 5, 1903).await;
    assert!(messages(&mut su, b.id).await.is_empty());
    let reception = app.token(b.user("reception")).await;
    let (s, list) = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/practices/{}/booking/bookings?status=requested",
            b.id
        ),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let id = list[0]["booking_id"].as_str().unwrap();
    let (s, body) = call(
        &app,
        Method::POST,
        &format!("/api/v1/practices/{}/booking/bookings/{id}/decision", b.id),
        Some(&reception),
        Some(&json!({"approve": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        messages(&mut su, b.id).await,
        vec![confirm("email"), confirm("sms")]
    );
}
