//! Issue 19.5, the waitlist over the web: the staff screen `/app/practices/{p}/waitlist`
//! (reception, owners and admins; anonymous → sign-in, another practice → 404, a clinician →
//! 403 audited) adds and removes entries; the public offer page `/offer/{token}` shows the
//! practice, the time and the service only, and the first client to accept books the slot
//! while the second reads that the time has been taken.

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION};
use reqwest::{Method, StatusCode};
use testkit::TestApp;

use crate::outbox::Harness;
use crate::waitlist::{add_entry, appointment, at, cancel, clients, send_offers};
use crate::web_pages::{client, post_form, request};

// req: EGR-05 — the staff screen's matrix, and adding and removing through it.
#[tokio::test]
async fn the_waitlist_screen_is_for_the_front_desk_and_managers() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let http = client();
    let p = w.a.id;
    let path = format!("/app/practices/{p}/waitlist");
    let mut su = h.su().await;

    let res = request(&http, &app, Method::GET, &path, None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
    let other = app.token(w.b.user("owner")).await;
    for (method, target) in [
        (Method::GET, path.clone()),
        (Method::POST, path.clone()),
        (
            Method::POST,
            format!("{path}/{}/remove", uuid::Uuid::new_v4()),
        ),
    ] {
        let res = request(&http, &app, method, &target, Some(&other))
            .form(&[("patient_id", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{target}");
    }
    let clinician = app.token(w.a.user("clinician")).await;
    let res = request(&http, &app, Method::GET, &path, Some(&clinician))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(&http, &app, &path, &clinician, &[("patient_id", "x")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let first = (app_today(&app) + chrono::Duration::days(1)).to_string();
    let last = (app_today(&app) + chrono::Duration::days(4)).to_string();
    for role in ["reception", "owner", "admin"] {
        let t = app.token(w.a.user(role)).await;
        let page = request(&http, &app, Method::GET, &path, Some(&t))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{role}");
        let body = page.text().await.unwrap();
        assert!(body.contains("Cleaning"), "{role}: the service to choose");
        let patient = w.a.patient.to_string();
        let res = post_form(
            &http,
            &app,
            &path,
            &t,
            &[
                ("patient_id", patient.as_str()),
                ("service_id", service.as_str()),
                ("first_day", first.as_str()),
                ("last_day", last.as_str()),
            ],
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{role}");
        assert_eq!(res.headers()[LOCATION], format!("{path}?done=added"));
        let id: uuid::Uuid = sqlx::query_scalar(
            "select entry_id from waitlist_entry where state = 'waiting' order by created_at desc limit 1",
        )
        .fetch_one(&mut su)
        .await
        .unwrap();
        let body = request(&http, &app, Method::GET, &path, Some(&t))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains(&format!("entry-{id}")), "{role}");
        let res = post_form(&http, &app, &format!("{path}/{id}/remove"), &clinician, &[]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let res = post_form(&http, &app, &format!("{path}/{id}/remove"), &t, &[]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{role}");
        let state: String =
            sqlx::query_scalar("select state from waitlist_entry where entry_id = $1")
                .bind(id)
                .fetch_one(&mut su)
                .await
                .unwrap();
        assert_eq!(state, "removed");
    }
    // Refused input: back with the reason, nothing stored.
    let reception = app.token(w.a.user("reception")).await;
    let before: i64 = sqlx::query_scalar("select count(*) from waitlist_entry")
        .fetch_one(&mut su)
        .await
        .unwrap();
    let b_patient = w.b.patient.to_string();
    for (form, field) in [
        (vec![("patient_id", "nope")], "patient_id"),
        (
            vec![
                ("patient_id", b_patient.as_str()),
                ("service_id", service.as_str()),
                ("first_day", first.as_str()),
                ("last_day", last.as_str()),
            ],
            "patient_id",
        ),
        (
            vec![
                ("patient_id", b_patient.as_str()),
                ("service_id", service.as_str()),
                ("first_day", last.as_str()),
                ("last_day", "2001-01-01"),
            ],
            "days",
        ),
    ] {
        let res = post_form(&http, &app, &path, &reception, &form).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[LOCATION], format!("{path}?refused={field}"));
    }
    let after: i64 = sqlx::query_scalar("select count(*) from waitlist_entry")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(before, after);
    let body = request(
        &http,
        &app,
        Method::GET,
        &format!("{path}?refused=patient_id"),
        Some(&reception),
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(body.contains("id=\"waitlist-error\""));
}

fn app_today(app: &TestApp) -> chrono::NaiveDate {
    use domain::Clock as _;
    app.clock.now().date_naive()
}

// req: EGR-05 — the offer page: practice, time and service only; the first to accept books
// it; the second reads that it was taken; a used or unknown link is the generic page.
#[tokio::test]
async fn the_offer_page_books_for_the_first_and_tells_the_second_it_was_taken() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let reception = app.token(w.a.user("reception")).await;
    let cs = clients(&h, w.a.id, 2, 51).await;
    let slot = at(&app, 2, 15);
    let appt = appointment(&app, &reception, w, slot).await;
    for c in &cs {
        add_entry(
            &app,
            &reception,
            w.a.id,
            c.id,
            &service,
            at(&app, 1, 0),
            at(&app, 4, 0),
        )
        .await;
    }
    cancel(&app, &reception, w.a.id, &appt).await;
    let tokens = send_offers(&h).await;
    assert_eq!(tokens.len(), 2);
    let http = client();

    let res = http
        .get(app.url(&format!("/offer/{}", tokens[0].1)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key(CONTENT_SECURITY_POLICY));
    let body = res.text().await.unwrap();
    assert!(
        body.contains("Practice A") || body.contains("Practice a"),
        "{body}"
    );
    assert!(body.contains("Cleaning"));
    assert!(body.contains("id=\"accept\""));
    for c in &cs {
        assert!(!body.contains(&c.family) && !body.contains(&c.phone[2..]));
    }

    let accept = |t: &str| {
        http.post(app.url(&format!("/offer/{t}/accept")))
            .header("sec-fetch-site", "same-origin")
            .send()
    };
    let res = accept(&tokens[0].1).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("id=\"booked\""));
    let res = http
        .get(app.url(&format!("/offer/{}", tokens[1].1)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("id=\"taken\""));
    let res = accept(&tokens[1].1).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("This time has been taken")
    );
    for t in [&tokens[0].1, &tokens[1].1, &"not-a-token".to_owned()] {
        let res = http
            .get(app.url(&format!("/offer/{t}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "used links open nothing"
        );
    }
    let mut su = h.su().await;
    let n: i64 = sqlx::query_scalar(
        "select count(*) from appointment where starts_at = $1 and status = 'booked'",
    )
    .bind(slot)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(n, 1);
}
