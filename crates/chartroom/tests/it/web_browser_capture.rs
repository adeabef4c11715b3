//! Issue 18, in Chromium with a fake microphone fed from a WAV file (synthesized here): a
//! clinician records the patient's consent on the visit page, records, sees the live
//! indicator on every page visited in a second tab while live (the recorder keeping its
//! chunks through a network drop and sending them in order after it), stops, and the
//! indicator is gone from both tabs within a second; the chunks are stored (encrypted) and
//! the capture is stopped. Each page: zero CSP violations, zero serious or critical axe-core violations, a
//! screenshot (helpers of `web_browser`).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::capture_api::tone_wav;
use crate::web_browser::{Browser, screenshot_dir, sign_in_enrolling};

/// The indicator of the current page: (shown, state, text, gone-at ms).
async fn indicator(b: &Browser) -> Value {
    b.driver
        .execute(
            "const e = document.getElementById('rec-indicator');
             return e ? { present: true, shown: !e.hidden, state: e.dataset.state,
                          text: e.innerText, goneAt: Number(e.dataset.goneAt || 0) }
                      : { present: false };",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .clone()
}

async fn wait_for<F: Fn(&Value) -> bool>(b: &Browser, what: &str, ok: F) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = indicator(b).await;
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn recorder(b: &Browser) -> Value {
    b.driver
        .execute(
            "const r = document.getElementById('recorder');
             return { state: r.dataset.state, uploaded: Number(r.dataset.uploaded || 0),
                      queued: Number(r.dataset.queued || 0),
                      stoppedAt: Number(r.dataset.stoppedAt || 0),
                      message: document.getElementById('rec-message').textContent };",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .clone()
}

// req: SCR-02 — in Chromium with a fake microphone: consent, record, the indicator on every
// page visited while live (in a second tab), stop, the indicator gone within 1 s in both
// tabs; chunks stored and the capture stopped. Also SCR-01 in the browser: the recorder
// refuses to start before the consent is recorded (the server says so).
#[tokio::test]
async fn a_clinician_records_a_visit_and_the_indicator_follows() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let email = crate::util::email_of(&db, world.a.user("clinician")).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("capture-audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join(format!("tone-{}.wav", uuid::Uuid::new_v4().simple()));
    std::fs::write(&wav, tone_wav(20_000, 3)).unwrap();
    let mut b = Browser::start_with(&[
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        &format!("--use-file-for-fake-audio-capture={}", wav.display()),
        "--autoplay-policy=no-user-gesture-required",
    ])
    .await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(flow(&mut b, &app, &world, &email))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    let _ = std::fs::remove_file(&wav);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

#[allow(clippy::too_many_lines, reason = "one flow, step by step")]
async fn flow(b: &mut Browser, app: &TestApp, world: &World, email: &str) {
    let p = world.a.id;
    let token = app.token(world.a.user("clinician")).await;
    let (s, v) = crate::util::call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/patients/{}/visits", world.a.patient),
        Some(&token),
        Some(&json!({})),
    )
    .await;
    assert!(s.is_success(), "{v}");
    let visit = v["visit_id"].as_str().unwrap().to_owned();
    b.driver.goto(app.url("/app")).await.unwrap();
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "90-scribe-enroll-start",
            "91-scribe-enroll-qr",
            "92-scribe-recovery-codes",
            "93-scribe-home",
        ],
    )
    .await;
    let visit_page = format!("/app/practices/{p}/visits/{visit}");
    b.driver.goto(app.url(&visit_page)).await.unwrap();
    b.wait_for_text("h1", "Visit").await;
    let v = indicator(b).await;
    assert_eq!(v["present"], true, "clinicians have the indicator");
    assert_eq!(v["shown"], false, "nothing is recorded yet: {v}");
    b.check_page("94-scribe-visit").await;

    // Without consent the server refuses, and the page says so.
    b.click("#rec-start").await;
    b.wait_for_text("#rec-message", "consent").await;
    assert_eq!(indicator(b).await["shown"], false);

    // Consent (patient, verbal), then record.
    b.click("#consent-record").await;
    b.wait_for_text("#consent-active", "the patient").await;
    b.check_page("95-scribe-consent").await;
    b.click("#rec-start").await;
    let v = wait_for(b, "the indicator shows the recording", |v| {
        v["shown"] == true && v["state"] == "live"
    })
    .await;
    assert!(v["text"].as_str().unwrap().contains("Recording"), "{v}");
    // The first chunk (about 5 s of audio) reaches the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = recorder(b).await;
        if r["uploaded"].as_i64().unwrap() >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no chunk uploaded: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Only the buttons that apply are shown.
    let shown = b
        .driver
        .execute(
            "return ['rec-start', 'rec-pause', 'rec-resume', 'rec-stop'].map(id =>
               getComputedStyle(document.getElementById(id)).display !== 'none');",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .clone();
    assert_eq!(shown, json!([false, true, false, true]));
    // Pause and resume: the indicator follows.
    b.click("#rec-pause").await;
    let v = wait_for(b, "paused", |v| v["state"] == "paused").await;
    assert!(v["text"].as_str().unwrap().contains("Paused"), "{v}");
    b.click("#rec-resume").await;
    wait_for(b, "live again", |v| v["state"] == "live").await;
    // A network drop: the chunks cut meanwhile stay in memory and go, in order, once the
    // network is back (the server takes a resend of an accepted chunk as a no-op).
    let before = recorder(b).await["uploaded"].as_i64().unwrap();
    let offline = |on: bool| json!({ "offline": on, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 });
    b.driver
        .cdp()
        .send_raw("Network.enable", json!({}))
        .await
        .unwrap();
    b.driver
        .cdp()
        .send_raw("Network.emulateNetworkConditions", offline(true))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = recorder(b).await;
        if r["queued"].as_i64().unwrap_or(0) >= 1
            && r["message"].as_str().unwrap().contains("Connection lost")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no chunk kept while offline: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.driver
        .cdp()
        .send_raw("Network.emulateNetworkConditions", offline(false))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = recorder(b).await;
        if r["queued"].as_i64().unwrap_or(1) == 0 && r["uploaded"].as_i64().unwrap() > before {
            break;
        }
        assert!(Instant::now() < deadline, "the kept chunks never went: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A chart panel opens in place (htmx): the recorder keeps going.
    b.click("#panel-notes").await;
    b.wait_for_text("#panel", "Notes").await;
    assert_eq!(recorder(b).await["state"], "live");
    b.check_page("96-scribe-recording").await;

    // A second tab: every page visited shows the indicator while live.
    let first = b.driver.window().await.unwrap();
    let second = b.driver.new_tab().await.unwrap();
    b.driver.switch_to_window(second.clone()).await.unwrap();
    // The CSP violation collector is installed per tab.
    b.driver
        .cdp()
        .send_raw(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": crate::web_browser::COLLECTOR }),
        )
        .await
        .unwrap();
    let pages = [
        (
            format!("/app/practices/{p}/patients"),
            "97-scribe-live-patients",
        ),
        (
            format!("/app/practices/{p}/schedule"),
            "98-scribe-live-schedule",
        ),
        (
            format!("/app/practices/{p}/patients/{}/chart", world.a.patient),
            "99-scribe-live-chart",
        ),
        (
            format!("/app/practices/{p}/patients/{}/perio", world.a.patient),
            "99a-scribe-live-perio",
        ),
    ];
    for (path, shot) in &pages {
        b.driver.goto(app.url(path)).await.unwrap();
        let v = indicator(b).await;
        assert_eq!(v["shown"], true, "{path}: first paint shows it: {v}");
        assert_eq!(v["state"], "live", "{path}: {v}");
        assert!(
            v["text"].as_str().unwrap().contains("Recording"),
            "{path}: {v}"
        );
        b.check_page(shot).await;
    }
    // Pages outside a practice (home, account) ask the server as they load.
    for (path, shot) in [
        ("/app", "99d-scribe-live-home"),
        ("/app/account", "99e-scribe-live-account"),
    ] {
        b.driver.goto(app.url(path)).await.unwrap();
        let v = wait_for(b, path, |v| v["shown"] == true && v["state"] == "live").await;
        assert!(
            v["text"].as_str().unwrap().contains("Recording"),
            "{path}: {v}"
        );
        b.check_page(shot).await;
    }
    // The patient-facing status screen: big "Recording", no patient data.
    let (_, caps) = crate::util::call(
        app,
        Method::GET,
        &format!("/api/v1/practices/{p}/visits/{visit}/captures"),
        Some(&token),
        None,
    )
    .await;
    let capture = caps[0]["capture_id"].as_str().unwrap().to_owned();
    b.driver
        .goto(app.url(&format!("/app/practices/{p}/captures/{capture}/status")))
        .await
        .unwrap();
    let v = indicator(b).await;
    assert!(v["text"].as_str().unwrap().contains("Recording"), "{v}");
    let source = b.driver.source().await.unwrap();
    let patient = testkit::read_patient(&app.store, &token, p, world.a.patient)
        .await
        .unwrap()
        .unwrap();
    assert!(!source.contains(&patient.family_name), "no patient name");
    assert!(
        !source.contains(&world.a.patient.to_string()),
        "no patient id"
    );
    b.check_page("99b-scribe-status-screen").await;
    // Back to a chart page in the second tab for the stop.
    b.driver
        .goto(app.url(&format!("/app/practices/{p}/patients")))
        .await
        .unwrap();
    wait_for(b, "second tab live", |v| v["shown"] == true).await;

    // Stop in the first tab.
    b.driver.switch_to_window(first).await.unwrap();
    b.click("#rec-stop").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let stopped_at = loop {
        let r = recorder(b).await;
        if r["stoppedAt"].as_i64().unwrap() > 0 {
            break r["stoppedAt"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "never stopped: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v = wait_for(b, "first tab: indicator gone", |v| v["shown"] == false).await;
    let gone = v["goneAt"].as_i64().unwrap();
    assert!(
        gone - stopped_at <= 1000,
        "first tab: gone {} ms after stop",
        gone - stopped_at
    );
    b.check_page("99c-scribe-stopped").await;
    b.driver.switch_to_window(second).await.unwrap();
    let v = wait_for(b, "second tab: indicator gone", |v| v["shown"] == false).await;
    let gone = v["goneAt"].as_i64().unwrap();
    println!(
        "indicator gone {} ms after stop (second tab)",
        gone - stopped_at
    );
    assert!(gone > 0, "second tab saw the change: {v}");
    assert!(
        gone - stopped_at <= 1000,
        "second tab: gone {} ms after stop",
        gone - stopped_at
    );
    // A page opened after the stop has no indicator.
    b.driver
        .goto(app.url(&format!("/app/practices/{p}/schedule")))
        .await
        .unwrap();
    assert_eq!(indicator(b).await["shown"], false);

    // The server: the capture stopped by the clinician, chunks stored.
    let (_, c) = crate::util::call(
        app,
        Method::GET,
        &format!("/api/v1/practices/{p}/captures/{capture}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(c["state"], "stopped", "{c}");
    assert_eq!(c["stop_reason"], "clinician", "{c}");
    let chunks = c["chunks"].as_i64().unwrap();
    assert!(chunks >= 3, "{c}");
    println!(
        "capture stopped with {chunks} chunks, {} bytes",
        c["audio_bytes"]
    );
    // The first chunk is 16 kHz mono 16-bit PCM WAV of about 5 s.
    let mut tx = testkit::enter_practice(&app.store, &token, p)
        .await
        .unwrap();
    let bytes = store::capture::read_chunk_wav(
        &mut tx,
        app.blobs.as_ref().unwrap(),
        domain::CaptureId::from_uuid(uuid::Uuid::parse_str(&capture).unwrap()),
        0,
    )
    .await
    .unwrap()
    .unwrap();
    drop(tx);
    let info = store::capture::parse_wav(&bytes).unwrap();
    assert!(
        (4000..=6000).contains(&info.duration_ms),
        "chunk 0 lasts {} ms",
        info.duration_ms
    );
    // The audio is not silence: the fake microphone's tone came through.
    let peak = bytes
        .get(44..)
        .unwrap()
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs())
        .max()
        .unwrap();
    assert!(peak > 1000, "peak {peak}");
}
