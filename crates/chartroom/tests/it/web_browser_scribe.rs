//! Issue 18, in Chromium, from a recorded visit to a signed note: the capture's chunk is
//! transcribed by the practice's transcription provider (a loopback stand-in of the
//! OpenAI-compatible API, self-hosted), the clinician drafts the note on the visit's drafts
//! page through the practice's drafting provider (a stand-in of chat completions), sees every
//! sentence with links to the segments it cites and the one unsupported sentence flagged,
//! accepts it, makes the note and signs it with a fresh authenticator code; the signed note
//! shows what changed from the draft. (Recording in the browser itself, with the live
//! indicator, is `web_browser_capture`.) Each page: zero CSP violations, zero serious axe-core
//! findings, a screenshot.

use std::panic::AssertUnwindSafe;

use domain::Clock as _;
use futures::FutureExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::standins::{Reply, StandIn, StandInSegment};
use testkit::{TestApp, TestDb, World};
use thirtyfour::By;

use crate::capture_api::tone_wav;
use crate::web_browser::{Browser, screenshot_dir, sign_in_enrolling};

async fn register(db: &TestDb, world: &World, purpose: &str, adapter: &str, url: &str) {
    let mut su = db.superuser_unsafe().await;
    sqlx::query(
        "insert into ai_provider (practice_id, provider_id, label, adapter, purpose, base_url,
            model, hosting, vendor, training_disabled, enabled, created_at, updated_at)
         values ($1, gen_random_uuid(), 'Practice server', $2, $3, $4, 'model-x', 'self_hosted',
            'Operator', true, true, now(), now())",
    )
    .bind(world.a.id)
    .bind(adapter)
    .bind(purpose)
    .bind(url)
    .execute(&mut su)
    .await
    .unwrap();
}

// req: SCR-04, SCR-05 — in the browser: transcript, draft with evidence links, the flagged
// sentence accepted one by one, the note signed with step-up.
#[tokio::test]
async fn a_clinician_drafts_accepts_and_signs_from_a_transcript() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let transcriber = StandIn::openai().await;
    let drafter = StandIn::openai().await;
    register(
        &db,
        &world,
        "transcription",
        "openai_transcription",
        &transcriber.url(),
    )
    .await;
    register(&db, &world, "drafting", "openai_chat", &drafter.url()).await;
    let email = crate::util::email_of(&db, world.a.user("clinician")).await;
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(flow(
        &mut b,
        &db,
        &app,
        &world,
        &email,
        &transcriber,
        &drafter,
    ))
    .catch_unwind()
    .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

async fn api(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Value {
    let (s, v) = crate::util::call(app, method, path, Some(token), body).await;
    assert!(s.is_success(), "{path}: {s} {v}");
    v
}

#[allow(clippy::too_many_lines, reason = "one flow, step by step")]
async fn flow(
    b: &mut Browser,
    db: &TestDb,
    app: &TestApp,
    world: &World,
    email: &str,
    transcriber: &StandIn,
    drafter: &StandIn,
) {
    let p = world.a.id;
    let base = format!("/api/v1/practices/{p}");
    let token = app.token(world.a.user("clinician")).await;
    // A recorded visit: consent, capture, one chunk, stop (the recorder's own routes).
    let v = api(
        app,
        Method::POST,
        &format!("{base}/patients/{}/visits", world.a.patient),
        &token,
        Some(&json!({})),
    )
    .await;
    let visit = v["visit_id"].as_str().unwrap().to_owned();
    api(
        app,
        Method::POST,
        &format!("{base}/visits/{visit}/consents"),
        &token,
        Some(&json!({"consented_by": "patient", "method": "verbal"})),
    )
    .await;
    let c = api(
        app,
        Method::POST,
        &format!("{base}/visits/{visit}/captures"),
        &token,
        None,
    )
    .await;
    let capture = c["capture_id"].as_str().unwrap().to_owned();
    let (s, _) =
        crate::capture_api::put_chunk(app, &base, &token, &capture, 0, &tone_wav(4_000, 5)).await;
    assert!(s.is_success());
    api(
        app,
        Method::POST,
        &format!("{base}/captures/{capture}/stop"),
        &token,
        None,
    )
    .await;

    // The transcription job's pass (owner role) through the practice's provider.
    transcriber.script(Reply::Transcript(vec![
        StandInSegment::speech(0.0, 1.8, "Gums are tender on the lower left."),
        StandInSegment::speech(1.8, 3.9, "Light calculus on the lower incisors."),
    ]));
    let owner = db.owner().await;
    let report = server::jobs::transcription::transcribe_pending(
        &owner,
        app.blobs.as_ref().unwrap(),
        &server::assistant::Assistant::default(),
        Some(p),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    owner.close().await;
    assert_eq!(transcriber.requests(), 1, "{report:?}");
    let t = api(
        app,
        Method::GET,
        &format!("{base}/captures/{capture}/transcript"),
        &token,
        None,
    )
    .await;
    let segments: Vec<String> = t["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["segment_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(segments.len(), 2, "{t}");
    // The drafting provider answers with one supported sentence and one the transcript does
    // not support (a drug and a dose nobody said).
    drafter.script(Reply::Draft(json!({"sentences": [
        {"section": "subjective", "text": "Gums are tender on the lower left.", "evidence": [segments[0]]},
        {"section": "objective", "text": "Light calculus on the lower incisors.", "evidence": [segments[1]]},
        {"section": "plan", "text": "Prescribed amoxicillin 500 mg.", "evidence": [segments[1]]}
    ]})));

    b.driver.goto(app.url("/app")).await.unwrap();
    let key = sign_in_enrolling(
        b,
        app,
        email,
        [
            "100-draft-enroll-start",
            "101-draft-enroll-qr",
            "102-draft-recovery-codes",
            "103-draft-home",
        ],
    )
    .await;
    let drafts = format!("/app/practices/{p}/visits/{visit}/drafts");
    b.driver.goto(app.url(&drafts)).await.unwrap();
    b.wait_for_text("h1", "Note drafts").await;
    b.check_page("104-draft-list-empty").await;
    b.click("main form button[type=submit]").await;
    // "Note drafts" (the page clicked from) contains "Note draft": wait for the new draft's
    // badge, which only the draft page shows, before counting the provider's requests.
    b.wait_for_text(".badge", "AI-written").await;
    b.wait_for_text("h1", "Note draft").await;
    assert_eq!(drafter.requests(), 1);
    // Every sentence links to the segments it cites; the unsupported one is flagged.
    let cites = b.driver.find_all(By::Css("a.cite")).await.unwrap();
    assert_eq!(cites.len(), 3);
    for c in &cites {
        let href = c.attr("href").await.unwrap().unwrap();
        assert!(
            segments
                .iter()
                .any(|s| href.ends_with(&format!("#seg-{s}"))),
            "{href}"
        );
    }
    let flagged = b
        .driver
        .find_all(By::Css("li.sentence.flagged"))
        .await
        .unwrap();
    assert_eq!(flagged.len(), 1);
    let text = flagged[0].text().await.unwrap();
    assert!(text.contains("amoxicillin"), "{text}");
    b.wait_for_text(".notice", "1 flagged sentence").await;
    b.check_page("105-draft-flagged").await;
    let draft_path = b.path().await;

    // Accept the flagged sentence (signing waits for it: `scribe_drafting` proves the 409),
    // then make the note.
    b.click("li.sentence.flagged form button[type=submit]")
        .await;
    b.wait_for_path(&draft_path).await;
    b.wait_for_text("li.sentence.flagged .accepted", "Accepted")
        .await;
    assert!(
        b.driver
            .find_all(By::Css(".notice"))
            .await
            .unwrap()
            .is_empty()
    );
    b.check_page("106-draft-accepted").await;
    b.click("form[action$='/note'] button[type=submit]").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let note_path = loop {
        let path = b.path().await;
        if path.contains("/notes/") {
            break path;
        }
        assert!(std::time::Instant::now() < deadline, "no note page: {path}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    b.check_page("107-draft-note").await;

    // Sign with a fresh authenticator code (past the step-up window).
    app.clock
        .advance(app.identity.step_up_window + chrono::Duration::seconds(31));
    b.click("form.sign button[type=submit]").await;
    b.wait_for_text("h1", "Confirm it is you").await;
    b.fill("#code", &key.code_at(app.clock.now())).await;
    b.click("main form button[type=submit]").await;
    b.wait_for_path(&note_path).await;
    b.wait_for_text("#note-status", "Signed").await;
    b.check_page("108-draft-note-signed").await;
}
