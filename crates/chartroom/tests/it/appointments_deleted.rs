//! An appointment cannot be booked for a deleted patient: `410`, as every other route naming
//! one answers, and no appointment is created.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::util::call;

#[tokio::test]
async fn a_deleted_patient_cannot_be_booked() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let reception = app.token(w.a.user("reception")).await;
    let base = format!("/api/v1/practices/{}", w.a.id);
    let (s, p) = call(
        &app,
        Method::POST,
        &format!("{base}/patients"),
        Some(&reception),
        Some(&json!({"given_name": "Iris", "family_name": "Testwhistle", "date_of_birth": "1980-02-03"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let patient = p["patient_id"].as_str().unwrap().to_owned();
    let starts = Utc::now() + Duration::days(2);
    let body = json!({
        "patient_id": patient, "clinician_id": w.a.user("clinician"),
        "starts_at": starts, "ends_at": starts + Duration::minutes(30)
    });
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{base}/appointments"),
        Some(&reception),
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = call(
        &app,
        Method::DELETE,
        &format!("{base}/patients/{patient}"),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    let count = async || -> i64 {
        let mut su = db.superuser_unsafe().await;
        sqlx::query_scalar("select count(*) from appointment where practice_id = $1")
            .bind(w.a.id)
            .fetch_one(&mut su)
            .await
            .unwrap()
    };
    let before = count().await;
    let (s, e) = call(
        &app,
        Method::POST,
        &format!("{base}/appointments"),
        Some(&reception),
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::GONE, "{e}");
    assert_eq!(e["error"]["code"], "GONE");
    assert_eq!(count().await, before);
}
