//! Audit reports, the FHIR export and the accounting of disclosures.
//! req: AUD-05, PR-03

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

#[tokio::test]
async fn reports_filter_sort_paginate_and_are_audited() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let base = format!("/api/v1/practices/{}", w.a.id);
    let reception = app.token(w.a.user("reception")).await;
    let clinician = app.token(w.a.user("clinician")).await;
    let owner = app.token(w.a.user("owner")).await;
    let patient = format!("{base}/patients/{}", w.a.patient);
    // Known events: reception reads the patient 3 times, the clinician twice, then the
    // clinician lists patients once.
    for t in [&reception, &reception, &reception, &clinician, &clinician] {
        assert_eq!(
            call(&app, Method::GET, &patient, Some(t), None).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("{base}/patients"),
            Some(&clinician),
            None
        )
        .await
        .0,
        StatusCode::OK
    );

    let report = async |q: &str| -> Value {
        let (s, v) = call(
            &app,
            Method::GET,
            &format!("{base}/audit/events?{q}"),
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        v
    };
    let actions = |v: &Value| -> Vec<(String, String)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["actor_id"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect()
    };
    // Who looked at this patient (reads only).
    let v = report(&format!("patient_id={}&action=patient.read", w.a.patient)).await;
    let r = w.a.user("reception").to_string();
    let c = w.a.user("clinician").to_string();
    assert_eq!(
        actions(&v),
        [r.clone(), r.clone(), r.clone(), c.clone(), c.clone()]
            .map(|a| ("patient.read".to_owned(), a))
    );
    // Descending order reverses it.
    let v = report(&format!(
        "patient_id={}&action=patient.read&order=desc",
        w.a.patient
    ))
    .await;
    assert_eq!(actions(&v).first().unwrap().1, c);
    // What did the clinician touch: two reads and one list.
    let v = report(&format!("actor_id={}", w.a.user("clinician"))).await;
    let mut got: Vec<String> = actions(&v).into_iter().map(|a| a.0).collect();
    got.sort();
    assert_eq!(got, ["patient.list", "patient.read", "patient.read"]);
    // A time window that ends before the reads finds none of them.
    let early = (Utc::now() - Duration::days(1))
        .to_rfc3339()
        .replace('+', "%2B");
    let v = report(&format!("actor_id={}&to={early}", w.a.user("clinician"))).await;
    assert!(v["items"].as_array().unwrap().is_empty());
    // Pagination by cursor covers the same set without repeats.
    let mut seen = Vec::new();
    let mut q = format!("patient_id={}&action=patient.read&limit=2", w.a.patient);
    loop {
        let v = report(&q).await;
        for e in v["items"].as_array().unwrap() {
            seen.push(e["event_id"].as_str().unwrap().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(cur) => {
                q = format!(
                    "patient_id={}&action=patient.read&limit=2&cursor={cur}",
                    w.a.patient
                );
            }
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (5, 5));
    // Bad filters are refused.
    for bad in [
        "order=up",
        "limit=0",
        "action=patient.peek",
        "cursor=nonsense",
        "actor_id=1",
    ] {
        let (s, _) = call(
            &app,
            Method::GET,
            &format!("{base}/audit/events?{bad}"),
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    // The reports themselves are on the trail.
    let v = report("action=audit.read").await;
    assert!(v["items"].as_array().unwrap().len() >= 5);
}

#[tokio::test]
async fn fhir_export_is_ndjson_audit_events_and_is_audited() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let t = app.token(w.a.user("reception")).await;
    for _ in 0..3 {
        call(
            &app,
            Method::GET,
            &format!("/api/v1/practices/{}/patients/{}", w.a.id, w.a.patient),
            Some(&t),
            None,
        )
        .await;
    }
    let owner = app.token(w.a.user("owner")).await;
    let res = app
        .http
        .get(app.url(&format!("/api/v1/practices/{}/audit/fhir", w.a.id)))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/fhir+ndjson");
    let body = res.text().await.unwrap();
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reads: Vec<&Value> = events
        .iter()
        .filter(|e| e["subtype"][0]["code"] == "patient.read")
        .collect();
    assert_eq!(reads.len(), 3);
    for e in &reads {
        assert_eq!(e["resourceType"], "AuditEvent");
        assert_eq!(e["action"], "R");
        assert_eq!(e["outcome"], "0");
        assert_eq!(
            e["agent"][0]["who"]["identifier"]["value"],
            json!(w.a.user("reception"))
        );
        assert_eq!(
            e["entity"][0]["what"]["identifier"]["value"],
            json!(w.a.patient)
        );
        assert!(e["recorded"].as_str().unwrap().ends_with('Z'));
    }
    let (_, v) = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/practices/{}/audit/events?action=audit.export",
            w.a.id
        ),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        1,
        "the export is audited"
    );
}

#[tokio::test]
async fn accounting_of_disclosures_over_six_years() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let t = app.token(w.a.user("reception")).await;
    let path = format!(
        "/api/v1/practices/{}/patients/{}/disclosures",
        w.a.id, w.a.patient
    );
    let now = Utc::now();
    let record = async |at: chrono::DateTime<Utc>, recipient: &str, purpose: &str, tpo: bool| {
        let (s, v) = call(&app, Method::POST, &path, Some(&t), Some(&json!({
            "disclosed_at": at, "recipient": recipient, "description": "Visit summary", "purpose": purpose, "tpo": tpo
        })))
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    };
    record(
        now - Duration::days(7 * 365),
        "Old Recipient",
        "Research",
        false,
    )
    .await; // outside the window
    record(
        now - Duration::days(400),
        "County Health Dept.",
        "Public health reporting",
        false,
    )
    .await;
    record(
        now - Duration::days(300),
        "Synthetic Law Office",
        "Subpoena",
        false,
    )
    .await;
    record(
        now - Duration::days(200),
        "County Health Dept.",
        "Public health reporting",
        false,
    )
    .await;
    record(
        now - Duration::days(100),
        "Synthetic Insurance Co.",
        "Payment",
        true,
    )
    .await; // TPO: excluded
    let (s, v) = call(&app, Method::GET, &path, Some(&t), None).await;
    assert_eq!(s, StatusCode::OK);
    let list = v["disclosures"].as_array().unwrap();
    let recipients: Vec<&str> = list
        .iter()
        .map(|d| d["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(
        recipients,
        [
            "County Health Dept.",
            "Synthetic Law Office",
            "County Health Dept."
        ]
    );
    for d in list {
        for field in ["disclosed_at", "recipient", "description", "purpose"] {
            assert!(d[field].is_string(), "{field} missing");
        }
    }
    assert_eq!(
        v["summary"].as_array().unwrap().len(),
        1,
        "repeated disclosures are summarized"
    );
    assert_eq!(v["summary"][0]["count"], 2);
    // Bad input.
    let (s, _) = call(
        &app,
        Method::POST,
        &path,
        Some(&t),
        Some(&json!({"recipient": "", "description": "x", "purpose": "y"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(&app, Method::POST, &path, Some(&t), Some(&json!({"recipient": "r", "description": "x", "purpose": "y", "disclosed_at": now + Duration::days(2)}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
