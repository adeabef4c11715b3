//! No PHI in the browser's storage or caches, in Chromium: after a clinician's session with a
//! patient's pages, a note typed and autosaved, and a search, the origin's `localStorage`,
//! `IndexedDB`, Cache Storage and service workers hold nothing, and `sessionStorage` only htmx's
//! current path (ids only) — nothing of the patient, during the session and after sign-out;
//! and every page with PHI is `Cache-Control: no-store`.
//! req: WEB-03

use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};
use thirtyfour::prelude::*;

use crate::util::{call, email_of};
use crate::web_browser::{Browser, in_browser, sign_in_enrolling};

/// What the note holds: typed in the page and saved by the API.
const NOTE_CANARY: &str = "Canary-mesial-caries-Wq4";
const TYPED_CANARY: &str = "Typed-canary-distal-Jx2";

/// Everything the origin keeps in the browser.
async fn storage(b: &Browser) -> Value {
    let r = b
        .driver
        .execute_async(
            "const done = arguments[arguments.length - 1];
             (async () => {
               const dump = (s) => { const o = {}; for (let i = 0; i < s.length; i++) {
                 const k = s.key(i); o[k] = s.getItem(k); } return o; };
               const out = { local: dump(window.localStorage), session: dump(window.sessionStorage),
                             idb: [], caches: [], workers: 0 };
               if (indexedDB.databases) { out.idb = (await indexedDB.databases()).map(d => d.name); }
               if (window.caches) { out.caches = await caches.keys(); }
               if (navigator.serviceWorker) {
                 out.workers = (await navigator.serviceWorker.getRegistrations()).length; }
               return out;
             })().then(done, e => done({ error: String(e) }));",
            vec![],
        )
        .await
        .unwrap();
    r.json().clone()
}

/// The one entry the origin may keep: htmx's note of the current path for its history
/// handling (`sessionStorage`, this tab only), a path of ids — never a name, text or query.
const HTMX_PATH_KEY: &str = "htmx-current-path-for-history";

fn assert_empty(s: &Value, canaries: &[&str], when: &str) {
    assert!(s.get("error").is_none(), "{when}: {s}");
    assert_eq!(s["local"], json!({}), "{when}: localStorage");
    for (k, v) in s["session"].as_object().unwrap() {
        assert_eq!(k, HTMX_PATH_KEY, "{when}: sessionStorage holds {k}");
        let path = v.as_str().unwrap();
        assert!(
            path.starts_with("/app/")
                && !path.contains('?')
                && path.split('/').all(|seg| seg.is_empty()
                    || uuid::Uuid::parse_str(seg).is_ok()
                    || seg.chars().all(|c| c.is_ascii_lowercase() || c == '-')),
            "{when}: {k} = {path}"
        );
    }
    assert_eq!(s["idb"], json!([]), "{when}: IndexedDB");
    assert_eq!(s["caches"], json!([]), "{when}: Cache Storage");
    assert_eq!(s["workers"], json!(0), "{when}: service workers");
    let text = s.to_string();
    for c in canaries {
        assert!(!text.contains(c), "{when}: {c} in browser storage");
    }
}

#[tokio::test]
async fn browser_storage_holds_no_phi_during_or_after_a_session() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let clinician = w.a.user("clinician");
    let email = email_of(&db, clinician).await;
    let token = app.token(clinician).await;
    let patient = testkit::read_patient(&app.store, &token, p, w.a.patient)
        .await
        .unwrap()
        .unwrap();
    let (s, note) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/practices/{p}/patients/{}/notes", w.a.patient),
        Some(&token),
        Some(&json!({"content": {"subjective": NOTE_CANARY}})),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{note}");
    let note_id = note["note_id"].as_str().unwrap().to_owned();
    let canaries = [
        patient.given_name.as_str(),
        patient.family_name.as_str(),
        NOTE_CANARY,
        TYPED_CANARY,
    ];
    let pages = [
        format!("/app/practices/{p}/patients"),
        format!("/app/practices/{p}/patients/{}", w.a.patient),
        format!("/app/practices/{p}/patients/{}/chart", w.a.patient),
        format!("/app/practices/{p}/notes/{note_id}/history"),
        format!("/app/practices/{p}/notes/{note_id}"),
    ];

    // Every page with PHI tells the browser not to store it.
    for path in &pages {
        let res = app
            .http
            .get(app.url(path))
            .header(
                reqwest::header::COOKIE,
                format!("{}={token}", server::extract::SESSION_COOKIE),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::OK, "{path}");
        assert_eq!(
            res.headers()["cache-control"].to_str().unwrap(),
            "no-store",
            "{path}"
        );
    }

    in_browser(async |b| {
        b.driver.goto(app.url("/app")).await.unwrap();
        sign_in_enrolling(
            b,
            &app,
            &email,
            [
                "storage-01-enroll",
                "storage-02-qr",
                "storage-03-codes",
                "storage-04-home",
            ],
        )
        .await;
        for path in &pages {
            b.driver.goto(app.url(path)).await.unwrap();
            b.wait_for_path(path).await;
        }
        // On the note: the page shows the note, a typed change autosaves.
        let source = b.driver.source().await.unwrap();
        assert!(source.contains(NOTE_CANARY), "the note page shows the note");
        b.type_keys("#objective", TYPED_CANARY).await;
        b.wait_for_text("#save-state", "Draft saved (version").await;
        // A search on the patients page (htmx swaps the rows in).
        b.driver
            .goto(app.url(&format!("/app/practices/{p}/patients")))
            .await
            .unwrap();
        if let Ok(q) = b.driver.find(By::Css("input[type=search]")).await {
            q.send_keys(&patient.family_name[..3]).await.unwrap();
            b.wait_for_text("main", &patient.family_name).await;
        }
        // Back and forward through the history (htmx's history cache is off).
        b.driver.back().await.unwrap();
        b.driver.forward().await.unwrap();
        assert_empty(&storage(b).await, &canaries, "during the session");

        b.click("form.sign-out button").await;
        b.wait_for_path("/app/sign-in").await;
        assert_empty(&storage(b).await, &canaries, "after sign-out");
        // The back button after sign-out shows no PHI: the page is fetched again (no-store)
        // and the server sends the sign-in page.
        b.driver.back().await.unwrap();
        let source = b.driver.source().await.unwrap();
        for c in &canaries {
            assert!(!source.contains(c), "{c} shown after sign-out");
        }
    })
    .await;
}
