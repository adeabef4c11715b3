//! Clinical notes through the real server over HTTPS: drafts as versions with `ETag`s, signing
//! with step-up and the signature manifestation, the lock (API 409 and database triggers),
//! amendments with diffs, addenda, integrity verification, and a property test over random
//! action sequences.

use chrono::Duration;
use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;
use testkit::{TestApp, TestDb, World};

use crate::util::call;

/// A request with optional `If-Match`; returns status, `ETag` and JSON body.
async fn req(
    app: &TestApp,
    m: Method,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut r = app.http.request(m, app.url(path)).bearer_auth(token);
    if let Some(e) = if_match {
        r = r.header("if-match", e);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let res = r.send().await.unwrap();
    let status = res.status();
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, etag, json)
}

struct Fx {
    db: TestDb,
    w: World,
    app: TestApp,
    clin: String,
}

async fn fx() -> Fx {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let mut su = db.superuser_unsafe().await;
    sqlx::query("update app_user set credential = 'RDH' where user_id = $1")
        .bind(w.a.user("clinician"))
        .execute(&mut su)
        .await
        .unwrap();
    let app = TestApp::start(&db).await;
    let clin = app.token(w.a.user("clinician")).await;
    Fx { db, w, app, clin }
}

impl Fx {
    fn base(&self) -> String {
        format!("/api/v1/practices/{}", self.w.a.id)
    }

    async fn create(&self, content: Value) -> (String, String) {
        let (s, etag, v) = req(
            &self.app,
            Method::POST,
            &format!("{}/patients/{}/notes", self.base(), self.w.a.patient),
            &self.clin,
            None,
            Some(&json!({"template": "dental_hygiene", "content": content})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (v["note_id"].as_str().unwrap().to_owned(), etag.unwrap())
    }

    fn note(&self, id: &str) -> String {
        format!("{}/notes/{id}", self.base())
    }
}

// req: SIG-01, SIG-02, SIG-04, SIG-05, SIG-06, SIG-09, INT-03
#[tokio::test]
async fn draft_sign_amend_addendum_over_https() {
    let f = fx().await;
    let (id, etag) = f
        .create(json!({"subjective": "Mild sensitivity upper left.", "fields": {"calculus": "light", "recall_months": 6}}))
        .await;
    assert_eq!(etag, "\"1\"");
    let path = f.note(&id);

    // Template fields are checked.
    let (s, _, _) = req(
        &f.app,
        Method::PUT,
        &path,
        &f.clin,
        Some(&etag),
        Some(&json!({"content": {"fields": {"calculus": "enormous"}}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Saving needs If-Match; a stale one is 412; of two saves on the same version exactly one
    // wins (INT-03).
    let save = |text: &str| json!({"content": {"subjective": text, "objective": "Generalized mild gingivitis.", "fields": {"calculus": "light"}}});
    let (s, _, _) = req(&f.app, Method::PUT, &path, &f.clin, None, Some(&save("x"))).await;
    assert_eq!(s, StatusCode::PRECONDITION_REQUIRED);
    let a = save("First writer.");
    let b = save("Second writer.");
    let (r1, r2) = tokio::join!(
        req(&f.app, Method::PUT, &path, &f.clin, Some(&etag), Some(&a)),
        req(&f.app, Method::PUT, &path, &f.clin, Some(&etag), Some(&b)),
    );
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED]);
    let winner = if r1.0 == StatusCode::OK { r1 } else { r2 };
    let winning_text = winner.2["content"]["subjective"]
        .as_str()
        .unwrap()
        .to_owned();
    let etag = winner.1.unwrap();
    assert_eq!(etag, "\"2\"", "every save is a version");

    // Signing needs a fresh second factor (SIG-04).
    f.app.clock.advance(Duration::minutes(6));
    let (s, _, e) = req(
        &f.app,
        Method::POST,
        &format!("{path}/sign"),
        &f.clin,
        Some(&etag),
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AUTH-0004"))
    );
    let fresh = f.app.token(f.w.a.user("clinician")).await;
    // The signer is always the session's user: a signer named in the body is ignored (SIG-05).
    let other = f.w.a.user("owner");
    let (s, etag, signed) = req(
        &f.app,
        Method::POST,
        &format!("{path}/sign"),
        &fresh,
        Some(&etag),
        Some(&json!({"signer_id": other})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{signed}");
    assert_eq!(signed["status"], "signed");
    let sig = &signed["signature"];
    assert_eq!(sig["signer_id"], f.w.a.user("clinician").to_string());
    assert_eq!(sig["credential"], "RDH");
    assert_eq!(sig["meaning"], "authored and approved");
    assert_eq!(sig["time_zone"], "UTC");
    assert!(sig["printed_name"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(sig["signed_at"].as_str().is_some());
    let signed_content = signed["content"].clone();

    // Locked: saves, deletes and a second signature are refused (SIG-03, SIG-09).
    let etag = etag.unwrap();
    let (s, _, e) = req(
        &f.app,
        Method::PUT,
        &path,
        &fresh,
        Some(&etag),
        Some(&save("Changed.")),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("NOTE-0001"))
    );
    let (s, _, _) = req(&f.app, Method::DELETE, &path, &fresh, None, None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _) = req(
        &f.app,
        Method::POST,
        &format!("{path}/sign"),
        &fresh,
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Amendment: a reason is required; AI assistance names its turn; the diff is word-level
    // against the signed version; the original stays (SIG-06).
    let amended = json!({"subjective": winning_text, "objective": "Generalized moderate gingivitis.", "fields": {"calculus": "light"}});
    let (s, _, _) = req(
        &f.app,
        Method::POST,
        &format!("{path}/amendments"),
        &fresh,
        None,
        Some(&json!({"content": amended, "reason": "  "})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = req(
        &f.app,
        Method::POST,
        &format!("{path}/amendments"),
        &fresh,
        None,
        Some(&json!({"content": amended, "reason": "Severity corrected", "ai_assisted": true})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "AI-assisted without its turn");
    // Naming an assistant turn that does not exist here is refused as not found (issue 14.6,
    // SCR-04).
    let turn = uuid::Uuid::new_v4();
    let (s, _, e) = req(&f.app, Method::POST, &format!("{path}/amendments"), &fresh, Some(&etag),
        Some(&json!({"content": amended, "reason": "Severity corrected", "ai_assisted": true, "assistant_turn_id": turn}))).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT-FOUND"))
    );
    let (s, etag, n) = req(
        &f.app,
        Method::POST,
        &format!("{path}/amendments"),
        &fresh,
        Some(&etag),
        Some(&json!({"content": amended, "reason": "Severity corrected"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    assert_eq!(n["amended"], true);
    assert_eq!(
        n["content"]["objective"],
        "Generalized moderate gingivitis."
    );
    assert_eq!(
        n["signed_content"], signed_content,
        "the signed original is unchanged"
    );
    let am = &n["amendments"][0];
    assert_eq!(
        (
            am["ai_assisted"].as_bool(),
            am["assistant_turn_id"].as_str()
        ),
        (Some(false), None)
    );
    let diff = am["diff"].as_array().unwrap();
    let ops = |op: &str| -> Vec<String> {
        diff.iter()
            .filter(|d| d["op"] == op)
            .map(|d| d["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ops("delete"), ["mild"]);
    assert_eq!(ops("insert"), ["moderate"]);
    assert_eq!(
        am["signature"]["signer_id"],
        f.w.a.user("clinician").to_string()
    );

    // Addendum.
    let (s, _, n) = req(
        &f.app,
        Method::POST,
        &format!("{path}/addenda"),
        &fresh,
        etag.as_deref(),
        Some(&json!({"text": "Patient called: sensitivity resolved.", "reason": "Follow-up"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    assert_eq!(
        n["addenda"][0]["text"],
        "Patient called: sensitivity resolved."
    );
    assert_eq!(n["signature"], *sig, "the original signature is unchanged");

    // Every rendering shows the manifestation (SIG-01); history hashes verify.
    let res = f
        .app
        .http
        .get(f.app.url(&format!("{path}/rendering")))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let name = sig["printed_name"].as_str().unwrap();
    for needle in [
        name,
        "RDH",
        "UTC",
        "authored and approved",
        "Severity corrected",
        "Follow-up",
    ] {
        assert!(html.contains(needle), "rendering lacks {needle}");
    }
    assert!(!html.contains("<script"));
    let (s, versions) = call(
        &f.app,
        Method::GET,
        &format!("{path}/versions"),
        Some(&fresh),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let kinds: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["draft", "draft", "signed", "amendment", "addendum"]);
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["hash_ok"] == true)
    );
    let (s, v) = call(
        &f.app,
        Method::GET,
        &format!("{path}/verify"),
        Some(&fresh),
        None,
    )
    .await;
    assert_eq!(
        (s, v["ok"].as_bool(), v["versions"].as_u64()),
        (StatusCode::OK, Some(true), Some(5))
    );

    // An empty draft cannot be signed; a deleted draft reads as 410.
    let (empty, etag) = f.create(json!({})).await;
    let (s, _, _) = req(
        &f.app,
        Method::POST,
        &format!("{}/sign", f.note(&empty)),
        &fresh,
        Some(&etag),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _) = req(
        &f.app,
        Method::DELETE,
        &f.note(&empty),
        &fresh,
        Some(&etag),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = req(&f.app, Method::GET, &f.note(&empty), &fresh, None, None).await;
    assert_eq!(s, StatusCode::GONE);
    // The patient's list (one query for every listed note's versions) shows each note as its
    // own read does: the amended one with its amendment and addendum; the deleted draft is gone.
    let (_, list) = call(
        &f.app,
        Method::GET,
        &format!("{}/patients/{}/notes", f.base(), f.w.a.patient),
        Some(&fresh),
        None,
    )
    .await;
    let (_, alone) = call(&f.app, Method::GET, &path, Some(&fresh), None).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "the deleted draft is not listed");
    assert_eq!(list[0], alone);
    assert_eq!(list[0]["amendments"].as_array().unwrap().len(), 1);
    assert_eq!(list[0]["addenda"].as_array().unwrap().len(), 1);
    // Reception never sees clinical content.
    let rec = f.app.token(f.w.a.user("reception")).await;
    let (s, _, _) = req(&f.app, Method::GET, &path, &rec, None, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

// req: SIG-02, SIG-03, INT-01
#[tokio::test]
async fn signed_content_is_locked_in_the_database_and_tampering_is_detected() {
    let f = fx().await;
    let note = f.signed("Original finding.").await;
    let id = note.to_string();
    let other = f.signed("Another note.").await;

    // As the runtime role, in the note's practice, as its clinician: every change of signed
    // content or state fails.
    let mut rt = f.db.runtime_conn().await;
    let mut tx = rt.begin().await.unwrap();
    testkit::enter_as(
        &mut tx,
        Some(f.w.a.id.as_uuid()),
        Some(f.w.a.user("clinician").as_uuid()),
        true,
    )
    .await;
    let visible: i64 =
        sqlx::query_scalar("select count(*) from clinical_note_version where note_id = $1")
            .bind(note)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        visible, 2,
        "the runtime role sees the versions (so the refusals below are real)"
    );
    for stmt in [
        "update clinical_note_version set content_enc = content_enc where note_id = $1 and kind = 'signed'",
        "delete from clinical_note_version where note_id = $1",
        "update clinical_note set status = 'draft', signed_version = null where note_id = $1",
        "update clinical_note set deleted_at = now() where note_id = $1",
    ] {
        let mut sp = tx.begin().await.unwrap();
        let r = sqlx::query(stmt).bind(note).execute(&mut *sp).await;
        assert!(r.is_err(), "runtime role: {stmt} must fail");
        sp.rollback().await.unwrap();
    }
    tx.rollback().await.unwrap();

    // As the owner role the trigger refuses too (only ciphertext re-encryption is allowed).
    let r = sqlx::query("update clinical_note_version set content_sha256 = content_sha256, signer_name = 'Someone Else' where note_id = $1 and kind = 'signed'")
        .bind(note)
        .execute(&mut f.owner_conn().await)
        .await;
    assert!(
        r.is_err(),
        "the owner role cannot change a signature either"
    );

    // A superuser (who can bypass triggers) rewrites the signed content with a valid
    // ciphertext of other text: verification catches the hash mismatch.
    let keyring = f.db.keyring(pgcluster::DbRole::Owner).await;
    let keys = keyring.keys(f.w.a.id).await.unwrap();
    let row = {
        let mut r = note.as_bytes().to_vec();
        r.extend_from_slice(&2i32.to_be_bytes());
        r
    };
    let forged = store::crypto::encrypt_field(
        keys.active(),
        &store::crypto::FieldContext::new(f.w.a.id, "clinical_note_version", "content", &row),
        br#"{"subjective":"Forged finding.","objective":"","assessment":"","plan":"","fields":{}}"#,
    )
    .unwrap();
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query("set session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query(
        "update clinical_note_version set content_enc = $2 where note_id = $1 and version = 2",
    )
    .bind(note)
    .bind(&forged)
    .execute(&mut su)
    .await
    .unwrap();
    // ... and moves the other note's signature (hash and manifestation) onto this one's v1.
    sqlx::query(
        "update clinical_note_version t set content_sha256 = s.content_sha256
           from clinical_note_version s
          where t.note_id = $1 and t.version = 1 and s.note_id = $2 and s.version = 2",
    )
    .bind(note)
    .bind(other)
    .execute(&mut su)
    .await
    .unwrap();
    sqlx::query("set session_replication_role = origin")
        .execute(&mut su)
        .await
        .unwrap();

    let (s, v) = call(
        &f.app,
        Method::GET,
        &format!("{}/verify", f.note(&id)),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], false);
    assert_eq!(v["mismatched"], json!([1, 2]));
    // The other note still verifies; the offline check over the whole practice finds exactly
    // the tampered note.
    let (_, v) = call(
        &f.app,
        Method::GET,
        &format!("{}/verify", f.note(&other.to_string())),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(v["ok"], true);
    let report = f.db.owner().await.verify_notes(f.w.a.id).await.unwrap();
    assert_eq!(report.notes, 2);
    assert_eq!(
        report.mismatched,
        vec![(domain::NoteId::from_uuid(note), vec![1, 2])]
    );
    // The audit row of the failed verification names the result.
    let (ok,): (Option<bool>,) = sqlx::query_as(
        "select (details->>'ok')::bool from audit_event where action = 'note.verify' and object_id = $1 order by occurred_at limit 1",
    )
    .bind(note)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(ok, Some(false));
}

impl Fx {
    /// An owner-role connection working in practice A (which the owner's policies require).
    async fn owner_conn(&self) -> sqlx::PgConnection {
        let mut ow = sqlx::PgConnection::connect_with(&self.db.owner_options().await)
            .await
            .unwrap();
        sqlx::query("select set_config('chartroom.practice_id', $1, false)")
            .bind(self.w.a.id.to_string())
            .execute(&mut ow)
            .await
            .unwrap();
        ow
    }

    /// Creates and signs a note; returns its id.
    async fn signed(&self, text: &str) -> uuid::Uuid {
        let (id, etag) = self.create(json!({"subjective": text})).await;
        let (s, _, v) = req(
            &self.app,
            Method::POST,
            &format!("{}/sign", self.note(&id)),
            &self.clin,
            Some(&etag),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        uuid::Uuid::parse_str(&id).unwrap()
    }

    /// `GET …/verify` of a note.
    async fn verify(&self, note: uuid::Uuid) -> Value {
        let (s, v) = call(
            &self.app,
            Method::GET,
            &format!("{}/verify", self.note(&note.to_string())),
            Some(&self.clin),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

// issue 14.4, req SIG-01, SIG-02 — the signed hash binds the whole manifestation: a superuser
// with triggers off who changes a signed version's printed name, credential, signed time,
// time zone or creation time is caught by `GET …/verify`, by the versions view and by `notes
// verify` (`OwnerStore::verify_notes`, what the command runs); an untouched note verifies. A
// version hashed under scheme 1 (written before scheme 2) still verifies and is reported as
// not binding its manifestation.
#[tokio::test]
async fn changing_a_signature_manifestation_is_detected() {
    let f = fx().await;
    let tampering = [
        "signer_name = 'Someone Else'",
        "signer_credential = 'DDS'",
        "signer_credential = null",
        "signed_at = signed_at + interval '1 hour'",
        "signed_tz = 'America/New_York'",
        "created_at = created_at - interval '1 day'",
    ];
    let mut notes = Vec::new();
    for i in 0..=tampering.len() {
        notes.push(f.signed(&format!("Finding number {i}.")).await);
    }
    let untouched = notes[tampering.len()];
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query("set session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    for (change, note) in tampering.iter().zip(&notes) {
        let done = sqlx::query(&format!(
            "update clinical_note_version set {change} where note_id = $1 and kind = 'signed'"
        ))
        .bind(note)
        .execute(&mut su)
        .await
        .unwrap();
        assert_eq!(done.rows_affected(), 1, "{change}");
    }
    sqlx::query("set session_replication_role = origin")
        .execute(&mut su)
        .await
        .unwrap();

    for (change, note) in tampering.iter().zip(&notes) {
        let v = f.verify(*note).await;
        assert_eq!(
            (&v["ok"], &v["mismatched"]),
            (&json!(false), &json!([2])),
            "{change}: {v}"
        );
    }
    let v = f.verify(untouched).await;
    assert_eq!(
        (&v["ok"], &v["manifestation_not_bound"]),
        (&json!(true), &json!([])),
        "{v}"
    );
    let (s, versions) = call(
        &f.app,
        Method::GET,
        &format!("{}/versions", f.note(&notes[0].to_string())),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(versions[1]["signature"]["printed_name"], "Someone Else");
    assert_eq!(
        (&versions[1]["hash_ok"], &versions[1]["hash_scheme"]),
        (&json!(false), &json!(2))
    );
    let report = f.db.owner().await.verify_notes(f.w.a.id).await.unwrap();
    let mut bad = report.mismatched.clone();
    bad.sort_by_key(|(n, _)| n.as_uuid());
    let mut want: Vec<(domain::NoteId, Vec<i32>)> = notes[..tampering.len()]
        .iter()
        .map(|n| (domain::NoteId::from_uuid(*n), vec![2]))
        .collect();
    want.sort_by_key(|(n, _)| n.as_uuid());
    assert_eq!(bad, want);
    assert_eq!(report.manifestation_not_bound, 0);

    // A version as an older Chartroom signed it (hash scheme 1) still verifies, and is
    // reported as one whose printed name, credential and time zone are not bound.
    let (author, signed_at, meaning): (uuid::Uuid, chrono::DateTime<chrono::Utc>, String) =
        sqlx::query_as(
            "select author_id, signed_at, signature_meaning from clinical_note_version
              where note_id = $1 and kind = 'signed'",
        )
        .bind(untouched)
        .fetch_one(&mut su)
        .await
        .unwrap();
    let content = domain::notes::NoteContent {
        subjective: format!("Finding number {}.", tampering.len()),
        ..domain::notes::NoteContent::default()
    };
    let v1 = domain::notes::content_hash(
        f.w.a.id.as_uuid(),
        untouched,
        2,
        domain::notes::VersionKind::Signed,
        Some(&domain::notes::Signature {
            signer_id: author,
            printed_name: String::new(),
            credential: None,
            signed_at,
            time_zone: String::new(),
            meaning,
        }),
        &content.canonical(),
    );
    sqlx::query("set session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query(
        "update clinical_note_version set hash_scheme = 1, content_sha256 = $2
          where note_id = $1 and kind = 'signed'",
    )
    .bind(untouched)
    .bind(v1.as_slice())
    .execute(&mut su)
    .await
    .unwrap();
    let v = f.verify(untouched).await;
    assert_eq!(
        (&v["ok"], &v["manifestation_not_bound"]),
        (&json!(true), &json!([2])),
        "{v}"
    );
    let report = f.db.owner().await.verify_notes(f.w.a.id).await.unwrap();
    assert_eq!(report.manifestation_not_bound, 1);

    // The owner role (which may re-encrypt versions) cannot change a version's scheme.
    let r = sqlx::query(
        "update clinical_note_version set hash_scheme = 1 where note_id = $1 and kind = 'signed'",
    )
    .bind(notes[tampering.len() - 1])
    .execute(&mut f.owner_conn().await)
    .await;
    assert!(r.is_err(), "the owner role changed a hash scheme");
}

#[derive(Clone, Debug)]
enum Act {
    Save(u8),
    Sign,
    Amend(u8),
    Addendum(u8),
    Delete,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => any::<u8>().prop_map(Act::Save),
        2 => Just(Act::Sign),
        2 => any::<u8>().prop_map(Act::Amend),
        2 => any::<u8>().prop_map(Act::Addendum),
        1 => Just(Act::Delete),
    ]
}

// req: SIG-09 — over random action sequences: the state machine holds, a signed version
// never changes, every version's hash verifies, and every accepted action left its audit
// event.
#[test]
fn random_note_action_sequences_keep_the_invariants() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fx());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(act(), 1..10), |acts| {
            rt.block_on(run_sequence(&f, &acts));
            Ok(())
        })
        .unwrap();
}

async fn run_sequence(f: &Fx, acts: &[Act]) {
    let (id, mut etag) = f.create(json!({"subjective": "Start."})).await;
    let path = f.note(&id);
    let token = f.app.token(f.w.a.user("clinician")).await;
    let mut status = "draft";
    let mut accepted: Vec<&str> = vec!["note.create"];
    let mut signed_snapshot: Option<Value> = None;
    for a in acts {
        let (m, url, body, action, allowed) = match a {
            Act::Save(n) => (
                Method::PUT,
                path.clone(),
                Some(json!({"content": {"subjective": format!("Save {n}.")}})),
                "note.update",
                status == "draft",
            ),
            Act::Sign => (
                Method::POST,
                format!("{path}/sign"),
                None,
                "note.sign",
                status == "draft",
            ),
            Act::Amend(n) => (
                Method::POST,
                format!("{path}/amendments"),
                Some(
                    json!({"content": {"subjective": format!("Amended {n}.")}, "reason": "Correction"}),
                ),
                "note.amend",
                status == "signed",
            ),
            Act::Addendum(n) => (
                Method::POST,
                format!("{path}/addenda"),
                Some(json!({"text": format!("Addendum {n}."), "reason": "Late entry"})),
                "note.addendum",
                status == "signed",
            ),
            Act::Delete => (
                Method::DELETE,
                path.clone(),
                None,
                "note.delete",
                status == "draft",
            ),
        };
        let (s, new_etag, _) = req(&f.app, m, &url, &token, Some(&etag), body.as_ref()).await;
        if status == "deleted" {
            assert_eq!(s, StatusCode::GONE, "{a:?} on a deleted note");
            continue;
        }
        assert_eq!(s.is_success(), allowed, "{a:?} in state {status}: {s}");
        if !allowed {
            assert_eq!(s, StatusCode::CONFLICT, "{a:?} in state {status}");
            continue;
        }
        accepted.push(action);
        if let Some(e) = new_etag {
            etag = e;
        }
        match a {
            Act::Sign => status = "signed",
            Act::Delete => status = "deleted",
            _ => {}
        }
        if status == "signed" && signed_snapshot.is_none() {
            let (_, v) = call(
                &f.app,
                Method::GET,
                &format!("{path}/versions"),
                Some(&token),
                None,
            )
            .await;
            signed_snapshot = v
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["kind"] == "signed")
                .cloned();
        }
    }
    // Invariants.
    let (s, versions) = call(
        &f.app,
        Method::GET,
        &format!("{path}/versions"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let versions = versions.as_array().unwrap();
    assert!(
        versions.iter().all(|v| v["hash_ok"] == true),
        "every version's hash verifies"
    );
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=i64::try_from(numbers.len()).unwrap()).collect::<Vec<_>>(),
        "versions are consecutive"
    );
    let signed: Vec<&Value> = versions.iter().filter(|v| v["kind"] == "signed").collect();
    assert!(signed.len() <= 1);
    if let Some(snap) = &signed_snapshot {
        assert_eq!(signed[0], snap, "the signed version never changes");
    }
    let first_signed = versions.iter().position(|v| v["kind"] == "signed");
    for (i, v) in versions.iter().enumerate() {
        let kind = v["kind"].as_str().unwrap();
        match first_signed {
            Some(p) if i > p => assert!(
                kind == "amendment" || kind == "addendum",
                "after signing: {kind}"
            ),
            _ => assert!(
                kind == "draft" || kind == "signed",
                "before signing: {kind}"
            ),
        }
    }
    let mut su = f.db.superuser_unsafe().await;
    let rows: Vec<(String,)> = sqlx::query_as(
        "select action from audit_event where object_id = $1 and action like 'note.%' and action <> 'note.read' and outcome = 'success' order by occurred_at, event_id",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_all(&mut su)
    .await
    .unwrap();
    let mut got: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    got.sort_unstable();
    let mut want = accepted.clone();
    want.sort_unstable();
    assert_eq!(
        got, want,
        "every accepted action left exactly its audit event"
    );
}

// req: INT-02 — a deleted patient's record stays readable to those allowed, but takes no new
// clinical records.
#[tokio::test]
async fn a_deleted_patient_takes_no_new_clinical_records() {
    let f = fx().await;
    let rec = f.app.token(f.w.a.user("reception")).await;
    let (s, p) = call(
        &f.app,
        Method::POST,
        &format!("{}/patients", f.base()),
        Some(&rec),
        Some(&json!({"given_name": "Della", "family_name": "Synthwick"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let patient = p["patient_id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &f.app,
        Method::PUT,
        &format!("{}/patients/{patient}/assigned-clinician", f.base()),
        Some(&rec),
        Some(&json!({"clinician_id": f.w.a.user("clinician")})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let notes = format!("{}/patients/{patient}/notes", f.base());
    let (s, _) = call(
        &f.app,
        Method::POST,
        &notes,
        Some(&f.clin),
        Some(&json!({"content": {"subjective": "Before."}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(
        &f.app,
        Method::DELETE,
        &format!("{}/patients/{patient}", f.base()),
        Some(&rec),
        None,
    )
    .await;
    assert!(s.is_success(), "{s}");
    for (path, body) in [
        (notes.clone(), json!({"content": {"subjective": "After."}})),
        (format!("{}/patients/{patient}/visits", f.base()), json!({})),
        (
            format!("{}/patients/{patient}/perio-exams", f.base()),
            json!({}),
        ),
        (
            format!("{}/patients/{patient}/break-glass", f.base()),
            json!({"reason": "x"}),
        ),
    ] {
        let (s, e) = call(&f.app, Method::POST, &path, Some(&f.clin), Some(&body)).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::GONE, Some("GONE")),
            "{path}"
        );
    }
    // The existing note stays readable (history).
    let (s, list) = call(&f.app, Method::GET, &notes, Some(&f.clin), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
}
