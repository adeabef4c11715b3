//! Issue 19, the public booking page (no session) and the booking screens: a client walks
//! service → time → details → booked; the page has the strict CSP, names no clinician, and a
//! practice without online booking is the web's 404. Reception approves on its screen.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, ORIGIN};
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::util::call;

fn href_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"));
    let rest = &html[at..];
    let start = rest.find("href=\"").unwrap() + 6;
    let end = rest[start..].find('"').unwrap();
    &rest[start..start + end]
}

#[tokio::test]
async fn a_client_books_on_the_public_page_and_reception_approves_on_its_screen() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner = app.token(w.a.user("owner")).await;
    let p = w.a.id;
    let hours: Vec<serde_json::Value> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00:00", "end": "23:30:00"}))
        .collect();
    for (method, path, body) in [
        (
            reqwest::Method::PUT,
            format!("/api/v1/practices/{p}/booking/settings"),
            json!({
            "enabled": true, "new_clients": "approval", "min_notice_minutes": 0,
            "max_days_ahead": 30, "step_minutes": 30, "currency": "usd",
            "cancellation": {"window_hours": 24, "late_cancel_fee_minor": 0, "no_show_fee_minor": 0}}),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/practices/{p}/booking/services"),
            json!({
            "name": "Relaxation massage", "duration_minutes": 60, "payment": {"kind": "none"},
            "active": true, "clinicians": [w.a.user("clinician")]}),
        ),
        (
            reqwest::Method::PUT,
            format!(
                "/api/v1/practices/{p}/booking/hours/{}",
                w.a.user("clinician")
            ),
            json!({ "hours": hours }),
        ),
    ] {
        let (s, b) = call(&app, method, &path, Some(&owner), Some(&body)).await;
        assert!(s.is_success(), "{path}: {b}");
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();

    let res = http
        .get(app.url(&format!("/book/{p}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Practice a") && page.contains("Relaxation massage"),
        "{page}"
    );
    assert!(!page.contains("clinician a"), "no clinician is named");
    let times = http
        .get(app.url(href_after(&page, "id=\"services\"")))
        .send()
        .await
        .unwrap();
    assert_eq!(times.status(), StatusCode::OK);
    let times = times.text().await.unwrap();
    let details_path = href_after(&times, "<ul class=\"times\">").to_owned();
    let details = http
        .get(app.url(&details_path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(details.contains("Your details"), "{details}");

    // A refused form: 400, the message, nothing stored.
    let person = domain::synthetic::Generator::new(4242).patient();
    let form = |dob: &str| {
        vec![
            ("given_name", person.given_name.clone()),
            ("family_name", person.family_name.clone()),
            ("date_of_birth", dob.to_owned()),
            ("phone", person.phone.clone()),
            ("email", person.email.clone()),
        ]
    };
    let res = http
        .post(app.url(&details_path))
        .header(ORIGIN, app.url("").trim_end_matches('/'))
        .form(&form("yesterday"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("Date of birth"));
    let res = http
        .post(app.url(&details_path))
        .header(ORIGIN, app.url("").trim_end_matches('/'))
        .form(&form(&person.date_of_birth.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("We have received your booking")
    );
    // The same time again: taken.
    let res = http
        .post(app.url(&details_path))
        .header(ORIGIN, app.url("").trim_end_matches('/'))
        .form(&form(&person.date_of_birth.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("no longer free"));
    // A cross-site post is refused before anything runs.
    let res = http
        .post(app.url(&details_path))
        .header(ORIGIN, "https://elsewhere.example")
        .form(&form(&person.date_of_birth.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Practice B does not take bookings: the web's 404.
    let res = http
        .get(app.url(&format!("/book/{}", w.b.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Reception approves on the requests screen.
    let reception = app.token(w.a.user("reception")).await;
    let cookie = format!("__Host-chartroom_session={reception}");
    let list = http
        .get(app.url(&format!("/app/practices/{p}/booking/requests")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let list = list.text().await.unwrap();
    let at = list.find("/approve\"").expect("an approve form");
    let action_start = list[..at].rfind("action=\"").unwrap() + 8;
    let action = format!("{}/approve", &list[action_start..at]);
    let res = http
        .post(app.url(&action))
        .header("cookie", &cookie)
        .header(ORIGIN, app.url("").trim_end_matches('/'))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .ends_with("done=approved")
    );
    let mut su = db.superuser_unsafe().await;
    let status: String =
        sqlx::query_scalar("select status from online_booking where practice_id = $1")
            .bind(p)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(status, "booked");
}
