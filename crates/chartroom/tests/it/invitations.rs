//! Joining a practice by invitation (issue 14.5): the same answer whether or not the email has
//! an account, the invitee's consent, expiry, revocation, single use, audit with ids only,
//! and no address stored.
//! req: AU-04, AC-02, AC-03, AC-04 — no enumeration

use std::collections::BTreeSet;

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::{call, email_of};

/// (actor, action, object type, object id) of an audit row.
type AuditRow = (
    Option<uuid::Uuid>,
    String,
    Option<String>,
    Option<uuid::Uuid>,
);

fn invitations(w: &World) -> String {
    format!("/api/v1/practices/{}/invitations", w.a.id)
}

/// The shape of a JSON value: keys and value kinds, not values.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

/// Every audit row of practice A as text (superuser view), to look for an address.
async fn audit_text(db: &TestDb, w: &World) -> String {
    let mut su = db.superuser_unsafe().await;
    let rows: Vec<String> =
        sqlx::query_scalar("select to_jsonb(e)::text from audit_event e where practice_id = $1")
            .bind(w.a.id)
            .fetch_all(&mut su)
            .await
            .unwrap();
    rows.join("\n")
}

async fn is_member(db: &TestDb, practice: domain::PracticeId, user: domain::UserId) -> bool {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar(
        "select exists (select 1 from membership where practice_id = $1 and user_id = $2)",
    )
    .bind(practice)
    .bind(user)
    .fetch_one(&mut su)
    .await
    .unwrap()
}

// issue 14.5 — req: AU-04
#[tokio::test]
async fn the_answer_is_the_same_for_an_existing_and_an_unknown_email() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner = app.token(w.a.user("owner")).await;
    // Another practice's clinician (an existing account) and an address nobody has.
    let existing = email_of(&db, w.b.user("clinician")).await;
    let unknown = format!(
        "nobody.{}@test.example.invalid",
        uuid::Uuid::new_v4().simple()
    );
    let mut answers = Vec::new();
    for email in [&existing, &unknown] {
        let (s, body) = call(
            &app,
            Method::POST,
            &invitations(&w),
            Some(&owner),
            Some(&json!({"email": email, "roles": ["clinician"]})),
        )
        .await;
        answers.push((s, shape(&body), body));
    }
    assert_eq!(answers[0].0, StatusCode::ACCEPTED, "{}", answers[0].2);
    assert_eq!(answers[0].0, answers[1].0, "same status");
    assert_eq!(answers[0].1, answers[1].1, "same body shape");
    assert_eq!(
        answers[0].2["expires_at"], answers[1].2["expires_at"],
        "same expiry (the injected clock did not move)"
    );
    // Nobody was added without their consent.
    assert!(!is_member(&db, w.a.id, w.b.user("clinician")).await);
    // The rows are alike too: a tag, never the address.
    let mut su = db.superuser_unsafe().await;
    let rows: Vec<String> = sqlx::query_scalar(
        "select to_jsonb(i)::text from membership_invitation i where practice_id = $1",
    )
    .bind(w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(!row.contains(&existing) && !row.contains(&unknown), "{row}");
        assert!(!row.contains("test.example.invalid"), "{row}");
    }
    let audit = audit_text(&db, &w).await;
    assert!(!audit.contains(&existing) && !audit.contains(&unknown));
    // Adding a member by email is gone from the API (the operator CLI keeps it).
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/practices/{}/memberships", w.a.id),
        Some(&owner),
        Some(&json!({"email": existing, "roles": ["clinician"]})),
    )
    .await;
    assert!(!s.is_success(), "{s}");
    assert!(!is_member(&db, w.a.id, w.b.user("clinician")).await);
}

// issue 14.5
#[tokio::test]
async fn the_invitee_accepts_and_only_then_becomes_a_member() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner = app.token(w.a.user("owner")).await;
    let invitee = w.b.user("clinician");
    let email = email_of(&db, invitee).await;
    let (s, sent) = call(
        &app,
        Method::POST,
        &invitations(&w),
        Some(&owner),
        // Case and spaces do not matter: the address is normalized before it is tagged.
        Some(&json!({"email": format!("  {}  ", email.to_uppercase()), "roles": ["clinician"]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
    let id = sent["invitation_id"].as_str().unwrap().to_owned();

    let token = app.token(invitee).await;
    let patients = format!("/api/v1/practices/{}/patients", w.a.id);
    let (s, _) = call(&app, Method::GET, &patients, Some(&token), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not a member before accepting");
    let listed = mine(&app, &token).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["invitation_id"], id.as_str());
    assert_eq!(listed[0]["practice_id"], w.a.id.to_string());
    assert_eq!(listed[0]["practice_name"], "Practice a");
    assert_eq!(listed[0]["roles"], json!(["clinician"]));
    // Nobody else sees it, not even another member of the inviting practice.
    let other = app.token(w.a.user("reception")).await;
    assert_eq!(mine(&app, &other).await, json!([]));
    let (s, _) = decide(&app, &id, "accept", &other).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "addressed to someone else");
    // A password-only session cannot list or decide.
    let half = app.password_only_token(invitee).await;
    for (m, path) in [
        (Method::GET, "/api/v1/invitations".to_owned()),
        (Method::POST, format!("/api/v1/invitations/{id}/accept")),
        (Method::POST, format!("/api/v1/invitations/{id}/decline")),
    ] {
        let (s, e) = call(&app, m, &path, Some(&half), None).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("AUTH-0003")),
            "{path}"
        );
    }

    let (s, joined) = decide(&app, &id, "accept", &token).await;
    assert_eq!(s, StatusCode::OK, "{joined}");
    assert_eq!(joined["practice_id"], w.a.id.to_string());
    assert_eq!(joined["roles"], json!(["clinician"]));
    // The same session now reaches the practice with the invited role.
    let (s, body) = call(&app, Method::GET, &patients, Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Single use: a second acceptance or a decline finds nothing.
    for verb in ["accept", "decline"] {
        let (s, _) = decide(&app, &id, verb, &token).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{verb} after acceptance");
    }
    assert_eq!(mine(&app, &token).await, json!([]));
    // The practice sees it accepted, and cannot revoke it any more.
    let (s, list) = call(&app, Method::GET, &invitations(&w), Some(&owner), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list[0]["state"], "accepted");
    assert_eq!(list[0]["invited_by"], w.a.user("owner").to_string());
    assert!(list[0].get("email").is_none(), "the address is not kept");
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("{}/{id}", invitations(&w)),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Audited on A's log with ids only: who invited, who accepted, who became a member.
    let mut su = db.superuser_unsafe().await;
    let rows: BTreeSet<AuditRow> =
        sqlx::query_as(
            "select actor_id, action, object_type, object_id from audit_event
              where practice_id = $1 and action in ('invitation.create', 'invitation.accept', 'membership.create')
                and actor_id is not null",
        )
        .bind(w.a.id)
        .fetch_all(&mut su)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let id = uuid::Uuid::parse_str(&id).unwrap();
    let owner_id = w.a.user("owner").as_uuid();
    assert_eq!(
        rows,
        BTreeSet::from([
            (
                Some(owner_id),
                "invitation.create".to_owned(),
                Some("invitation".to_owned()),
                Some(id)
            ),
            (
                Some(invitee.as_uuid()),
                "invitation.accept".to_owned(),
                Some("invitation".to_owned()),
                Some(id)
            ),
            (
                Some(invitee.as_uuid()),
                "membership.create".to_owned(),
                Some("user".to_owned()),
                Some(invitee.as_uuid())
            ),
        ])
    );
    let audit = audit_text(&db, &w).await;
    assert!(!audit.to_lowercase().contains(&email.to_lowercase()));
}

/// The invitee's decision on invitation `id` (`verb`: accept or decline): status and body.
async fn decide(app: &TestApp, id: &str, verb: &str, token: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/invitations/{id}/{verb}");
    call(app, Method::POST, &path, Some(token), None).await
}

/// The invitations addressed to the caller.
async fn mine(app: &TestApp, token: &str) -> Value {
    let (s, list) = call(app, Method::GET, "/api/v1/invitations", Some(token), None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list
}

// issue 14.5
#[tokio::test]
async fn invitations_can_be_declined_revoked_and_expire() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let email = email_of(&db, w.nobody).await;
    let invite = |token: String| {
        let (app, w, email) = (&app, &w, &email);
        async move {
            let body = json!({"email": email, "roles": ["reception", "clinician"]});
            let path = invitations(w);
            let (s, sent) = call(app, Method::POST, &path, Some(&token), Some(&body)).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
            sent["invitation_id"].as_str().unwrap().to_owned()
        }
    };
    let admin = app.token(w.a.user("admin")).await;
    let nobody = app.token(w.nobody).await;

    // Declined: nothing changes, and it cannot be accepted afterwards.
    let declined = invite(admin.clone()).await;
    let (s, _) = decide(&app, &declined, "decline", &nobody).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = decide(&app, &declined, "accept", &nobody).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!is_member(&db, w.a.id, w.nobody).await);

    // Revoked by the practice: gone for the invitee; revoking twice is a conflict.
    let revoked = invite(admin.clone()).await;
    let path = format!("{}/{revoked}", invitations(&w));
    let (s, _) = call(&app, Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(mine(&app, &nobody).await, json!([]));
    let (s, _) = decide(&app, &revoked, "accept", &nobody).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Expired after seven days on the server's clock.
    let expired = invite(admin.clone()).await;
    app.clock.advance(Duration::days(7) + Duration::minutes(1));
    let nobody = app.token(w.nobody).await;
    let admin = app.token(w.a.user("admin")).await;
    assert_eq!(mine(&app, &nobody).await, json!([]));
    let (s, _) = decide(&app, &expired, "accept", &nobody).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!is_member(&db, w.a.id, w.nobody).await);
    let (_, list) = call(&app, Method::GET, &invitations(&w), Some(&admin), None).await;
    let states: BTreeSet<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["invitation_id"].as_str().unwrap().to_owned(),
                i["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        BTreeSet::from([
            (declined, "declined".to_owned()),
            (revoked, "revoked".to_owned()),
            (expired, "expired".to_owned()),
        ])
    );

    // A fresh one is accepted with both roles.
    let fresh = invite(admin.clone()).await;
    let (s, body) = decide(&app, &fresh, "accept", &nobody).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(is_member(&db, w.a.id, w.nobody).await);
    // A second invitation to a member is accepted as nothing new: 409, and it stays pending.
    let again = invite(admin.clone()).await;
    let (s, e) = decide(&app, &again, "accept", &nobody).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("CONFLICT-0001"))
    );
    assert_eq!(mine(&app, &nobody).await.as_array().unwrap().len(), 1);

    // Bad input: a clear 400, nothing stored.
    for body in [
        json!({"email": "not-an-email", "roles": ["reception"]}),
        json!({"email": "x@example.invalid", "roles": []}),
        json!({"email": "x@example.invalid", "roles": ["superuser"]}),
        json!({"email": "x@example.invalid", "roles": ["reception"], "extra": 1}),
    ] {
        let path = invitations(&w);
        let (s, e) = call(&app, Method::POST, &path, Some(&admin), Some(&body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
    }
    let (s, _) = decide(&app, "not-a-uuid", "accept", &nobody).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, list) = call(&app, Method::GET, &invitations(&w), Some(&admin), None).await;
    assert_eq!(list.as_array().unwrap().len(), 5);
}

// issue 14.5 — req: AC-02, AC-04: the invitee routes (the practice routes are in `api_matrix`).
#[tokio::test]
async fn invitee_routes_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner = app.token(w.b.user("owner")).await;
    let email = email_of(&db, w.nobody).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (_, sent) = call(
            &app,
            Method::POST,
            &format!("/api/v1/practices/{}/invitations", w.b.id),
            Some(&owner),
            Some(&json!({"email": email, "roles": ["reception"]})),
        )
        .await;
        ids.push(sent["invitation_id"].as_str().unwrap().to_owned());
    }
    let routes = [
        (
            Method::GET,
            "/api/v1/invitations".to_owned(),
            StatusCode::OK,
        ),
        (
            Method::POST,
            format!("/api/v1/invitations/{}/decline", ids[0]),
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            format!("/api/v1/invitations/{}/accept", ids[1]),
            StatusCode::OK,
        ),
    ];
    for (m, path, right) in routes {
        // Anonymous and a malformed token: 401.
        for token in [None, Some("not-a-token")] {
            let (s, _) = call(&app, m.clone(), &path, token, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path}");
        }
        // Someone else — B's own owner included: not theirs, 404 (listing: an empty list).
        for user in [w.b.user("owner"), w.a.user("owner"), w.b.user("reception")] {
            let t = app.token(user).await;
            let (s, body) = call(&app, m.clone(), &path, Some(&t), None).await;
            if m == Method::GET {
                assert_eq!((s, body), (StatusCode::OK, json!([])), "{path}");
            } else {
                assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path}");
            }
        }
        // The invitee: 2xx.
        let t = app.token(w.nobody).await;
        let (s, body) = call(&app, m.clone(), &path, Some(&t), None).await;
        assert_eq!(s, right, "{m} {path}: {body}");
    }
    assert!(is_member(&db, w.b.id, w.nobody).await);
}
