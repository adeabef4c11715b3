//! Issue 17: the API and the web pages take one path for a change or an audited read
//! (`server::actions`), so the same change leaves the same audit event whichever face made it.

use reqwest::{Method, StatusCode};
use testkit::{TestApp, TestDb, World};

use crate::web_pages::{client, request, request_id};

/// Action, patient, object type, object id and details of an audit event.
type Event = (
    String,
    Option<uuid::Uuid>,
    Option<String>,
    Option<uuid::Uuid>,
    Option<serde_json::Value>,
);

/// The practice's audit events of one request, in the order written.
pub(crate) async fn events(
    su: &mut sqlx::PgConnection,
    practice: domain::PracticeId,
    request_id: &str,
) -> Vec<Event> {
    sqlx::query_as(
        "select action, patient_id, object_type, object_id, details from audit_event
          where practice_id = $1 and request_id = $2 order by occurred_at, event_id",
    )
    .bind(practice)
    .bind(uuid::Uuid::parse_str(request_id).unwrap())
    .fetch_all(su)
    .await
    .unwrap()
}

/// An API request as `token`: its status and request id.
pub(crate) async fn api(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, String) {
    let mut r = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.unwrap();
    (res.status(), request_id(&res))
}

/// A page request as `token` from one of Chartroom's own pages (a form post when `form` is
/// given): it succeeds (`200`, or `303` after a change), and its request id.
pub(crate) async fn page(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    form: &[(&str, &str)],
) -> String {
    let post = method == Method::POST;
    let mut r = request(&client(), app, method, path, Some(token));
    if post {
        r = r.form(form);
    }
    let res = r.send().await.unwrap();
    let expected = if post {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::OK
    };
    assert_eq!(res.status(), expected, "{path}");
    request_id(&res)
}

// issue 17 — a legal hold placed and released through the API and through the retention
// page leaves the same audit events (action, patient, object, details), and the API's
// retention read and the page's leave the same `retention.read`.
#[tokio::test]
async fn legal_holds_leave_the_same_audit_events_through_the_api_and_the_page() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = world.a.id;
    let pat = world.a.patient.to_string();
    let owner = app.token(world.a.user("owner")).await;
    let mut su = db.superuser_unsafe().await;
    let hold = format!("/api/v1/practices/{p}/patients/{pat}/legal-hold");

    let (status, api_place) = api(
        &app,
        Method::PUT,
        &hold,
        &owner,
        Some(serde_json::json!({ "category": "litigation" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, api_release) = api(&app, Method::DELETE, &hold, &owner, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let pages = format!("/app/practices/{p}");
    let page_place = page(
        &app,
        Method::POST,
        &format!("{pages}/legal-holds"),
        &owner,
        &[("patient_id", pat.as_str()), ("category", "litigation")],
    )
    .await;
    let (status, api_read) = api(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/retention"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page_read = page(
        &app,
        Method::GET,
        &format!("{pages}/retention"),
        &owner,
        &[],
    )
    .await;
    let page_release = page(
        &app,
        Method::POST,
        &format!("{pages}/legal-holds/{pat}/release"),
        &owner,
        &[],
    )
    .await;

    let placed = events(&mut su, p, &api_place).await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(placed[0].0, "legal_hold.place");
    assert_eq!(
        placed[0].4,
        Some(serde_json::json!({ "category": "litigation" }))
    );
    assert_eq!(events(&mut su, p, &page_place).await, placed);
    let released = events(&mut su, p, &api_release).await;
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0].0, "legal_hold.release");
    assert_eq!(
        released[0].4,
        Some(serde_json::json!({ "released": true, "category": "litigation" }))
    );
    assert_eq!(events(&mut su, p, &page_release).await, released);
    let read = events(&mut su, p, &api_read).await;
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].0, "retention.read");
    assert_eq!(read[0].4, Some(serde_json::json!({ "legal_holds": 1 })));
    let page = events(&mut su, p, &page_read).await;
    assert!(page.contains(&read[0]), "{page:?}");
}
