//! Issue 17.7, over real HTTP: the session-timeout warning's server side. Every signed-in page
//! carries the idle timeout the session check enforces there (the installation's, or the
//! practice's own); the keep-alive counts as activity and changes nothing else; an idle
//! sign-out ends the session and lands on a page that says why.

use chrono::SubsecRound as _;
use domain::Clock as _;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use testkit::{TestApp, TestDb, World};

use crate::web_pages::{client, cookie};

async fn get(http: &reqwest::Client, app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    http.get(app.url(path))
        .header(COOKIE, cookie(token))
        .send()
        .await
        .unwrap()
}

/// The `data-idle-seconds` a page carries, if any.
fn idle_of(body: &str) -> Option<i64> {
    let at = body.find("data-idle-seconds=\"")? + "data-idle-seconds=\"".len();
    let end = body[at..].find('"')?;
    body[at..at + end].parse().ok()
}

/// The user's latest recorded activity (over their sessions).
async fn last_seen(db: &TestDb, user: domain::UserId) -> chrono::DateTime<chrono::Utc> {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar("select max(last_seen_at) from session where user_id = $1")
        .bind(user)
        .fetch_one(&mut su)
        .await
        .unwrap()
}

// issue 17; req: AC-09 (the page's timer is the server's) — the value shown is the value
// enforced: the installation's idle timeout on every page until the practice sets its own,
// then the practice's on its pages (and still the installation's outside it); a session left
// idle just past the shown value is signed out.
#[tokio::test]
async fn every_page_carries_the_idle_timeout_its_session_check_enforces() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let user = world.a.user("reception");
    let token = app.token(user).await;
    let default = app.sessions.idle.num_seconds();
    let pages = [
        "/app".to_owned(),
        "/app/account".to_owned(),
        format!("/app/practices/{p}/patients"),
        format!("/app/practices/{p}/schedule"),
    ];
    for path in &pages {
        let res = get(&http, &app, path, &token).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let body = res.text().await.unwrap();
        assert_eq!(idle_of(&body), Some(default), "{path}");
        assert!(body.contains("id=\"idle-warning\""), "{path}");
        assert!(
            body.contains("hx-post=\"/app/session/keep-alive\""),
            "{path}"
        );
    }
    // Pages without a session carry none.
    let res = http.get(app.url("/app/sign-in")).send().await.unwrap();
    let body = res.text().await.unwrap();
    assert_eq!(idle_of(&body), None);
    assert!(!body.contains("id=\"idle-warning\""));

    // The practice sets a shorter idle timeout for its members.
    let mut su = db.superuser_unsafe().await;
    sqlx::query("update practice set session_idle_seconds = 300 where practice_id = $1")
        .bind(p)
        .execute(&mut su)
        .await
        .unwrap();
    let inside = format!("/app/practices/{p}/patients");
    let body = get(&http, &app, &inside, &token)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(idle_of(&body), Some(300));
    let body = get(&http, &app, "/app/account", &token)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(idle_of(&body), Some(default), "outside the practice");
    // Idle for less than the shown value: still signed in (and that request is activity).
    app.clock.advance(chrono::Duration::seconds(290));
    assert_eq!(
        get(&http, &app, &inside, &token).await.status(),
        StatusCode::OK
    );
    // Idle for longer than the shown value: the practice's pages sign the user out.
    app.clock.advance(chrono::Duration::seconds(310));
    let res = get(&http, &app, &inside, &token).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
}

// issue 17 — the keep-alive: anonymous → sign-in; cross-site → refused with the session's
// activity unchanged; signed in → 204, the activity is recorded and the session outlives the
// idle timeout counted from before it; no audit event or other row is written.
#[tokio::test]
async fn the_keep_alive_counts_as_activity_and_changes_nothing_else() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = world.a.user("clinician");
    let token = app.token(user).await;
    let idle = app.sessions.idle;
    let path = "/app/session/keep-alive";

    let res = http
        .post(app.url(path))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous");
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");

    app.clock.advance(idle - chrono::Duration::seconds(60));
    let before = last_seen(&db, user).await;
    let res = http
        .post(app.url(path))
        .header(COOKIE, cookie(&token))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "cross-site");
    assert_eq!(
        last_seen(&db, user).await,
        before,
        "cross-site changed nothing"
    );

    let mut su = db.superuser_unsafe().await;
    let audit_before: i64 = sqlx::query_scalar("select count(*) from audit_event")
        .fetch_one(&mut su)
        .await
        .unwrap();
    let res = http
        .post(app.url(path))
        .header(COOKIE, cookie(&token))
        .header("sec-fetch-site", "same-origin")
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // PostgreSQL keeps microseconds.
    assert_eq!(last_seen(&db, user).await, app.clock.now().trunc_subsecs(6));
    let audit_after: i64 = sqlx::query_scalar("select count(*) from audit_event")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(
        audit_after, audit_before,
        "a keep-alive is not audited data access"
    );
    // Counted from the first request the session would be idle now; from the keep-alive not.
    app.clock.advance(chrono::Duration::seconds(120));
    let res = get(&http, &app, "/app/account", &token).await;
    assert_eq!(res.status(), StatusCode::OK);
}

// issue 17 — when the page's idle timer runs out it signs out with reason=idle: the session
// is ended (the API refuses its token), and the landing page says why; a plain sign-out
// lands on the sign-in page as before.
#[tokio::test]
async fn an_idle_sign_out_ends_the_session_and_says_why() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = world.a.user("clinician");
    for (reason, to) in [
        ("idle", "/app/signed-out?after=idle"),
        ("", "/app/sign-in"),
        ("anything else", "/app/sign-in"),
    ] {
        let token = app.token(user).await;
        let res = http
            .post(app.url("/app/sign-out"))
            .header(COOKIE, cookie(&token))
            .header("sec-fetch-site", "same-origin")
            .form(&[("reason", reason)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{reason}");
        assert_eq!(res.headers()[LOCATION], to, "{reason}");
        let (status, _) = crate::util::call(
            &app,
            reqwest::Method::GET,
            "/api/v1/auth/sessions",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}: session ended");
    }
    for (path, says) in [
        (
            "/app/signed-out?after=idle",
            "nothing happened on this page for a while",
        ),
        ("/app/signed-out", "You are signed out."),
    ] {
        let res = http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.text().await.unwrap();
        assert!(body.contains(says), "{body}");
        assert!(body.contains("href=\"/app/sign-in\""));
    }
}
