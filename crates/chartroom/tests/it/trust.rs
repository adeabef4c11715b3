//! Issue 20.7, the live trust page: `/trust.json` and `/trust` from a fixture evidence pack
//! (written and signed by the evidence crate, loaded as `serve --evidence-pack` loads it), the
//! installation log's latest checkpoint, backup recency from the installation log, the
//! security contact, the changelog; anonymous access; no PHI; a page that says plainly when
//! no pack is loaded; and `serve` refusing a pack whose signature does not hold.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

use audit::checkpoint::Checkpoint;
use audit::store::CheckpointStore as _;
use domain::AuditAction;
use evidence::pack::{self, Inputs, KEY_NAME};
use evidence::requirements::parse_requirements;
use evidence::results::parse_log;
use evidence::scan::{FilePlace, Scan, scan_source};
use futures::FutureExt as _;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::web_pages::client;

const CATALOG: &str = "\
| ID | Requirement | Proof | Source |
|---|---|---|---|
| AC-02 | Deny by default | [api] inventory | ASVS 8.2.1 |
| AUD-08 | Logs forwarded to a separate sink | [api] sink test | ASVS 16.4.3 |
";

/// A pack for the fixture catalog: AC-02 proven, AUD-08 pending with its reason.
fn fixture_pack() -> (PathBuf, evidence::Loaded) {
    let reqs = parse_requirements(CATALOG).unwrap();
    let mut scan = Scan::default();
    scan_source(
        "// req: AC-02\n#[tokio::test]\nasync fn every_route_is_guarded() {}\n",
        "chartroom",
        &FilePlace {
            target_root: "tests/it/main.rs".into(),
            modules: vec!["api_matrix".into()],
        },
        "crates/chartroom/tests/it/api_matrix.rs",
        &mut scan,
    );
    let results = parse_log(
        "     Running tests/it/main.rs (/t/deps/it-1)\ntest api_matrix::every_route_is_guarded ... ok\n",
    );
    let pending = [(
        "AUD-08".to_owned(),
        "events are not forwarded to a separate log sink yet".to_owned(),
    )]
    .into_iter()
    .collect();
    let built = pack::build(&Inputs {
        requirements: &reqs,
        requirements_sha256: pack::sha256_hex(CATALOG.as_bytes()),
        pending: &pending,
        scan: &scan,
        results: &results,
        commit: "0123456789abcdef".into(),
        generated_at: "2026-12-07T18:00:00Z".into(),
    });
    let dir = std::env::temp_dir().join(format!(
        "chartroom-it-trust-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let signer = audit::Signer::generate(KEY_NAME).unwrap();
    pack::write(&dir, &built, &signer).unwrap();
    let loaded = server::trust::load_pack(&dir).unwrap();
    (dir, loaded)
}

async fn start(db: &TestDb, pack: Option<evidence::Loaded>) -> TestApp {
    TestApp::start_adjusted(
        db.store().await,
        |_| {},
        |r| r,
        server::assistant::Assistant::default(),
        move |mut s| {
            s.trust = Arc::new(server::trust::Trust::new(
                pack,
                Some("chartroom-audit+00000000+AQ==".into()),
            ));
            s
        },
    )
    .await
}

/// Strings of `w`'s practices, members and patient that no public page may show.
async fn phi_of(app: &TestApp, w: &World) -> Vec<String> {
    let token = app.token(w.a.user("clinician")).await;
    let patient = testkit::read_patient(&app.store, &token, w.a.id, w.a.patient)
        .await
        .unwrap()
        .unwrap();
    let mut out = vec![
        format!("{} {}", patient.given_name, patient.family_name),
        w.a.patient.to_string(),
        w.a.id.to_string(),
        w.a.user("owner").to_string(),
        "Practice a".into(),
        "owner a".into(),
    ];
    out.extend(patient.phone.clone());
    out.extend(patient.email.clone());
    out
}

// req: OPS-07 — the trust page publishes the running build's evidence pack, with what is not
// done, the subprocessors, the security contact, the latest signed checkpoint of the
// installation log, backup recency and the changelog; anonymous; no PHI.
#[tokio::test]
async fn trust_json_and_page_publish_the_pack_and_no_phi() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let (dir, loaded) = fixture_pack();
    let app = start(&db, Some(loaded.clone())).await;

    // A signed checkpoint of the installation's log, and a backup on its log.
    let signer = audit::Signer::generate("chartroom-audit").unwrap();
    let note = signer
        .sign(&Checkpoint::new("chartroom/installation", 3, [7u8; 32]))
        .unwrap();
    audit::store::DirStore::new(&app.checkpoint_dir)
        .put(uuid::Uuid::nil(), &note, 3)
        .unwrap();
    db.owner()
        .await
        .audit_system_event(AuditAction::BackupCreate, json!({"archive_id": "t"}))
        .await
        .unwrap();

    let http = client();
    let res = http.get(app.url("/trust.json")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=300");
    let text = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let e = &doc["evidence"];
    assert_eq!(
        e["count_line"],
        "1/2 requirements proven (1 pending, 0 failed, 0 unproven)"
    );
    assert_eq!(e["commit"], "0123456789abcdef");
    assert_eq!(e["sha256"], loaded.sha256.as_str());
    assert_eq!(e["verifier_key"], loaded.verifier_key.as_str());
    assert_eq!(e["rows"][0]["id"], "AC-02");
    assert_eq!(e["rows"][0]["status"], "proven");
    assert_eq!(
        e["rows"][0]["tests"][0],
        json!({"name": "api_matrix::every_route_is_guarded", "outcome": "passed"})
    );
    assert_eq!(
        doc["not_done"],
        json!([{
            "id": "AUD-08",
            "requirement": "Logs forwarded to a separate sink",
            "status": "pending",
            "reason": "events are not forwarded to a separate log sink yet"
        }])
    );
    assert_eq!(
        doc["security"]["contacts"],
        json!(["mailto:security@test.example.invalid"])
    );
    assert_eq!(doc["audit_checkpoint"]["size"], 3);
    assert_eq!(doc["audit_checkpoint"]["note"], note.as_str());
    assert!(doc["backups"]["last_backup_at"].is_string(), "{doc:#}");
    assert!(doc["backups"]["last_restore_at"].is_null());
    assert!(doc["subprocessors"]["subprocessors"].is_array());
    assert!(
        doc["changelog"][0]["date"].as_str().unwrap() >= "2026-12-07",
        "newest first"
    );

    let res = http.get(app.url("/trust")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key(CONTENT_SECURITY_POLICY));
    assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=300");
    let page = res.text().await.unwrap();
    for fact in [
        "1/2 requirements proven (1 pending, 0 failed, 0 unproven)",
        "id=\"not-done-AUD-08\"",
        "Not proven yet",
        "events are not forwarded to a separate log sink yet",
        "api_matrix::every_route_is_guarded",
        loaded.sha256.as_str(),
        "mailto:security@test.example.invalid",
        "covers 3 events",
        "Last backup archive written: <time",
        "href=\"/trust.json\"",
    ] {
        assert!(page.contains(fact), "{fact} missing from the page");
    }
    for phi in phi_of(&app, &world).await {
        assert!(!text.contains(&phi), "trust.json shows {phi}");
        assert!(!page.contains(&phi), "the trust page shows {phi}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

// req: OPS-07 — without a pack the page claims nothing and says so.
#[tokio::test]
async fn without_a_pack_the_trust_page_says_so() {
    let db = TestDb::new().await;
    let app = start(&db, None).await;
    let http = client();
    let doc: Value = http
        .get(app.url("/trust.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["evidence"].is_null());
    assert_eq!(doc["not_done"], json!([]));
    assert!(doc["audit_checkpoint"].is_null());
    assert!(doc["backups"]["last_backup_at"].is_null());
    let page = http
        .get(app.url("/trust"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("No evidence pack is loaded"));
    assert!(page.contains("Unknown without an evidence pack."));
    assert!(page.contains("No checkpoint of this installation's log has been signed yet."));
    assert!(!page.contains("requirements proven"));
}

// req: OPS-07 — a pack whose bytes changed after signing is refused (serve does not start
// with it).
#[tokio::test]
async fn a_changed_pack_is_refused() {
    let (dir, _) = fixture_pack();
    let json_path = dir.join(pack::JSON_FILE);
    let changed = std::fs::read_to_string(&json_path)
        .unwrap()
        .replace("\"pending\"", "\"proven\"");
    std::fs::write(&json_path, changed).unwrap();
    let err = server::trust::load_pack(&dir).unwrap_err();
    assert!(err.contains("signature"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

// req: WEB-01 — the trust page in Chromium: zero CSP violations, zero serious or critical
// accessibility violations.
#[tokio::test]
async fn trust_page_in_the_browser() {
    let db = TestDb::new().await;
    let (dir, loaded) = fixture_pack();
    let app = start(&db, Some(loaded)).await;
    let mut b = crate::web_browser::Browser::start().await;
    let outcome = AssertUnwindSafe(async {
        b.driver.goto(app.url("/trust")).await.unwrap();
        b.check_page("trust").await;
    })
    .catch_unwind()
    .await;
    let quit = b.driver.quit().await;
    let _ = std::fs::remove_dir_all(dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}
