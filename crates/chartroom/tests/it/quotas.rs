//! Quotas on the routes that can pull many patients out at once (req OPS-06): a member past
//! their patient-lookup or export budget is refused with 429 and a clear error, the refusal is
//! audited for the owners (and the alert hook raised), other members are unaffected, and the
//! budget comes back with the next window. Exporting a record needs the clinical role and is
//! audited each time.
//! req: OPS-06

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::identity::{QuotaConfig, Quotas};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

/// The audit events of practice `p` with `action` (superuser view: fixtures only).
async fn events(su: &mut sqlx::PgConnection, p: domain::PracticeId, action: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "select jsonb_build_object('actor', actor_id, 'outcome', outcome, 'details', details)
           from audit_event where practice_id = $1 and action = $2 order by occurred_at, event_id",
    )
    .bind(p)
    .bind(action)
    .fetch_all(su)
    .await
    .unwrap()
}

async fn start(db: &TestDb) -> TestApp {
    TestApp::start_configured(db.store().await, |id| {
        id.quotas = Quotas::new(QuotaConfig {
            lookups: 3,
            exports: 2,
            window: Duration::minutes(15),
        });
    })
    .await
}

#[tokio::test]
async fn patient_lookups_past_the_quota_are_refused_audited_and_alerted() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = start(&db).await;
    let mut su = db.superuser_unsafe().await;
    let reception = app.token(w.a.user("reception")).await;
    let list = format!("/api/v1/practices/{}/patients", w.a.id);
    let search = format!("{list}/search");
    let by_name = json!({"name_prefix": "zz"});

    // Within the budget: lists and searches alike.
    for (m, path, body) in [
        (Method::GET, &list, None),
        (Method::POST, &search, Some(&by_name)),
        (Method::GET, &list, None),
    ] {
        let (s, v) = call(&app, m, path, Some(&reception), body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let lists_before = events(&mut su, w.a.id, "patient.list").await.len();

    // Past it: 429 with a clear message and Retry-After, nothing read, each refusal audited.
    for (m, path, body) in [
        (Method::POST, &search, Some(&by_name)),
        (Method::GET, &list, None),
    ] {
        let mut req = app.http.request(m, app.url(path)).bearer_auth(&reception);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: i64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "RATE-0001", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("too many patient searches and lists")
                && msg.contains(&format!("wait {retry} seconds")),
            "{msg}"
        );
    }
    assert_eq!(
        events(&mut su, w.a.id, "patient.list").await.len(),
        lists_before,
        "a refused lookup shows no patient"
    );
    let denied = events(&mut su, w.a.id, "access.denied").await;
    let limited: Vec<&Value> = denied
        .iter()
        .filter(|e| e["details"]["reason"] == "rate_limit")
        .collect();
    assert_eq!(limited.len(), 2, "{denied:?}");
    for e in &limited {
        assert_eq!(e["actor"], json!(w.a.user("reception")));
        assert_eq!(e["outcome"], "denied");
        assert_eq!(e["details"]["route"], "patient_lookup");
    }

    // The owners see it in their audit report.
    let owner = app.token(w.a.user("owner")).await;
    let (s, page) = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/practices/{}/audit/events?action=access.denied",
            w.a.id
        ),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("rate_limit")),
        "{page}"
    );

    // The same member in the web app: the page says so too.
    let res = app
        .http
        .get(app.url(&format!("/app/practices/{}/patients", w.a.id)))
        .header(
            reqwest::header::COOKIE,
            format!("{}={reception}", server::extract::SESSION_COOKIE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.text().await.unwrap().contains("RATE-0001"));

    // Another member (and another practice) is unaffected.
    let clinician = app.token(w.a.user("clinician")).await;
    let (s, _) = call(&app, Method::GET, &list, Some(&clinician), None).await;
    assert_eq!(s, StatusCode::OK);
    let other = app.token(w.b.user("reception")).await;
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}/patients", w.b.id),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // The next window brings the budget back.
    app.clock.advance(Duration::minutes(15));
    let reception = app.token(w.a.user("reception")).await;
    let (s, v) = call(&app, Method::GET, &list, Some(&reception), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn record_exports_need_the_clinical_role_are_audited_and_limited() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = start(&db).await;
    let mut su = db.superuser_unsafe().await;
    let export = format!(
        "/api/v1/practices/{}/patients/{}/export",
        w.a.id, w.a.patient
    );
    // An elevated permission: reception, owners and admins cannot export (audited denials).
    for role in ["reception", "owner", "admin"] {
        let t = app.token(w.a.user(role)).await;
        let (s, _) = call(&app, Method::GET, &export, Some(&t), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role}");
    }
    let clinician = app.token(w.a.user("clinician")).await;
    for _ in 0..2 {
        let res = app
            .http
            .get(app.url(&export))
            .bearer_auth(&clinician)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let exports = events(&mut su, w.a.id, "patient.export").await;
    assert_eq!(exports.len(), 2, "every export is logged");
    let (s, v) = call(&app, Method::GET, &export, Some(&clinician), None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "RATE-0001");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many record exports"),
        "{v}"
    );
    assert_eq!(events(&mut su, w.a.id, "patient.export").await.len(), 2);
    let denied = events(&mut su, w.a.id, "access.denied").await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"]["route"] == "record_export"
                && e["actor"] == json!(w.a.user("clinician"))),
        "{denied:?}"
    );
}
