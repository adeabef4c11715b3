//! No PHI in audit rows or logs (canary), and no unaudited PHI access.
//! req: AUD-01, AUD-06

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::util::call;

/// Everything the test binary logs, captured (installed once for the whole binary).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,sqlx=trace,hyper=off,reqwest=off,h2=off",
            ))
            .with_writer(move || SharedWriter(Arc::clone(&writer_buf)))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);
impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn canary_phi_appears_in_no_audit_row_and_no_log_line() {
    let logs = captured_logs();
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let canary_name = format!("Zq{}", uuid::Uuid::new_v4().simple());
    let canary_note = format!("canary-note-{}", uuid::Uuid::new_v4().simple());
    let canary_phone = "+1 555 0123";
    let clin = app.token(w.a.user("clinician")).await;
    let owner = app.token(w.a.user("owner")).await;
    let base = format!("/api/v1/practices/{}", w.a.id);

    let (s, p) = call(&app, Method::POST, &format!("{base}/patients"), Some(&clin),
        Some(&json!({"given_name": canary_name, "family_name": canary_name, "phone": canary_phone, "email": format!("{canary_name}@example.invalid")}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let pid = p["patient_id"].as_str().unwrap().to_owned();
    let patient = format!("{base}/patients/{pid}");
    let calls: Vec<(Method, String, Option<serde_json::Value>, &str)> = vec![
        (Method::GET, patient.clone(), None, "clin"),
        (
            Method::PATCH,
            patient.clone(),
            Some(json!({"given_name": canary_name})),
            "clin",
        ),
        (Method::GET, format!("{base}/patients"), None, "clin"),
        (
            Method::POST,
            format!("{patient}/notes"),
            Some(json!({"content": {"subjective": canary_note}})),
            "clin",
        ),
        (Method::GET, format!("{patient}/notes"), None, "clin"),
        (
            Method::POST,
            format!("{patient}/disclosures"),
            Some(
                json!({"recipient": canary_name, "description": canary_note, "purpose": canary_note}),
            ),
            "clin",
        ),
        (Method::GET, format!("{patient}/disclosures"), None, "clin"),
        (
            Method::POST,
            format!("{base}/appointments"),
            Some(
                json!({"patient_id": pid, "clinician_id": w.a.user("clinician"), "starts_at": "2030-01-01T10:00:00Z", "ends_at": "2030-01-01T10:30:00Z"}),
            ),
            "clin",
        ),
        (
            Method::GET,
            format!("{base}/appointments?from=2029-12-31T00:00:00Z"),
            None,
            "clin",
        ),
        (
            Method::PATCH,
            base.clone(),
            Some(json!({"name": canary_name})),
            "owner",
        ),
        (
            Method::POST,
            format!("{base}/incidents"),
            Some(json!({"detection_source": "staff_report", "description": canary_note})),
            "owner",
        ),
        (
            Method::POST,
            format!("{base}/incidents"),
            Some(json!({"detection_source": canary_name, "description": canary_note})),
            "owner",
        ),
        (Method::GET, format!("{base}/incidents"), None, "owner"),
        // PR-01, PR-02: a right-of-access request naming a third party, its list, and
        // the patient's record export (HTML rendering).
        (
            Method::POST,
            format!("{base}/access-requests"),
            Some(json!({"patient_id": pid, "form": "html", "recipient": canary_name})),
            "owner",
        ),
        (
            Method::GET,
            format!("{base}/access-requests"),
            None,
            "owner",
        ),
        (Method::GET, format!("{patient}/export"), None, "clin"),
        // Amendment requests (SIG-07, SIG-08): one whose asked-for change carries the
        // canary, and the list.
        (
            Method::POST,
            format!("{base}/amendment-requests"),
            Some(
                json!({"patient_id": pid, "record_kind": "demographics", "requested_change": canary_name}),
            ),
            "owner",
        ),
        (
            Method::GET,
            format!("{base}/amendment-requests"),
            None,
            "owner",
        ),
        (Method::GET, format!("{base}/audit/events"), None, "owner"),
        (Method::GET, format!("{base}/audit/fhir"), None, "owner"),
        // Refused attempts carrying the canary: a bad value, and a wrong role.
        (
            Method::POST,
            format!("{base}/patients"),
            Some(json!({"given_name": canary_name, "family_name": 7})),
            "clin",
        ),
        (
            Method::POST,
            format!("{patient}/notes"),
            Some(json!({"content": {"subjective": canary_note}})),
            "owner",
        ),
        (
            Method::POST,
            "/api/v1/auth/login".to_owned(),
            Some(
                json!({"email": format!("{canary_name}@example.invalid"), "password": canary_note}),
            ),
            "none",
        ),
    ];
    for (m, path, body, who) in &calls {
        let token = match *who {
            "clin" => Some(clin.as_str()),
            "owner" => Some(owner.as_str()),
            _ => None,
        };
        let (s, v) = call(&app, m.clone(), path, token, body.as_ref()).await;
        assert!(s.as_u16() < 500, "{m} {path}: {s} {v}");
        if !s.is_success() {
            let text = v.to_string();
            assert!(
                !text.contains(&canary_name) && !text.contains(&canary_note),
                "error body echoes PHI: {text}"
            );
        }
    }
    let mut su = db.superuser_unsafe().await;
    let audit: String =
        sqlx::query_scalar("select coalesce(string_agg(t::text, E'\\n'), '') from audit_event t")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(
        audit.contains(&pid),
        "the audit trail names the patient by id"
    );
    for canary in [canary_name.as_str(), canary_note.as_str(), canary_phone] {
        assert!(!audit.contains(canary), "audit rows contain PHI ({canary})");
    }
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs.contains("request"),
        "the capture must actually see the server's log lines"
    );
    for canary in [
        canary_name.as_str(),
        canary_note.as_str(),
        canary_phone,
        clin.as_str(),
        owner.as_str(),
    ] {
        assert!(
            !logs.contains(canary),
            "a log line contains PHI or a token ({canary})"
        );
    }
}

#[tokio::test]
async fn no_phi_without_a_durable_audit_record() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let t = app.token(w.a.user("reception")).await;
    let path = format!("/api/v1/practices/{}/patients/{}", w.a.id, w.a.patient);
    let (s, ok) = call(&app, Method::GET, &path, Some(&t), None).await;
    assert_eq!(s, StatusCode::OK);
    let family = ok["family_name"].as_str().unwrap().to_owned();
    // The audit table stops accepting rows: the read must fail, and show nothing.
    let mut su = db.superuser_unsafe().await;
    sqlx::query("revoke insert on audit_event from chartroom_runtime")
        .execute(&mut su)
        .await
        .unwrap();
    let (s, v) = call(&app, Method::GET, &path, Some(&t), None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["error"]["message"], "internal error");
    assert!(!v.to_string().contains(&family));
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}/patients", w.a.id),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "lists too");
}
