//! The AI provider registry over real HTTP: the API (`/api/v1/practices/{id}/ai-providers`)
//! and the owner page (`/app/practices/{id}/ai-providers`): who may list, register and
//! change; the posture the gate reads; every change audited with the changed fields and never
//! the key; and the gate, fed from the registry, refusing before any connection.

use egress::{OpenAiTranscriber, Transcriber, TranscriptionRequest};
use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::standins::StandIn;
use testkit::{TestApp, TestDb, World};

use crate::util::call;
use crate::web_pages::{client, request};

const KEY: &str = "sk-registry-secret-0123456789";

/// The audit rows of one request in practice `p`: (actor, action, outcome, object type,
/// details).
async fn audit_rows(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
    request_id: &str,
) -> Vec<(
    Option<uuid::Uuid>,
    String,
    String,
    Option<String>,
    Option<Value>,
)> {
    sqlx::query_as(
        "select actor_id, action, outcome, object_type, details from audit_event
          where practice_id = $1 and request_id = $2 order by occurred_at, event_id",
    )
    .bind(p)
    .bind(uuid::Uuid::parse_str(request_id).unwrap())
    .fetch_all(su)
    .await
    .unwrap()
}

async fn send(
    app: &TestApp,
    m: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, String, Value) {
    let mut req = app.http.request(m, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();
    (
        status,
        id,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn vendor_body(url: &str) -> Value {
    json!({
        "label": "Vendor transcription", "adapter": "openai_transcription", "base_url": url,
        "model": "whisper-1", "hosting": "vendor", "vendor": "Stand-in Speech Inc.",
        "retention": "zero retention", "region": "us-east-1", "api_key": KEY
    })
}

// req: SCR-03
#[tokio::test]
async fn providers_api_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let mut su = db.superuser_unsafe().await;
    let p = w.a.id;
    let list = format!("/api/v1/practices/{p}/ai-providers");
    let tok = |role: &'static str| {
        let app = &app;
        let w = &w;
        async move { app.token(w.a.user(role)).await }
    };
    let owner = tok("owner").await;
    let admin = tok("admin").await;
    let clinician = tok("clinician").await;
    let reception = tok("reception").await;
    let other = app.token(w.b.user("owner")).await;
    let body = vendor_body("https://speech.vendor.example");

    // Anonymous → 401 on every route.
    let (s, _, _) = send(&app, Method::GET, &list, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(&app, Method::POST, &list, None, Some(&body)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Right role (owner) registers: 201, and the audit row names the object and flags only.
    let (s, id, created) = send(&app, Method::POST, &list, Some(&owner), Some(&body)).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["gate"], "no_baa");
    assert_eq!(created["has_api_key"], true);
    assert!(
        !created.to_string().contains(KEY),
        "the key is never returned"
    );
    let rows = audit_rows(&mut su, p, &id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, Some(w.a.user("owner").as_uuid()));
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str()),
        ("ai_provider.register", "success")
    );
    assert_eq!(rows[0].3.as_deref(), Some("ai_provider"));
    assert!(!format!("{:?}", rows[0].4).contains(KEY));
    let provider = created["provider_id"].as_str().unwrap().to_owned();
    let one = format!("{list}/{provider}");

    // The key is a field ciphertext.
    let enc: Vec<u8> =
        sqlx::query_scalar("select api_key_enc from ai_provider where provider_id = $1")
            .bind(uuid::Uuid::parse_str(&provider).unwrap())
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(!enc.windows(KEY.len()).any(|w| w == KEY.as_bytes()));

    // Other practice → 404 (list, register, change), nothing changed.
    for (m, path, b) in [
        (Method::GET, list.clone(), None),
        (Method::POST, list.clone(), Some(&body)),
        (Method::PATCH, one.clone(), Some(&json!({"enabled": false}))),
    ] {
        let (s, _, _) = send(&app, m.clone(), &path, Some(&other), b).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path}");
    }
    // B's owner naming A's provider in B's path → 404.
    let (s, _, _) = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/practices/{}/ai-providers/{provider}", w.b.id),
        Some(&other),
        Some(&json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Wrong role → 403 with the denial audited: reception everywhere, clinicians on changes.
    for (who, token, m, path, b) in [
        ("reception", &reception, Method::GET, &list, None),
        ("reception", &reception, Method::POST, &list, Some(&body)),
        ("clinician", &clinician, Method::POST, &list, Some(&body)),
        (
            "clinician",
            &clinician,
            Method::PATCH,
            &one,
            Some(&json!({"enabled": false})),
        ),
    ] {
        let (s, id, _) = send(&app, m.clone(), path, Some(token), b).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who} {m} {path}");
        let rows = audit_rows(&mut su, p, &id).await;
        assert_eq!(rows.len(), 1, "{who} {m}");
        assert_eq!(
            (rows[0].1.as_str(), rows[0].2.as_str()),
            ("access.denied", "denied")
        );
    }

    // Clinicians, owners and admins list (audited `ai_provider.list`).
    for (who, token) in [
        ("clinician", &clinician),
        ("owner", &owner),
        ("admin", &admin),
    ] {
        let (s, id, listed) = send(&app, Method::GET, &list, Some(token), None).await;
        assert_eq!(s, StatusCode::OK, "{who}");
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert!(!listed.to_string().contains(KEY));
        let rows = audit_rows(&mut su, p, &id).await;
        assert_eq!(rows.len(), 1, "{who}");
        assert_eq!(rows[0].1, "ai_provider.list");
        assert_eq!(rows[0].4.as_ref().unwrap()["providers"], 1);
    }

    // The admin attests the BAA and turns training off: the gate clears it; the audit row
    // names the changed fields, never values or the key.
    let (s, id, changed) = send(
        &app,
        Method::PATCH,
        &one,
        Some(&admin),
        Some(&json!({"attest_baa": "BAA-2026-017", "training_disabled": true, "api_key": "sk-rotated-key-999"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{changed}");
    assert_eq!(changed["gate"], "cleared");
    assert_eq!(changed["baa"]["attested_by"], w.a.user("admin").to_string());
    assert_eq!(changed["baa"]["document_ref"], "BAA-2026-017");
    let rows = audit_rows(&mut su, p, &id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "ai_provider.update");
    let details = rows[0].4.clone().unwrap();
    assert_eq!(details["changed"], "baa:training_disabled:api_key");
    assert!(
        !details.to_string().contains("sk-rotated") && !details.to_string().contains("BAA-2026")
    );

    // Bad input: 400, nothing changed.
    for bad in [
        json!({"hosting": "cloud"}),
        json!({"base_url": "ftp://x.example"}),
        json!({"base_url": "https://user:pw@x.example"}),
        json!({"label": ""}),
        json!({"attest_baa": "x", "withdraw_baa": true}),
        json!({"api_key": "has space"}),
        json!({"unknown": 1}),
    ] {
        let (s, _, _) = send(&app, Method::PATCH, &one, Some(&owner), Some(&bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (s, _, after) = send(&app, Method::GET, &list, Some(&owner), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(after[0]["gate"], "cleared");
    assert_eq!(after[0]["hosting"], "vendor");
}

// req: SCR-03 — the gate, fed from the registry, refuses a non-BAA vendor, a training-enabled
// vendor, a disabled provider and a public host marked self-hosted before any connection; once
// the posture allows it, the call reaches the provider with the stored key.
#[tokio::test]
async fn the_registry_posture_gates_calls_before_any_connection() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let standin = StandIn::openai().await;
    standin.require_key(KEY);
    let p = w.a.id;
    let owner = app.token(w.a.user("owner")).await;
    let list = format!("/api/v1/practices/{p}/ai-providers");
    let (s, created) = call(
        &app,
        Method::POST,
        &list,
        Some(&owner),
        Some(&vendor_body(&standin.url())),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id: domain::ProviderId = created["provider_id"].as_str().unwrap().parse().unwrap();
    let one = format!("{list}/{id}");
    let store = db.store().await;

    // A vendor with no BAA.
    let (v, r) = attempt(&store, &owner, p, id).await;
    assert_eq!(v, Err(egress::Refusal::NoBaa));
    assert!(r.is_none());
    // A BAA but training not disabled.
    let (s, _) = call(
        &app,
        Method::PATCH,
        &one,
        Some(&owner),
        Some(&json!({"attest_baa": "BAA-1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        attempt(&store, &owner, p, id).await.0,
        Err(egress::Refusal::TrainingEnabled)
    );
    // Disabled.
    let (s, _) = call(
        &app,
        Method::PATCH,
        &one,
        Some(&owner),
        Some(&json!({"training_disabled": true, "enabled": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        attempt(&store, &owner, p, id).await.0,
        Err(egress::Refusal::Disabled)
    );
    // Self-hosted on a public host name.
    let (s, _) = call(
        &app,
        Method::PATCH,
        &one,
        Some(&owner),
        Some(&json!({"enabled": true, "hosting": "self_hosted", "base_url": "https://speech.vendor.example"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        attempt(&store, &owner, p, id).await.0,
        Err(egress::Refusal::NotLocal)
    );
    assert_eq!(standin.requests(), 0, "no refused call connected");

    // Back to the covered vendor on the stand-in: cleared, and the stored key is sent.
    let (s, _) = call(
        &app,
        Method::PATCH,
        &one,
        Some(&owner),
        Some(&json!({"hosting": "vendor", "base_url": standin.url()})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (v, r) = attempt(&store, &owner, p, id).await;
    assert_eq!(v, Ok(()));
    let reply = r.unwrap().unwrap();
    assert!(!reply.segments.is_empty());
    assert_eq!(standin.requests(), 1);
    assert_eq!(
        standin.recorded()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

type Attempt = (
    Result<(), egress::Refusal>,
    Option<Result<egress::TranscriptionReply, egress::EgressError>>,
);

/// Reads the posture and key from the registry the way an AI job does, gates, and calls the
/// provider only when the gate clears it.
async fn attempt(
    store: &store::Store,
    token: &str,
    p: domain::PracticeId,
    id: domain::ProviderId,
) -> Attempt {
    let mut tx = testkit::enter_practice(store, token, p).await.unwrap();
    let posture = store::providers::posture(&mut tx, id)
        .await
        .unwrap()
        .unwrap();
    let cleared = match egress::gate(&posture) {
        Ok(c) => c,
        Err(r) => {
            drop(tx);
            return (Err(r), None);
        }
    };
    let key = store::providers::api_key(&mut tx, store.keyring().unwrap(), id)
        .await
        .unwrap();
    tx.audit(domain::AuditAction::AiProviderList, None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let t = OpenAiTranscriber::new(key).unwrap();
    let reply = t
        .transcribe(
            &cleared,
            TranscriptionRequest {
                wav: silence().into(),
                prompt: None,
                language: Some("en".into()),
            },
        )
        .await;
    (Ok(()), Some(reply))
}

fn silence() -> Vec<u8> {
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend_from_slice(&[0; 256]);
    wav
}

fn request_id(res: &reqwest::Response) -> String {
    res.headers()["x-request-id"].to_str().unwrap().to_owned()
}

async fn page_actions(su: &mut sqlx::PgConnection, p: domain::PracticeId, id: &str) -> Vec<String> {
    let mut a: Vec<String> = audit_rows(su, p, id)
        .await
        .into_iter()
        .map(|r| {
            assert_eq!(r.2, "success", "{}", r.1);
            r.1
        })
        .collect();
    a.sort();
    a.dedup();
    a
}

// req: SCR-03 — the owner page: anonymous → sign-in, another practice → 404, clinician and
// reception → 403 (denial audited), owner and admin → the page (audited like the API); a
// registration and a posture change through the forms, shown in the posture history.
#[tokio::test]
async fn providers_page_authorization_matrix_and_forms() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let mut su = db.superuser_unsafe().await;
    let p = w.a.id;
    let owner = app.token(w.a.user("owner")).await;
    let admin = app.token(w.a.user("admin")).await;
    let clinician = app.token(w.a.user("clinician")).await;
    let reception = app.token(w.a.user("reception")).await;
    let other = app.token(w.b.user("owner")).await;
    let page = format!("/app/practices/{p}/ai-providers");
    let form = [
        ("label", "Hygiene drafting"),
        ("adapter", "anthropic_messages"),
        ("base_url", "https://api.anthropic.example"),
        ("model", "claude-standin"),
        ("hosting", "vendor"),
        ("vendor", "Stand-in AI Co."),
        ("baa_document_ref", "BAA-PAGE-1"),
        ("training_disabled", "on"),
        ("retention", "zero retention"),
        ("region", "us"),
        ("api_key", KEY),
        ("enabled", "on"),
    ];

    for (m, path) in [(Method::GET, page.clone()), (Method::POST, page.clone())] {
        let res = request(&http, &app, m.clone(), &path, None)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {m}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in");
        let res = request(&http, &app, m.clone(), &path, Some(&other))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "other practice {m}");
        for (who, token) in [("clinician", &clinician), ("reception", &reception)] {
            let res = request(&http, &app, m.clone(), &path, Some(token))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {m}");
            let id = request_id(&res);
            let rows = audit_rows(&mut su, p, &id).await;
            assert_eq!(rows.len(), 1, "{who} {m}");
            assert_eq!(rows[0].1, "access.denied");
        }
    }
    let count: i64 = sqlx::query_scalar("select count(*) from ai_provider where practice_id = $1")
        .bind(p)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing registered by refused requests");

    // Owner registers through the form.
    let res = request(&http, &app, Method::POST, &page, Some(&owner))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let id = request_id(&res);
    assert_eq!(
        page_actions(&mut su, p, &id).await,
        ["ai_provider.register"]
    );
    let provider: uuid::Uuid =
        sqlx::query_scalar("select provider_id from ai_provider where practice_id = $1")
            .bind(p)
            .fetch_one(&mut su)
            .await
            .unwrap();

    // A refused registration: 400, the page again, nothing registered, the key not echoed.
    let mut bad = form.to_vec();
    bad[4] = ("hosting", "cloud");
    let res = request(&http, &app, Method::POST, &page, Some(&owner))
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.text().await.unwrap();
    assert!(body.contains("Nothing was registered") && !body.contains(KEY));

    // Admin changes the posture (withdraws the BAA): 303, audited with the changed fields.
    let change = format!("{page}/{provider}");
    let res = request(&http, &app, Method::POST, &change, Some(&admin))
        .form(&[
            ("label", "Hygiene drafting"),
            ("base_url", "https://api.anthropic.example"),
            ("model", "claude-standin"),
            ("hosting", "vendor"),
            ("vendor", "Stand-in AI Co."),
            ("withdraw_baa", "on"),
            ("training_disabled", "on"),
            ("retention", "zero retention"),
            ("region", "us"),
            ("enabled", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let id = request_id(&res);
    assert_eq!(page_actions(&mut su, p, &id).await, ["ai_provider.update"]);
    let details: Value = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(p)
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(details["changed"], "baa");
    assert_eq!(details["gate"], "no_baa");

    // B's owner posting to A's provider under B's path: 404.
    let res = request(
        &http,
        &app,
        Method::POST,
        &format!("/app/practices/{}/ai-providers/{provider}", w.b.id),
        Some(&other),
    )
    .form(&[("label", "x")])
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Owner and admin see the posture and the history; the page is audited like the API.
    for token in [&owner, &admin] {
        let res = request(&http, &app, Method::GET, &page, Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let id = request_id(&res);
        let actions = page_actions(&mut su, p, &id).await;
        assert!(
            actions.contains(&"ai_provider.list".to_owned()),
            "{actions:?}"
        );
        let body = res.text().await.unwrap();
        assert!(body.contains("Hygiene drafting"));
        assert!(body.contains("refused: vendor without a BAA"));
        assert!(body.contains("changed baa"));
        assert!(body.contains("registered"));
        assert!(!body.contains(KEY));
    }
    // The menu links the page for owners and admins only.
    for (token, shown) in [(&owner, true), (&admin, true), (&clinician, false)] {
        let res = request(
            &http,
            &app,
            Method::GET,
            &format!("/app/practices/{p}/schedule"),
            Some(token),
        )
        .send()
        .await
        .unwrap();
        if res.status() == StatusCode::OK {
            assert_eq!(res.text().await.unwrap().contains(&page), shown);
        }
    }
}
