//! Issue 19, online booking through the API: the practice's setup, the public page (no
//! session) from catalogue to booking, new clients held for approval, existing clients
//! recognised, one slot never booked twice, and the authorization matrix of every route.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

/// Sets practice `p` up: booking on (new clients held for approval, no notice), one 60-minute
/// service offered by its clinician, who works every day all day. Returns the service id.
async fn set_up(app: &TestApp, w: &testkit::PracticeFixture) -> String {
    set_up_for(app, w, "approval").await
}

/// [`set_up`] with new clients `allowed` or held for `approval`.
pub(crate) async fn set_up_for(
    app: &TestApp,
    w: &testkit::PracticeFixture,
    new_clients: &str,
) -> String {
    let owner = app.token(w.user("owner")).await;
    let base = format!("/api/v1/practices/{}/booking", w.id);
    let settings = json!({
        "enabled": true, "new_clients": new_clients, "min_notice_minutes": 0,
        "max_days_ahead": 30, "step_minutes": 60, "currency": "usd",
        "cancellation": {"window_hours": 24, "late_cancel_fee_minor": 2500, "no_show_fee_minor": 5000}
    });
    let (s, b) = call(
        app,
        Method::PUT,
        &format!("{base}/settings"),
        Some(&owner),
        Some(&settings),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        app,
        Method::POST,
        &format!("{base}/services"),
        Some(&owner),
        Some(
            &json!({"name": "Cleaning", "duration_minutes": 60, "payment": {"kind": "none"},
                     "active": true, "clinicians": [w.user("clinician")]}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let service = b["service_id"].as_str().unwrap().to_owned();
    let hours: Vec<Value> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00:00", "end": "23:59:00"}))
        .collect();
    let (s, b) = call(
        app,
        Method::PUT,
        &format!("{base}/hours/{}", w.user("clinician")),
        Some(&owner),
        Some(&json!({ "hours": hours })),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    service
}

fn client(seed: u64) -> Value {
    let p = domain::synthetic::Generator::new(seed).patient();
    json!({"given_name": p.given_name, "family_name": p.family_name,
           "date_of_birth": p.date_of_birth, "phone": p.phone, "email": p.email})
}

async fn slots(app: &TestApp, practice: domain::PracticeId, service: &str) -> Vec<String> {
    let (s, b) = call(
        app,
        Method::GET,
        &format!("/api/v1/public/practices/{practice}/booking/slots?service_id={service}&days=2"),
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

// req: EGR-05 (public entry) — a new client books on the public page; the booking waits for
// the practice; the slot is gone for the next client; reception approves it.
#[tokio::test]
async fn a_new_client_books_online_and_reception_approves_it() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let service = set_up(&app, &w.a).await;

    let (s, cat) = call(
        &app,
        Method::GET,
        &format!("/api/v1/public/practices/{}/booking", w.a.id),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{cat}");
    assert_eq!(cat["services"][0]["name"], "Cleaning");
    assert!(
        !cat.to_string().contains(&w.a.user("clinician").to_string()),
        "no clinician named"
    );

    let free = slots(&app, w.a.id, &service).await;
    assert!(free.len() > 10, "{free:?}");
    let slot = free[3].clone();
    let book = |c: Value| json!({"service_id": service, "starts_at": slot, "client": c});
    let path = format!("/api/v1/public/practices/{}/booking", w.a.id);
    let (s, b) = call(&app, Method::POST, &path, None, Some(&book(client(901)))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b, json!({"status": "received"}));
    assert!(
        !slots(&app, w.a.id, &service).await.contains(&slot),
        "the slot is taken"
    );

    // The same slot again: refused, nothing new stored.
    let mut su = db.superuser_unsafe().await;
    let before: i64 = sqlx::query_scalar("select count(*) from patient")
        .fetch_one(&mut su)
        .await
        .unwrap();
    let (s, b) = call(&app, Method::POST, &path, None, Some(&book(client(902)))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let after: i64 = sqlx::query_scalar("select count(*) from patient")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(before, after, "a refused booking stores nobody");

    // Stored: a sealed new patient, a requested appointment, a booking, an audit event with
    // no actor and no PHI.
    let (status, kind, appointment_status, given): (String, String, String, Option<String>) =
        sqlx::query_as(
            "select b.status, b.client_kind, a.status, p.given_name
           from online_booking b join appointment a using (practice_id, appointment_id)
           join patient p on p.practice_id = b.practice_id and p.patient_id = b.patient_id
          where b.practice_id = $1",
        )
        .bind(w.a.id)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(
        (status.as_str(), kind.as_str(), appointment_status.as_str()),
        ("requested", "new", "requested")
    );
    assert_eq!(given, None, "the name is stored sealed only");
    let (actor, details): (Option<uuid::Uuid>, Option<Value>) = sqlx::query_as(
        "select actor_id, details from audit_event where practice_id = $1 and action = 'booking.create'",
    )
    .bind(w.a.id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(actor, None);
    let p = domain::synthetic::Generator::new(901).patient();
    let text = details.map(|d| d.to_string()).unwrap_or_default();
    assert!(!text.contains(&p.family_name) && !text.contains(&p.email));

    // Reception sees the request and approves it.
    let reception = app.token(w.a.user("reception")).await;
    let list = format!(
        "/api/v1/practices/{}/booking/bookings?status=requested",
        w.a.id
    );
    let (s, b) = call(&app, Method::GET, &list, Some(&reception), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b.as_array().unwrap().len(), 1);
    let id = b[0]["booking_id"].as_str().unwrap().to_owned();
    let decide = format!(
        "/api/v1/practices/{}/booking/bookings/{id}/decision",
        w.a.id
    );
    let (s, b) = call(
        &app,
        Method::POST,
        &decide,
        Some(&reception),
        Some(&json!({"approve": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "booked");
    let (s, _) = call(
        &app,
        Method::POST,
        &decide,
        Some(&reception),
        Some(&json!({"approve": false})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "decided once");
}

// An existing client (phone and date of birth on record) books at once, on their own record.
#[tokio::test]
async fn an_existing_client_is_recognised_by_phone_and_date_of_birth() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let service = set_up(&app, &w.a).await;
    let slot = slots(&app, w.a.id, &service).await[1].clone();
    // World's patient of practice A comes from the generator seeded with b'a'.
    let mut c = client(u64::from(b'a'));
    c["email"] = json!("someone.else@example.invalid");
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/api/v1/public/practices/{}/booking", w.a.id),
        None,
        Some(&json!({"service_id": service, "starts_at": slot, "client": c})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(
        b,
        json!({"status": "received"}),
        "the same answer as for a new client"
    );
    let mut su = db.superuser_unsafe().await;
    let (patient, kind, status): (domain::PatientId, String, String) = sqlx::query_as(
        "select patient_id, client_kind, status from online_booking where practice_id = $1",
    )
    .bind(w.a.id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        (patient, kind.as_str(), status.as_str()),
        (w.a.patient, "existing", "booked")
    );
    let patients: i64 = sqlx::query_scalar("select count(*) from patient where practice_id = $1")
        .bind(w.a.id)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(patients, 1, "no second record");
}

// Bad input changes nothing; a practice without online booking is a 404 like a missing one.
#[tokio::test]
async fn public_booking_refuses_bad_input_and_closed_practices() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let service = set_up(&app, &w.a).await;
    let slot = slots(&app, w.a.id, &service).await[0].clone();
    let path = format!("/api/v1/public/practices/{}/booking", w.a.id);
    let mut su = db.superuser_unsafe().await;
    let count = async |su: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar(
            "select (select count(*) from patient) + (select count(*) from appointment)",
        )
        .fetch_one(su)
        .await
        .unwrap()
    };
    let before = count(&mut su).await;
    let long = "x".repeat(101);
    for (field, value) in [
        ("given_name", json!("")),
        ("family_name", json!(long)),
        ("family_name", json!("A\u{0}B")),
        ("phone", json!("not a phone")),
        ("email", json!("nobody")),
        ("date_of_birth", json!("2999-01-01")),
    ] {
        let mut c = client(77);
        c[field] = value;
        let (s, b) = call(
            &app,
            Method::POST,
            &path,
            None,
            Some(&json!({"service_id": service, "starts_at": slot, "client": c})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{field}: {b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(field),
            "{b}"
        );
    }
    // A time the practice does not offer, an unknown service, unknown fields.
    let (s, _) = call(&app, Method::POST, &path, None,
        Some(&json!({"service_id": service, "starts_at": "2020-01-01T00:00:00Z", "client": client(77)}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = call(
        &app,
        Method::POST,
        &path,
        None,
        Some(&json!({"service_id": uuid::Uuid::new_v4(), "starts_at": slot, "client": client(77)})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, Method::POST, &path, None,
        Some(&json!({"service_id": service, "starts_at": slot, "client": client(77), "clinician_id": w.a.user("clinician")}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(count(&mut su).await, before, "nothing stored");

    // Practice B has not switched online booking on; a random id does not exist: same 404.
    for p in [w.b.id.to_string(), uuid::Uuid::new_v4().to_string()] {
        let (s, b) = call(
            &app,
            Method::GET,
            &format!("/api/v1/public/practices/{p}/booking"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(b["error"]["message"], "no such practice");
    }
    // Practice A's service is not practice B's.
    let (s, _) = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/public/practices/{}/booking/slots?service_id={service}",
            w.b.id
        ),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Method, path, body, the roles allowed, the roles refused.
type Route = (
    Method,
    String,
    Option<Value>,
    &'static [&'static str],
    &'static [&'static str],
);

// The booking setup and review routes: anonymous 401, another practice 404, the wrong role
// 403, the right role 2xx.
#[tokio::test]
async fn booking_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let service = set_up(&app, &w.a).await;
    let p = w.a.id;
    let clinician = w.a.user("clinician");
    let routes: Vec<Route> = vec![
        (
            Method::GET,
            format!("/api/v1/practices/{p}/booking/settings"),
            None,
            &["owner", "admin"],
            &["clinician", "reception"],
        ),
        (
            Method::GET,
            format!("/api/v1/practices/{p}/booking/services"),
            None,
            &["owner", "admin"],
            &["clinician", "reception"],
        ),
        (
            Method::PUT,
            format!("/api/v1/practices/{p}/booking/services/{service}"),
            Some(
                json!({"name": "Cleaning", "duration_minutes": 30, "payment": {"kind": "none"}, "active": true, "clinicians": [clinician]}),
            ),
            &["owner", "admin"],
            &["clinician", "reception"],
        ),
        (
            Method::GET,
            format!("/api/v1/practices/{p}/booking/hours/{clinician}"),
            None,
            &["owner", "admin"],
            &["clinician", "reception"],
        ),
        (
            Method::GET,
            format!("/api/v1/practices/{p}/booking/bookings"),
            None,
            &["clinician", "reception"],
            &["owner", "admin"],
        ),
    ];
    let outsider = app.token(w.b.user("owner")).await;
    for (method, path, body, allowed, denied) in &routes {
        let (s, _) = call(&app, method.clone(), path, None, body.as_ref()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} anonymous");
        let (s, _) = call(&app, method.clone(), path, Some(&outsider), body.as_ref()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path} other practice");
        for role in *denied {
            let t = app.token(w.a.user(role)).await;
            let (s, _) = call(&app, method.clone(), path, Some(&t), body.as_ref()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as {role}");
        }
        for role in *allowed {
            let t = app.token(w.a.user(role)).await;
            let (s, b) = call(&app, method.clone(), path, Some(&t), body.as_ref()).await;
            assert!(s.is_success(), "{method} {path} as {role}: {s} {b}");
        }
    }
}

// The public page's database role reads no patient and changes no existing row (runtime
// role, not a superuser).
#[tokio::test]
async fn the_online_booking_role_reads_no_patient_and_changes_nothing_existing() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    set_up(&app, &w.a).await;
    let mut conn = db.runtime_conn().await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    let entered: bool = sqlx::query_scalar("select app.enter_online_booking($1)")
        .bind(w.a.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(entered);
    for table in [
        "patient",
        "appointment",
        "online_booking",
        "clinical_note",
        "patient_search_token",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} is not readable by the public page");
    }
    let n = sqlx::query("update appointment set status = 'cancelled'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 0);
    // Booking settings of another practice are not readable either.
    let n: i64 =
        sqlx::query_scalar("select count(*) from booking_settings where practice_id <> $1")
            .bind(w.a.id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(n, 0);
    drop(tx);
    // Practice B has not switched online booking on: not entered.
    let entered: bool = sqlx::query_scalar("select app.enter_online_booking($1)")
        .bind(w.b.id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!entered);
}
