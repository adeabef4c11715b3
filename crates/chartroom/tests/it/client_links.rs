//! Issue 19.5, the booking manage link over real HTTP (`/manage/{token}`): it shows the time
//! and the practice only; the client confirms, reschedules through the same slot claim as
//! booking (a slot is never double-booked), cancels (inside the window: recorded as late);
//! a cancelled link opens nothing; a manage link never opens an intake form.

use chrono::Duration;
use domain::{Clock as _, RequestId};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::util::call;
use crate::web_pages::client;

/// Online booking on in practice A: one 60-minute service by A's clinician, open all week,
/// a 24-hour cancellation window. Returns the service id.
async fn setup(app: &TestApp, w: &World) -> domain::ServiceId {
    let owner = app.token(w.a.user("owner")).await;
    let p = w.a.id;
    let hours: Vec<serde_json::Value> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00:00", "end": "23:30:00"}))
        .collect();
    let (s, _) = call(
        app,
        reqwest::Method::PUT,
        &format!("/api/v1/practices/{p}/booking/settings"),
        Some(&owner),
        Some(&json!({
            "enabled": true, "new_clients": "allowed", "min_notice_minutes": 0,
            "max_days_ahead": 30, "step_minutes": 60, "currency": "usd",
            "cancellation": {"window_hours": 24, "late_cancel_fee_minor": 2500, "no_show_fee_minor": 0}})),
    )
    .await;
    assert!(s.is_success());
    let (s, service) = call(
        app,
        reqwest::Method::POST,
        &format!("/api/v1/practices/{p}/booking/services"),
        Some(&owner),
        Some(&json!({
            "name": "Deep tissue massage", "duration_minutes": 60, "payment": {"kind": "none"},
            "active": true, "clinicians": [w.a.user("clinician")]})),
    )
    .await;
    assert!(s.is_success(), "{service}");
    let (s, _) = call(
        app,
        reqwest::Method::PUT,
        &format!(
            "/api/v1/practices/{p}/booking/hours/{}",
            w.a.user("clinician")
        ),
        Some(&owner),
        Some(&json!({ "hours": hours })),
    )
    .await;
    assert!(s.is_success());
    service["service_id"].as_str().unwrap().parse().unwrap()
}

/// `days` days from the app's today at `hour`:00 UTC.
fn at(app: &TestApp, days: i64, hour: u32) -> chrono::DateTime<chrono::Utc> {
    (app.clock.now().date_naive() + Duration::days(days))
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
}

/// Books `starts_at` as a new synthetic client on the public page; returns the appointment
/// and its manage link's token (as the confirmation message carries it).
async fn book(
    app: &TestApp,
    w: &World,
    service: domain::ServiceId,
    starts_at: chrono::DateTime<chrono::Utc>,
    seed: u64,
) -> (domain::AppointmentId, String) {
    let person = domain::synthetic::Generator::new(seed).patient();
    let mut tx = app
        .store
        .online_booking(w.a.id, RequestId::new(), app.clock.now())
        .await
        .unwrap()
        .unwrap();
    let tz = tx.time_zone().await.unwrap();
    let booked = tx
        .book(
            app.store.keyring().unwrap(),
            service,
            tz,
            starts_at,
            &store::booking::ClientDetails {
                given_name: person.given_name.clone(),
                family_name: person.family_name.clone(),
                date_of_birth: person.date_of_birth,
                phone: person.phone.clone(),
                email: person.email.clone(),
            },
        )
        .await
        .unwrap()
        .unwrap();
    let token = tx.create_booking_manage_link(&booked).await.unwrap();
    tx.commit().await.unwrap();
    let url = outbound::OpaqueLink::new(
        &outbound::LinkOrigin::parse("https://clinic.example.test").unwrap(),
        outbound::LinkPurpose::Manage,
        &token,
    );
    let text = url.as_str().rsplit('/').next().unwrap().to_owned();
    (booked.appointment_id, text)
}

async fn appointment(
    su: &mut sqlx::PgConnection,
    a: domain::AppointmentId,
) -> (chrono::DateTime<chrono::Utc>, String, bool, bool) {
    sqlx::query_as(
        "select starts_at, status, client_confirmed_at is not null, client_cancelled_late
           from appointment where appointment_id = $1",
    )
    .bind(a)
    .fetch_one(su)
    .await
    .unwrap()
}

async fn post(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(app.url(path))
        .header("sec-fetch-site", "same-origin")
        .form(form)
        .send()
        .await
        .unwrap()
}

// issue 19.5 — confirm, reschedule (never onto a taken slot), cancel on time and late.
#[tokio::test]
async fn a_client_confirms_reschedules_and_cancels_through_the_manage_link() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let service = setup(&app, &w).await;
    let base = at(&app, 3, 10);
    let (s1, s2, s3) = (base, base + Duration::hours(3), base + Duration::hours(6));
    let (a1, m1) = book(&app, &w, service, s1, 11).await;
    let (a2, m2) = book(&app, &w, service, s2, 12).await;
    let mut su = db.superuser_unsafe().await;
    // The table holds digests only: per booking, the link its queued confirmation carries
    // and the one made here.
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from client_link where purpose = 'booking_manage' and octet_length(digest) = 32",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    let confirmations: i64 = sqlx::query_scalar(
        "select count(distinct cause_id) from outbox_message where template = 'booking_confirmed'",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(confirmations, 2);
    assert_eq!(stored, 4);

    let res = http
        .get(app.url(&format!("/manage/{m1}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Practice a") && page.contains("Deep tissue massage"),
        "{page}"
    );
    let client = domain::synthetic::Generator::new(11).patient();
    assert!(
        !page.contains(&client.family_name),
        "no name on the manage page"
    );
    assert!(!page.contains("late-warning"));

    // Confirm.
    let res = post(&http, &app, &format!("/manage/{m1}/confirm"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .ends_with("done=confirmed")
    );
    assert!(appointment(&mut su, a1).await.2, "confirmed by the client");

    // Reschedule onto the other client's slot: refused, nothing changed.
    let res = post(
        &http,
        &app,
        &format!("/manage/{m1}/reschedule"),
        &[("starts", &s2.timestamp().to_string())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(appointment(&mut su, a1).await.0, s1);
    // The times page offers s3 and not s2.
    let times = http
        .get(app.url(&format!("/manage/{m1}/reschedule")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        times.contains(&format!("value=\"{}\"", s3.timestamp())),
        "{times}"
    );
    assert!(!times.contains(&format!("value=\"{}\"", s2.timestamp())));
    let res = post(
        &http,
        &app,
        &format!("/manage/{m1}/reschedule"),
        &[("starts", &s3.timestamp().to_string())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (start, status, confirmed, _) = appointment(&mut su, a1).await;
    assert_eq!((start, status.as_str(), confirmed), (s3, "booked", false));
    // The second client cannot take s3 now either.
    let res = post(
        &http,
        &app,
        &format!("/manage/{m2}/reschedule"),
        &[("starts", &s3.timestamp().to_string())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let taken: i64 = sqlx::query_scalar(
        "select count(*) from appointment where practice_id = $1 and starts_at = $2 and status <> 'cancelled'",
    )
    .bind(w.a.id)
    .bind(s3)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(taken, 1, "one slot, one appointment");

    // A manage link never opens an intake form.
    let res = http
        .get(app.url(&format!("/intake/{m2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Cancel on time (72 h ahead): not late.
    let res = post(&http, &app, &format!("/manage/{m2}/cancel"), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Your appointment is cancelled.") && !page.contains("late cancellation"),
        "{page}"
    );
    let (_, status, _, late) = appointment(&mut su, a2).await;
    assert_eq!((status.as_str(), late), ("cancelled", false));
    // Used up: the link opens nothing now.
    let res = http
        .get(app.url(&format!("/manage/{m2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("This link does not work")
    );

    // Later, s3 is 18 hours away: the page warns, and the cancellation is late.
    app.clock
        .advance((s3 - Duration::hours(18)) - app.clock.now());
    let page = http
        .get(app.url(&format!("/manage/{m1}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("late-warning"), "{page}");
    let res = post(&http, &app, &format!("/manage/{m1}/cancel"), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("late cancellation"));
    let (_, status, _, late) = appointment(&mut su, a1).await;
    assert_eq!((status.as_str(), late), ("cancelled", true));
    let booking_late: bool =
        sqlx::query_scalar("select late_cancel from online_booking where appointment_id = $1")
            .bind(a1)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(booking_late);

    let details: Vec<serde_json::Value> = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action = 'booking.manage'",
    )
    .bind(w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    let mut changes: Vec<String> = details
        .iter()
        .map(|d| {
            format!(
                "{}{}",
                d["change"].as_str().unwrap(),
                d.get("late").map(|l| format!(":{l}")).unwrap_or_default()
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        ["cancel:false", "cancel:true", "confirm", "reschedule"]
    );
}

// issue 19.5 — two clients rescheduling onto one free slot at the same time: exactly one
// gets it (the slot claim's lock and re-check, shared with booking).
#[tokio::test]
async fn two_reschedules_racing_for_one_slot_never_double_book_it() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let service = setup(&app, &w).await;
    let base = at(&app, 2, 9);
    let (_, m1) = book(&app, &w, service, base, 21).await;
    let (_, m2) = book(&app, &w, service, base + Duration::hours(2), 22).await;
    let target = base + Duration::hours(5);
    let move_to = |m: String| {
        let store = app.store.clone();
        let at = app.clock.now();
        async move {
            let token = outbound::LinkToken::parse(&m).unwrap();
            let mut tx = store
                .manage_link(&token, RequestId::new(), at)
                .await
                .unwrap()
                .unwrap();
            let out = tx.reschedule(target).await.unwrap();
            if matches!(out, store::booking::ManageOutcome::Rescheduled(_)) {
                tx.commit().await.unwrap();
                true
            } else {
                false
            }
        }
    };
    let (a, b) = tokio::join!(move_to(m1), move_to(m2));
    assert!(a ^ b, "exactly one reschedule wins: {a} {b}");
    let mut su = db.superuser_unsafe().await;
    let n: i64 = sqlx::query_scalar(
        "select count(*) from appointment where practice_id = $1 and starts_at = $2",
    )
    .bind(w.a.id)
    .bind(target)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(n, 1);
}
