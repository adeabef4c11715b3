//! Issue 19.6, the staff side of intake forms as JSON (`/api/v1/practices/{p}/…`): request a
//! form (its link queued to the patient), the client signs it on the public page, staff list
//! the queue, open the response (audited `intake.read`) and accept it; client links listed and
//! revoked (a revoked link is refused like an expired one and nothing changes), from the API
//! and from the button on the patient's intake page; the authorization matrix of every route.

use chrono::Utc;
use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::sealed_columns::as_member;
use crate::util::call;
use crate::web_pages::{client, post_form, request};

/// The consent form, filled in and signed; `questions` carries `canary`.
fn consent_form(canary: &str) -> Vec<(&'static str, String)> {
    [
        ("full_name", "Ada Example"),
        ("date_of_birth", "1980-05-06"),
        ("understand_treatment", "yes"),
        ("consent_treatment", "yes"),
        ("withdraw", "yes"),
        ("questions", canary),
        ("esign_consent", "yes"),
        ("signer_name", "Ada Example"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

async fn submit_public(app: &TestApp, token: &str, canary: &str) -> StatusCode {
    client()
        .post(app.url(&format!("/intake/{token}")))
        .header("sec-fetch-site", "same-origin")
        .form(&consent_form(canary))
        .send()
        .await
        .unwrap()
        .status()
}

/// A consent-form request for A's patient made in the store (its token returned), as
/// reception.
async fn store_link(app: &TestApp, w: &World) -> (domain::IntakeRequestId, String) {
    let mut tx = as_member(app, &app.store, w.a.user("reception"), w.a.id).await;
    let made = store::intake::create_intake_link(&mut tx, w.a.patient, "consent_to_treatment")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let origin = outbound::LinkOrigin::parse("https://clinic.example.test").unwrap();
    let token = made
        .url(&origin)
        .as_str()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    (made.request_id, token)
}

/// A request signed and submitted by the client, waiting for review.
async fn submitted(app: &TestApp, w: &World) -> domain::IntakeRequestId {
    let (id, token) = store_link(app, w).await;
    assert_eq!(submit_public(app, &token, "fine").await, StatusCode::OK);
    id
}

/// The link token the outbox would send for `request` (opened by the outbox's own claim,
/// then rolled back: nothing is sent or marked).
async fn queued_token(db: &TestDb, practice: domain::PracticeId, request: &str) -> String {
    let owner = db.owner().await;
    let claim = owner
        .claim_outbox(practice, Utc::now(), 200)
        .await
        .unwrap()
        .expect("messages queued");
    let token = claim
        .due
        .iter()
        .find(|d| d.template == "intake_request")
        .and_then(|d| d.slots.link_token.clone())
        .expect("the intake message carries its link");
    drop(claim);
    let mut su = db.superuser_unsafe().await;
    let n: i64 = sqlx::query_scalar(
        "select count(*) from outbox_message where cause = 'intake' and cause_id = $1::uuid",
    )
    .bind(request)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(n, 2, "one email and one SMS for the request");
    token
}

async fn seed_contactable(db: &TestDb, w: &World, seed: u64) -> domain::PatientId {
    let owner = db.owner().await;
    owner
        .seed_patient(
            w.a.id,
            &domain::synthetic::Generator::new(seed).patient().into(),
            Utc::now(),
        )
        .await
        .unwrap()
}

async fn audited(
    su: &mut sqlx::PgConnection,
    practice: domain::PracticeId,
    action: &str,
    actor: domain::UserId,
) -> i64 {
    sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = $2 and actor_id = $3",
    )
    .bind(practice)
    .bind(action)
    .bind(actor)
    .fetch_one(su)
    .await
    .unwrap()
}

// req: OPS-05, EGR-05 — issue 19.6 through the JSON API: request → the client signs on the
// public page through the queued link → the queue → the response opened (audited) → accept.
#[tokio::test]
async fn staff_request_review_and_accept_an_intake_form_through_the_api() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let patient = seed_contactable(&db, &w, 4101).await;
    let reception = app.token(w.a.user("reception")).await;
    let clinician = app.token(w.a.user("clinician")).await;
    let base = format!("/api/v1/practices/{}", w.a.id);

    // An unknown form: 400, nothing made.
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{base}/patients/{patient}/intake-requests"),
        Some(&reception),
        Some(&json!({"form_id": "no_such_form"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, made) = call(
        &app,
        Method::POST,
        &format!("{base}/patients/{patient}/intake-requests"),
        Some(&reception),
        Some(&json!({"form_id": "consent_to_treatment"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    assert_eq!(made["messages_queued"], 2);
    assert!(made.get("token").is_none(), "the token is never returned");
    let request = made["request_id"].as_str().unwrap().to_owned();

    // The client follows the link the outbox carries, fills in and signs the form.
    let token = queued_token(&db, w.a.id, &request).await;
    let canary = format!("Api-canary-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(submit_public(&app, &token, &canary).await, StatusCode::OK);

    // The queue lists it as waiting, with nothing decrypted.
    let (s, queue) = call(
        &app,
        Method::GET,
        &format!("{base}/intake-requests"),
        Some(&clinician),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let row = queue
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == request.as_str())
        .expect("in the queue");
    assert_eq!(row["status"], "submitted");
    assert!(!queue.to_string().contains(&canary));

    // One response, opened: answers, signature and evidence; audited `intake.read`.
    let (s, review) = call(
        &app,
        Method::GET,
        &format!("{base}/intake-requests/{request}"),
        Some(&clinician),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{review}");
    assert_eq!(review["answers"]["questions"], canary.as_str());
    assert_eq!(review["signer_name"], "Ada Example");
    assert_eq!(review["evidence_verified"], true);
    assert_eq!(review["esign_consent"], true);
    let mut su = db.superuser_unsafe().await;
    assert_eq!(
        audited(&mut su, w.a.id, "intake.read", w.a.user("clinician")).await,
        1
    );
    let leaked: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and coalesce(details::text, '') like '%' || $2 || '%'",
    )
    .bind(w.a.id)
    .bind(&canary)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(leaked, 0, "no answer in the audit log");

    // Reject without a reason: 400, nothing changes. Accept: on the chart. Again: 409.
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{base}/intake-requests/{request}/reject"),
        Some(&clinician),
        Some(&json!({"reason": "  "})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, done) = call(
        &app,
        Method::POST,
        &format!("{base}/intake-requests/{request}/accept"),
        Some(&clinician),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "accepted");
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{base}/intake-requests/{request}/reject"),
        Some(&reception),
        Some(&json!({"reason": "Too late"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let status: String =
        sqlx::query_scalar("select status from intake_request where request_id = $1::uuid")
            .bind(&request)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(status, "accepted");

    // A request not yet submitted has no response to read.
    let (s, other) = call(
        &app,
        Method::POST,
        &format!("{base}/patients/{patient}/intake-requests"),
        Some(&reception),
        Some(&json!({"form_id": "massage_intake"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!(
            "{base}/intake-requests/{}",
            other["request_id"].as_str().unwrap()
        ),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// req: EGR-05 — a revoked link is refused like an expired one (the one generic page), at once,
// and nothing it opened changes; revoking twice is 409.
#[tokio::test]
async fn a_revoked_link_stops_working_at_once_and_nothing_changes() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let reception = app.token(w.a.user("reception")).await;
    let base = format!("/api/v1/practices/{}", w.a.id);
    let (request, token) = store_link(&app, &w).await;
    let http = client();
    assert_eq!(
        http.get(app.url(&format!("/intake/{token}")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "live before"
    );

    let (s, links) = call(
        &app,
        Method::GET,
        &format!("{base}/patients/{}/client-links", w.a.patient),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let link = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["subject_id"] == request.to_string().as_str())
        .expect("the request's link is listed")
        .clone();
    assert_eq!(link["purpose"], "intake");
    assert_eq!(link["outstanding"], true);
    assert!(!links.to_string().contains(&token), "no token listed");
    let link_id = link["link_id"].as_str().unwrap().to_owned();

    let (s, revoked) = call(
        &app,
        Method::POST,
        &format!("{base}/client-links/{link_id}/revoke"),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["outstanding"], false);
    assert!(revoked["revoked_at"].is_string());

    // Refused like an expired link: the one generic page; a submission changes nothing.
    let res = http
        .get(app.url(&format!("/intake/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("This link does not work")
    );
    assert_eq!(
        submit_public(&app, &token, "after revocation").await,
        StatusCode::NOT_FOUND
    );
    let mut su = db.superuser_unsafe().await;
    let (status, responses): (String, i64) = sqlx::query_as(
        "select status, (select count(*) from intake_response x where x.request_id = r.request_id)
           from intake_request r where request_id = $1",
    )
    .bind(request)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((status.as_str(), responses), ("sent", 0));

    // Twice: 409, nothing changes; the revocation is audited once, without the token.
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{base}/client-links/{link_id}/revoke"),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let rows: Vec<(Option<String>, Option<Value>)> = sqlx::query_as(
        "select object_type, details from audit_event where practice_id = $1 and action = 'client_link.revoke'",
    )
    .bind(w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.as_deref(), Some("client_link"));
    assert_eq!(rows[0].1, Some(json!({"purpose": "intake"})));
    assert!(!format!("{rows:?}").contains(&token));

    // A used link cannot be revoked (it opens nothing already).
    let (_, used_token) = store_link(&app, &w).await;
    assert_eq!(submit_public(&app, &used_token, "x").await, StatusCode::OK);
    let (_, links) = call(
        &app,
        Method::GET,
        &format!("{base}/patients/{}/client-links", w.a.patient),
        Some(&reception),
        None,
    )
    .await;
    let used = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["used_at"].is_string())
        .unwrap()["link_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{base}/client-links/{used}/revoke"),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

// The page's button: the patient's intake page lists links that still work, each with a
// revoke button; the button's route has the matrix of the intake screens.
#[tokio::test]
async fn the_patient_intake_page_revokes_a_link_with_its_button() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let (p, patient) = (w.a.id, w.a.patient);
    let (req_id, token) = store_link(&app, &w).await;
    let reception = app.token(w.a.user("reception")).await;
    let page = request_page(
        &http,
        &app,
        &reception,
        &format!("/app/practices/{p}/patients/{patient}/intake"),
    )
    .await;
    assert!(page.contains("Revoke link"), "{page}");
    assert!(!page.contains(&token), "no token on the page");
    let mut su = db.superuser_unsafe().await;
    let link: uuid::Uuid =
        sqlx::query_scalar("select link_id from client_link where subject_id = $1")
            .bind(req_id)
            .fetch_one(&mut su)
            .await
            .unwrap();
    let path = format!("/app/practices/{p}/patients/{patient}/links/{link}/revoke");

    // Anonymous: to sign-in. Another practice: 404. Owners and admins: 403.
    let res = request(&http, &app, Method::POST, &path, None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .contains("/app/sign-in")
    );
    let other = app.token(w.b.user("reception")).await;
    assert_eq!(
        post_form(&http, &app, &path, &other, &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    let cross = path.replace(&p.to_string(), &w.b.id.to_string());
    assert_eq!(
        post_form(&http, &app, &cross, &other, &[]).await.status(),
        StatusCode::NOT_FOUND,
        "A's link on B's path"
    );
    for role in ["owner", "admin"] {
        let t = app.token(w.a.user(role)).await;
        assert_eq!(
            post_form(&http, &app, &path, &t, &[]).await.status(),
            StatusCode::FORBIDDEN,
            "{role}"
        );
    }
    // Another patient's path with this link: 404, nothing changes.
    let elsewhere = path.replace(&patient.to_string(), &uuid::Uuid::new_v4().to_string());
    assert_eq!(
        post_form(&http, &app, &elsewhere, &reception, &[])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let live: bool =
        sqlx::query_scalar("select revoked_at is null from client_link where link_id = $1")
            .bind(link)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(live, "denied attempts changed nothing");

    let res = post_form(&http, &app, &path, &reception, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()[LOCATION]
            .to_str()
            .unwrap()
            .ends_with("done=revoked")
    );
    assert_eq!(
        audited(&mut su, p, "client_link.revoke", w.a.user("reception")).await,
        1
    );
    let page = request_page(
        &http,
        &app,
        &reception,
        &format!("/app/practices/{p}/patients/{patient}/intake?done=revoked"),
    )
    .await;
    assert!(
        page.contains("Link revoked") && !page.contains("Revoke link"),
        "{page}"
    );
    assert_eq!(
        http.get(app.url(&format!("/intake/{token}")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

async fn request_page(http: &reqwest::Client, app: &TestApp, token: &str, path: &str) -> String {
    let res = request(http, app, Method::GET, path, Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

type Route = (
    Method,
    String,
    Option<Value>,
    StatusCode,
    Option<&'static str>,
);

// req: AC-02, AC-03, AC-04 — every new intake route: anonymous 401, another practice 404 (on
// A's path, and B's path with A's objects), owners and admins 403, clinicians and reception
// allowed, leaving their audit event.
#[tokio::test]
async fn intake_api_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let (p, patient) = (w.a.id, w.a.patient);
    let base = format!("/api/v1/practices/{p}");
    // Each allowed role gets its own submitted requests and its own live link.
    let mut per_role = Vec::new();
    for _ in ["clinician", "reception"] {
        let accept = submitted(&app, &w).await;
        let reject = submitted(&app, &w).await;
        let (link_request, _) = store_link(&app, &w).await;
        let mut su = db.superuser_unsafe().await;
        let link: uuid::Uuid =
            sqlx::query_scalar("select link_id from client_link where subject_id = $1")
                .bind(link_request)
                .fetch_one(&mut su)
                .await
                .unwrap();
        per_role.push((accept, reject, link));
    }
    let routes = |(accept, reject, link): (
        domain::IntakeRequestId,
        domain::IntakeRequestId,
        uuid::Uuid,
    )|
     -> Vec<Route> {
        vec![
            (
                Method::POST,
                format!("{base}/patients/{patient}/intake-requests"),
                Some(json!({"form_id": "consent_to_treatment"})),
                StatusCode::CREATED,
                Some("intake.request"),
            ),
            (
                Method::GET,
                format!("{base}/intake-requests"),
                None,
                StatusCode::OK,
                Some("intake.list"),
            ),
            (
                Method::GET,
                format!("{base}/intake-requests/{accept}"),
                None,
                StatusCode::OK,
                Some("intake.read"),
            ),
            (
                Method::POST,
                format!("{base}/intake-requests/{accept}/accept"),
                None,
                StatusCode::OK,
                Some("intake.decide"),
            ),
            (
                Method::POST,
                format!("{base}/intake-requests/{reject}/reject"),
                Some(json!({"reason": "Incomplete"})),
                StatusCode::OK,
                Some("intake.decide"),
            ),
            (
                Method::GET,
                format!("{base}/patients/{patient}/client-links"),
                None,
                StatusCode::OK,
                None,
            ),
            (
                Method::POST,
                format!("{base}/client-links/{link}/revoke"),
                None,
                StatusCode::OK,
                Some("client_link.revoke"),
            ),
        ]
    };
    let outsider = app.token(w.b.user("reception")).await;
    let mut su = db.superuser_unsafe().await;
    for (method, path, body, _, _) in routes(per_role[0]) {
        let (s, _) = call(&app, method.clone(), &path, None, body.as_ref()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} anonymous");
        let (s, _) = call(&app, method.clone(), &path, Some(&outsider), body.as_ref()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path} other practice");
        if !path.ends_with("/intake-requests") {
            let cross = path.replace(&p.to_string(), &w.b.id.to_string());
            let (s, _) = call(&app, method.clone(), &cross, Some(&outsider), body.as_ref()).await;
            assert_eq!(
                s,
                StatusCode::NOT_FOUND,
                "{method} {cross} A's object on B's path"
            );
        }
        for role in ["owner", "admin"] {
            let t = app.token(w.a.user(role)).await;
            let (s, _) = call(&app, method.clone(), &path, Some(&t), body.as_ref()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as {role}");
        }
    }
    // Nothing the denied calls touched changed.
    let (decided, revoked): (i64, i64) = sqlx::query_as(
        "select (select count(*) from intake_request where practice_id = $1 and status in ('accepted', 'rejected')),
                (select count(*) from client_link where practice_id = $1 and revoked_at is not null)",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((decided, revoked), (0, 0));
    for (i, role) in ["clinician", "reception"].into_iter().enumerate() {
        let t = app.token(w.a.user(role)).await;
        for (method, path, body, ok, action) in routes(per_role[i]) {
            let (s, b) = call(&app, method.clone(), &path, Some(&t), body.as_ref()).await;
            assert_eq!(s, ok, "{method} {path} as {role}: {b}");
            if let Some(action) = action {
                assert!(
                    audited(&mut su, p, action, w.a.user(role)).await > 0,
                    "{method} {path} as {role}: {action} audited"
                );
            }
        }
    }
}
