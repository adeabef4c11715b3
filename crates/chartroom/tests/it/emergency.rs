//! Emergency mode (req CP-03): a practice owner's switch (API) and the operator's
//! installation-wide switch (the owner role, `chartroom emergency`) make changes answer 503
//! with nothing written, while reads keep working and stay audited; with the audit store
//! unavailable, reads fail closed. The routes' authorization matrix is here (they are listed
//! in `api_matrix`'s `MATRIX_ELSEWHERE`).

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::util::call;

async fn patient_count(su: &mut sqlx::PgConnection, p: domain::PracticeId) -> i64 {
    sqlx::query_scalar("select count(*) from patient where practice_id = $1")
        .bind(p)
        .fetch_one(su)
        .await
        .unwrap()
}

/// The actions a request left in practice `p`.
async fn actions_of(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
    request: &str,
) -> Vec<String> {
    sqlx::query_scalar("select action from audit_event where practice_id = $1 and request_id = $2::uuid order by action")
        .bind(p)
        .bind(request)
        .fetch_all(su)
        .await
        .unwrap()
}

async fn get_with_id(app: &TestApp, path: &str, token: &str) -> (StatusCode, String) {
    let res = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (
        res.status(),
        res.headers()["x-request-id"].to_str().unwrap().to_owned(),
    )
}

// req: CP-03 — a practice owner switches emergency mode on: every change answers 503
// EMERGENCY-0001 with nothing written (API and pages), reads answer 200 and are audited;
// another practice is unaffected; the owner switches it off and changes work again. The
// switch is audited.
#[tokio::test]
async fn cp_03_practice_emergency_mode_refuses_writes_and_keeps_audited_reads() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let (p, b) = (w.a.id, w.b.id);
    let owner = app.token(w.a.user("owner")).await;
    let reception = app.token(w.a.user("reception")).await;
    let b_reception = app.token(w.b.user("reception")).await;
    let mode = format!("/api/v1/practices/{p}/emergency-mode");
    let (s, v) = call(&app, Method::GET, &mode, Some(&reception), None).await;
    assert_eq!((s, v["on"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, v) = call(
        &app,
        Method::PUT,
        &mode,
        Some(&owner),
        Some(&json!({"on": true})),
    )
    .await;
    assert_eq!((s, v["on"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    assert!(v["practice_since"].is_string());

    let mut su = db.superuser_unsafe().await;
    let before = patient_count(&mut su, p).await;
    let new_patient =
        json!({"given_name": "Ida", "family_name": "Stillwater", "date_of_birth": "1970-01-01"});
    let patients = format!("/api/v1/practices/{p}/patients");
    let (s, v) = call(
        &app,
        Method::POST,
        &patients,
        Some(&reception),
        Some(&new_patient),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "EMERGENCY-0001");
    let one = format!("{patients}/{}", w.a.patient);
    let (s, _) = call(
        &app,
        Method::PATCH,
        &one,
        Some(&reception),
        Some(&json!({"phone": "+1 555 0100"})),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/practices/{p}/incidents"),
        Some(&owner),
        Some(&json!({"detection_source": "other", "description": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(patient_count(&mut su, p).await, before, "nothing written");
    // A page's form is refused the same way.
    let res = crate::web_pages::request(
        &crate::web_pages::client(),
        &app,
        Method::POST,
        &format!("/app/practices/{p}/patients"),
        Some(&reception),
    )
    .form(&[
        ("given_name", "Ida"),
        ("family_name", "Stillwater"),
        ("date_of_birth", "1970-01-01"),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        patient_count(&mut su, p).await,
        before,
        "nothing written from the page"
    );
    // Reads work and are audited.
    let (s, request) = get_with_id(&app, &one, &reception).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(actions_of(&mut su, p, &request).await, ["patient.read"]);
    let (s, _) = get_with_id(&app, &patients, &reception).await;
    assert_eq!(s, StatusCode::OK);
    // Another practice goes on as usual.
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/practices/{b}/patients"),
        Some(&b_reception),
        Some(&new_patient),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    // Only an owner switches it, also while it is on.
    for role in ["admin", "clinician", "reception"] {
        let t = app.token(w.a.user(role)).await;
        let (s, _) = call(
            &app,
            Method::PUT,
            &mode,
            Some(&t),
            Some(&json!({"on": false})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role}");
    }
    let (s, v) = call(
        &app,
        Method::PUT,
        &mode,
        Some(&owner),
        Some(&json!({"on": false})),
    )
    .await;
    assert_eq!((s, v["on"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, _) = call(
        &app,
        Method::POST,
        &patients,
        Some(&reception),
        Some(&new_patient),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "changes work again");
    let switches: Vec<serde_json::Value> = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action = 'emergency.switch' order by occurred_at, event_id",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(switches.len(), 2);
    assert!(
        switches
            .iter()
            .any(|d| d["on"] == true && d["scope"] == "practice")
    );
    assert!(switches.iter().any(|d| d["on"] == false));
}

// req: CP-03 — the operator's installation-wide switch makes every practice read-only; reads
// keep working and audited; with the audit store unavailable a PHI read fails closed (no
// unaudited access); the switch is on the installation's log.
#[tokio::test]
async fn cp_03_installation_emergency_mode_is_read_only_and_reads_fail_closed_without_audit() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner_store = db.owner().await;
    assert!(
        owner_store
            .set_installation_emergency(true, chrono::Utc::now())
            .await
            .unwrap()
    );
    assert!(
        !owner_store
            .set_installation_emergency(true, chrono::Utc::now())
            .await
            .unwrap(),
        "already on"
    );
    assert!(
        owner_store
            .installation_emergency()
            .await
            .unwrap()
            .is_some()
    );
    let mut su = db.superuser_unsafe().await;
    for f in [&w.a, &w.b] {
        let t = app.token(f.user("reception")).await;
        let (s, v) = call(
            &app,
            Method::POST,
            &format!("/api/v1/practices/{}/patients", f.id),
            Some(&t),
            Some(&json!({"given_name": "Ida", "family_name": "Stillwater"})),
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("EMERGENCY-0001"))
        );
        let one = format!("/api/v1/practices/{}/patients/{}", f.id, f.patient);
        let (s, request) = get_with_id(&app, &one, &t).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(actions_of(&mut su, f.id, &request).await, ["patient.read"]);
        let (s, v) = call(
            &app,
            Method::GET,
            &format!("/api/v1/practices/{}/emergency-mode", f.id),
            Some(&t),
            None,
        )
        .await;
        assert_eq!(
            (s, v["on"].as_bool(), v["installation_since"].is_string()),
            (StatusCode::OK, Some(true), true)
        );
    }
    // A practice owner cannot end the operator's switch.
    let owner = app.token(w.a.user("owner")).await;
    let (_, v) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/practices/{}/emergency-mode", w.a.id),
        Some(&owner),
        Some(&json!({"on": false})),
    )
    .await;
    assert_eq!(v["on"], true);
    // The audit store fails: the read fails closed and shows nothing.
    let t = app.token(w.a.user("reception")).await;
    let one = format!("/api/v1/practices/{}/patients/{}", w.a.id, w.a.patient);
    let (_, ok) = call(&app, Method::GET, &one, Some(&t), None).await;
    let family = ok["family_name"].as_str().unwrap().to_owned();
    sqlx::query("revoke insert on audit_event from chartroom_runtime")
        .execute(&mut su)
        .await
        .unwrap();
    let (s, v) = call(&app, Method::GET, &one, Some(&t), None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!v.to_string().contains(&family));
    sqlx::query("grant insert on audit_event to chartroom_runtime")
        .execute(&mut su)
        .await
        .unwrap();
    assert!(
        owner_store
            .set_installation_emergency(false, chrono::Utc::now())
            .await
            .unwrap()
    );
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/practices/{}/patients", w.a.id),
        Some(&t),
        Some(&json!({"given_name": "Ida", "family_name": "Stillwater"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let on_log: Vec<serde_json::Value> = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action = 'emergency.switch'",
    )
    .bind(domain::PracticeId::SYSTEM)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(on_log.len(), 3, "{on_log:?}");
    assert!(on_log.iter().all(|d| d["scope"] == "installation"));
    owner_store.close().await;
}

// req: CP-03, AC-02, AC-04 — the emergency-mode routes: anonymous 401, another practice 404,
// any member reads the state, only owners switch (admins, clinicians, reception 403).
#[tokio::test]
async fn emergency_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let mode = format!("/api/v1/practices/{}/emergency-mode", w.a.id);
    let off = json!({"on": false});
    for (m, body) in [(Method::GET, None), (Method::PUT, Some(&off))] {
        let (s, _) = call(&app, m.clone(), &mode, None, body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let t = app.token(w.b.user("owner")).await;
        let (s, _) = call(&app, m.clone(), &mode, Some(&t), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    for role in ["owner", "admin", "clinician", "reception"] {
        let t = app.token(w.a.user(role)).await;
        let (s, _) = call(&app, Method::GET, &mode, Some(&t), None).await;
        assert_eq!(s, StatusCode::OK, "{role}");
        let (s, _) = call(&app, Method::PUT, &mode, Some(&t), Some(&off)).await;
        assert_eq!(
            s,
            if role == "owner" {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            },
            "{role}"
        );
    }
}
