//! The session cookie on the JSON API: it reads (`GET`) from anywhere the browser sends it, but
//! it changes state only for a request from a page of this origin (Fetch Metadata, or `Origin`
//! matching `Host`). A sibling site's form or script gets `401` and nothing changes; a bearer
//! token is not affected.

use reqwest::StatusCode;
use serde_json::json;
use testkit::{TestApp, TestDb, World};

async fn patient_count(db: &TestDb, practice: domain::PracticeId) -> i64 {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar("select count(*) from patient where practice_id = $1")
        .bind(practice)
        .fetch_one(&mut su)
        .await
        .unwrap()
}

// req: AC-12
#[tokio::test]
async fn the_cookie_changes_state_only_from_a_page_of_this_origin() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let token = app.token(w.a.user("clinician")).await;
    let cookie = format!("{}={token}", server::extract::SESSION_COOKIE);
    let path = format!("/api/v1/practices/{}/patients", w.a.id);
    let body =
        json!({"given_name": "Iris", "family_name": "Testwhistle", "date_of_birth": "1980-02-03"});
    let host = app
        .url("/")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let before = patient_count(&db, w.a.id).await;

    // Cross-site, or with no sign of where it came from: refused, nothing created.
    for headers in [
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("sec-fetch-site", "same-site".to_owned())],
        vec![("origin", "https://evil.example".to_owned())],
        vec![],
    ] {
        let mut r = app
            .http
            .post(app.url(&path))
            .header("cookie", &cookie)
            .json(&body);
        for (k, v) in &headers {
            r = r.header(*k, v);
        }
        let res = r.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{headers:?}");
    }
    assert_eq!(patient_count(&db, w.a.id).await, before);

    // Reads with the cookie still work from anywhere the browser sends it.
    let res = app
        .http
        .get(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // From a page of this origin (either signal), and with a bearer token: created.
    for (k, v) in [
        ("sec-fetch-site", "same-origin".to_owned()),
        ("origin", format!("https://{host}")),
    ] {
        let res = app
            .http
            .post(app.url(&path))
            .header("cookie", &cookie)
            .header(k, v)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{k}");
    }
    let res = app
        .http
        .post(app.url(&path))
        .bearer_auth(&token)
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(patient_count(&db, w.a.id).await, before + 3);
}
