//! The export of a patient's designated record set (req PR-02): a patient with every kind of
//! record exports a FHIR R4 Bundle that two FHIR R4 validators accept (the official R4 JSON
//! schema and the R4 structure definitions, `scripts/install-fhir-validator`), holding every
//! record and nothing of a second patient seeded with the same kinds of data; the HTML
//! rendering holds the same; the export is audited; fulfilling a right-of-access request for a
//! third party records the disclosure (PR-01).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use chrono::{Duration, DurationRound as _};
use domain::{Clock as _, RequestId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::intake::{Decision, Submission};
use testkit::{TestApp, TestDb, World};

use crate::sealed_columns::as_member;
use crate::util::call;

/// Validates `resource` with the pinned FHIR R4 validators: `Ok` or the problems found.
pub(crate) fn fhir_validate(resource: &Value) -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let install = root.join("scripts/install-fhir-validator");
    let status = Command::new(&install)
        .status()
        .expect("scripts/install-fhir-validator runs");
    assert!(
        status.success(),
        "the FHIR validators could not be installed"
    );
    let home = Command::new(&install)
        .arg("--print-home")
        .output()
        .expect("print home");
    let home = String::from_utf8(home.stdout).unwrap().trim().to_owned();
    let mut child = Command::new("node")
        .arg(format!("{home}/validate.cjs"))
        .current_dir(&home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(resource.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && text.trim() == "valid" {
        Ok(())
    } else {
        Err(text)
    }
}

/// What was seeded for one patient: ids and texts to look for.
pub(crate) struct Seeded {
    pub(crate) patient: String,
    pub(crate) names: Vec<String>,
    pub(crate) ids: Vec<String>,
    pub(crate) texts: Vec<String>,
    pub(crate) draft_text: String,
    /// The signed note.
    pub(crate) note: String,
}

async fn ok(app: &TestApp, m: Method, path: &str, token: &str, body: Value) -> Value {
    let (s, v) = call(app, m.clone(), path, Some(token), Some(&body)).await;
    assert!(s.is_success(), "{m} {path}: {s} {v}");
    v
}

/// Gives `patient` of practice `p` one record of every kind, through the API as the
/// clinician (`clin`, on the patient's care team) and, for the intake form, the store.
#[expect(clippy::too_many_arguments, reason = "a test fixture")]
pub(crate) async fn seed_everything(
    app: &TestApp,
    w: &World,
    p: domain::PracticeId,
    patient: domain::PatientId,
    clin: &str,
    clinician: domain::UserId,
    tag: &str,
    names: Vec<String>,
) -> Seeded {
    let base = format!("/api/v1/practices/{p}");
    let now = app.clock.now();
    let mut ids = vec![patient.to_string()];
    let mut texts = Vec::new();
    let appt = ok(
        app,
        Method::POST,
        &format!("{base}/appointments"),
        clin,
        json!({"patient_id": patient, "clinician_id": clinician,
               "starts_at": now - Duration::hours(2), "ends_at": now - Duration::hours(1)}),
    )
    .await;
    let appointment = appt["appointment_id"].as_str().unwrap().to_owned();
    ids.push(appointment.clone());
    let visit = ok(
        app,
        Method::POST,
        &format!("{base}/patients/{patient}/visits"),
        clin,
        json!({"appointment_id": appointment}),
    )
    .await["visit_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ids.push(visit.clone());
    // A signed note with an amendment and an addendum.
    let subjective = format!("{tag} reports sensitivity upper left");
    let note = ok(
        app,
        Method::POST,
        &format!("{base}/patients/{patient}/notes"),
        clin,
        json!({"visit_id": visit, "content": {"subjective": subjective, "plan": format!("{tag} recall in six months")}}),
    )
    .await["note_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ids.push(note.clone());
    texts.push(subjective);
    ok(
        app,
        Method::POST,
        &format!("{base}/notes/{note}/sign"),
        clin,
        json!({}),
    )
    .await;
    let amended = format!("{tag} amended: sensitivity upper right");
    ok(
        app,
        Method::POST,
        &format!("{base}/notes/{note}/amendments"),
        clin,
        json!({"content": {"subjective": amended}, "reason": format!("{tag} wrong side recorded")}),
    )
    .await;
    texts.push(amended);
    let addendum = format!("{tag} addendum: radiograph reviewed");
    ok(
        app,
        Method::POST,
        &format!("{base}/notes/{note}/addenda"),
        clin,
        json!({"text": addendum, "reason": format!("{tag} late entry")}),
    )
    .await;
    texts.push(addendum);
    // A draft note: not part of the record set.
    let draft_text = format!("{tag} unsigned draft words");
    ok(
        app,
        Method::POST,
        &format!("{base}/patients/{patient}/notes"),
        clin,
        json!({"content": {"subjective": draft_text}}),
    )
    .await;
    // A perio exam with three depths and a recession.
    let exam = ok(
        app,
        Method::POST,
        &format!("{base}/patients/{patient}/perio-exams"),
        clin,
        json!({}),
    )
    .await["exam_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for text in [
        "tooth three buccal three two four",
        "recession two on tooth three facial",
    ] {
        ok(
            app,
            Method::POST,
            &format!("{base}/patients/{patient}/perio-exams/{exam}/finals"),
            clin,
            json!({"text": text}),
        )
        .await;
    }
    // A recording consent for the visit.
    let consent = ok(
        app,
        Method::POST,
        &format!("{base}/visits/{visit}/consents"),
        clin,
        json!({"consented_by": "patient", "method": "verbal"}),
    )
    .await["consent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ids.push(consent);
    // An accepted intake form.
    let store = &app.store;
    let keyring = store.keyring().unwrap().clone();
    let mut tx = as_member(app, store, w.a.user("reception"), p).await;
    let made = store::intake::create_intake_link(&mut tx, patient, "consent_to_treatment")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let mut holder = store
        .intake_link(made.token(), RequestId::new(), app.clock.now())
        .await
        .unwrap()
        .unwrap();
    let question = format!("{tag} asks about weekend hours");
    let mut values = BTreeMap::new();
    values.insert("full_name".to_owned(), names.join(" "));
    values.insert("date_of_birth".to_owned(), "1980-05-06".to_owned());
    for k in ["understand_treatment", "consent_treatment", "withdraw"] {
        values.insert(k.to_owned(), "yes".to_owned());
    }
    values.insert("questions".to_owned(), question.clone());
    holder
        .submit(
            &keyring,
            &Submission {
                values,
                signer_name: names.join(" "),
                esign_consent: true,
                client_address: Some("192.0.2.44".parse().unwrap()),
            },
        )
        .await
        .unwrap()
        .unwrap();
    holder.commit().await.unwrap();
    let mut tx = as_member(app, store, w.a.user("clinician"), p).await;
    store::intake::decide(&mut tx, &keyring, made.request_id, &Decision::Accept)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    ids.push(made.request_id.to_string());
    texts.push(question);
    Seeded {
        note,
        patient: patient.to_string(),
        names,
        ids,
        texts,
        draft_text,
    }
}

pub(crate) fn resources<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

pub(crate) fn decoded(doc: &Value) -> String {
    use base64::Engine as _;
    let data = doc["content"][0]["attachment"]["data"].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

// req: PR-02 — a patient with every kind of record (demographics, an appointment, a visit, a
// signed note with an amendment and an addendum, a perio exam, an accepted intake form, a
// recording consent) exports a FHIR R4 Bundle the FHIR R4 validators accept, holding each
// record (notes as DocumentReference with a Provenance per signature) and no draft; a second
// patient of the same practice, seeded with the same kinds of data by the same clinician,
// appears nowhere in it (ids, names, note text), nor in the HTML rendering; the export is
// audited `patient.export`.
#[tokio::test]
async fn pr_02_export_holds_every_record_validates_as_fhir_r4_and_nothing_of_another_patient() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let clinician = w.a.user("clinician");
    let clin = app.token(clinician).await;
    // The second patient: seeded by the owner role and put on the same clinician's team.
    let owner_store = db.owner().await;
    let other_names = vec![
        format!("Otherqz{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        format!(
            "Elsewhereqz{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
    ];
    let other = owner_store
        .seed_patient(
            p,
            &store::patients::NewPatient {
                given_name: other_names[0].clone(),
                family_name: other_names[1].clone(),
                date_of_birth: chrono::NaiveDate::from_ymd_opt(1971, 2, 3),
                phone: Some("+1 555 0199".into()),
                email: Some(format!("{}@example.invalid", other_names[0])),
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

    let url = format!("/api/v1/practices/{p}/patients/{}/export", w.a.patient);
    let res = app
        .http
        .get(app.url(&url))
        .bearer_auth(&clin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/fhir+json"
    );
    let rid: uuid::Uuid = res.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = res.text().await.unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");

    // Validated as FHIR R4, and a broken copy is refused (the validators do check).
    fhir_validate(&bundle).unwrap_or_else(|problems| panic!("not valid FHIR R4:\n{problems}"));
    let mut broken = bundle.clone();
    broken["entry"][0]["resource"]["birthDate"] = json!("06/05/1979");
    assert!(
        fhir_validate(&broken).is_err(),
        "the validator accepts anything"
    );

    // Every kind of record, once.
    let count = |k: &str| resources(&bundle, k).len();
    assert_eq!(count("Patient"), 1);
    assert_eq!(count("Appointment"), 1);
    assert_eq!(count("Encounter"), 1);
    assert_eq!(count("DocumentReference"), 3, "signed, amendment, addendum");
    assert_eq!(count("Provenance"), 3, "one per signature");
    assert_eq!(
        count("Observation"),
        4,
        "three depths and one attachment loss"
    );
    assert_eq!(count("QuestionnaireResponse"), 1);
    assert_eq!(count("Consent"), 1);
    let docs: Vec<String> = resources(&bundle, "DocumentReference")
        .into_iter()
        .map(decoded)
        .collect();
    for t in &mine.texts[..3] {
        assert!(
            docs.iter().any(|d| d.contains(t.as_str())),
            "{t} in {docs:?}"
        );
    }
    for t in &mine.texts {
        assert!(
            text.contains(t.as_str()) || docs.iter().any(|d| d.contains(t.as_str())),
            "{t}"
        );
    }
    for id in &mine.ids {
        assert!(text.contains(id.as_str()), "record {id} missing");
    }
    for n in &mine.names {
        assert!(text.contains(n.as_str()), "name {n} missing");
    }
    assert!(
        !text.contains(&mine.draft_text) && docs.iter().all(|d| !d.contains(&mine.draft_text)),
        "a draft note is not part of the record set"
    );
    let provs = resources(&bundle, "Provenance");
    for prov in provs {
        let target = prov["target"][0]["reference"].as_str().unwrap();
        assert!(
            bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["fullUrl"] == target),
            "Provenance target {target} in the Bundle"
        );
        assert_eq!(
            prov["signature"][0]["who"]["identifier"]["value"],
            clinician.to_string()
        );
    }

    // Nothing of the other patient: ids, names, note and intake text, anywhere (decoded
    // attachments too).
    let everything = format!("{text}\n{}", docs.join("\n"));
    for needle in theirs
        .ids
        .iter()
        .chain(&theirs.names)
        .chain(&theirs.texts)
        .chain(std::iter::once(&theirs.patient))
        .chain(std::iter::once(&theirs.draft_text))
    {
        assert!(
            !everything.contains(needle.as_str()),
            "the other patient's {needle} leaked into the export"
        );
    }
    assert!(!everything.contains("Theirsqz"));

    // The HTML rendering: the same records, nothing of the other patient, no script.
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
    for t in mine.texts.iter().chain(&mine.names) {
        assert!(html.contains(t.as_str()), "{t} in the HTML rendering");
    }
    assert!(html.contains("Electronically signed by"));
    assert!(!html.contains("Theirsqz") && !html.contains("<script"));
    for needle in theirs.ids.iter().chain(&theirs.names) {
        assert!(!html.contains(needle.as_str()), "{needle} in the HTML");
    }
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("{url}?format=pdf"),
        Some(&clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Audited: one `patient.export` naming the patient, with counts only.
    let mut su = db.superuser_unsafe().await;
    let rows: Vec<(String, Option<uuid::Uuid>, Option<Value>)> = sqlx::query_as(
        "select action, patient_id, details from audit_event where practice_id = $1 and request_id = $2
            and action = 'patient.export'",
    )
    .bind(p)
    .bind(rid)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, Some(w.a.patient.as_uuid()));
    let d = rows[0].2.as_ref().unwrap();
    assert_eq!(d["format"], "fhir_json");
    assert_eq!(d["notes"], 1);
    assert_eq!(d["perio_exams"], 1);
}

// req: PR-01, PR-02 — fulfilling a right-of-access request whose copy goes to a third party:
// the clinician gets the copy in the form asked for, the request is granted with the
// disclosure it recorded, and the accounting of disclosures lists it (kind `export`, not
// TPO); a request for the patient's own copy records no disclosure.
#[tokio::test]
async fn pr_02_fulfilling_a_request_for_a_third_party_records_the_disclosure() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let clin = app.token(w.a.user("clinician")).await;
    let admin = app.token(w.a.user("admin")).await;
    let base = format!("/api/v1/practices/{p}/access-requests");
    let received = app
        .clock
        .now()
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let recipient = "Synthetic Dental Specialists, 1 Example Way";
    let third = ok(
        &app,
        Method::POST,
        &base,
        &admin,
        json!({"patient_id": w.a.patient, "received_at": received, "form": "fhir_json", "recipient": recipient}),
    )
    .await["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let own = ok(
        &app,
        Method::POST,
        &base,
        &admin,
        json!({"patient_id": w.a.patient, "form": "paper"}),
    )
    .await["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .http
        .post(app.url(&format!("{base}/{third}/fulfil")))
        .bearer_auth(&clin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/fhir+json"
    );
    let bundle: Value = res.json().await.unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("{base}/{third}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["status"], "granted");
    assert_eq!(v["closed_by"], w.a.user("clinician").to_string());
    let disclosure = v["disclosure_id"].as_str().unwrap().to_owned();
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
    assert_eq!(listed["recipient"], recipient);
    assert_eq!(listed["kind"], "export");
    assert_eq!(listed["tpo"], false);
    // Paper: the HTML rendering; no disclosure for the patient's own copy.
    let res = app
        .http
        .post(app.url(&format!("{base}/{own}/fulfil")))
        .bearer_auth(&clin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("{base}/{own}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["status"], "granted");
    assert!(v["disclosure_id"].is_null());
    // Fulfilled twice: 409.
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{base}/{own}/fulfil"),
        Some(&clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
}
