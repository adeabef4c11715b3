//! Issue 19, client links and intake forms at the store: the token is stored only as its
//! digest; a link is purpose-bound, expiring and single-use; the holder's entry reaches its
//! own practice and rows only; answers are sealed; the signature's evidence hash recomputes;
//! nothing reaches the chart before a reviewer accepts; every step is audited.

use std::collections::BTreeMap;

use chrono::Duration;
use domain::{Clock as _, RequestId};
use store::intake::{Decision, Status, Submission};
use testkit::{TestApp, TestDb, World};

use crate::sealed_columns::as_member;

/// A complete, valid consent-to-treatment submission.
fn consent(name: &str) -> Submission {
    let mut values = BTreeMap::new();
    values.insert("full_name".to_owned(), name.to_owned());
    values.insert("date_of_birth".to_owned(), "1980-05-06".to_owned());
    for k in ["understand_treatment", "consent_treatment", "withdraw"] {
        values.insert(k.to_owned(), "yes".to_owned());
    }
    values.insert(
        "questions".to_owned(),
        "Canary-Qz7 no treatment on Fridays".to_owned(),
    );
    Submission {
        values,
        signer_name: name.to_owned(),
        esign_consent: true,
        client_address: Some("192.0.2.44".parse().unwrap()),
    }
}

/// A submitted and rejected intake form in practice A: a row in each intake table, every
/// sealed column filled (for the re-encryption census).
pub(crate) async fn seed_intake(app: &TestApp, w: &World) {
    let store = &app.store;
    let keyring = store.keyring().unwrap().clone();
    let mut tx = as_member(app, store, w.a.user("reception"), w.a.id).await;
    let made = store::intake::create_intake_link(&mut tx, w.a.patient, "consent_to_treatment")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let mut holder = store
        .intake_link(made.token(), RequestId::new(), app.clock.now())
        .await
        .unwrap()
        .unwrap();
    holder
        .submit(&keyring, &consent("Seed Signer"))
        .await
        .unwrap()
        .unwrap();
    holder.commit().await.unwrap();
    let mut tx = as_member(app, store, w.a.user("clinician"), w.a.id).await;
    store::intake::decide(
        &mut tx,
        &keyring,
        made.request_id,
        &Decision::Reject("Canary reject reason".into()),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
}

async fn actions(su: &mut sqlx::PgConnection, p: domain::PracticeId) -> Vec<String> {
    sqlx::query_scalar(
        "select action from audit_event where practice_id = $1 and action like 'intake.%' order by action",
    )
    .bind(p)
    .fetch_all(su)
    .await
    .unwrap()
}

// req: ENC-01, ENC-03 — issue 19.6: tokenized, stored hashed, single-use; answers sealed; signature
// evidence; the review queue before anything changes the chart.
#[tokio::test]
async fn an_intake_link_is_stored_hashed_opens_once_and_reaches_the_chart_only_after_review() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let store = &app.store;
    let keyring = store.keyring().unwrap().clone();
    let (p, patient) = (w.a.id, w.a.patient);
    let now = || app.clock.now();

    let mut tx = as_member(&app, store, w.a.user("reception"), p).await;
    let made = store::intake::create_intake_link(&mut tx, patient, "consent_to_treatment")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let token = made.token().clone();
    let origin = outbound::LinkOrigin::parse("https://clinic.example.test").unwrap();
    let url = made.url(&origin);
    assert!(
        url.as_str()
            .starts_with("https://clinic.example.test/intake/")
    );
    let token_text = url.as_str().rsplit('/').next().unwrap().to_owned();
    assert_eq!(token_text.len(), 43, "256 random bits, base64url");

    // The table holds the digest, never the token.
    let mut su = db.superuser_unsafe().await;
    let (digest, row): (Vec<u8>, String) = sqlx::query_as(
        "select digest, row_to_json(l)::text from client_link l where practice_id = $1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(digest, token.digest().to_vec());
    assert!(!row.contains(&token_text), "the token is not stored");
    let everything: String = sqlx::query_scalar(
        "select string_agg(row_to_json(r)::text, '') from intake_request r where practice_id = $1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(!everything.contains(&token_text));

    // The holder opens it: the prefill comes from the chart (audited `intake.open`).
    let mut holder = store
        .intake_link(&token, RequestId::new(), now())
        .await
        .unwrap()
        .expect("a live link opens");
    assert_eq!(holder.practice(), p);
    let opened = holder.open_form(&keyring).await.unwrap();
    holder.commit().await.unwrap();
    assert_eq!(opened.form.id, "consent_to_treatment");
    let dob = opened.prefill.get("date_of_birth").cloned();
    let mut tx = as_member(&app, store, w.a.user("reception"), p).await;
    let chart = store::patients::get(&mut tx, &keyring, patient)
        .await
        .unwrap()
        .unwrap();
    tx.audit_patient(domain::AuditAction::PatientRead, patient)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        opened.prefill["full_name"],
        format!("{} {}", chart.given_name, chart.family_name)
    );
    assert_eq!(
        dob,
        chart
            .date_of_birth
            .map(|d| d.format("%Y-%m-%d").to_string())
    );

    // A refused submission stores nothing.
    let mut holder = store
        .intake_link(&token, RequestId::new(), now())
        .await
        .unwrap()
        .unwrap();
    let mut bad = consent("Ada Example");
    bad.values.remove("withdraw");
    bad.esign_consent = false;
    bad.signer_name = "  ".into();
    let refused = holder.submit(&keyring, &bad).await.unwrap().unwrap_err();
    let fields: Vec<&str> = refused.0.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(fields, ["withdraw", "signer_name", "esign_consent"]);
    drop(holder);
    let responses: i64 = sqlx::query_scalar("select count(*) from intake_response")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(responses, 0);

    // A valid one: sealed, the request submitted, the link used up.
    let mut holder = store
        .intake_link(&token, RequestId::new(), now())
        .await
        .unwrap()
        .unwrap();
    let hash = holder
        .submit(&keyring, &consent("Ada Example"))
        .await
        .unwrap()
        .unwrap();
    holder.commit().await.unwrap();
    let (answers_enc, signer_enc, address_enc): (Vec<u8>, Vec<u8>, Vec<u8>) = sqlx::query_as(
        "select answers_enc, signer_name_enc, client_address_enc from intake_response where practice_id = $1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    for (ct, canary) in [
        (&answers_enc, "Canary-Qz7"),
        (&signer_enc, "Ada Example"),
        (&address_enc, "192.0.2.44"),
    ] {
        assert!(
            !ct.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{canary} is sealed"
        );
    }
    assert!(
        store
            .intake_link(&token, RequestId::new(), now())
            .await
            .unwrap()
            .is_none(),
        "a used link opens nothing"
    );

    // Not on the chart before review.
    let mut tx = as_member(&app, store, w.a.user("clinician"), p).await;
    assert!(
        store::intake::on_chart(&mut tx, patient)
            .await
            .unwrap()
            .is_empty()
    );
    let queue = store::intake::queue(&mut tx).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].status, Status::Submitted);
    let review = store::intake::open(&mut tx, &keyring, made.request_id)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    // The evidence hash recomputes from the exact form version, the answers and the name.
    let form = domain::intake::catalogue()
        .unwrap()
        .get("consent_to_treatment", 1)
        .unwrap();
    let recomputed = domain::intake::evidence_hash(form, &review.answers, &review.signer_name);
    assert_eq!(review.evidence_hash, hex::encode(recomputed));
    assert_eq!(recomputed, hash);
    assert!(review.evidence_verified && review.esign_consent && review.intent_shown);
    assert_eq!(review.signer_name, "Ada Example");
    assert_eq!(
        review.answers["questions"],
        "Canary-Qz7 no treatment on Fridays"
    );

    // A rejection needs a reason; acceptance puts it on the chart, once.
    let mut tx = as_member(&app, store, w.a.user("clinician"), p).await;
    assert!(matches!(
        store::intake::decide(
            &mut tx,
            &keyring,
            made.request_id,
            &Decision::Reject(" ".into())
        )
        .await,
        Err(store::StoreError::Invalid(_))
    ));
    assert_eq!(
        store::intake::decide(&mut tx, &keyring, made.request_id, &Decision::Accept)
            .await
            .unwrap(),
        Some(Status::Accepted)
    );
    tx.commit().await.unwrap();
    let mut tx = as_member(&app, store, w.a.user("clinician"), p).await;
    let chart = store::intake::on_chart(&mut tx, patient).await.unwrap();
    assert_eq!(chart.len(), 1);
    assert!(matches!(
        store::intake::decide(&mut tx, &keyring, made.request_id, &Decision::Accept).await,
        Err(store::StoreError::Conflict(_))
    ));
    drop(tx);

    assert_eq!(
        actions(&mut su, p).await,
        [
            "intake.decide",
            "intake.list",
            "intake.open",
            "intake.read",
            "intake.request",
            "intake.submit"
        ]
    );
    // The audit rows name ids only: no answer, name or token.
    let audit: String = sqlx::query_scalar(
        "select string_agg(row_to_json(e)::text, '') from audit_event e where practice_id = $1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    for secret in ["Canary-Qz7", "Ada Example", token_text.as_str()] {
        assert!(!audit.contains(secret), "{secret} in the audit log");
    }
}

// issue 19.6 — expired, wrong-purpose and unknown links open nothing.
#[tokio::test]
async fn expired_wrong_purpose_and_unknown_links_open_nothing() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let store = &app.store;
    let (p, patient) = (w.a.id, w.a.patient);
    let mut tx = as_member(&app, store, w.a.user("reception"), p).await;
    let made = store::intake::create_intake_link(&mut tx, patient, "massage_intake")
        .await
        .unwrap()
        .unwrap();
    // An unknown form is refused; an unknown patient is `None`.
    assert!(matches!(
        store::intake::create_intake_link(&mut tx, patient, "no_such_form").await,
        Err(store::StoreError::Invalid(_))
    ));
    assert!(
        store::intake::create_intake_link(&mut tx, domain::PatientId::new(), "massage_intake")
            .await
            .unwrap()
            .is_none()
    );
    // A booking-manage link for an appointment of the patient.
    let appointment = domain::AppointmentId::new();
    let mut su = db.superuser_unsafe().await;
    sqlx::query(
        "insert into appointment (practice_id, appointment_id, patient_id, clinician_id, starts_at, ends_at, status, created_at, updated_at)
         values ($1, $2, $3, $4, now() + interval '3 days', now() + interval '3 days 1 hour', 'booked', now(), now())",
    )
    .bind(p)
    .bind(appointment)
    .bind(patient)
    .bind(w.a.user("clinician"))
    .execute(&mut su)
    .await
    .unwrap();
    let manage = store::links::create_booking_manage_link(&mut tx, appointment)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();

    let now = app.clock.now();
    let opens = |t: &outbound::LinkToken, at| {
        let t = t.clone();
        async move {
            store
                .intake_link(&t, RequestId::new(), at)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(opens(made.token(), now).await);
    assert!(
        !opens(&manage, now).await,
        "a booking link never opens an intake form"
    );
    assert!(!opens(&outbound::LinkToken::generate(), now).await);
    let expiry = made.link.expires_at;
    assert!(expiry >= now + Duration::days(store::links::INTAKE_LINK_TTL_DAYS));
    assert!(opens(made.token(), expiry - Duration::seconds(1)).await);
    assert!(!opens(made.token(), expiry).await, "expired");
}

// req: AC-05 — issue 19.6: the holder's entry enters the link's own practice with the
// `client_link` pseudo-role, and sees its own link, request and patient only, never another
// practice's rows or other patients.
#[tokio::test]
async fn a_link_holder_sees_its_own_rows_in_its_own_practice_only() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let store = &app.store;
    let mut tokens = Vec::new();
    for f in [&w.a, &w.b] {
        let mut tx = as_member(&app, store, f.user("clinician"), f.id).await;
        let made = store::intake::create_intake_link(&mut tx, f.patient, "dental_health_history")
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        tokens.push(made.token().clone());
    }
    // A second patient in A with a request of their own.
    let mut tx = as_member(&app, store, w.a.user("reception"), w.a.id).await;
    let other = store::patients::create(
        &mut tx,
        store.keyring().unwrap(),
        &store::patients::NewPatient {
            given_name: "Other".into(),
            family_name: "Patient".into(),
            date_of_birth: None,
            phone: None,
            email: None,
        },
    )
    .await
    .unwrap();
    store::intake::create_intake_link(&mut tx, other.patient_id, "dental_health_history")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();

    let mut conn = db.runtime_conn().await;
    let mut t = sqlx::Connection::begin(&mut conn).await.unwrap();
    let entered: Option<(uuid::Uuid,)> =
        sqlx::query_as("select practice_id from app.enter_link($1, 'intake', now())")
            .bind(tokens[0].digest().to_vec())
            .fetch_optional(&mut *t)
            .await
            .unwrap();
    assert_eq!(entered, Some((w.a.id.as_uuid(),)));
    for (table, n) in [
        ("client_link", 1),
        ("intake_request", 1),
        ("intake_response", 0),
        ("patient", 1),
        ("appointment", 0),
        ("clinical_note", 0),
    ] {
        let seen: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut *t)
            .await
            .unwrap();
        assert_eq!(seen, n, "{table} as A's link holder");
    }
    let b_rows: i64 = sqlx::query_scalar(
        "select (select count(*) from client_link where practice_id = $1)
              + (select count(*) from intake_request where practice_id = $1)
              + (select count(*) from patient where practice_id = $1)",
    )
    .bind(w.b.id)
    .fetch_one(&mut *t)
    .await
    .unwrap();
    assert_eq!(b_rows, 0, "B is out of reach");
    // The holder cannot mark another request submitted or forge a response elsewhere.
    let changed = sqlx::query("update intake_request set status = 'accepted'")
        .execute(&mut *t)
        .await;
    assert!(
        changed.map_or(true, |d| d.rows_affected() == 0),
        "the holder cannot accept its own form"
    );
    t.rollback().await.unwrap();
    // A wrong purpose enters nothing.
    let mut t = sqlx::Connection::begin(&mut conn).await.unwrap();
    let none: Option<(uuid::Uuid,)> =
        sqlx::query_as("select practice_id from app.enter_link($1, 'booking_manage', now())")
            .bind(tokens[0].digest().to_vec())
            .fetch_optional(&mut *t)
            .await
            .unwrap();
    assert!(none.is_none());
    let seen: i64 = sqlx::query_scalar("select count(*) from intake_request")
        .fetch_one(&mut *t)
        .await
        .unwrap();
    assert_eq!(seen, 0);
}
