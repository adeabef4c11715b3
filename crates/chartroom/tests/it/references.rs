//! References are checked where they are recorded (issue 14.6): a denied attempt's audit row
//! names as its patient only a patient of that practice (the id from the URL is kept as what
//! was requested), and an amendment names only an assistant turn that exists in the practice.
//! req: AUD-01, SCR-04

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

/// The single audit row a request left in `practice`: (`patient_id`, `details`).
async fn denial(
    db: &TestDb,
    practice: domain::PracticeId,
    request_id: &str,
) -> (Option<uuid::Uuid>, Value) {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_as(
        "select patient_id, details from audit_event
          where practice_id = $1 and request_id = $2 and action = 'access.denied'",
    )
    .bind(practice)
    .bind(uuid::Uuid::parse_str(request_id).unwrap())
    .fetch_one(&mut su)
    .await
    .unwrap()
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, String) {
    let res = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (
        res.status(),
        res.headers()["x-request-id"].to_str().unwrap().to_owned(),
    )
}

// issue 14.6 — req: AUD-01
#[tokio::test]
async fn a_denied_attempt_names_only_a_patient_of_the_practice() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    // A's owner holds no role that sees patients: every patient route is denied (403).
    let owner = app.token(w.a.user("owner")).await;
    let base = format!("/api/v1/practices/{}/patients", w.a.id);

    // B's patient named in A's URL: requested, not touched; A's log does not adopt the id.
    let (s, req) = get(&app, &format!("{base}/{}", w.b.patient), &owner).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (patient, details) = denial(&db, w.a.id, &req).await;
    assert_eq!(
        patient, None,
        "another practice's patient id became A's patient"
    );
    assert_eq!(details["requested_patient_id"], w.b.patient.to_string());
    assert_eq!(details["reason"], "role");

    // A made-up id: the same.
    let made_up = uuid::Uuid::new_v4();
    let (s, req) = get(&app, &format!("{base}/{made_up}/notes"), &owner).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (patient, details) = denial(&db, w.a.id, &req).await;
    assert_eq!(patient, None);
    assert_eq!(details["requested_patient_id"], made_up.to_string());

    // A's own patient: named, so "who tried to see this patient" finds the attempt.
    let (s, req) = get(&app, &format!("{base}/{}", w.a.patient), &owner).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (patient, details) = denial(&db, w.a.id, &req).await;
    assert_eq!(patient, Some(w.a.patient.as_uuid()));
    assert_eq!(details["requested_patient_id"], w.a.patient.to_string());

    // A non-member trying A with B's patient id: 404, and still no B id as A's patient.
    let nobody = app.token(w.nobody).await;
    let (s, req) = get(&app, &format!("{base}/{}", w.b.patient), &nobody).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (patient, details) = denial(&db, w.a.id, &req).await;
    assert_eq!(patient, None);
    assert_eq!(details["reason"], "not_member");

    // A's audit report by patient never lists B's patient.
    let admin = app.token(w.a.user("admin")).await;
    let (s, page) = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/practices/{}/audit/events?patient_id={}",
            w.a.id, w.b.patient
        ),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["items"], json!([]), "{page}");
}

// issue 14.6 — req: SCR-04 (the assistant turn of an amendment must exist in the practice)
#[tokio::test]
async fn an_amendment_names_only_an_existing_assistant_turn() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let clin = app.token(w.a.user("clinician")).await;
    let base = format!("/api/v1/practices/{}", w.a.id);
    let res = app
        .http
        .post(app.url(&format!("{base}/patients/{}/notes", w.a.patient)))
        .bearer_auth(&clin)
        .json(&json!({"content": {"subjective": "Synthetic note."}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let note: Value = res.json().await.unwrap();
    let path = format!("{base}/notes/{}", note["note_id"].as_str().unwrap());
    let res = app
        .http
        .post(app.url(&format!("{path}/sign")))
        .bearer_auth(&clin)
        .header("if-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();

    let mut su = db.superuser_unsafe().await;
    let note_id = note["note_id"].as_str().unwrap().to_owned();
    let versions = "select count(*) from clinical_note_version where note_id = $1::uuid";
    let before: i64 = sqlx::query_scalar(versions)
        .bind(&note_id)
        .fetch_one(&mut su)
        .await
        .unwrap();
    // No assistant turn with this id exists in this practice, so it is not found (req SCR-04:
    // the same answer as another practice's turn), and nothing is written.
    let res = app
        .http
        .post(app.url(&format!("{path}/amendments")))
        .bearer_auth(&clin)
        .header("if-match", &etag)
        .json(&json!({
            "content": {"subjective": "Synthetic note, amended."},
            "reason": "Correction",
            "ai_assisted": true,
            "assistant_turn_id": uuid::Uuid::new_v4(),
        }))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "NOT-FOUND");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("assistant turn")
    );
    let after: i64 = sqlx::query_scalar(versions)
        .bind(&note_id)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(after, before, "nothing written");
    let amended: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'note.amend'",
    )
    .bind(w.a.id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(amended, 0);
    // The database refuses it too, whoever writes the version.
    let err = sqlx::query(
        "insert into clinical_note_version (practice_id, note_id, version, kind, author_id, created_at,
            content_enc, content_sha256, reason_enc, ai_assisted, assistant_turn_id, signer_name,
            signed_at, signed_tz, signature_meaning)
         values ($1, $2::uuid, 99, 'amendment', $3, now(), '\\x00', sha256('v'), '\\x00', true,
            gen_random_uuid(), 'x', now(), 'UTC', 'authored and approved')",
    )
    .bind(w.a.id)
    .bind(note["note_id"].as_str().unwrap())
    .bind(w.a.user("clinician"))
    .execute(&mut su)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("assistant_turn_unknown")
    );
    // Without a turn the amendment goes through.
    let res = app
        .http
        .post(app.url(&format!("{path}/amendments")))
        .bearer_auth(&clin)
        .header("if-match", &etag)
        .json(
            &json!({"content": {"subjective": "Synthetic note, amended."}, "reason": "Correction"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}
