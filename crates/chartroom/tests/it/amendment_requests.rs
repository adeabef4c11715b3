//! Amendment requests through the API (req SIG-07, SIG-08): the 60-day deadline from the
//! receipt on the injected clock, the one 30-day extension (a second → 409), the overdue alert
//! raised once by the job at the deadline; accepting lands the change on the note through the
//! notes' own amendment and addendum path; a denial only with a written reason, then the
//! patient's statement of disagreement and the practice's rebuttal, linked to the note and
//! carried by the record export (FHIR R4, validated) and its disclosures, with nothing of a
//! second patient; the authorization matrix of the routes (listed in `api_matrix`'s
//! `MATRIX_ELSEWHERE`).

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use domain::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::record_export::{decoded, fhir_validate, resources, seed_everything};
use crate::util::call;

/// An overdue alert's audit row: object id, patient, details, actor.
type OverdueRow = (
    String,
    Option<uuid::Uuid>,
    Option<Value>,
    Option<uuid::Uuid>,
);

fn base(p: domain::PracticeId) -> String {
    format!("/api/v1/practices/{p}/amendment-requests")
}

fn at(v: &Value, key: &str) -> DateTime<Utc> {
    v[key].as_str().unwrap().parse().unwrap()
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

/// Records a request in practice `p` as `token`; its id.
async fn create(app: &TestApp, token: &str, p: domain::PracticeId, body: &Value) -> String {
    let (s, v) = call(app, Method::POST, &base(p), Some(token), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["request_id"].as_str().unwrap().to_owned()
}

async fn post(app: &TestApp, token: &str, url: &str, body: &Value) -> (StatusCode, Value) {
    call(app, Method::POST, url, Some(token), Some(body)).await
}

/// A signed note of `patient` by the clinician `clin`; its id.
async fn signed_note(
    app: &TestApp,
    p: domain::PracticeId,
    patient: domain::PatientId,
    clin: &str,
    text: &str,
) -> String {
    let (s, v) = post(
        app,
        clin,
        &format!("/api/v1/practices/{p}/patients/{patient}/notes"),
        &json!({"content": {"subjective": text}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let note = v["note_id"].as_str().unwrap().to_owned();
    let (s, v) = post(
        app,
        clin,
        &format!("/api/v1/practices/{p}/notes/{note}/sign"),
        &json!({}),
    )
    .await;
    assert!(s.is_success(), "{v}");
    note
}

// req: SIG-08 — the deadline is 60 days after receipt; one extension with a written reason
// moves it to 90; a second extension → 409 RIGHTS-0001 and nothing changes; an extension after
// day 60 → 409; deny without a reason → 400 and nothing changes; the change asked for and the
// reasons are sealed, and the audit log carries none of them.
#[tokio::test]
async fn sig_08_amendment_deadline_one_extension_and_denial_reason() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let admin = app.token(w.a.user("admin")).await;
    let received = app
        .clock
        .now()
        .duration_trunc(Duration::seconds(1))
        .unwrap()
        - Duration::days(3);
    let canary = format!("canary change {}", uuid::Uuid::new_v4().simple());
    let id = create(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "received_at": received, "record_kind": "demographics",
                "requested_change": canary}),
    )
    .await;
    let url = format!("{}/{id}", base(p));
    let (s, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "open");
    assert_eq!(at(&v, "due_at"), received + Duration::days(60));
    assert_eq!(v["may_extend"], true);
    assert_eq!(v["requested_change"], canary.as_str());

    let (s, v) = post(
        &app,
        &admin,
        &format!("{url}/extend"),
        &json!({"reason": " "}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let extension = format!("canary extension {}", uuid::Uuid::new_v4().simple());
    let (s, v) = post(
        &app,
        &admin,
        &format!("{url}/extend"),
        &json!({"reason": extension}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "extended");
    assert_eq!(at(&v, "due_at"), received + Duration::days(90));
    assert_eq!(v["may_extend"], false);
    let (s, v) = post(
        &app,
        &admin,
        &format!("{url}/extend"),
        &json!({"reason": "again"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("RIGHTS-0001"), "{v}");
    let (_, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
    assert_eq!(at(&v, "due_at"), received + Duration::days(90));
    assert_eq!(v["extension_reason"], extension.as_str());

    // Deny without a reason: 400, still extended. A statement of disagreement before a
    // denial: 409.
    for body in [json!({"reason": ""}), json!({})] {
        let (s, v) = post(&app, &admin, &format!("{url}/deny"), &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    let (s, v) = post(
        &app,
        &admin,
        &format!("{url}/disagreement"),
        &json!({"text": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("RIGHTS-0004"), "{v}");
    let (_, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
    assert_eq!(v["status"], "extended");
    assert!(v["denial_reason"].is_null());

    // Too late to extend at day 60.
    let late = create(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "received_at": app.clock.now() - Duration::days(60),
                "record_kind": "other", "requested_change": "late"}),
    )
    .await;
    let (s, v) = post(
        &app,
        &admin,
        &format!("{}/{late}/extend", base(p)),
        &json!({"reason": "late"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("RIGHTS-0002"), "{v}");

    // Bad input: unknown kind, a note kind without a note, a note named on another kind, a
    // future receipt, an empty change; another practice's patient → 404.
    for body in [
        json!({"patient_id": w.a.patient, "record_kind": "x-ray", "requested_change": "x"}),
        json!({"patient_id": w.a.patient, "record_kind": "note", "requested_change": "x"}),
        json!({"patient_id": w.a.patient, "record_kind": "other", "note_id": uuid::Uuid::new_v4(), "requested_change": "x"}),
        json!({"patient_id": w.a.patient, "record_kind": "other", "requested_change": "x", "received_at": app.clock.now() + Duration::days(2)}),
        json!({"patient_id": w.a.patient, "record_kind": "other", "requested_change": ""}),
    ] {
        let (s, v) = post(&app, &admin, &base(p), &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
    let (s, _) = post(
        &app,
        &admin,
        &base(p),
        &json!({"patient_id": w.b.patient, "record_kind": "other", "requested_change": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let mut su = db.superuser_unsafe().await;
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_event where practice_id = $1 and object_type = 'amendment_request'
            and object_id = $2::uuid",
    )
    .bind(p)
    .bind(&id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    for want in [
        "amendment_request.create",
        "amendment_request.read",
        "amendment_request.extend",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want}: {actions:?}");
    }
    let all: Vec<String> = sqlx::query_scalar(
        "select coalesce(details::text, '') from audit_event where practice_id = $1",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(
        all.iter().all(|d| !d.contains("canary")),
        "free text in the audit log"
    );
    let raw: Vec<u8> = sqlx::query_scalar(
        "select requested_change_enc || extension_reason_enc from amendment_request where request_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains("canary"),
        "plaintext at rest"
    );
}

// req: SIG-08 — the overdue alert on the injected clock: nothing one second before day 60, one
// alert at it (audited `amendment_request.overdue`, ids only), never twice; an extended request
// alerts at day 90 only; a denied request and practice B's are not alerted when A is checked.
#[tokio::test]
async fn sig_08_overdue_alert_is_raised_once_at_the_deadline() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner_store = db.owner().await;
    let p = w.a.id;
    let owner = app.token(w.a.user("owner")).await;
    let received = app
        .clock
        .now()
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let body = json!({"patient_id": w.a.patient, "received_at": received, "record_kind": "other",
                      "requested_change": "spelling of the street"});
    let plain = create(&app, &owner, p, &body).await;
    let extended = create(&app, &owner, p, &body).await;
    let denied = create(&app, &owner, p, &body).await;
    let (s, _) = post(
        &app,
        &owner,
        &format!("{}/{extended}/extend", base(p)),
        &json!({"reason": "records off site"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = post(
        &app,
        &owner,
        &format!("{}/{denied}/deny", base(p)),
        &json!({"reason": "accurate and complete"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let b_owner = app.token(w.b.user("owner")).await;
    let b_id = create(
        &app,
        &b_owner,
        w.b.id,
        &json!({"patient_id": w.b.patient, "received_at": received, "record_kind": "other", "requested_change": "b"}),
    )
    .await;

    let raise = |at: DateTime<Utc>| {
        let o = &owner_store;
        async move {
            let pass = server::jobs::rights::raise_amendment_alerts(o, Some(p), at)
                .await
                .unwrap();
            assert!(pass.is_complete());
            pass.done
                .into_iter()
                .flat_map(|(_, v)| v)
                .map(|a| a.request_id.to_string())
                .collect::<Vec<_>>()
        }
    };
    let mut elapsed = Duration::zero();
    for (day, want) in [(60, &plain), (90, &extended)] {
        let target = Duration::days(day);
        app.clock.advance(target - elapsed - Duration::seconds(1));
        assert!(
            raise(app.clock.now()).await.is_empty(),
            "nothing one second before day {day}"
        );
        app.clock.advance(Duration::seconds(1));
        assert_eq!(
            raise(app.clock.now()).await,
            std::slice::from_ref(want),
            "day {day}"
        );
        assert!(raise(app.clock.now()).await.is_empty(), "once (day {day})");
        elapsed = target;
    }
    let mut su = db.superuser_unsafe().await;
    let rows: Vec<OverdueRow> = sqlx::query_as(
        "select object_id::text, patient_id, details, actor_id from audit_event
              where practice_id = $1 and action = 'amendment_request.overdue' order by occurred_at",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (plain.clone(), Some(w.a.patient.as_uuid()), None, None),
            (extended.clone(), Some(w.a.patient.as_uuid()), None, None)
        ]
    );
    let alerted: Vec<String> = sqlx::query_scalar(
        "select request_id::text from amendment_request where overdue_alerted_at is not null",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(!alerted.contains(&denied) && !alerted.contains(&b_id));
    // The right-of-access pass raises none of them (one shape, its own table).
    let access = server::jobs::rights::raise_all(&owner_store, None, app.clock.now())
        .await
        .unwrap();
    assert!(access.done.iter().all(|(_, v)| v.is_empty()));
    let pass = server::jobs::rights::raise_amendment_alerts(&owner_store, None, app.clock.now())
        .await
        .unwrap();
    let raised: Vec<String> = pass
        .done
        .into_iter()
        .flat_map(|(_, v)| v)
        .map(|a| a.request_id.to_string())
        .collect();
    assert_eq!(raised, [b_id]);
    owner_store.close().await;
}

// req: SIG-07, SIG-06 — accepting a request that names a note lands the change through the
// notes' own path: a signed amendment (or an addendum) on that note, the signed original
// unchanged; the request names the version, the note lists the request; accepting a note
// request without the change → 400; a change given for a request of another kind → 400;
// reception cannot accept (403); a note of another patient → 404 on create.
#[tokio::test]
async fn sig_07_accept_lands_the_change_as_an_amendment_or_addendum() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let clin = app.token(w.a.user("clinician")).await;
    let admin = app.token(w.a.user("admin")).await;
    let reception = app.token(w.a.user("reception")).await;
    let original = "Patient reports pain lower left";
    let note = signed_note(&app, p, w.a.patient, &clin, original).await;
    let note_url = format!("/api/v1/practices/{p}/notes/{note}");
    let req = |kind: &str| {
        json!({"patient_id": w.a.patient, "record_kind": kind, "note_id": note,
                                  "note_version": 2, "requested_change": "It was lower right"})
    };
    let first = create(&app, &admin, p, &req("note")).await;
    let second = create(&app, &admin, p, &req("note")).await;
    let url = format!("{}/{first}", base(p));

    let (s, v) = post(&app, &clin, &format!("{url}/accept"), &json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = post(&app, &reception, &format!("{url}/accept"), &json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = post(
        &app,
        &clin,
        &format!("{url}/accept"),
        &json!({"amendment": {"content": {"subjective": "Patient reports pain lower right"},
                              "reason": "Patient's amendment request"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "granted");
    assert_eq!(v["landed_kind"], "amendment");
    let landed = v["landed_version"].as_i64().unwrap();
    let (s, n) = call(&app, Method::GET, &note_url, Some(&clin), None).await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(n["amendments"][0]["version"].as_i64(), Some(landed));
    assert_eq!(
        n["content"]["subjective"],
        "Patient reports pain lower right"
    );
    assert_eq!(n["signed_content"]["subjective"], original);
    let linked = n["amendment_requests"].as_array().unwrap();
    assert_eq!(linked.len(), 2);
    assert_eq!(linked[0]["request_id"], first.as_str());
    assert_eq!(linked[0]["landed_version"].as_i64(), Some(landed));
    // Accepted is final.
    let (s, v) = post(
        &app,
        &admin,
        &format!("{url}/deny"),
        &json!({"reason": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // The second lands as an addendum, against the note's current version.
    let (s, v) = post(
        &app,
        &clin,
        &format!("{}/{second}/accept", base(p)),
        &json!({"addendum": {"text": "Patient adds: pain began after the extraction", "reason": "Amendment request"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["landed_kind"], "addendum");
    assert_eq!(v["landed_version"].as_i64(), Some(landed + 1));
    let (_, n) = call(&app, Method::GET, &note_url, Some(&clin), None).await;
    assert_eq!(
        n["addenda"][0]["text"],
        "Patient adds: pain began after the extraction"
    );

    // Another kind of record: accepted without a change; a change given → 400.
    let other = create(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "record_kind": "demographics",
                                               "requested_change": "Middle name missing"}),
    )
    .await;
    let (s, v) = post(
        &app,
        &clin,
        &format!("{}/{other}/accept", base(p)),
        &json!({"addendum": {"text": "x", "reason": "y"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = post(
        &app,
        &clin,
        &format!("{}/{other}/accept", base(p)),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["landed_version"].is_null());

    // A note of another patient of the same practice cannot be named.
    let owner_store = db.owner().await;
    let second_patient = owner_store
        .seed_patient(
            p,
            &store::patients::NewPatient {
                given_name: "Second".into(),
                family_name: "Synthetic".into(),
                date_of_birth: None,
                phone: None,
                email: None,
            },
            app.clock.now(),
        )
        .await
        .unwrap();
    owner_store.close().await;
    let (s, v) = post(
        &app,
        &admin,
        &base(p),
        &json!({"patient_id": second_patient, "record_kind": "note",
        "note_id": note, "requested_change": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    let mut su = db.superuser_unsafe().await;
    let actions: Vec<(String, i64)> = sqlx::query_as(
        "select action, count(*) from audit_event where practice_id = $1 and action in
           ('amendment_request.accept', 'note.amend', 'note.addendum') group by action order by action",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            ("amendment_request.accept".to_owned(), 3),
            ("note.addendum".to_owned(), 1),
            ("note.amend".to_owned(), 1)
        ]
    );
}

// req: SIG-07 — a denied request with its written reason, the patient's statement of
// disagreement and the practice's rebuttal (a rebuttal before the statement → 409; each once)
// are linked to the note (reading it lists them) and carried by a later export: a FHIR R4
// Bundle the validators accept, with a DocumentReference per document appending to the note's
// own DocumentReference; the HTML rendering holds them; a copy sent to a third party records
// the disclosure counting them; nothing of a second patient's request appears.
#[tokio::test]
async fn sig_07_denial_disagreement_and_rebuttal_are_linked_and_exported() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let clinician = w.a.user("clinician");
    let clin = app.token(clinician).await;
    let admin = app.token(w.a.user("admin")).await;
    // The second patient, on the same clinician's team.
    let owner_store = db.owner().await;
    let other_names = vec![
        format!("Otherqz{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        "Elsewhereqz".to_owned(),
    ];
    let other = owner_store
        .seed_patient(
            p,
            &store::patients::NewPatient {
                given_name: other_names[0].clone(),
                family_name: other_names[1].clone(),
                date_of_birth: chrono::NaiveDate::from_ymd_opt(1971, 2, 3),
                phone: None,
                email: None,
            },
            app.clock.now(),
        )
        .await
        .unwrap();
    owner_store
        .assign_clinician(p, other, clinician)
        .await
        .unwrap();
    owner_store.close().await;
    let (_, me) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/patients/{}", w.a.patient),
        Some(&clin),
        None,
    )
    .await;
    let my_names = vec![
        me["given_name"].as_str().unwrap().to_owned(),
        me["family_name"].as_str().unwrap().to_owned(),
    ];
    let mine = seed_everything(
        &app,
        &w,
        p,
        w.a.patient,
        &clin,
        clinician,
        "Mineqz",
        my_names,
    )
    .await;
    let theirs = seed_everything(
        &app,
        &w,
        p,
        other,
        &clin,
        clinician,
        "Theirsqz",
        other_names,
    )
    .await;

    // Each patient asks to amend their note; both are denied, with statements.
    let mut texts = Vec::new();
    let mut requests = Vec::new();
    for (patient, seeded, tag) in [(w.a.patient, &mine, "Mineqz"), (other, &theirs, "Theirsqz")] {
        let words: Vec<String> = [
            "asks to remove the sensitivity entry",
            "denial: accurate and complete",
            "disagrees: never had sensitivity",
            "rebuttal: recorded at the visit",
        ]
        .iter()
        .map(|t| format!("{tag} {t}"))
        .collect();
        let id = create(
            &app,
            &admin,
            p,
            &json!({"patient_id": patient, "record_kind": "note",
            "note_id": seeded.note, "requested_change": words[0]}),
        )
        .await;
        let url = format!("{}/{id}", base(p));
        let (s, v) = post(
            &app,
            &admin,
            &format!("{url}/rebuttal"),
            &json!({"text": words[3]}),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        let (s, v) = post(
            &app,
            &admin,
            &format!("{url}/deny"),
            &json!({"reason": words[1]}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = post(
            &app,
            &admin,
            &format!("{url}/rebuttal"),
            &json!({"text": words[3]}),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(message(&v).contains("RIGHTS-0005"), "{v}");
        let (s, v) = post(
            &app,
            &admin,
            &format!("{url}/disagreement"),
            &json!({"text": words[2]}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = post(
            &app,
            &admin,
            &format!("{url}/disagreement"),
            &json!({"text": "again"}),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        let (s, v) = post(
            &app,
            &admin,
            &format!("{url}/rebuttal"),
            &json!({"text": words[3]}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(v["rebuttal_at"].is_string() && v["disagreement_at"].is_string());
        let (_, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
        assert_eq!(
            (
                v["denial_reason"].as_str(),
                v["disagreement"].as_str(),
                v["rebuttal"].as_str()
            ),
            (
                Some(words[1].as_str()),
                Some(words[2].as_str()),
                Some(words[3].as_str())
            )
        );
        // The rebuttal names its author; the statement of disagreement is the patient's.
        assert_eq!(
            v["rebuttal_by"].as_str(),
            Some(w.a.user("admin").to_string().as_str())
        );
        texts.push(words);
        requests.push(id);
    }
    // Reading the note shows the linked documents.
    let (_, n) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/notes/{}", mine.note),
        Some(&clin),
        None,
    )
    .await;
    assert_eq!(
        n["amendment_requests"][0]["request_id"],
        requests[0].as_str()
    );
    assert_eq!(n["amendment_requests"][0]["status"], "denied");
    assert_eq!(
        (
            n["amendment_requests"][0]["disagreement"].as_bool(),
            n["amendment_requests"][0]["rebuttal"].as_bool()
        ),
        (Some(true), Some(true))
    );

    // The export.
    let url = format!("/api/v1/practices/{p}/patients/{}/export", w.a.patient);
    let (s, bundle) = call(&app, Method::GET, &url, Some(&clin), None).await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    fhir_validate(&bundle).unwrap_or_else(|problems| panic!("not valid FHIR R4:\n{problems}"));
    let docs = resources(&bundle, "DocumentReference");
    assert_eq!(
        docs.len(),
        3 + 4,
        "signed, amendment, addendum; request, denial, disagreement, rebuttal"
    );
    let note_doc = docs
        .iter()
        .find(|d| {
            d["masterIdentifier"]["system"] == "urn:chartroom:note-version"
                && d["docStatus"] == "final"
                && d["relatesTo"].is_null()
        })
        .map(|d| format!("urn:uuid:{}", d["id"].as_str().unwrap()))
        .unwrap();
    let amendment_docs: Vec<&&Value> = docs
        .iter()
        .filter(|d| d["identifier"][0]["system"] == "urn:chartroom:amendment-request")
        .collect();
    assert_eq!(amendment_docs.len(), 4);
    let bodies: Vec<String> = amendment_docs.iter().map(|d| decoded(d)).collect();
    for t in &texts[0] {
        assert!(bodies.iter().any(|b| b == t), "{t} in {bodies:?}");
    }
    for d in &amendment_docs {
        assert_eq!(d["identifier"][0]["value"], requests[0].as_str());
        assert!(
            d["relatesTo"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["code"] == "appends" && r["target"]["reference"] == note_doc.as_str()),
            "appends to the note: {d}"
        );
    }
    let everything = format!(
        "{bundle}\n{}",
        docs.iter()
            .map(|d| decoded(d))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for needle in texts[1]
        .iter()
        .chain(std::iter::once(&requests[1]))
        .chain(std::iter::once(&theirs.note))
    {
        assert!(
            !everything.contains(needle.as_str()),
            "the other patient's {needle} leaked into the export"
        );
    }
    assert!(!everything.contains("Theirsqz"));
    let (s, html) = call(
        &app,
        Method::GET,
        &format!("{url}?format=html"),
        Some(&clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let html = html.as_str().unwrap().to_owned();
    for t in &texts[0] {
        assert!(html.contains(t.as_str()), "{t} in the HTML rendering");
    }
    assert!(!html.contains("Theirsqz"));

    // A copy for a third party: the disclosure counts the amendment documents it carried.
    let (s, v) = post(&app, &admin, &format!("/api/v1/practices/{p}/access-requests"),
        &json!({"patient_id": w.a.patient, "form": "fhir_json", "recipient": "Dr. Synthetic Second Opinion"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let access = v["request_id"].as_str().unwrap().to_owned();
    let (s, copy) = post(
        &app,
        &clin,
        &format!("/api/v1/practices/{p}/access-requests/{access}/fulfil"),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{copy}");
    assert_eq!(resources(&copy, "DocumentReference").len(), 7);
    let (_, r) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/access-requests/{access}"),
        Some(&admin),
        None,
    )
    .await;
    let disclosure = r["disclosure_id"].as_str().unwrap().to_owned();
    let mut su = db.superuser_unsafe().await;
    let audit: Vec<Value> = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action = 'patient.export' and patient_id = $2",
    )
    .bind(p)
    .bind(w.a.patient)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(
        audit.iter().all(|d| d["amendment_documents"] == 4),
        "{audit:?}"
    );
    let (s, report) = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/practices/{p}/patients/{}/disclosures?to={}",
            w.a.patient,
            (app.clock.now() + Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ),
        Some(&clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    let listed = report["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["disclosure_id"] == disclosure.as_str())
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    let description = listed["description"].as_str().unwrap();
    assert!(
        description.contains("4 amendment documents"),
        "{description}"
    );
}

const ROUTES: &[(&str, &str, &str, &str)] = &[
    // (method, tail, who, audit action)
    ("GET", "", "track", "amendment_request.list"),
    ("POST", "", "track", "amendment_request.create"),
    ("GET", "/{id}", "track", "amendment_request.read"),
    ("POST", "/{id}/extend", "track", "amendment_request.extend"),
    ("POST", "/{id}/deny", "track", "amendment_request.deny"),
    (
        "POST",
        "/{id}/disagreement",
        "track",
        "amendment_request.disagreement",
    ),
    (
        "POST",
        "/{id}/rebuttal",
        "track",
        "amendment_request.rebuttal",
    ),
    (
        "POST",
        "/{id}/accept",
        "clinician",
        "amendment_request.accept",
    ),
];

async fn send(
    app: &TestApp,
    m: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Option<uuid::Uuid>) {
    let mut req = app.http.request(m.parse().unwrap(), app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    let id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (res.status(), id)
}

// req: SIG-07, SIG-08, AC-02, AC-04 — the amendment routes: anonymous → 401; another
// practice's members → 404; A's wrong roles → 403 with the denial audited (reception for every
// route; owners and admins for accepting, which changes the record); the right roles → 2xx with
// the route's audit event; a request of B named inside A → 404; every answer is in the API
// document.
#[tokio::test]
async fn amendment_request_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let mut tokens = std::collections::HashMap::new();
    for role in ["owner", "admin", "clinician", "reception"] {
        tokens.insert(("a", role), app.token(w.a.user(role)).await);
        tokens.insert(("b", role), app.token(w.b.user(role)).await);
    }
    let new =
        json!({"patient_id": w.a.patient, "record_kind": "other", "requested_change": "matrix"});
    // Per role: [extend, deny, read/accept, denied (for the statements)].
    let mut open = std::collections::HashMap::new();
    for role in ["owner", "admin", "clinician", "spare"] {
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(create(&app, &tokens[&("a", "owner")], p, &new).await);
        }
        let (s, _) = post(
            &app,
            &tokens[&("a", "owner")],
            &format!("{}/{}/deny", base(p), ids[3]),
            &json!({"reason": "matrix"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        open.insert(role, ids);
    }
    let b_request = create(
        &app,
        &tokens[&("b", "owner")],
        w.b.id,
        &json!({"patient_id": w.b.patient, "record_kind": "other", "requested_change": "b"}),
    )
    .await;
    let mut su = db.superuser_unsafe().await;
    for &(m, tail, who, action) in ROUTES {
        let label = format!("{m} {tail}");
        let right: &[&str] = if who == "track" {
            &["owner", "admin", "clinician"]
        } else {
            &["clinician"]
        };
        let body = match tail {
            "" if m == "POST" => Some(new.clone()),
            "/{id}/extend" | "/{id}/deny" => Some(json!({"reason": "matrix"})),
            "/{id}/disagreement" | "/{id}/rebuttal" => Some(json!({"text": "matrix"})),
            "/{id}/accept" => Some(json!({})),
            _ => None,
        };
        let slot = match tail {
            "/{id}/extend" => 0,
            "/{id}/deny" => 1,
            "/{id}/disagreement" | "/{id}/rebuttal" => 3,
            _ => 2,
        };
        let at = |id: &str| format!("{}{}", base(p), tail.replace("{id}", id));
        let spare = at(&open["spare"][slot]);
        assert_eq!(
            send(&app, m, &spare, None, body.as_ref()).await.0,
            StatusCode::UNAUTHORIZED,
            "{label}: anonymous"
        );
        for role in ["owner", "admin", "clinician", "reception"] {
            assert_eq!(
                send(&app, m, &spare, Some(&tokens[&("b", role)]), body.as_ref())
                    .await
                    .0,
                StatusCode::NOT_FOUND,
                "{label}: B's {role}"
            );
        }
        if tail.contains("{id}") {
            let (s, _) = send(
                &app,
                m,
                &at(&b_request),
                Some(&tokens[&("a", right[0])]),
                body.as_ref(),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{label}: B's request inside A");
        }
        for role in ["owner", "admin", "clinician", "reception"] {
            if right.contains(&role) {
                continue;
            }
            let (s, rid) = send(&app, m, &spare, Some(&tokens[&("a", role)]), body.as_ref()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{label}: {role}");
            let rows: Vec<(String, String)> = sqlx::query_as(
                "select action, outcome from audit_event where practice_id = $1 and request_id = $2",
            )
            .bind(p)
            .bind(rid.unwrap())
            .fetch_all(&mut su)
            .await
            .unwrap();
            assert_eq!(
                rows,
                [("access.denied".to_owned(), "denied".to_owned())],
                "{label}: {role}'s denial audited"
            );
        }
        for role in right {
            let (s, rid) = send(
                &app,
                m,
                &at(&open[role][slot]),
                Some(&tokens[&("a", *role)]),
                body.as_ref(),
            )
            .await;
            assert!(s.is_success(), "{label}: {role} got {s}");
            let rows: Vec<(String, String, Option<uuid::Uuid>)> = sqlx::query_as(
                "select action, outcome, actor_id from audit_event where practice_id = $1 and request_id = $2",
            )
            .bind(p)
            .bind(rid.unwrap())
            .fetch_all(&mut su)
            .await
            .unwrap();
            assert!(
                rows.iter().any(|(a, _, _)| a == action),
                "{label}: {rows:?}"
            );
            for (a, outcome, actor) in rows {
                assert_eq!(
                    (outcome.as_str(), actor),
                    ("success", Some(w.a.user(role).as_uuid())),
                    "{label}: {a}"
                );
            }
        }
    }
    let doc = serde_json::to_value(server::openapi()).unwrap();
    for (m, tail, _, _) in ROUTES {
        let path = format!(
            "/api/v1/practices/{{practice_id}}/amendment-requests{}",
            tail.replace("{id}", "{request_id}")
        );
        for status in ["401", "403", "404"] {
            assert!(
                doc["paths"][&path][m.to_lowercase()]["responses"]
                    .get(status)
                    .is_some(),
                "{m} {path} {status}"
            );
        }
    }
}
