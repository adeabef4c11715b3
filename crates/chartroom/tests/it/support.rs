//! Vendor support access through the real server: nothing without a grant; an owner approves
//! with a fresh second factor; the grant's scope decides what is visible (RLS); support is
//! read-only; every access is flagged and disclosed; revocation and expiry act at once.

use chrono::Duration;
use domain::{Role, RoleSet};
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::util::call;

// req: AC-08
#[tokio::test]
async fn support_sees_nothing_without_a_grant_and_only_its_scope_with_one() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let owner = db.owner().await;
    let now = chrono::Utc::now();
    let email = format!(
        "support.{}@test.example.invalid",
        uuid::Uuid::new_v4().simple()
    );
    let support = owner
        .create_support_user(&email, "Vendor Support", testkit::password_hash(), now)
        .await
        .unwrap();
    // Support staff can never be members.
    assert!(
        owner
            .add_member(w.a.id, support, RoleSet::from_iter([Role::Reception]), now)
            .await
            .is_err()
    );
    owner.close().await;
    let app = TestApp::start(&db).await;
    let base = format!("/api/v1/practices/{}", w.a.id);
    let patient = format!("{base}/patients/{}", w.a.patient);
    let notes = format!("{patient}/notes");
    let clin = app.token(w.a.user("clinician")).await;
    let (s, _) = call(&app, Method::POST, &notes, Some(&clin),
        Some(&json!({"content": {"subjective": "Support must not read this without a clinical grant."}}))).await;
    assert_eq!(s, StatusCode::CREATED);

    let mut sup = app.token(support).await;
    let (s, _) = call(&app, Method::GET, &patient, Some(&sup), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no grant: nothing");

    // Only an owner approves, with a fresh second factor.
    let grant_req = json!({"support_email": email, "scope": "scheduling", "reason": "Help with an import", "hours": 4});
    let admin = app.token(w.a.user("admin")).await;
    let grants = format!("{base}/support-grants");
    let (s, _) = call(&app, Method::POST, &grants, Some(&admin), Some(&grant_req)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "admins do not approve");
    let stale = app.token(w.a.user("owner")).await;
    app.clock.advance(Duration::minutes(6));
    let (s, e) = call(&app, Method::POST, &grants, Some(&stale), Some(&grant_req)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AUTH-0004"))
    );
    let own = app.token(w.a.user("owner")).await;
    let (s, _) = call(
        &app,
        Method::POST,
        &grants,
        Some(&own),
        Some(&json!({"support_email": email, "scope": "scheduling", "reason": "x", "hours": 73})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "at most 72 hours");
    let (s, _) = call(&app, Method::POST, &grants, Some(&own),
        Some(&json!({"support_email": "nobody@example.invalid", "scope": "scheduling", "reason": "x", "hours": 1}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "not a support account");
    let (s, g) = call(&app, Method::POST, &grants, Some(&own), Some(&grant_req)).await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let grant = g["grant_id"].as_str().unwrap().to_owned();

    // Scheduling scope: demographics yes, clinical no, writes never, other practices never.
    sup = app.token(support).await;
    let (s, p) = call(&app, Method::GET, &patient, Some(&sup), None).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (s, _) = call(&app, Method::GET, &notes, Some(&sup), None).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "no clinical records under a scheduling grant"
    );
    let (s, _) = call(
        &app,
        Method::PATCH,
        &patient,
        Some(&sup),
        Some(&json!({"phone": "+1 555 0111"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "support access is read-only");
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}/patients/{}", w.b.id, w.b.patient),
        Some(&sup),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another practice");

    // The access is on the audit trail as support access, and in the patient's disclosures.
    let mut su = db.superuser_unsafe().await;
    let rows: Vec<(String, Option<bool>, Option<String>)> = sqlx::query_as(
        "select action, (details->>'support_access')::bool, details->>'support_grant_id'
           from audit_event where practice_id = $1 and actor_id = $2 and outcome = 'success'",
    )
    .bind(w.a.id)
    .bind(support)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r.1 == Some(true) && r.2.as_deref() == Some(grant.as_str())),
        "{rows:?}"
    );
    // The report covers up to now, exclusive: let the (injected) clock move on.
    app.clock.advance(Duration::seconds(1));
    let rec = app.token(w.a.user("reception")).await;
    let (s, d) = call(
        &app,
        Method::GET,
        &format!("{patient}/disclosures"),
        Some(&rec),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert!(
        d.to_string().contains("support_access"),
        "support access is disclosed: {d}"
    );

    // The practice sees the grant; revocation acts on the very next request.
    let (s, list) = call(&app, Method::GET, &grants, Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list[0]["reason"], "Help with an import");
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("{grants}/{grant}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, Method::GET, &patient, Some(&sup), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "revoked");

    // A clinical grant opens clinical records (read-only) until it expires.
    let own = app.token(w.a.user("owner")).await;
    let (s, _) = call(&app, Method::POST, &grants, Some(&own),
        Some(&json!({"support_email": email, "scope": "clinical", "reason": "Note rendering bug", "hours": 2}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, n) = call(&app, Method::GET, &notes, Some(&sup), None).await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(n.as_array().unwrap().len(), 1);
    app.clock.advance(Duration::hours(2) + Duration::minutes(1));
    let sup = app.token(support).await;
    let (s, _) = call(&app, Method::GET, &notes, Some(&sup), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "expired");
}
