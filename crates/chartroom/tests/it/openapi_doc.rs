//! The API description is true (issue 14.7): path parameters match their templates, schema
//! names are unique and every `$ref` resolves, a security scheme is applied to every
//! authenticated route, the error answers routes give are documented (checked statically
//! here, and against the real server: the bad-input sweep below and the authorization matrix
//! in `api_matrix`), and every route the router serves is in the document.
//! req: AC-02 — the route inventory (the description a scanner can drive is a step towards
//! OPS-02, which needs the scanners themselves)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;
use testkit::{TestApp, TestDb, World};

use crate::util::{call, source_files};

/// Routes that need no session.
const PUBLIC: &[&str] = &[
    "post /api/v1/auth/login",
    "post /api/v1/auth/passkey/begin",
    "post /api/v1/auth/passkey/finish",
    "get /api/v1/openapi.json",
    "get /api/v1/public/practices/{practice_id}/booking",
    "post /api/v1/public/practices/{practice_id}/booking",
    "get /api/v1/public/practices/{practice_id}/booking/slots",
    "post /api/v1/public/practices/{practice_id}/waitlist",
];

/// One malformed request: what is wrong, the path, and a body with its content type.
type Try = (String, String, Option<(&'static str, &'static str)>);

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn doc() -> Value {
    serde_json::to_value(server::openapi()).unwrap()
}

/// (method, path, operation) for every operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if METHODS.contains(&m.as_str()) {
                out.push((m.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn template_params(path: &str) -> BTreeSet<String> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

fn params_in<'a>(op: &'a Value, place: &str) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["in"] == place).collect())
        .unwrap_or_default()
}

fn has(op: &Value, status: &str) -> bool {
    op["responses"].get(status).is_some()
}

/// Every `$ref` in `v`, with where it was found.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push((at.to_owned(), v.as_str().unwrap_or("").to_owned()));
                } else {
                    refs(v, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

// issue 14.7 — req: AC-02
#[test]
fn the_api_description_is_valid_and_complete() {
    let doc = doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut problems = Vec::new();

    // Schema names are unique (one name, one shape) and every $ref resolves.
    for name in server::openapi_schema_conflicts() {
        problems.push(format!(
            "schema name {name} is given to two different types"
        ));
    }
    let mut found = Vec::new();
    refs(&doc, "", &mut found);
    assert!(!found.is_empty());
    for (at, r) in found {
        let target = r.strip_prefix('#').and_then(|pointer| doc.pointer(pointer));
        if target.is_none() {
            problems.push(format!("{at}: $ref {r} does not resolve"));
        }
    }

    // A bearer scheme and the session cookie.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session_cookie"]["type"], "apiKey");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(
        schemes["session_cookie"]["name"],
        server::extract::SESSION_COOKIE
    );

    let mut operation_ids = BTreeMap::new();
    for (m, path, op) in operations(&doc) {
        let label = format!("{m} {path}");
        if let Some(id) = op["operationId"].as_str()
            && let Some(other) = operation_ids.insert(id.to_owned(), label.clone())
        {
            problems.push(format!("{label}: operationId {id} also used by {other}"));
        }
        // Path parameters: exactly the template's, each required; query parameters are not
        // in the template.
        let template = template_params(&path);
        let in_path: BTreeSet<String> = params_in(&op, "path")
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        if in_path != template {
            problems.push(format!(
                "{label}: path parameters {in_path:?}, template has {template:?}"
            ));
        }
        for p in params_in(&op, "path") {
            if p["required"] != true {
                problems.push(format!(
                    "{label}: path parameter {} not required",
                    p["name"]
                ));
            }
        }
        for p in params_in(&op, "query") {
            if template.contains(p["name"].as_str().unwrap()) {
                problems.push(format!("{label}: {} is both path and query", p["name"]));
            }
        }
        let mut names = BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            if !names.insert((p["in"].to_string(), p["name"].to_string())) {
                problems.push(format!("{label}: parameter {} listed twice", p["name"]));
            }
        }

        // Security: public routes say so; every other route needs a session.
        let public = PUBLIC.contains(&label.as_str());
        let security = op["security"].as_array().cloned().unwrap_or_default();
        if public {
            if security != [serde_json::json!({})] {
                problems.push(format!("{label}: public, but security is {security:?}"));
            }
        } else {
            let schemes_required: BTreeSet<String> = security
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|o| o.keys().cloned())
                .collect();
            if schemes_required
                != BTreeSet::from(["bearer".to_owned(), "session_cookie".to_owned()])
            {
                problems.push(format!("{label}: security {security:?}"));
            }
            if !has(&op, "401") {
                problems.push(format!("{label}: authenticated but no 401"));
            }
        }

        // The answers every route of a kind gives.
        // issue 15.6: the request timeout answers 503 on every route.
        let mut needed = vec!["500", "503"];
        if path.starts_with("/api/v1/practices/{practice_id}") {
            needed.extend(["403", "404"]);
        }
        let parses = op.get("requestBody").is_some()
            || !params_in(&op, "query").is_empty()
            || template.iter().any(|p| p != "practice_id");
        if parses {
            needed.push("400");
        }
        if op.get("requestBody").is_some() {
            needed.extend(["413", "415"]);
        }
        for status in needed {
            if !has(&op, status) {
                problems.push(format!("{label}: {status} not documented"));
            }
        }
        // Some success answer, and every documented answer is a real status.
        let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        if !statuses.iter().any(|s| s.starts_with('2')) {
            problems.push(format!("{label}: no success answer"));
        }
        for s in statuses {
            if !(s.len() == 3 && s.parse::<u16>().is_ok_and(|n| (100..600).contains(&n))) {
                problems.push(format!("{label}: odd status {s}"));
            }
        }
    }

    // The FHIR export is a JSON object (a Bundle), not a string.
    let fhir = &doc["paths"]["/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/fhir"]
        ["get"]["responses"]["200"]["content"]["application/fhir+json"]["schema"];
    assert_eq!(fhir["type"], "object", "{fhir}");
    // The two grant kinds are two schemas.
    let components = doc["components"]["schemas"].as_object().unwrap();
    assert!(
        components.contains_key("BreakGlassGrantView")
            && components.contains_key("SupportGrantView")
    );
    assert!(!components.contains_key("GrantView"));

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// issue 14.7 — req: AC-02 (every route the router serves is described)
#[test]
fn every_route_the_router_serves_is_in_the_description() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut files = Vec::new();
    source_files(&src, &["rs"], &mut files);
    let mut described = 0;
    let mut raw_routes = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        described += text.matches("#[utoipa::path(").count();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                if code.contains(call) {
                    raw_routes.push(format!("{}:{}: {}", f.display(), i + 1, code));
                }
            }
        }
    }
    // Routes added outside the registrations are outside `/api/v1`: the health check,
    // security.txt, the published subprocessor list and its feed, the trust document, the providers' signed
    // webhooks (called by SMS and mail vendors, verified by signature, not by session), and
    // the benchmark-only route (never in the server binary).
    let allowed = [
        "\"/webhooks/{provider}\"",
        "\"/webhooks/stripe\"",
        "\"/healthz\"",
        "\"/.well-known/security.txt\"",
        "\"/.well-known/subprocessors.json\"",
        "\"/subprocessors.atom\"",
        "\"/trust.json\"",
        "\"/bench/unauthenticated/",
    ];
    let joined = raw_routes.join("\n");
    let unexplained: Vec<&String> = raw_routes
        .iter()
        .filter(|r| !allowed.iter().any(|a| r.contains(a)))
        .collect();
    // A `.route(` whose path is on the next line: match the path there instead.
    let mut unexplained_paths = Vec::new();
    for r in unexplained {
        let (file, rest) = r.split_once(':').unwrap();
        let line: usize = rest.split(':').next().unwrap().parse().unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        let next = text.lines().nth(line).unwrap_or("");
        if !allowed.iter().any(|a| next.contains(a)) {
            unexplained_paths.push(r.clone());
        }
    }
    assert!(
        unexplained_paths.is_empty(),
        "routes outside the described registrations:\n{}\n(all: {joined})",
        unexplained_paths.join("\n")
    );
    // Every described handler is routed: the document has one operation per description.
    let doc = doc();
    assert_eq!(
        operations(&doc).len(),
        described,
        "each #[utoipa::path] handler must be registered (and only once)"
    );
}

// issue 14.7: every answer to malformed input, from the real server, is documented.
#[tokio::test]
async fn answers_to_bad_input_are_documented() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    // A member of A holding every role, so every practice route reaches its input parsing.
    let mut su = db.superuser_unsafe().await;
    sqlx::query("update membership set roles = array['owner','admin','clinician','reception'] where practice_id = $1 and user_id = $2")
        .bind(w.a.id)
        .bind(w.a.user("owner"))
        .execute(&mut su)
        .await
        .unwrap();
    let token = app.token(w.a.user("owner")).await;
    let (_, served) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/openapi.json",
        None,
        None,
    )
    .await;
    let doc = doc();
    assert_eq!(served, doc, "the served document is the described one");

    let mut problems = Vec::new();
    for (m, path, op) in operations(&doc) {
        let template = template_params(&path);
        let fill = |bad: Option<&str>| {
            let mut p = path.replace("{practice_id}", &w.a.id.to_string());
            for name in &template {
                let value = if Some(name.as_str()) == bad {
                    "not-a-uuid".to_owned()
                } else if name == "credential_id" {
                    "AAAAAAAAAAAAAAAAAAAAAA".to_owned()
                } else {
                    uuid::Uuid::new_v4().to_string()
                };
                p = p.replace(&format!("{{{name}}}"), &value);
            }
            p
        };
        let mut tries: Vec<Try> = Vec::new();
        if op.get("requestBody").is_some() {
            tries.push((
                "malformed JSON".into(),
                fill(None),
                Some(("application/json", "{\"x\":")),
            ));
            tries.push((
                "a form body".into(),
                fill(None),
                Some(("application/x-www-form-urlencoded", "x=1")),
            ));
        }
        for name in template.iter().filter(|n| *n != "practice_id") {
            tries.push((format!("malformed {name}"), fill(Some(name)), None));
        }
        if !params_in(&op, "query").is_empty() {
            tries.push((
                "an unknown query parameter".into(),
                format!("{}?no_such_parameter=1", fill(None)),
                None,
            ));
        }
        for (what, concrete, body) in tries {
            let mut req = app
                .http
                .request(m.to_uppercase().parse().unwrap(), app.url(&concrete))
                .bearer_auth(&token);
            if let Some((ctype, text)) = body {
                req = req.header("content-type", ctype).body(text);
            }
            let status = req.send().await.unwrap().status();
            if status.is_server_error() {
                problems.push(format!("{m} {path} with {what}: {status}"));
            }
            if !has(&op, status.as_str()) {
                problems.push(format!(
                    "{m} {path} with {what}: answered {status}, not documented"
                ));
            }
            if status == StatusCode::OK || status == StatusCode::CREATED {
                problems.push(format!("{m} {path} with {what}: accepted ({status})"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
