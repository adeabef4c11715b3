//! Issue 19.7, the outbox screen `/app/practices/{p}/outbox`: reception, owners and admins see
//! each message's state, channel, template, attempts and times, never its contact or body;
//! anonymous → sign-in, password only → second factor, another practice → 404, a clinician →
//! 403 (audited).

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use store::outbox::Channel;
use testkit::TestApp;

use crate::outbox::{CLIENT_EMAIL, CLIENT_PHONE, Harness};
use crate::web_pages::{client, request, request_id};

async fn audit(su: &mut sqlx::PgConnection, p: domain::PracticeId, id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select action || ':' || outcome from audit_event where practice_id = $1 and request_id = $2 order by action",
    )
    .bind(p)
    .bind(uuid::Uuid::parse_str(id).unwrap())
    .fetch_all(su)
    .await
    .unwrap()
}

// req: EGR-04 — the authorization matrix of the outbox page, and what it never shows.
#[tokio::test]
async fn the_outbox_page_shows_states_to_the_front_desk_only() {
    let h = Harness::new().await;
    h.queue(Channel::Sms, 1).await;
    h.queue(Channel::Email, 1).await;
    let app = TestApp::start(&h.db).await;
    let http = client();
    let p = h.w.a.id;
    let path = format!("/app/practices/{p}/outbox");
    let mut su = h.su().await;

    let res = request(&http, &app, Method::GET, &path, None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
    let half = app.password_only_token(h.w.a.user("reception")).await;
    let res = request(&http, &app, Method::GET, &path, Some(&half))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
    for token in [
        app.token(h.w.b.user("owner")).await,
        app.token(h.w.nobody).await,
    ] {
        let res = request(&http, &app, Method::GET, &path, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let clinician = app.token(h.w.a.user("clinician")).await;
    let res = request(&http, &app, Method::GET, &path, Some(&clinician))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let id = request_id(&res);
    assert_eq!(audit(&mut su, p, &id).await, ["access.denied:denied"]);

    for role in ["reception", "owner", "admin"] {
        let token = app.token(h.w.a.user(role)).await;
        let res = request(&http, &app, Method::GET, &path, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{role}");
        let id = request_id(&res);
        assert_eq!(
            audit(&mut su, p, &id).await,
            ["outbox.list:success"],
            "{role}"
        );
        let body = res.text().await.unwrap();
        assert!(body.contains("id=\"outbox-list\""), "{role}");
        assert_eq!(body.matches("<td>queued</td>").count(), 2, "{role}");
        assert!(body.contains("booking confirmed"));
        for secret in ["0177", CLIENT_PHONE, CLIENT_EMAIL, "river", "/manage/"] {
            assert!(!body.contains(secret), "{role} sees {secret}");
        }
    }
    // A filter; an unknown status is a clear refusal.
    let reception = app.token(h.w.a.user("reception")).await;
    let res = request(
        &http,
        &app,
        Method::GET,
        &format!("{path}?status=sent"),
        Some(&reception),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("id=\"no-messages\""));
    let res = request(
        &http,
        &app,
        Method::GET,
        &format!("{path}?status=bogus"),
        Some(&reception),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}
