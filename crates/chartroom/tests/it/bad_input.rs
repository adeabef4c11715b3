//! Bad input gets a clear 4xx and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::util::{call, count_all};

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let t = app.token(w.a.user("reception")).await;
    let patients = format!("/api/v1/practices/{}/patients", w.a.id);
    let mut su = db.superuser_unsafe().await;
    let before = (
        count_all(&mut su, "patient").await,
        count_all(&mut su, "audit_event").await,
    );

    let send_raw = |body: String, ctype: &'static str| {
        app.http
            .post(app.url(&patients))
            .bearer_auth(&t)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    // (body, content type, status, code, message fragment)
    let cases: Vec<(String, &str, StatusCode, &str, &str)> = vec![
        ("{\"given_name\": \"Ada\",".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0002", "not valid JSON"),
        // An array is not read as the fields by position (serde would); found by the DAST run.
        ("[\"Ada\", \"Moonvale\"]".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0002", "must be a JSON object"),
        ("  null".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0002", "must be a JSON object"),
        ("{\"given_name\":\"Ada\",\"family_name\":\"Moonvale\",\"ssn\":\"000-00-0000\"}".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0002", "unknown field"),
        ("{\"given_name\":\"Ada\"}".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0002", "missing field `family_name`"),
        ("{\"given_name\":\"Ada\",\"family_name\":42}".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0002", "field `family_name` has the wrong type"),
        ("{\"given_name\":\"   \",\"family_name\":\"Moonvale\"}".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0001", "given_name: must not be empty"),
        (format!("{{\"given_name\":\"{}\",\"family_name\":\"Moonvale\"}}", "a".repeat(101)), "application/json", StatusCode::BAD_REQUEST, "INPUT-0001", "given_name: is too long"),
        ("{\"given_name\":\"Ada\\u001b[2J\",\"family_name\":\"Moonvale\"}".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0001", "control characters"),
        ("{\"given_name\":\"Ada\",\"family_name\":\"Moonvale\",\"date_of_birth\":\"2999-01-01\"}".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0001", "date_of_birth"),
        ("{\"given_name\":\"Ada\",\"family_name\":\"Moonvale\",\"email\":\"not-an-email\"}".into(), "application/json", StatusCode::BAD_REQUEST, "INPUT-0001", "email: must be an email address"),
        ("given_name=Ada".into(), "application/x-www-form-urlencoded", StatusCode::UNSUPPORTED_MEDIA_TYPE, "INPUT-0004", "application/json"),
        (format!("{{\"given_name\":\"{}\",\"family_name\":\"x\"}}", "a".repeat(70 * 1024)), "application/json", StatusCode::PAYLOAD_TOO_LARGE, "INPUT-0003", "larger than 64 KiB"),
    ];
    for (body, ctype, status, code, fragment) in cases {
        let res = send_raw(body.clone(), ctype).await.unwrap();
        assert_eq!(res.status(), status, "{}", &body[..body.len().min(80)]);
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(fragment), "message {msg:?} lacks {fragment:?}");
        assert!(
            !msg.contains("Ada") && !msg.contains("000-00-0000"),
            "error echoes a value: {msg}"
        );
        assert!(
            v["error"]["request_id"]
                .as_str()
                .is_some_and(|r| r.len() == 36)
        );
    }
    // Invalid ids in the path.
    for path in [format!("{patients}/not-a-uuid"), format!("{patients}/1234")] {
        let (s, v) = call(&app, Method::GET, &path, Some(&t), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(v["error"]["code"], "INPUT-0001");
    }
    let (s, _) = call(
        &app,
        Method::GET,
        "/api/v1/practices/not-a-uuid/patients",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a malformed practice id is just an unknown practice"
    );
    // Bad query parameters.
    for q in [
        "?limit=0",
        "?limit=1000",
        "?offset=-1",
        "?limit=abc",
        "?bogus=1",
    ] {
        let (s, v) = call(&app, Method::GET, &format!("{patients}{q}"), Some(&t), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    // Unknown route and unsupported method: JSON errors too.
    let (s, v) = call(&app, Method::GET, "/api/v1/nope", Some(&t), None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT-FOUND"))
    );
    let (s, v) = call(&app, Method::PUT, &patients, Some(&t), Some(&json!({}))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("METHOD-NOT-ALLOWED"))
    );

    let after = (
        count_all(&mut su, "patient").await,
        count_all(&mut su, "audit_event").await,
    );
    assert_eq!(before, after, "refused requests must write nothing");
}

// req: AU-08, OPS-05
#[tokio::test]
async fn tokens_in_the_query_string_are_refused() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let t = app.token(w.a.user("reception")).await;
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/me?access_token={t}"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/me?token={t}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "even with a valid header, a token in the URL is refused"
    );
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db).await;
    for path in ["/healthz", "/api/v1/me", "/api/v1/openapi.json", "/nope"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-request-id"].len(), 36, "{path}");
    }
    let doc: serde_json::Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}
