//! Security incidents and breach clocks through the API: the lifecycle with every step on the
//! audit chain (IR-01), the four-factor gate and the clocks' alerts on the injected clock
//! (IR-02), scoping the affected patients from the audit log (IR-03), and the authorization
//! matrix of the incident routes (they are listed in `api_matrix`'s `MATRIX_ELSEWHERE`).

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use domain::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

fn base(p: domain::PracticeId) -> String {
    format!("/api/v1/practices/{p}/incidents")
}

/// Records an incident in practice `p` as `token`; its id.
async fn create(app: &TestApp, token: &str, p: domain::PracticeId, body: &Value) -> String {
    let (s, v) = call(app, Method::POST, &base(p), Some(token), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["incident_id"].as_str().unwrap().to_owned()
}

/// The audit actions on incident `id` in practice `p`, sorted.
async fn incident_actions(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
    id: &str,
) -> Vec<String> {
    sqlx::query_scalar(
        "select action from audit_event where practice_id = $1 and object_type = 'incident'
            and object_id = $2::uuid order by action",
    )
    .bind(p)
    .bind(id)
    .fetch_all(su)
    .await
    .unwrap()
}

fn clock_due(v: &Value, name: &str) -> Option<DateTime<Utc>> {
    v["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clock"] == name)
        .map(|c| c["due"].as_str().unwrap().parse().unwrap())
}

const FACTORS: &str = "synthetic factor text";

fn assessment(low: bool) -> Value {
    json!({
        "nature": FACTORS, "person": FACTORS, "acquired": FACTORS, "mitigation": FACTORS,
        "low_probability": low
    })
}

// req: IR-01 — an incident is recorded with its discovery time and detection source, moves
// through open → assessing → contained → closed as a breach, with response and outcome notes
// and letters; every step is an audit event on the practice's chain (which verifies), and the
// free text is sealed at rest.
#[tokio::test]
async fn ir_01_incident_lifecycle_is_recorded_and_every_step_is_on_the_audit_chain() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let owner = app.token(w.a.user("owner")).await;
    let admin = app.token(w.a.user("admin")).await;
    let canary = format!("lost laptop canary {}", uuid::Uuid::new_v4().simple());
    let found = app.clock.now() - Duration::hours(2);
    let id = create(
        &app,
        &owner,
        p,
        &json!({"discovered_at": found, "detection_source": "staff_report", "description": canary,
                "baa_notice_hours": 120, "gdpr": true}),
    )
    .await;
    let url = format!("{}/{id}", base(p));
    let (s, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "open");
    assert_eq!(v["description"], canary.as_str());
    assert_eq!(v["detection_source"], "staff_report");
    let found: DateTime<Utc> = v["discovered_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        clock_due(&v, "individuals"),
        Some(found + Duration::days(60))
    );
    assert_eq!(
        clock_due(&v, "baa_notice"),
        Some(found + Duration::hours(120))
    );
    assert_eq!(
        clock_due(&v, "gdpr_authority"),
        Some(found + Duration::hours(72))
    );
    assert_eq!(
        clock_due(&v, "restoration_target"),
        Some(found + Duration::hours(72))
    );
    assert_eq!(
        clock_due(&v, "contingency_notice"),
        Some(found + Duration::hours(24))
    );

    // Closing straight from open is refused; the lifecycle moves forward only.
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/close"),
        Some(&owner),
        Some(&json!({"outcome": "breach"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("INCIDENT-0002")
    );
    for (status, response) in [
        ("assessing", "isolated the device"),
        ("contained", "remote wipe done"),
    ] {
        let (s, v) = call(
            &app,
            Method::PATCH,
            &url,
            Some(&owner),
            Some(&json!({"status": status, "response": response})),
        )
        .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some(status)),
            "{v}"
        );
    }
    let (s, _) = call(
        &app,
        Method::PATCH,
        &url,
        Some(&owner),
        Some(&json!({"status": "assessing"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "backwards");
    let (s, _) = call(
        &app,
        Method::PATCH,
        &url,
        Some(&owner),
        Some(&json!({"outcome": "device recovered"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&app, Method::POST, &format!("{url}/letters"), Some(&owner),
        Some(&json!({"recipient_kind": "individual", "sent_on": app.clock.now().date_naive(), "letters": 3}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{url}/letters"),
        Some(&owner),
        Some(&json!({"recipient_kind": "a neighbour", "sent_on": app.clock.now().date_naive()})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "recipient kinds are a closed set"
    );
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/close"),
        Some(&owner),
        Some(&json!({"outcome": "breach"})),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("closed_breach")),
        "{v}"
    );
    // Closed is final.
    let (s, _) = call(
        &app,
        Method::PATCH,
        &url,
        Some(&owner),
        Some(&json!({"response": "more"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);

    let (s, v) = call(&app, Method::GET, &url, Some(&owner), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "closed_breach");
    assert_eq!(v["response"], "remote wipe done");
    assert_eq!(v["outcome"], "device recovered");
    assert_eq!(v["letters"][0]["recipient_kind"], "individual");
    assert_eq!(v["letters"][0]["letters"], 3);
    assert!(
        v["clocks"].as_array().unwrap().is_empty(),
        "a closed incident runs no clock"
    );
    let (s, list) = call(&app, Method::GET, &base(p), Some(&owner), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"][0]["incident_id"], id.as_str());

    let mut su = db.superuser_unsafe().await;
    assert_eq!(
        incident_actions(&mut su, p, &id).await,
        [
            "incident.close",
            "incident.create",
            "incident.letter",
            "incident.read",
            "incident.read",
            "incident.update",
            "incident.update",
            "incident.update",
        ]
    );
    // The free text is sealed: no row of the incident holds it.
    let row: String =
        sqlx::query_scalar("select t::text from incident t where incident_id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut su)
            .await
            .unwrap();
    for text in [canary.as_str(), "remote wipe", "device recovered"] {
        assert!(!row.contains(text), "incident row holds {text}");
    }
    let audit: String =
        sqlx::query_scalar("select coalesce(string_agg(t::text, ' '), '') from audit_event t")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(!audit.contains(&canary), "no PHI in the audit log");
    // Every step is on the practice's hash chain, which verifies.
    app.store.sequence_pending(app.clock.now()).await.unwrap();
    let unsequenced: i64 = sqlx::query_scalar(
        "select count(*) from audit_event e where e.practice_id = $1 and e.object_id = $2::uuid
            and not exists (select 1 from audit_sequence s where s.practice_id = e.practice_id and s.event_id = e.event_id)",
    )
    .bind(p)
    .bind(&id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(unsequenced, 0);
    let outcome = db
        .owner()
        .await
        .verify_practice(
            p,
            &audit::checkpoint::origin("chartroom/test", p.as_uuid()),
            Vec::new(),
            Duration::seconds(60),
            app.clock.now(),
        )
        .await
        .unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
}

// req: IR-02 — a case cannot close as "not a breach" without the four factors recorded and
// concluding a low probability of compromise: refused by the API (409 INCIDENT-0003, nothing
// changed) and by the database itself.
#[tokio::test]
async fn ir_02_not_a_breach_needs_the_four_factor_assessment() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let owner = app.token(w.a.user("owner")).await;
    let id = create(
        &app,
        &owner,
        p,
        &json!({"detection_source": "audit_review", "description": "odd reads"}),
    )
    .await;
    let url = format!("{}/{id}", base(p));
    let (s, _) = call(
        &app,
        Method::PATCH,
        &url,
        Some(&owner),
        Some(&json!({"status": "assessing"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let close = json!({"outcome": "not_a_breach"});
    let refused = |v: &Value| {
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("INCIDENT-0003")
    };
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/close"),
        Some(&owner),
        Some(&close),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(refused(&v), "{v}");
    // A factor left blank is refused as input.
    let mut partial = assessment(true);
    partial["acquired"] = json!("   ");
    let (s, v) = call(
        &app,
        Method::PUT,
        &format!("{url}/assessment"),
        Some(&owner),
        Some(&partial),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("acquired")
    );
    let mut missing = assessment(true);
    missing.as_object_mut().unwrap().remove("mitigation");
    let (s, _) = call(
        &app,
        Method::PUT,
        &format!("{url}/assessment"),
        Some(&owner),
        Some(&missing),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // All four, but concluding compromise is not ruled out: still no "not a breach".
    let (s, _) = call(
        &app,
        Method::PUT,
        &format!("{url}/assessment"),
        Some(&owner),
        Some(&assessment(false)),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/close"),
        Some(&owner),
        Some(&close),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(refused(&v));
    let (_, v) = call(&app, Method::GET, &url, Some(&owner), None).await;
    assert_eq!(
        (v["status"].as_str(), v["may_close_not_a_breach"].as_bool()),
        (Some("assessing"), Some(false))
    );
    // The database refuses it too, whatever the caller.
    let mut su = db.superuser_unsafe().await;
    let err = sqlx::query("update incident set status = 'closed_not_breach', closed_at = now() where incident_id = $1::uuid")
        .bind(&id)
        .execute(&mut su)
        .await
        .unwrap_err();
    assert_eq!(crate::util::db_code(&err), "23514", "{err}");
    // With the four factors concluding a low probability: it closes.
    let (s, _) = call(
        &app,
        Method::PUT,
        &format!("{url}/assessment"),
        Some(&owner),
        Some(&assessment(true)),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/close"),
        Some(&owner),
        Some(&close),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("closed_not_breach")),
        "{v}"
    );
    let (_, v) = call(&app, Method::GET, &url, Some(&owner), None).await;
    assert_eq!(v["assessment"]["nature"], FACTORS);
    assert_eq!(v["assessment"]["low_probability"], true);
    assert_eq!(
        incident_actions(&mut su, p, &id).await,
        [
            "incident.assess",
            "incident.assess",
            "incident.close",
            "incident.create",
            "incident.read",
            "incident.read",
            "incident.update"
        ]
    );
    let row: String =
        sqlx::query_scalar("select t::text from incident t where incident_id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(!row.contains(FACTORS), "the factors are sealed");
}

// req: IR-02 — on the injected clock, the alerts job raises each alert exactly when it comes
// due — 24, 48 and 72 hours, days 45, 55 and 60 after discovery, and each clock's deadline —
// once per clock (recorded and audited `incident.alert`, incident id and clock only), none
// before, none for a closed incident, none for another practice.
#[tokio::test]
async fn ir_02_clock_alerts_come_due_at_24_48_72_hours_and_days_45_55_60() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner_store = db.owner().await;
    let p = w.a.id;
    let owner = app.token(w.a.user("owner")).await;
    // Whole seconds, so the stored time (microseconds) is the time the clocks run from.
    let found = app
        .clock
        .now()
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let id = create(
        &app,
        &owner,
        p,
        &json!({"discovered_at": found, "detection_source": "vendor_notice",
        "description": "vendor breach", "baa_notice_hours": 72}),
    )
    .await;
    // A closed incident and an incident of practice B, discovered at the same time.
    let closed = create(
        &app,
        &owner,
        p,
        &json!({"discovered_at": found, "detection_source": "other", "description": "false alarm"}),
    )
    .await;
    let curl = format!("{}/{closed}", base(p));
    call(
        &app,
        Method::PATCH,
        &curl,
        Some(&owner),
        Some(&json!({"status": "assessing"})),
    )
    .await;
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{curl}/close"),
        Some(&owner),
        Some(&json!({"outcome": "breach"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let b_owner = app.token(w.b.user("owner")).await;
    let b_id = create(
        &app,
        &b_owner,
        w.b.id,
        &json!({"discovered_at": found, "detection_source": "other", "description": "b"}),
    )
    .await;

    let raise = |at: DateTime<Utc>| {
        let o = &owner_store;
        async move {
            let pass = server::jobs::incidents::raise_all(o, Some(p), at)
                .await
                .unwrap();
            assert!(pass.is_complete());
            let mut names: Vec<(String, String)> = pass
                .done
                .into_iter()
                .flat_map(|(_, v)| v)
                .map(|a| (a.incident_id.to_string(), a.clock))
                .collect();
            names.sort();
            names
        }
    };
    let steps: [(i64, &[&str]); 6] = [
        (24, &["alert_24h", "contingency_notice"]),
        (48, &["alert_48h"]),
        (72, &["alert_72h", "baa_notice", "restoration_target"]),
        (45 * 24, &["day_45"]),
        (55 * 24, &["day_55"]),
        (60 * 24, &["day_60", "hhs", "individuals"]),
    ];
    let mut at = 0;
    for (hours, want) in steps {
        app.clock
            .advance(Duration::hours(hours - at) - Duration::seconds(1));
        assert!(
            raise(app.clock.now()).await.is_empty(),
            "nothing due before {hours} h"
        );
        app.clock.advance(Duration::seconds(1));
        let got = raise(app.clock.now()).await;
        let want: Vec<(String, String)> =
            want.iter().map(|c| (id.clone(), (*c).to_owned())).collect();
        assert_eq!(got, want, "at {hours} h");
        assert!(
            raise(app.clock.now()).await.is_empty(),
            "once per clock ({hours} h)"
        );
        at = hours;
    }
    // Recorded with the incident, on the audit chain with the clock's name only (a fresh
    // session: sixty days have passed).
    let owner = app.token(w.a.user("owner")).await;
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("{}/{id}", base(p)),
        Some(&owner),
        None,
    )
    .await;
    let alerts: Vec<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["clock"].as_str().unwrap())
        .collect();
    assert_eq!(alerts.len(), 11, "{alerts:?}");
    assert_eq!(
        v["alerts"][0]["due_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        found + Duration::hours(24)
    );
    let mut su = db.superuser_unsafe().await;
    let details: Vec<Value> = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action = 'incident.alert' and object_id = $2::uuid",
    )
    .bind(p)
    .bind(&id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(details.len(), 11);
    assert!(
        details
            .iter()
            .all(|d| d.as_object().unwrap().keys().eq(["clock"])),
        "{details:?}"
    );
    let none: i64 = sqlx::query_scalar(
        "select count(*) from incident_alert where incident_id = any($1::uuid[])",
    )
    .bind(vec![closed.clone(), b_id.clone()])
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        none, 0,
        "no alert for a closed incident, nor for practice B when A is checked"
    );
    // The whole-installation pass raises B's now, and A's no more.
    let pass = server::jobs::incidents::raise_all(&owner_store, None, app.clock.now())
        .await
        .unwrap();
    let raised: Vec<String> = pass
        .done
        .into_iter()
        .flat_map(|(_, v)| v)
        .map(|a| a.incident_id.to_string())
        .collect();
    assert_eq!(raised.len(), 11);
    assert!(raised.iter().all(|i| *i == b_id));
    owner_store.close().await;
}

/// Practice `p`'s patient made through the API by `token`; its id.
async fn patient(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    family: &str,
    state: Option<&str>,
) -> String {
    let (s, v) = call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/patients"),
        Some(token),
        Some(&json!({"given_name": "Ash", "family_name": family, "date_of_birth": "1979-05-06"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["patient_id"].as_str().unwrap().to_owned();
    if let Some(state) = state {
        let (s, v) = call(
            app,
            Method::PUT,
            &format!("/api/v1/practices/{p}/patients/{id}/residence"),
            Some(token),
            Some(&json!({"state": state})),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    id
}

async fn read(app: &TestApp, token: &str, p: domain::PracticeId, patient: &str) {
    let (s, v) = call(
        app,
        Method::GET,
        &format!("/api/v1/practices/{p}/patients/{patient}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

// req: IR-03 — given a compromised principal (a user, or its session) and a window, scoping
// returns exactly the patients the audit log says it touched (reads and writes) in the window,
// with counts per state of residence; nothing touched before or after, by someone else, or in
// another practice; the result is stored with the incident.
#[tokio::test]
async fn ir_03_scoping_returns_exactly_the_fixture_patients_and_per_state_counts() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let reception = app.token(w.a.user("reception")).await;
    let clinician = app.token(w.a.user("clinician")).await;
    let b_clinician = app.token(w.b.user("clinician")).await;
    let states = [
        Some("CA"),
        Some("CA"),
        Some("NV"),
        None,
        Some("OR"),
        Some("CA"),
        Some("TX"),
    ];
    let mut pats = Vec::new();
    for (i, s) in states.iter().enumerate() {
        pats.push(patient(&app, &reception, p, &format!("Scopefield{i}"), *s).await);
    }
    // Before the window: the clinician reads patient 4 (OR).
    read(&app, &clinician, p, &pats[4]).await;
    app.clock.advance(Duration::minutes(10));
    let from = app.clock.now();
    // In the window: reads of 0, 1 (CA, CA) and 3 (no state), a change to 2 (NV), a second
    // read of 0; someone else reads 5; B's clinician reads B's patient.
    read(&app, &clinician, p, &pats[0]).await;
    read(&app, &clinician, p, &pats[1]).await;
    read(&app, &clinician, p, &pats[3]).await;
    read(&app, &clinician, p, &pats[0]).await;
    let (s, v) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/practices/{p}/patients/{}", pats[2]),
        Some(&clinician),
        Some(&json!({"phone": "+1 555 0100"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    read(&app, &reception, p, &pats[5]).await;
    read(&app, &b_clinician, w.b.id, &w.b.patient.to_string()).await;
    // A refused attempt by the clinician on B's patient touches nothing.
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}/patients/{}", w.b.id, w.b.patient),
        Some(&clinician),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.clock.advance(Duration::minutes(10));
    let to = app.clock.now();
    // After the window: the clinician reads 6 (TX).
    read(&app, &clinician, p, &pats[6]).await;

    // The owner signs in now (a session from before would have been idle too long).
    let owner = app.token(w.a.user("owner")).await;
    let id = create(
        &app,
        &owner,
        p,
        &json!({"detection_source": "audit_review", "description": "stolen credentials"}),
    )
    .await;
    let url = format!("{}/{id}/scope", base(p));
    let mut want: Vec<String> = vec![
        pats[0].clone(),
        pats[1].clone(),
        pats[2].clone(),
        pats[3].clone(),
    ];
    want.sort();
    let expect_states = json!({"CA": 2, "NV": 1, "unknown": 1});
    let clin_id = w.a.user("clinician").as_uuid();
    let (s, v) = call(
        &app,
        Method::POST,
        &url,
        Some(&owner),
        Some(&json!({"kind": "user", "subject": clin_id, "from": from, "to": to})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got = |v: &Value| {
        let mut ids: Vec<String> = v["patients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["patient_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(got(&v), want);
    assert_eq!(v["per_state"], expect_states);
    assert_eq!(v["total"], 4);
    assert_eq!(v["hhs_within_60_days"], false);
    assert_eq!(v["media_states"], json!([]));
    let events: u64 = v["patients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["patient_id"] == pats[0].as_str())
        .map(|x| x["events"].as_u64().unwrap())
        .sum();
    assert_eq!(events, 2, "patient 0 was read twice");

    // By the clinician's session (the token's): the same set in the window.
    let (s, sessions) = call(
        &app,
        Method::GET,
        "/api/v1/auth/sessions",
        Some(&clinician),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let session = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["current"] == true)
        .unwrap()["session_id"]
        .clone();
    let (s, v) = call(
        &app,
        Method::POST,
        &url,
        Some(&owner),
        Some(&json!({"kind": "session", "subject": session, "from": from, "to": to})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(got(&v), want);
    assert_eq!(v["per_state"], expect_states);
    // A session of another practice's member is unknown here.
    let (_, b_sessions) = call(
        &app,
        Method::GET,
        "/api/v1/auth/sessions",
        Some(&b_clinician),
        None,
    )
    .await;
    let b_session = b_sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["current"] == true)
        .unwrap()["session_id"]
        .clone();
    let (s, _) = call(
        &app,
        Method::POST,
        &url,
        Some(&owner),
        Some(&json!({"kind": "session", "subject": b_session, "from": from, "to": to})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // B's clinician scoped from A: nothing (A's log only).
    let (s, v) = call(&app, Method::POST, &url, Some(&owner),
        Some(&json!({"kind": "user", "subject": w.b.user("clinician").as_uuid(), "from": from, "to": to}))).await;
    assert_eq!((s, v["total"].as_u64()), (StatusCode::OK, Some(0)));
    // Bad windows and kinds are refused.
    for body in [
        json!({"kind": "user", "subject": clin_id, "from": to, "to": from}),
        json!({"kind": "key", "subject": clin_id, "from": from, "to": to}),
    ] {
        let (s, _) = call(&app, Method::POST, &url, Some(&owner), Some(&body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    }
    // The last good run is stored with the incident: run the user scope again, then read it.
    let (s, _) = call(
        &app,
        Method::POST,
        &url,
        Some(&owner),
        Some(&json!({"kind": "user", "subject": clin_id, "from": from, "to": to})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("{}/{id}", base(p)),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(got(&v["scope"]), want);
    assert_eq!(v["scope"]["per_state"], expect_states);
    assert_eq!(v["affected"], 4);
    let mut su = db.superuser_unsafe().await;
    let stored: i64 =
        sqlx::query_scalar("select count(*) from incident_affected where incident_id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(stored, 4);
    let scope_details: Value = sqlx::query_scalar(
        "select details from audit_event where action = 'incident.scope' and object_id = $1::uuid order by occurred_at desc, event_id desc limit 1",
    )
    .bind(&id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(scope_details["patients"], 4);
    // Residence codes are checked.
    let (s, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/practices/{p}/patients/{}/residence", pats[0]),
        Some(&reception),
        Some(&json!({"state": "California"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// Every incident route, with the action its success leaves.
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "", "incident.list"),
    ("POST", "", "incident.create"),
    ("GET", "/{id}", "incident.read"),
    ("PATCH", "/{id}", "incident.update"),
    ("PUT", "/{id}/assessment", "incident.assess"),
    ("POST", "/{id}/scope", "incident.scope"),
    ("POST", "/{id}/letters", "incident.letter"),
    ("POST", "/{id}/close", "incident.close"),
];

fn body(m: &str, path: &str, subject: uuid::Uuid, now: DateTime<Utc>) -> Option<Value> {
    match (m, path) {
        ("POST", "") => Some(json!({"detection_source": "other", "description": "matrix"})),
        ("PATCH", _) => Some(json!({"response": "matrix response"})),
        ("PUT", _) => Some(assessment(true)),
        ("POST", "/{id}/scope") => Some(
            json!({"kind": "user", "subject": subject, "from": now - Duration::days(1), "to": now}),
        ),
        ("POST", "/{id}/letters") => {
            Some(json!({"recipient_kind": "hhs", "sent_on": now.date_naive()}))
        }
        ("POST", "/{id}/close") => Some(json!({"outcome": "breach"})),
        _ => None,
    }
}

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

async fn request_actions(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
    request: uuid::Uuid,
) -> Vec<(String, String, Option<uuid::Uuid>)> {
    sqlx::query_as("select action, outcome, actor_id from audit_event where practice_id = $1 and request_id = $2")
        .bind(p)
        .bind(request)
        .fetch_all(su)
        .await
        .unwrap()
}

// req: IR-01, AC-02, AC-04 — the incident routes: anonymous → 401, another practice's
// members (even owners) → 404, A's clinician and reception → 403 with the denial audited,
// A's owners and admins → 2xx with the route's audit event; an incident of B named inside A
// → 404. The residence route: scheduling roles only.
#[tokio::test]
async fn incident_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let mut tokens = std::collections::HashMap::new();
    for role in ["owner", "admin", "clinician", "reception"] {
        tokens.insert(("a", role), app.token(w.a.user(role)).await);
        tokens.insert(("b", role), app.token(w.b.user(role)).await);
    }
    let now = app.clock.now();
    let mut open = std::collections::HashMap::new();
    for role in ["owner", "admin"] {
        let id = create(
            &app,
            &tokens[&("a", "owner")],
            p,
            &json!({"detection_source": "other", "description": "m"}),
        )
        .await;
        call(
            &app,
            Method::PATCH,
            &format!("{}/{id}", base(p)),
            Some(&tokens[&("a", "owner")]),
            Some(&json!({"status": "assessing"})),
        )
        .await;
        open.insert(role, id);
    }
    let b_incident = create(
        &app,
        &tokens[&("b", "owner")],
        w.b.id,
        &json!({"detection_source": "other", "description": "b"}),
    )
    .await;
    let subject = w.a.user("clinician").as_uuid();
    let mut su = db.superuser_unsafe().await;
    for &(m, tail, action) in ROUTES {
        let label = format!("{m} {tail}");
        let path = |id: &str| format!("{}{}", base(p), tail.replace("{id}", id));
        let b = body(m, tail, subject, now);
        let own = path(&open["owner"]);
        assert_eq!(
            send(&app, m, &own, None, b.as_ref()).await.0,
            StatusCode::UNAUTHORIZED,
            "{label}: anonymous"
        );
        for role in ["owner", "admin"] {
            assert_eq!(
                send(&app, m, &own, Some(&tokens[&("b", role)]), b.as_ref())
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
                &path(&b_incident),
                Some(&tokens[&("a", "owner")]),
                b.as_ref(),
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{label}: B's incident inside A");
        }
        for role in ["clinician", "reception"] {
            let (s, rid) = send(&app, m, &own, Some(&tokens[&("a", role)]), b.as_ref()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{label}: {role}");
            assert_eq!(
                request_actions(&mut su, p, rid.unwrap()).await,
                [(
                    "access.denied".to_owned(),
                    "denied".to_owned(),
                    Some(w.a.user(role).as_uuid())
                )],
                "{label}: {role}'s denial audited"
            );
        }
        for role in ["owner", "admin"] {
            let target = path(&open[role]);
            let (s, rid) = send(&app, m, &target, Some(&tokens[&("a", role)]), b.as_ref()).await;
            assert!(s.is_success(), "{label}: {role} got {s}");
            let rows = request_actions(&mut su, p, rid.unwrap()).await;
            assert!(!rows.is_empty(), "{label}: no audit row");
            for (a, outcome, actor) in rows {
                assert_eq!(
                    (a.as_str(), outcome.as_str(), actor),
                    (action, "success", Some(w.a.user(role).as_uuid())),
                    "{label}"
                );
            }
        }
    }
    // The residence route: clinician and reception; owners and admins 403; B's members 404.
    let url = format!("/api/v1/practices/{p}/patients/{}/residence", w.a.patient);
    let b = json!({"state": "WA"});
    assert_eq!(
        send(&app, "PUT", &url, None, Some(&b)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(
            &app,
            "PUT",
            &url,
            Some(&tokens[&("b", "reception")]),
            Some(&b)
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let foreign = format!("/api/v1/practices/{p}/patients/{}/residence", w.b.patient);
    assert_eq!(
        send(
            &app,
            "PUT",
            &foreign,
            Some(&tokens[&("a", "reception")]),
            Some(&b)
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    for role in ["owner", "admin"] {
        assert_eq!(
            send(&app, "PUT", &url, Some(&tokens[&("a", role)]), Some(&b))
                .await
                .0,
            StatusCode::FORBIDDEN,
            "{role}"
        );
    }
    for role in ["clinician", "reception"] {
        let (s, rid) = send(&app, "PUT", &url, Some(&tokens[&("a", role)]), Some(&b)).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{role}");
        let rows = request_actions(&mut su, p, rid.unwrap()).await;
        assert_eq!(
            rows,
            [(
                "patient.residence_update".to_owned(),
                "success".to_owned(),
                Some(w.a.user(role).as_uuid())
            )]
        );
    }
    // Every answer is described in the API document.
    let doc = serde_json::to_value(server::openapi()).unwrap();
    for (m, tail, _) in ROUTES {
        let path = format!(
            "/api/v1/practices/{{practice_id}}/incidents{}",
            tail.replace("{id}", "{incident_id}")
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

// req: IR-01, IR-02 — through the pages: an owner records an incident, sees its clocks,
// cannot close it as not a breach before the four factors (409, nothing changed), records
// them, closes it; the page shows what the API shows.
#[tokio::test]
async fn incidents_are_recorded_assessed_and_closed_through_the_pages() {
    use crate::web_pages::{client, request};
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let owner = app.token(w.a.user("owner")).await;
    let list = format!("/app/practices/{p}/incidents");
    let page = |path: String| {
        let (http, app, owner) = (&http, &app, &owner);
        async move {
            let res = request(http, app, Method::GET, &path, Some(owner))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            res.text().await.unwrap()
        }
    };
    assert!(
        page(list.clone())
            .await
            .contains("No incident has been recorded.")
    );
    // A bad source is refused with the form, nothing recorded.
    let res = request(&http, &app, Method::POST, &list, Some(&owner))
        .form(&[("detection_source", "rumour"), ("description", "Synthetic")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("Nothing was recorded."));
    let res = request(&http, &app, Method::POST, &list, Some(&owner))
        .form(&[
            ("detection_source", "patient_report"),
            ("description", "Synthetic mailing mix-up"),
            ("discovered_at", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let detail = res.headers()["location"].to_str().unwrap().to_owned();
    let html = page(detail.clone()).await;
    for text in [
        "Synthetic mailing mix-up",
        "individuals",
        "restoration_target",
        "contingency_notice",
        "Not assessed",
    ] {
        assert!(html.contains(text), "{text}");
    }
    let post = |tail: &'static str, form: Vec<(&'static str, &'static str)>| {
        let (http, app, owner, detail) = (&http, &app, &owner, detail.clone());
        async move {
            request(
                http,
                app,
                Method::POST,
                &format!("{detail}{tail}"),
                Some(owner),
            )
            .form(&form)
            .send()
            .await
            .unwrap()
        }
    };
    let res = post("/update", vec![("status", "assessing")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = post("/close", vec![("outcome", "not_a_breach")]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("INCIDENT-0003"));
    let res = post(
        "/assessment",
        vec![
            ("nature", "Names only"),
            ("person", "Another covered entity"),
            ("acquired", "Returned unopened"),
            ("mitigation", "Attestation of destruction"),
            ("low_probability", "on"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        page(detail.clone())
            .await
            .contains("low probability of compromise")
    );
    let res = post("/close", vec![("outcome", "not_a_breach")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = page(detail.clone()).await;
    assert!(html.contains("closed_not_breach"));
    assert!(html.contains("its clocks raise no more alerts"));
}
