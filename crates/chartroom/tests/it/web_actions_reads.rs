//! Issue 17: the audited reads and changes of patients, notes and the audit log take one path
//! for the API and the web pages (`server::actions`), so each leaves the same audit event
//! whichever face asked.

use reqwest::{Method, StatusCode};
use testkit::{TestApp, TestDb, World};

use crate::web_actions::{api, events, page};

/// The API request left one event, `action`, and the page request left the same one.
async fn same(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
    api_request: &str,
    page_request: &str,
    action: &str,
) {
    let from_api = events(su, p, api_request).await;
    assert_eq!(from_api.len(), 1, "{from_api:?}");
    assert_eq!(from_api[0].0, action);
    let from_page = events(su, p, page_request).await;
    assert!(from_page.contains(&from_api[0]), "{from_page:?}");
}

// issue 17 — a patient read and a patient update, a note read and an audit report, through
// the API and through the pages, leave the same audit events (action, patient, object,
// details).
#[tokio::test]
async fn patient_note_and_audit_reads_leave_the_same_audit_events_through_the_api_and_the_page() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = world.a.id;
    let pat = world.a.patient.to_string();
    let clinician = app.token(world.a.user("clinician")).await;
    let owner = app.token(world.a.user("owner")).await;
    let mut su = db.superuser_unsafe().await;
    let pages = format!("/app/practices/{p}");

    let (status, api_read) = api(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/patients/{pat}"),
        &clinician,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page_read = page(
        &app,
        Method::GET,
        &format!("{pages}/patients/{pat}"),
        &clinician,
        &[],
    )
    .await;
    same(&mut su, p, &api_read, &page_read, "patient.read").await;

    let (status, api_update) = api(
        &app,
        Method::PATCH,
        &format!("/api/v1/practices/{p}/patients/{pat}"),
        &clinician,
        Some(serde_json::json!({ "given_name": "Avery", "family_name": "Testperson" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page_update = page(
        &app,
        Method::POST,
        &format!("{pages}/patients/{pat}"),
        &clinician,
        &[("given_name", "Avery"), ("family_name", "Testperson")],
    )
    .await;
    same(&mut su, p, &api_update, &page_update, "patient.update").await;

    let res = app
        .http
        .post(app.url(&format!("/api/v1/practices/{p}/patients/{pat}/notes")))
        .bearer_auth(&clinician)
        .json(&serde_json::json!({ "content": { "subjective": "synthetic" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let note: serde_json::Value = res.json().await.unwrap();
    let note = note["note_id"].as_str().unwrap().to_owned();
    let (status, api_note) = api(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/notes/{note}"),
        &clinician,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page_note = page(
        &app,
        Method::GET,
        &format!("{pages}/notes/{note}"),
        &clinician,
        &[],
    )
    .await;
    same(&mut su, p, &api_note, &page_note, "note.read").await;

    let (status, api_report) = api(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/audit/events?patient_id={pat}&action=patient.read"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page_report = page(
        &app,
        Method::GET,
        &format!("{pages}/audit?patient_id={pat}&action=patient.read"),
        &owner,
        &[],
    )
    .await;
    same(&mut su, p, &api_report, &page_report, "audit.read").await;
}
