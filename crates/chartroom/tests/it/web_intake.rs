//! Issue 19, over real HTTP: the public intake page (`/intake/{token}`: no session, the strict
//! CSP, one generic page for every link that does not work, a refused form changes nothing),
//! the staff intake screens with their authorization matrix, accept onto the chart, and the
//! public client pages' per-address limit (429) on intake and booking pages alike.

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use testkit::{TestApp, TestDb, World};

use crate::sealed_columns::as_member;
use crate::web_pages::{client, post_form, request};

async fn intake_link(app: &TestApp, w: &World, form: &str) -> (domain::IntakeRequestId, String) {
    let mut tx = as_member(app, &app.store, w.a.user("reception"), w.a.id).await;
    let made = store::intake::create_intake_link(&mut tx, w.a.patient, form)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let origin = outbound::LinkOrigin::parse("https://clinic.example.test").unwrap();
    let url = made.url(&origin);
    let token = url.as_str().rsplit('/').next().unwrap().to_owned();
    (made.request_id, token)
}

async fn submit(
    http: &reqwest::Client,
    app: &TestApp,
    token: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(app.url(&format!("/intake/{token}")))
        .header("sec-fetch-site", "same-origin")
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn status_of(su: &mut sqlx::PgConnection, r: domain::IntakeRequestId) -> String {
    sqlx::query_scalar("select status from intake_request where request_id = $1")
        .bind(r)
        .fetch_one(su)
        .await
        .unwrap()
}

// req: OPS-05 — issue 19.6 / 19.7: the client fills in and signs the form on the public page; a refused
// form changes nothing; a used, unknown or wrong-purpose link gets one generic page; reception
// sees it in the queue and accepts it; the chart shows it only then.
#[tokio::test]
async fn a_client_signs_the_intake_form_and_reception_accepts_it_onto_the_chart() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let (request_id, token) = intake_link(&app, &w, "consent_to_treatment").await;

    let res = http
        .get(app.url(&format!("/intake/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "no PHI in caches"
    );
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Consent to treatment") && page.contains("Practice a"),
        "{page}"
    );
    assert!(page.contains("I agree to sign this form electronically"));
    assert!(!page.contains("<script>"), "no inline script");

    // Refused: 400, messages next to the fields, nothing stored.
    let mut su = db.superuser_unsafe().await;
    let res = submit(
        &http,
        &app,
        &token,
        &[
            ("full_name", "Ada Example"),
            ("date_of_birth", "1980-13-01"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = res.text().await.unwrap();
    for m in [
        "Enter a date as YYYY-MM-DD.",
        "Tick this box to continue.",
        "Type your full name to sign.",
        "Tick the box to agree to sign electronically.",
        "Nothing was sent.",
    ] {
        assert!(page.contains(m), "{m} in {page}");
    }
    assert!(
        page.contains("value=\"Ada Example\""),
        "values kept as typed"
    );
    assert_eq!(status_of(&mut su, request_id).await, "sent");

    // A cross-site post is refused before anything runs.
    let res = http
        .post(app.url(&format!("/intake/{token}")))
        .header("origin", "https://elsewhere.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("signer_name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let good = [
        ("full_name", "Ada Example"),
        ("date_of_birth", "1980-05-06"),
        ("understand_treatment", "yes"),
        ("consent_treatment", "yes"),
        ("withdraw", "yes"),
        ("questions", "Web-canary-Hx4"),
        ("esign_consent", "yes"),
        ("signer_name", "Ada Example"),
    ];
    let res = submit(&http, &app, &token, &good).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Your signed form was sent")
    );
    assert_eq!(status_of(&mut su, request_id).await, "submitted");

    // Used, unknown, malformed and wrong-purpose links: the same generic page.
    let appointment: uuid::Uuid = sqlx::query_scalar(
        "insert into appointment (practice_id, appointment_id, patient_id, clinician_id, starts_at, ends_at, status, created_at, updated_at)
         values ($1, gen_random_uuid(), $2, $3, now() + interval '3 days', now() + interval '3 days 1 hour', 'booked', now(), now())
         returning appointment_id",
    )
    .bind(w.a.id)
    .bind(w.a.patient)
    .bind(w.a.user("clinician"))
    .fetch_one(&mut su)
    .await
    .unwrap();
    let mut tx = as_member(&app, &app.store, w.a.user("reception"), w.a.id).await;
    let manage = store::links::create_booking_manage_link(
        &mut tx,
        domain::AppointmentId::from_uuid(appointment),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
    let manage_text = outbound::OpaqueLink::new(
        &outbound::LinkOrigin::parse("https://clinic.example.test").unwrap(),
        outbound::LinkPurpose::Manage,
        &manage,
    )
    .as_str()
    .rsplit('/')
    .next()
    .unwrap()
    .to_owned();
    let unknown = outbound::LinkToken::generate();
    let unknown_text = outbound::OpaqueLink::new(
        &outbound::LinkOrigin::parse("https://clinic.example.test").unwrap(),
        outbound::LinkPurpose::Intake,
        &unknown,
    )
    .as_str()
    .rsplit('/')
    .next()
    .unwrap()
    .to_owned();
    for t in [token.as_str(), &manage_text, &unknown_text, "not-a-token"] {
        let res = http
            .get(app.url(&format!("/intake/{t}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{t}");
        let page = res.text().await.unwrap();
        assert!(page.contains("This link does not work"), "{page}");
        let res = submit(&http, &app, t, &good).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(status_of(&mut su, request_id).await, "submitted");

    // Reception: the queue, the form (decrypted, audited), accept.
    let reception = app.token(w.a.user("reception")).await;
    let p = w.a.id;
    let clinician = app.token(w.a.user("clinician")).await;
    let chart_path = format!("/app/practices/{p}/patients/{}/chart", w.a.patient);
    let chart = crate::web_pages::get_page(&http, &app, &chart_path, &clinician).await;
    assert!(
        chart.contains("No accepted intake form."),
        "not on the chart before review"
    );
    let queue = crate::web_pages::get_page(
        &http,
        &app,
        &format!("/app/practices/{p}/intake"),
        &reception,
    )
    .await;
    let href = format!("/app/practices/{p}/intake/{request_id}");
    assert!(queue.contains(&href), "{queue}");
    assert!(
        !queue.contains("Web-canary-Hx4"),
        "the queue shows no answers"
    );
    let review = crate::web_pages::get_page(&http, &app, &href, &reception).await;
    assert!(
        review.contains("Web-canary-Hx4") && review.contains("evidence-ok"),
        "{review}"
    );
    let res = post_form(
        &http,
        &app,
        &format!("{href}/reject"),
        &reception,
        &[("reason", "")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(status_of(&mut su, request_id).await, "submitted");
    let res = post_form(&http, &app, &format!("{href}/accept"), &reception, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .ends_with("done=accepted")
    );
    assert_eq!(status_of(&mut su, request_id).await, "accepted");
    let chart = crate::web_pages::get_page(&http, &app, &chart_path, &clinician).await;
    assert!(
        chart.contains(&href) && chart.contains("Consent to treatment"),
        "{chart}"
    );

    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_event where practice_id = $1 and action like 'intake.%' order by action",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "intake.decide",
            "intake.list",
            "intake.open",
            "intake.read",
            "intake.request",
            "intake.submit"
        ]
    );
}

/// A route of the matrix: method, path, form, the right roles' status, their audit action.
type Row = (
    Method,
    String,
    Vec<(&'static str, &'static str)>,
    StatusCode,
    &'static str,
);

// The staff intake screens' authorization matrix: anonymous → sign-in, another practice →
// 404, owners and admins (no scheduling role) → 403, clinicians and reception → allowed with
// their audit event.
#[tokio::test]
async fn intake_screens_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let patient = w.a.patient;
    let (request_id, token) = intake_link(&app, &w, "massage_intake").await;
    let form = [
        ("full_name", "Bo Example"),
        ("date_of_birth", "1975-01-02"),
        ("pressure", "Medium"),
        ("contra_blood_clots", "no"),
        ("contra_recent_surgery", "no"),
        ("contra_skin", "no"),
        ("contra_fever", "no"),
        ("contra_pregnancy", "No"),
        ("contra_cancer", "no"),
        ("contra_blood_thinners", "yes"),
        ("esign_consent", "yes"),
        ("signer_name", "Bo Example"),
    ];
    assert_eq!(
        submit(&http, &app, &token, &form).await.status(),
        StatusCode::OK
    );

    let routes: Vec<Row> = vec![
        (
            Method::GET,
            format!("/app/practices/{p}/patients/{patient}/intake"),
            vec![],
            StatusCode::OK,
            "patient.read",
        ),
        (
            Method::POST,
            format!("/app/practices/{p}/patients/{patient}/intake"),
            vec![("form_id", "dental_health_history")],
            StatusCode::SEE_OTHER,
            "intake.request",
        ),
        (
            Method::GET,
            format!("/app/practices/{p}/intake"),
            vec![],
            StatusCode::OK,
            "intake.list",
        ),
        (
            Method::GET,
            format!("/app/practices/{p}/intake/{request_id}"),
            vec![],
            StatusCode::OK,
            "intake.read",
        ),
    ];
    let b = w.b.id;
    let other = app.token(w.b.user("reception")).await;
    let owner = app.token(w.a.user("owner")).await;
    let admin = app.token(w.a.user("admin")).await;
    let mut su = db.superuser_unsafe().await;
    for (method, path, body, ok, action) in &routes {
        // Anonymous: to the sign-in page.
        let res = request(&http, &app, method.clone(), path, None)
            .form(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {path}");
        assert!(
            res.headers()[LOCATION]
                .to_str()
                .unwrap()
                .contains("/app/sign-in")
        );
        // Another practice's member, on A's path: 404.
        let res = request(&http, &app, method.clone(), path, Some(&other))
            .form(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "other practice {path}");
        // B's member on B's path with A's objects: 404.
        let cross = path.replace(&p.to_string(), &b.to_string());
        let res = request(&http, &app, method.clone(), &cross, Some(&other))
            .form(body)
            .send()
            .await
            .unwrap();
        // (B's own queue is B's: that one answers.)
        let want = if *action == "intake.list" {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(res.status(), want, "{cross}");
        // Owners and admins hold no scheduling role here: 403.
        for t in [&owner, &admin] {
            let res = request(&http, &app, method.clone(), path, Some(t))
                .form(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "wrong role {path}");
        }
        for role in ["reception", "clinician"] {
            let t = app.token(w.a.user(role)).await;
            let res = request(&http, &app, method.clone(), path, Some(&t))
                .form(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), *ok, "{role} {path}");
            let n: i64 = sqlx::query_scalar(
                "select count(*) from audit_event where practice_id = $1 and action = $2 and actor_id = $3",
            )
            .bind(p)
            .bind(action)
            .bind(w.a.user(role))
            .fetch_one(&mut su)
            .await
            .unwrap();
            assert!(n > 0, "{role} {path}: {action} audited");
        }
    }
    // Deciding: wrong role 403, another practice 404, then the right role.
    let decide = format!("/app/practices/{p}/intake/{request_id}/reject");
    for (t, s) in [
        (&owner, StatusCode::FORBIDDEN),
        (&other, StatusCode::NOT_FOUND),
    ] {
        let res = post_form(&http, &app, &decide, t, &[("reason", "Incomplete")]).await;
        assert_eq!(res.status(), s);
    }
    let clinician = app.token(w.a.user("clinician")).await;
    let res = post_form(
        &http,
        &app,
        &decide,
        &clinician,
        &[("reason", "Incomplete")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(status_of(&mut su, request_id).await, "rejected");
}

// issue 19.6 — rate-limited: one per-address limit for every public client page (intake and
// booking alike), the sign-in throttle's mechanism: past the free requests, 429 with
// Retry-After, and nothing runs.
#[tokio::test]
async fn public_client_pages_share_one_per_address_limit() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start_configured(db.store().await, |id| {
        id.client_pages = server::identity::Throttle::new(server::identity::ThrottleConfig {
            address_free: 3,
            ..server::identity::ThrottleConfig::client_pages()
        });
    })
    .await;
    let http = client();
    let (request_id, token) = intake_link(&app, &w, "consent_to_treatment").await;
    for path in [
        format!("/book/{}", w.a.id),
        "/intake/not-a-token".to_owned(),
        format!("/intake/{token}"),
        // The fourth is admitted and starts the wait.
        "/intake/not-a-token".to_owned(),
    ] {
        let res = http.get(app.url(&path)).send().await.unwrap();
        assert_ne!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    for path in [format!("/intake/{token}"), format!("/book/{}", w.a.id)] {
        let res = http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(res.headers().contains_key(RETRY_AFTER));
        assert!(res.text().await.unwrap().contains("Too many requests"));
    }
    // The booking API's public routes are under the same limit.
    let res = http
        .get(app.url(&format!("/api/v1/public/practices/{}/booking", w.a.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // A throttled submission stores nothing; staff pages are not limited by it.
    let res = submit(&http, &app, &token, &[("signer_name", "x")]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let mut su = db.superuser_unsafe().await;
    assert_eq!(status_of(&mut su, request_id).await, "sent");
    let reception = app.token(w.a.user("reception")).await;
    let res = request(
        &http,
        &app,
        Method::GET,
        &format!("/app/practices/{}/intake", w.a.id),
        Some(&reception),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Opening the intake page counted toward the limit but the open was audited once only.
    let opens: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'intake.open'",
    )
    .bind(w.a.id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(opens, 1);
}
