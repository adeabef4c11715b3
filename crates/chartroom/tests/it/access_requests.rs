//! Right-of-access requests through the API (req PR-01): the 30-day deadline from the receipt
//! on the injected clock, the one 30-day extension (a second → 409; too late → 409), denial
//! only with a written reason (sealed, never in the audit log), the overdue alert raised once
//! by the job, and the authorization matrix of the request and export routes (listed in
//! `api_matrix`'s `MATRIX_ELSEWHERE`).

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use domain::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

/// An overdue alert's audit row: object id, patient, details, actor.
type OverdueRow = (
    String,
    Option<uuid::Uuid>,
    Option<Value>,
    Option<uuid::Uuid>,
);

fn base(p: domain::PracticeId) -> String {
    format!("/api/v1/practices/{p}/access-requests")
}

fn at(v: &Value, key: &str) -> DateTime<Utc> {
    v[key].as_str().unwrap().parse().unwrap()
}

/// Records a request in practice `p` as `token`; its id.
async fn create(app: &TestApp, token: &str, p: domain::PracticeId, body: &Value) -> String {
    let (s, v) = call(app, Method::POST, &base(p), Some(token), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["request_id"].as_str().unwrap().to_owned()
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

// req: PR-01 — the deadline is 30 days after receipt; one extension with a written reason
// moves it to 60 days; a second extension → 409; deny without a reason → 400 and nothing
// changes; deny with a reason closes it; a closed request takes no more actions; the reasons
// and the recipient are sealed and the audit rows carry none of them.
#[tokio::test]
async fn pr_01_access_request_deadline_extension_and_denial() {
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
    let canary = format!("canary reason {}", uuid::Uuid::new_v4().simple());
    let recipient = format!("Dr. Synthetic Canary {}", uuid::Uuid::new_v4().simple());
    let id = create(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "received_at": received, "form": "fhir_json",
                "recipient": recipient}),
    )
    .await;
    let url = format!("{}/{id}", base(p));
    let (s, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "open");
    assert_eq!(at(&v, "received_at"), received);
    assert_eq!(at(&v, "due_at"), received + Duration::days(30));
    assert_eq!(v["may_extend"], true);
    assert_eq!(v["overdue"], false);
    assert_eq!(v["recipient"], recipient.as_str());
    assert_eq!(v["third_party"], true);

    // Extend: a reason is needed.
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/extend"),
        Some(&admin),
        Some(&json!({"reason": "  "})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/extend"),
        Some(&admin),
        Some(&json!({"reason": canary})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "extended");
    assert_eq!(at(&v, "due_at"), received + Duration::days(60));
    assert_eq!(v["may_extend"], false);
    // A second extension: 409, nothing changed.
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/extend"),
        Some(&admin),
        Some(&json!({"reason": "again"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("RIGHTS-0001"), "{v}");
    let (_, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
    assert_eq!(at(&v, "due_at"), received + Duration::days(60));
    assert_eq!(v["extension_reason"], canary.as_str());

    // Deny without a reason: 400, still extended.
    for body in [json!({"reason": ""}), json!({})] {
        let (s, v) = call(
            &app,
            Method::POST,
            &format!("{url}/deny"),
            Some(&admin),
            Some(&body),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    let (_, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
    assert_eq!(v["status"], "extended");
    let denial = format!("denial {canary}");
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{url}/deny"),
        Some(&admin),
        Some(&json!({"reason": denial})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "denied");
    assert_eq!(v["overdue"], false);
    // Closed: no more extension, denial or fulfilment.
    let clinician = app.token(w.a.user("clinician")).await;
    for (tail, token, body) in [
        ("extend", &admin, Some(json!({"reason": "x"}))),
        ("deny", &admin, Some(json!({"reason": "x"}))),
        ("fulfil", &clinician, None),
    ] {
        let (s, v) = call(
            &app,
            Method::POST,
            &format!("{url}/{tail}"),
            Some(token),
            body.as_ref(),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{tail}: {v}");
        assert!(message(&v).contains("RIGHTS-0003"), "{tail}: {v}");
    }
    let (_, v) = call(&app, Method::GET, &url, Some(&admin), None).await;
    assert_eq!(v["denial_reason"], denial.as_str());
    assert_eq!(v["closed_by"], w.a.user("admin").to_string());

    // An extension after the first deadline is too late (164.524(b)(2)(iii)).
    let late = create(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "received_at": app.clock.now() - Duration::days(30),
                "form": "html"}),
    )
    .await;
    let (s, v) = call(
        &app,
        Method::POST,
        &format!("{}/{late}/extend", base(p)),
        Some(&admin),
        Some(&json!({"reason": "too late"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("RIGHTS-0002"), "{v}");
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("{}/{late}", base(p)),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(v["overdue"], true);

    // Bad input: unknown form, a future receipt, another practice's patient.
    for body in [
        json!({"patient_id": w.a.patient, "form": "fax"}),
        json!({"patient_id": w.a.patient, "form": "html", "received_at": app.clock.now() + Duration::days(2)}),
    ] {
        let (s, v) = call(&app, Method::POST, &base(p), Some(&admin), Some(&body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    let (s, _) = call(
        &app,
        Method::POST,
        &base(p),
        Some(&admin),
        Some(&json!({"patient_id": w.b.patient, "form": "html"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The list: open first; the denied one last.
    let (s, v) = call(&app, Method::GET, &base(p), Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["request_id"], late.as_str());
    assert_eq!(items[1]["request_id"], id.as_str());

    // Every step is on the audit log, with no reason or recipient text anywhere in it, and
    // the sealed columns hold no plaintext.
    let mut su = db.superuser_unsafe().await;
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_event where practice_id = $1 and object_type = 'access_request'
            and object_id = $2::uuid order by occurred_at, action",
    )
    .bind(p)
    .bind(&id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    for want in [
        "access_request.create",
        "access_request.read",
        "access_request.extend",
        "access_request.deny",
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
    for d in all {
        assert!(
            !d.contains("canary") && !d.contains("Synthetic"),
            "free text in the audit log: {d}"
        );
    }
    let raw: Vec<u8> = sqlx::query_scalar(
        "select recipient_enc || extension_reason_enc || denial_reason_enc from access_request
          where request_id = $1::uuid",
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

// req: PR-01 — the overdue alert, on the injected clock: nothing one second before the
// deadline, one alert at it (recorded and audited `access_request.overdue`, ids only), never
// twice; an extended request alerts at day 60 only; a closed request and practice B's are not
// alerted when A is checked.
#[tokio::test]
async fn pr_01_overdue_alert_is_raised_once_at_the_deadline() {
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
    let body =
        |form: &str| json!({"patient_id": w.a.patient, "received_at": received, "form": form});
    let plain = create(&app, &owner, p, &body("fhir_json")).await;
    let extended = create(&app, &owner, p, &body("html")).await;
    let denied = create(&app, &owner, p, &body("paper")).await;
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{}/{extended}/extend", base(p)),
        Some(&owner),
        Some(&json!({"reason": "records off site"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("{}/{denied}/deny", base(p)),
        Some(&owner),
        Some(&json!({"reason": "not a designated record"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let b_owner = app.token(w.b.user("owner")).await;
    let b_id = create(
        &app,
        &b_owner,
        w.b.id,
        &json!({"patient_id": w.b.patient, "received_at": received, "form": "html"}),
    )
    .await;

    let raise = |at: DateTime<Utc>| {
        let o = &owner_store;
        async move {
            let pass = server::jobs::rights::raise_all(o, Some(p), at)
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
    for (day, want) in [(30, &plain), (60, &extended)] {
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
              where practice_id = $1 and action = 'access_request.overdue' order by occurred_at",
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
        "select request_id::text from access_request where overdue_alerted_at is not null",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(!alerted.contains(&denied) && !alerted.contains(&b_id));
    // The page of requests shows it overdue (a fresh session: sixty days have passed).
    let owner = app.token(w.a.user("owner")).await;
    let (_, v) = call(&app, Method::GET, &base(p), Some(&owner), None).await;
    let first = &v["items"][0];
    assert_eq!(first["request_id"], plain.as_str());
    assert_eq!(first["overdue"], true);
    assert!(first["overdue_alerted_at"].is_string());
    // The whole-installation pass raises B's now, and A's no more.
    let pass = server::jobs::rights::raise_all(&owner_store, None, app.clock.now())
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

const ROUTES: &[(&str, &str, &str, &str)] = &[
    // (method, tail, who, audit action)
    ("GET", "", "track", "access_request.list"),
    ("POST", "", "track", "access_request.create"),
    ("GET", "/{id}", "track", "access_request.read"),
    ("POST", "/{id}/extend", "track", "access_request.extend"),
    ("POST", "/{id}/deny", "track", "access_request.deny"),
    ("POST", "/{id}/fulfil", "clinician", "access_request.fulfil"),
    ("GET", "export", "clinician", "patient.export"),
];

fn path(p: domain::PracticeId, patient: domain::PatientId, tail: &str, id: &str) -> String {
    if tail == "export" {
        format!("/api/v1/practices/{p}/patients/{patient}/export")
    } else {
        format!("{}{}", base(p), tail.replace("{id}", id))
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
    sqlx::query_as(
        "select action, outcome, actor_id from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(p)
    .bind(request)
    .fetch_all(su)
    .await
    .unwrap()
}

// req: PR-01, PR-02, AC-02, AC-04 — the right-of-access routes: anonymous → 401; another
// practice's members → 404; A's wrong roles → 403 with the denial audited (reception for the
// tracking routes; owners, admins and reception for the copy, which reads clinical records);
// the right roles → 2xx with the route's audit events; a request or patient of B named inside
// A → 404; every answer is in the API document.
#[tokio::test]
async fn access_request_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let mut tokens = std::collections::HashMap::new();
    for role in ["owner", "admin", "clinician", "reception"] {
        tokens.insert(("a", role), app.token(w.a.user(role)).await);
        tokens.insert(("b", role), app.token(w.b.user(role)).await);
    }
    let new = json!({"patient_id": w.a.patient, "form": "fhir_json"});
    // One open request per right role and route that closes or extends it.
    let mut open = std::collections::HashMap::new();
    for role in ["owner", "admin", "clinician", "spare"] {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(create(&app, &tokens[&("a", "owner")], p, &new).await);
        }
        open.insert(role, ids);
    }
    let b_request = create(
        &app,
        &tokens[&("b", "owner")],
        w.b.id,
        &json!({"patient_id": w.b.patient, "form": "html"}),
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
            _ => None,
        };
        // Which of a role's open requests the route acts on (each route closes its own).
        let slot = match tail {
            "/{id}/extend" => 0,
            "/{id}/deny" => 1,
            _ => 2,
        };
        let spare = path(p, w.a.patient, tail, &open["spare"][slot]);
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
        if tail.contains("{id}") || tail == "export" {
            let foreign = if tail == "export" {
                path(p, w.b.patient, tail, "")
            } else {
                path(p, w.a.patient, tail, &b_request)
            };
            let who = right.first().copied().unwrap_or("owner");
            let (s, _) = send(&app, m, &foreign, Some(&tokens[&("a", who)]), body.as_ref()).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{label}: B's object inside A");
        }
        for role in ["owner", "admin", "clinician", "reception"] {
            if right.contains(&role) {
                continue;
            }
            let (s, rid) = send(&app, m, &spare, Some(&tokens[&("a", role)]), body.as_ref()).await;
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
        for role in right {
            let target = path(p, w.a.patient, tail, &open[role][slot]);
            let (s, rid) = send(
                &app,
                m,
                &target,
                Some(&tokens[&("a", *role)]),
                body.as_ref(),
            )
            .await;
            assert!(s.is_success(), "{label}: {role} got {s}");
            let rows = request_actions(&mut su, p, rid.unwrap()).await;
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
    // Every answer is described in the API document.
    let doc = serde_json::to_value(server::openapi()).unwrap();
    for (m, tail, _, _) in ROUTES {
        let path = if *tail == "export" {
            "/api/v1/practices/{practice_id}/patients/{patient_id}/export".to_owned()
        } else {
            format!(
                "/api/v1/practices/{{practice_id}}/access-requests{}",
                tail.replace("{id}", "{request_id}")
            )
        };
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
