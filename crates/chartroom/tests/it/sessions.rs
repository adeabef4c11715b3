//! Sign-in, sessions, timeouts (with the injected clock) and revocation.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{PASSWORD, TestApp, TestDb, World};

use crate::util::{call, email_of};

// req: AC-12, AU-08
#[tokio::test]
async fn sign_in_issues_a_fresh_opaque_token_stored_only_as_a_hash() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let email = email_of(&db, w.a.user("clinician")).await;
    let login = json!({"email": email, "password": PASSWORD});
    let res = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("__Host-chartroom_session=")
            && cookie.contains("; Secure")
            && cookie.contains("Path=/;")
            && !cookie.contains("Domain")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    let t1 = body["token"].as_str().unwrap().to_owned();
    assert_eq!(t1.len(), 43, "256-bit token, base64url");
    let (_, again) = call(&app, Method::POST, "/api/v1/auth/login", None, Some(&login)).await;
    let t2 = again["token"].as_str().unwrap();
    assert_ne!(t1, t2, "a new token at every sign-in");
    // The cookie works as well as the bearer header.
    let res = app
        .http
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("__Host-chartroom_session={t1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The database holds no raw token.
    let mut su = db.superuser_unsafe().await;
    let dump: String = sqlx::query_scalar("select string_agg(encode(token_hash, 'escape') || encode(token_hash, 'hex'), ',') from session")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert!(!dump.contains(&t1) && !dump.contains(t2));
}

// req: AU-04 (message and status; timing is covered by the identity work)
#[tokio::test]
async fn failed_sign_ins_all_look_the_same() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let email = email_of(&db, w.a.user("clinician")).await;
    let attempts = [
        json!({"email": email, "password": "wrong password here"}),
        json!({"email": "nobody-here@test.example.invalid", "password": "wrong password here"}),
        json!({"email": "not an email", "password": "wrong password here"}),
    ];
    let mut seen = Vec::new();
    for a in &attempts {
        let (s, v) = call(&app, Method::POST, "/api/v1/auth/login", None, Some(a)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        seen.push((v["error"]["code"].clone(), v["error"]["message"].clone()));
    }
    assert!(seen.windows(2).all(|p| p[0] == p[1]), "{seen:?}");
}

// req: AC-10
#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let t = app.token(w.a.user("reception")).await;
    assert_eq!(
        call(&app, Method::GET, "/api/v1/me", Some(&t), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, Method::POST, "/api/v1/auth/logout", Some(&t), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, Method::GET, "/api/v1/me", Some(&t), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

// req: AC-09
#[tokio::test]
async fn idle_and_absolute_timeouts() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let me = "/api/v1/me";
    // Idle: activity just inside the window keeps the session alive; one idle period + 1 s ends it.
    let t = app.token(w.a.user("reception")).await;
    app.clock.advance(app.sessions.idle - Duration::seconds(1));
    assert_eq!(
        call(&app, Method::GET, me, Some(&t), None).await.0,
        StatusCode::OK,
        "activity extends the idle timer"
    );
    app.clock.advance(app.sessions.idle - Duration::seconds(1));
    assert_eq!(
        call(&app, Method::GET, me, Some(&t), None).await.0,
        StatusCode::OK
    );
    app.clock.advance(app.sessions.idle + Duration::seconds(1));
    assert_eq!(
        call(&app, Method::GET, me, Some(&t), None).await.0,
        StatusCode::UNAUTHORIZED,
        "idle + 1 s"
    );
    // A later request does not revive it.
    assert_eq!(
        call(&app, Method::GET, me, Some(&t), None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Absolute: active all along, still ends at the lifetime.
    let t = app.token(w.a.user("reception")).await;
    let step = app.sessions.idle - Duration::minutes(1);
    let mut elapsed = Duration::zero();
    while elapsed + step < app.sessions.absolute {
        app.clock.advance(step);
        elapsed += step;
        assert_eq!(
            call(&app, Method::GET, me, Some(&t), None).await.0,
            StatusCode::OK,
            "at {elapsed}"
        );
    }
    app.clock
        .advance(app.sessions.absolute - elapsed + Duration::seconds(1));
    assert_eq!(
        call(&app, Method::GET, me, Some(&t), None).await.0,
        StatusCode::UNAUTHORIZED,
        "absolute + 1 s"
    );
}

// req: AC-11
#[tokio::test]
async fn deactivation_and_membership_removal_take_effect_on_the_next_request() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = w.a.user("clinician");
    let t = app.token(user).await;
    let patient = format!("/api/v1/practices/{}/patients/{}", w.a.id, w.a.patient);
    assert_eq!(
        call(&app, Method::GET, &patient, Some(&t), None).await.0,
        StatusCode::OK
    );
    let started = std::time::Instant::now();
    db.owner()
        .await
        .deactivate_user(user, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        call(&app, Method::GET, &patient, Some(&t), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    eprintln!("deactivation → refused in {:?}", started.elapsed());

    // Removing a membership: the very next request to that practice is 404.
    let r = w.a.user("reception");
    let t = app.token(r).await;
    assert_eq!(
        call(&app, Method::GET, &patient, Some(&t), None).await.0,
        StatusCode::OK
    );
    let owner_t = app.token(w.a.user("owner")).await;
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/practices/{}/memberships/{r}", w.a.id),
        Some(&owner_t),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, Method::GET, &patient, Some(&t), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_last_owner_stays_owner() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner = w.a.user("owner");
    let t = app.token(owner).await;
    let path = format!("/api/v1/practices/{}/memberships/{owner}", w.a.id);
    let (s, v) = call(
        &app,
        Method::PATCH,
        &path,
        Some(&t),
        Some(&json!({"roles": ["admin"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _) = call(&app, Method::DELETE, &path, Some(&t), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // With a second owner, the first may step down.
    let admin = w.a.user("admin");
    let (s, _) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/practices/{}/memberships/{admin}", w.a.id),
        Some(&t),
        Some(&json!({"roles": ["owner"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(
        &app,
        Method::PATCH,
        &path,
        Some(&t),
        Some(&json!({"roles": ["admin"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
