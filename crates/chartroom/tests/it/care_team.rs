//! Care-team scope and break-glass through the real server: a clinician sees clinical records
//! only for patients on their care team (or practice-wide when the practice says so, or by
//! break-glass), enforced in RLS; break-glass is reasoned, time-boxed, flagged on every audit
//! event in its window, and reviewed by the owners.

use chrono::Duration;
use domain::{Role, RoleSet};
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::util::call;

// req: AC-07
#[tokio::test]
async fn care_team_scope_and_break_glass() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let owner = db.owner().await;
    let now = chrono::Utc::now();
    let other = owner
        .create_user(
            &format!(
                "clin2.{}@test.example.invalid",
                uuid::Uuid::new_v4().simple()
            ),
            "Second Clinician",
            testkit::password_hash(),
            now,
        )
        .await
        .unwrap();
    owner
        .add_member(w.a.id, other, RoleSet::from_iter([Role::Clinician]), now)
        .await
        .unwrap();
    owner.close().await;
    let app = TestApp::start(&db).await;
    let base = format!("/api/v1/practices/{}", w.a.id);
    let notes = format!("{base}/patients/{}/notes", w.a.patient);
    let clin = app.token(w.a.user("clinician")).await;
    let mut second = app.token(other).await;
    let rec = app.token(w.a.user("reception")).await;
    let own = app.token(w.a.user("owner")).await;

    // The assigned clinician writes a note; the second clinician, not on the care team, sees
    // neither the notes nor the perio exams — 404, as if the patient had none.
    let (s, note) = call(
        &app,
        Method::POST,
        &notes,
        Some(&clin),
        Some(&json!({"content": {"subjective": "Care-team note."}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let note_path = format!("{base}/notes/{}", note["note_id"].as_str().unwrap());
    for (m, path) in [
        (Method::GET, notes.clone()),
        (Method::GET, note_path.clone()),
        (
            Method::GET,
            format!("{base}/patients/{}/perio-exams", w.a.patient),
        ),
        (
            Method::GET,
            format!("{base}/patients/{}/visits", w.a.patient),
        ),
    ] {
        let (s, _) = call(&app, m, &path, Some(&second), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "outside the care team: {path}");
    }
    let (s, _) = call(
        &app,
        Method::POST,
        &notes,
        Some(&second),
        Some(&json!({"content": {"subjective": "x"}})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Demographics stay visible (scheduling needs them).
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("{base}/patients/{}", w.a.patient),
        Some(&second),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Break-glass: only clinicians, a reason is required, the window is bounded.
    let bg = format!("{base}/patients/{}/break-glass", w.a.patient);
    let (s, _) = call(
        &app,
        Method::POST,
        &bg,
        Some(&rec),
        Some(&json!({"reason": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "reception cannot break the glass");
    let (s, _) = call(
        &app,
        Method::POST,
        &bg,
        Some(&own),
        Some(&json!({"reason": "x"})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "an owner who is not a clinician cannot either"
    );
    let (s, _) = call(
        &app,
        Method::POST,
        &bg,
        Some(&second),
        Some(&json!({"reason": " "})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "reason required");
    let (s, _) = call(
        &app,
        Method::POST,
        &bg,
        Some(&second),
        Some(&json!({"reason": "x", "minutes": 600})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "at most 4 hours");
    let (s, grant) = call(
        &app,
        Method::POST,
        &bg,
        Some(&second),
        Some(&json!({"reason": "Patient collapsed in the chair; need allergy history"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{grant}");
    let grant_id = grant["grant_id"].as_str().unwrap().to_owned();

    // In the window the notes open, and every clinical read is flagged as emergency access.
    let (s, list) = call(&app, Method::GET, &notes, Some(&second), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, _) = call(&app, Method::GET, &note_path, Some(&second), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&app, Method::GET, &note_path, Some(&clin), None).await;
    assert_eq!(s, StatusCode::OK);
    let mut su = db.superuser_unsafe().await;
    let flagged: Vec<(uuid::Uuid, String, Option<bool>, Option<String>)> = sqlx::query_as(
        "select actor_id, action, (details->>'emergency')::bool, details->>'break_glass_id'
           from audit_event where practice_id = $1 and action in ('note.list', 'note.read')
          order by occurred_at, event_id",
    )
    .bind(w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    let second_reads: Vec<_> = flagged.iter().filter(|r| r.0 == other.as_uuid()).collect();
    assert_eq!(second_reads.len(), 2);
    assert!(
        second_reads
            .iter()
            .all(|r| r.2 == Some(true) && r.3.as_deref() == Some(grant_id.as_str())),
        "every read in the window is emergency access: {second_reads:?}"
    );
    assert!(
        flagged
            .iter()
            .filter(|r| r.0 == w.a.user("clinician").as_uuid())
            .all(|r| r.2.is_none()),
        "the care team's own reads are not flagged"
    );

    // The window closes (injected clock): 404 again.
    app.clock.advance(Duration::minutes(61));
    second = app.token(other).await;
    let (s, _) = call(&app, Method::GET, &note_path, Some(&second), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "after the break-glass window");

    // The owners' review list holds the grant with its reason until acknowledged.
    let own = app.token(w.a.user("owner")).await;
    let (s, pending) = call(
        &app,
        Method::GET,
        &format!("{base}/break-glass"),
        Some(&own),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let item = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["grant_id"] == grant_id.as_str())
        .unwrap();
    assert_eq!(item["user_id"], other.to_string());
    assert_eq!(
        item["reason"],
        "Patient collapsed in the chair; need allergy history"
    );
    let clin = app.token(w.a.user("clinician")).await;
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("{base}/break-glass"),
        Some(&clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let ack = format!("{base}/break-glass/{grant_id}/acknowledge");
    let (s, _) = call(&app, Method::POST, &ack, Some(&own), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, Method::POST, &ack, Some(&own), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "already acknowledged");
    let (_, pending) = call(
        &app,
        Method::GET,
        &format!("{base}/break-glass"),
        Some(&own),
        None,
    )
    .await;
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["grant_id"] != grant_id.as_str())
    );
    // The reason is stored encrypted.
    let raw: Vec<u8> = sqlx::query_scalar("select reason_enc from break_glass where grant_id = $1")
        .bind(uuid::Uuid::parse_str(&grant_id).unwrap())
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert!(!raw.windows(9).any(|w| w == b"collapsed"));

    // Assigning the second clinician puts the patient on their care team; a practice-wide
    // scope does the same for everyone.
    let assign = format!("{base}/patients/{}/assigned-clinician", w.a.patient);
    let rec = app.token(w.a.user("reception")).await;
    let (s, _) = call(
        &app,
        Method::PUT,
        &assign,
        Some(&rec),
        Some(&json!({"clinician_id": w.a.user("reception")})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "only a clinician can be assigned"
    );
    let (s, _) = call(
        &app,
        Method::PUT,
        &assign,
        Some(&rec),
        Some(&json!({"clinician_id": other})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, Method::GET, &note_path, Some(&second), None).await;
    assert_eq!(s, StatusCode::OK, "assigned: on the care team");
    let (s, _) = call(&app, Method::GET, &note_path, Some(&clin), None).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the first clinician is no longer assigned and has no visit"
    );
    let (s, _) = call(
        &app,
        Method::PATCH,
        &base,
        Some(&own),
        Some(&json!({"settings": {"clinical_scope": "practice"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&app, Method::GET, &note_path, Some(&clin), None).await;
    assert_eq!(s, StatusCode::OK, "practice-wide scope");
    // Reception never sees clinical content, whatever the scope.
    let (s, _) = call(&app, Method::GET, &note_path, Some(&rec), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A break-glass opened by someone who is on the care team anyway flags nothing: only
    // access that exists through the break-glass alone is emergency access.
    second = app.token(other).await;
    let (s, grant) = call(
        &app,
        Method::POST,
        &bg,
        Some(&second),
        Some(&json!({"reason": "Checking an allergy before treatment"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{grant}");
    let (s, _) = call(&app, Method::GET, &note_path, Some(&second), None).await;
    assert_eq!(s, StatusCode::OK);
    let care_team_read: (Option<bool>,) = sqlx::query_as(
        "select (details->>'emergency')::bool from audit_event
          where practice_id = $1 and actor_id = $2 and action = 'note.read'
          order by occurred_at desc, event_id desc limit 1",
    )
    .bind(w.a.id)
    .bind(other)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        care_team_read.0, None,
        "care team access is not emergency access"
    );
}
