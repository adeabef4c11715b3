//! Issue 14.1: practice settings are a closed, typed set, and nothing one practice sends can
//! stop the installation or another practice. The class was: `PATCH /practices/{id}` took
//! any JSON object (`{"demo": "x"}` then stopped `serve` and every admin command; a NUL
//! answered 500).

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

async fn practice_row(db: &TestDb, practice: domain::PracticeId) -> (String, Value, bool) {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_as("select name, settings, demo from practice where practice_id = $1")
        .bind(practice)
        .fetch_one(&mut su)
        .await
        .unwrap()
}

// issue 14.1 — unknown key, wrong type, control characters, oversize: 400, nothing stored.
#[tokio::test]
async fn practice_settings_are_a_closed_typed_set() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let owner = app.token(w.a.user("owner")).await;
    let path = format!("/api/v1/practices/{}", w.a.id);
    let before = practice_row(&db, w.a.id).await;
    assert_eq!(before.1, json!({"clinical_scope": "care_team"}));
    let big = "x".repeat(5000);
    for body in [
        json!({"settings": {"demo": "x"}}),
        json!({"settings": {"demo": true}}),
        json!({"settings": {"x": "\u{0}"}}),
        json!({"settings": {"clinical_scope": "\u{0}"}}),
        json!({"settings": {"clinical_scope": "everyone"}}),
        json!({"settings": {"clinical_scope": ["practice"]}}),
        json!({"settings": {"clinical_scope": "practice", "extra": 1}}),
        json!({"settings": {"clinical_scope": big}}),
        json!({"settings": "practice"}),
        json!({"settings": null, "name": "\u{0}"}),
        json!({"name": "Harbor\u{1b}[31m"}),
        json!({"name": ""}),
    ] {
        let (s, b) = call(&app, Method::PATCH, &path, Some(&owner), Some(&body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert_eq!(b["error"]["code"], "INPUT-0001", "{body}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("demo") && !message.contains("everyone"),
            "{message}"
        );
        assert_eq!(
            practice_row(&db, w.a.id).await,
            before,
            "{body} changed nothing"
        );
    }
    // The closed set itself works, and what is stored reads back whole.
    let (s, b) = call(
        &app,
        Method::PATCH,
        &path,
        Some(&owner),
        Some(&json!({"settings": {"clinical_scope": "practice"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["settings"], json!({"clinical_scope": "practice"}));
    let (s, b) = call(
        &app,
        Method::PATCH,
        &path,
        Some(&owner),
        Some(&json!({"settings": {}})),
    )
    .await;
    assert_eq!(
        (s, &b["settings"]),
        (StatusCode::OK, &json!({"clinical_scope": "care_team"}))
    );
    // The schema holds the same shape: not even the owner role can store another.
    let owner_store = db.owner().await;
    let mut su = db.superuser_unsafe().await;
    let refused =
        sqlx::query("update practice set settings = '{\"demo\": \"x\"}' where practice_id = $1")
            .bind(w.a.id)
            .execute(&mut su)
            .await
            .unwrap_err();
    assert_eq!(crate::util::db_code(&refused), "23514");
    // Every command that lists practices reads every row.
    assert_eq!(owner_store.list_practices().await.unwrap().len(), 2 + 1);
    owner_store.close().await;
}

/// A JSON value of any shape, with the strings that have broken parsers and databases before.
fn any_json() -> impl Strategy<Value = Value> {
    let nasty = prop_oneof![
        Just(String::new()),
        Just("\u{0}".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("\u{1b}[2J".to_owned()),
        Just("\u{feff}\u{202e}".to_owned()),
        Just("x".repeat(70_000)),
        Just("9".repeat(400)),
        Just("1e999".to_owned()),
        Just("2026-13-45".to_owned()),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
        Just("'; drop table practice; --".to_owned()),
        "\\PC{0,40}",
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(json!(u64::MAX)),
        nasty.prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the keys a route's schema names (so the values reach its validation), each
/// with a value of any shape, plus sometimes an unknown key.
fn shaped_object(keys: Vec<String>) -> impl Strategy<Value = Value> {
    let n = keys.len();
    (
        prop::collection::vec(prop::option::of(any_json()), n..=n),
        prop::option::of(any_json()),
    )
        .prop_map(move |(values, extra)| {
            let mut m = Map::new();
            for (k, v) in keys.iter().zip(values) {
                if let Some(v) = v {
                    m.insert(k.clone(), v);
                }
            }
            if let Some(e) = extra {
                m.insert("unknown_key".to_owned(), e);
            }
            Value::Object(m)
        })
}

/// The property names of a request body schema (following `$ref`s into the components).
fn body_keys(doc: &Value, op: &Value) -> Vec<String> {
    let mut schema = &op["requestBody"]["content"]["application/json"]["schema"];
    for _ in 0..4 {
        let Some(r) = schema["$ref"].as_str() else {
            break;
        };
        let name = r.trim_start_matches("#/components/schemas/");
        schema = &doc["components"]["schemas"][name];
    }
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

// issue 14.1 — property test over every route that takes a JSON body (from the API
// description): no input answers 5xx, and no input breaks the other practice (or this one).
#[tokio::test]
async fn no_json_body_answers_5xx_or_breaks_a_practice() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let (s, doc) = call(&app, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let b_owner = app.token(w.b.user("owner")).await;
    let b_clinician = app.token(w.b.user("clinician")).await;
    let b_practice = format!("/api/v1/practices/{}", w.b.id);
    let b_patient = format!("{b_practice}/patients/{}", w.b.patient);
    let (_, b_before) = call(&app, Method::GET, &b_practice, Some(&b_owner), None).await;
    let (_, b_patient_before) = call(&app, Method::GET, &b_patient, Some(&b_clinician), None).await;

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let mut routes = 0;
    let mut sent = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            routes += 1;
            let path = template
                .replace("{practice_id}", &w.a.id.to_string())
                .replace("{patient_id}", &w.a.patient.to_string());
            let path = regex_free_fill(&path);
            let method: Method = method.to_uppercase().parse().unwrap();
            let keys = body_keys(&doc, op);
            // Fresh tokens per route: a body that happens to end a session ends only these.
            let tokens = [
                app.token(w.a.user("owner")).await,
                app.token(w.a.user("clinician")).await,
                app.token(w.a.user("reception")).await,
            ];
            for i in 0..24 {
                let body = if i % 3 == 0 {
                    any_json().new_tree(&mut runner).unwrap().current()
                } else {
                    shaped_object(keys.clone())
                        .new_tree(&mut runner)
                        .unwrap()
                        .current()
                };
                let token = &tokens[i % tokens.len()];
                let res = app
                    .http
                    .request(method.clone(), app.url(&path))
                    .bearer_auth(token)
                    .header("if-match", "\"1\"")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                let text = res.text().await.unwrap();
                assert!(
                    !status.is_server_error(),
                    "{method} {template} answered {status} to {}: {text}",
                    body.to_string().chars().take(300).collect::<String>()
                );
                sent += 1;
            }
        }
    }
    assert!(
        routes >= 20,
        "the API description lists the JSON routes ({routes})"
    );
    assert!(sent >= routes * 24);

    // The other practice is as it was; this one still reads.
    let (s, b_after) = call(&app, Method::GET, &b_practice, Some(&b_owner), None).await;
    assert_eq!((s, &b_after), (StatusCode::OK, &b_before));
    let (s, p) = call(&app, Method::GET, &b_patient, Some(&b_clinician), None).await;
    assert_eq!((s, &p), (StatusCode::OK, &b_patient_before));
    let a_owner = app.token(w.a.user("owner")).await;
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}", w.a.id),
        Some(&a_owner),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // And every job over all practices still runs to the end.
    let owner = db.owner().await;
    assert_eq!(owner.list_practices().await.unwrap().len(), 3);
    let pass = owner.encrypt_existing(100, &mut |_, _| {}).await.unwrap();
    assert!(pass.is_complete(), "{:?}", pass.failed);
    owner.close().await;
}

/// Any other path parameter: an id that exists nowhere.
fn regex_free_fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(&uuid::Uuid::new_v4().to_string());
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}
