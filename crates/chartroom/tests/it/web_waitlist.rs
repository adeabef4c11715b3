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

// req: EGR-05 — an offer of a service paid for at booking is never booked without the payment:
// accepting it holds the slot and sends the client to Checkout exactly as `/book` does (typed
// fields only, the session ending with the hold); when the processor fails nothing is held and
// the link still works; the verified webhook books it and queues its one confirmation.
#[tokio::test]
async fn accepting_an_offer_of_a_paid_service_goes_through_checkout() {
    use testkit::mailpay_standins::{Failure, StripeStandIn};

    let h = Harness::new().await;
    let stripe = StripeStandIn::start().await;
    let app = crate::payments::app_with_stripe(h.db.store().await, &stripe).await;
    let hooks = crate::payments::stripe_webhooks(&app, &h.owner).await;
    let w = &h.w;
    let p = w.a.id;
    let service = crate::payments::paid_service(
        &app,
        &w.a,
        serde_json::json!({"kind": "deposit", "amount_minor": 4000}),
    )
    .await;
    let reception = app.token(w.a.user("reception")).await;
    let cs = clients(&h, p, 2, 61).await;
    let slot = at(&app, 2, 15);
    let appt = appointment(&app, &reception, w, slot).await;
    for c in &cs {
        add_entry(
            &app,
            &reception,
            p,
            c.id,
            &service,
            at(&app, 1, 0),
            at(&app, 4, 0),
        )
        .await;
    }
    cancel(&app, &reception, p, &appt).await;
    let tokens = send_offers(&h).await;
    assert_eq!(tokens.len(), 2);
    let winner = cs.iter().find(|c| c.phone == tokens[0].0).unwrap();
    let http = client();
    let accept = |t: &str| {
        http.post(app.url(&format!("/offer/{t}/accept")))
            .header("sec-fetch-site", "same-origin")
            .send()
    };
    let mut su = h.su().await;
    let at_slot = "select a.status, b.status, pay.state
                     from appointment a
                     join online_booking b on b.practice_id = a.practice_id and b.appointment_id = a.appointment_id
                     join booking_payment pay on pay.practice_id = b.practice_id and pay.booking_id = b.booking_id
                    where a.practice_id = $1 and a.starts_at = $2 and a.status <> 'cancelled'";
    let confirmations = "select count(*) from outbox_message
                          where practice_id = $1 and template = 'booking_confirmed' and patient_id = $2";

    // The processor is down: 503, nothing held, the offer still open.
    stripe.script(Failure::Status(500));
    let res = accept(&tokens[0].1).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let held: Vec<(String, String, String)> = sqlx::query_as(at_slot)
        .bind(p)
        .bind(slot)
        .fetch_all(&mut su)
        .await
        .unwrap();
    assert!(held.is_empty(), "nothing held: {held:?}");
    assert!(stripe.objects().is_empty());

    // Up again: held, sent to Checkout, not booked and not confirmed.
    let res = accept(&tokens[0].1).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.unwrap();
    assert!(body.contains("id=\"held\""), "{body}");
    let objects = stripe.objects();
    assert_eq!(objects.len(), 1);
    assert!(
        body.contains(&objects[0].id),
        "the page sends the client to the session"
    );
    let (a, b, pay): (String, String, String) = sqlx::query_as(at_slot)
        .bind(p)
        .bind(slot)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(
        (a.as_str(), b.as_str(), pay.as_str()),
        ("held", "held", "pending")
    );
    let n: i64 = sqlx::query_scalar(confirmations)
        .bind(p)
        .bind(winner.id)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(n, 0, "no confirmation before the payment");
    // What Stripe was told: the amount, typed fields, the hold's end; no client of the list.
    let form = &objects[0].form;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field("mode").as_deref(), Some("payment"));
    assert_eq!(
        field("line_items[0][price_data][unit_amount]").as_deref(),
        Some("4000")
    );
    let hold_end: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "select hold_expires_at from booking_payment where practice_id = $1 and state = 'pending'",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(field("expires_at"), Some(hold_end.timestamp().to_string()));
    for r in stripe.recorded() {
        let text = String::from_utf8_lossy(&r.body).to_lowercase();
        for c in &cs {
            assert!(
                !text.contains(&c.family.to_lowercase()),
                "a name reached the processor"
            );
            assert!(
                !text.contains(&c.phone[2..]),
                "a phone reached the processor"
            );
        }
    }
    // The other client finds the time taken.
    let res = accept(&tokens[1].1).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // Paid: booked, one confirmation per channel.
    let completed = stripe.completed_session(&objects[0].id).unwrap();
    let status = StripeStandIn::send_event(
        &hooks,
        crate::payments::SECRET,
        "checkout.session.completed",
        &completed,
        {
            use domain::Clock as _;
            app.clock.now().timestamp()
        },
    )
    .await;
    assert_eq!(status, 204);
    let (a, b, pay): (String, String, String) = sqlx::query_as(at_slot)
        .bind(p)
        .bind(slot)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(
        (a.as_str(), b.as_str(), pay.as_str()),
        ("booked", "booked", "paid")
    );
    let n: i64 = sqlx::query_scalar(confirmations)
        .bind(p)
        .bind(winner.id)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(n, 2, "one confirmation per channel");
}
