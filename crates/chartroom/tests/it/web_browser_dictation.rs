//! Issue 18 item 5, in Chromium with a fake microphone fed from a clip of the public voice
//! fixtures (`../shared/perio/voice/examples`, synthetic speech): a clinician presses
//! Dictate on the perio exam page, says "three two three", presses again; the clip goes
//! through the real local Whisper sidecar (installed by `scripts/install-scribe`, supervised
//! by `egress::local`); the page reads back what was heard and the grid shows the depths (a
//! held final is confirmed with its "Chart" button first). Each screen: zero CSP violations,
//! zero serious or critical axe-core violations (helpers of `web_browser`).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress::local::{LocalWhisper, LocalWhisperConfig};
use futures::FutureExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use server::assistant::{Assistant, EgressAdapters, LocalTranscription};
use testkit::{TestApp, TestDb, World};

use crate::web_browser::{Browser, screenshot_dir, sign_in_enrolling};

/// The clip: example 1 of the voice fixtures, "three two three" on an empty chart.
fn example_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/perio/voice/examples/1/000.wav")
}

/// The clip with a little silence before and a long one after (the fake microphone plays the
/// file once), as 16 kHz mono 16-bit WAV; and the clip's length in ms.
fn microphone_file(dir: &Path) -> (PathBuf, u64) {
    let out = dir.join(format!("dictate-{}.wav", uuid::Uuid::new_v4().simple()));
    let status = Command::new("sox")
        .arg(example_clip())
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&out)
        .args(["pad", "0.3", "10"])
        .status()
        .unwrap();
    assert!(status.success(), "sox");
    let bytes = std::fs::read(example_clip()).unwrap();
    let info = store::capture::parse_wav(&bytes).unwrap();
    (out, u64::from(info.duration_ms))
}

async fn js(b: &Browser, script: &str) -> Value {
    b.driver
        .execute(script, vec![])
        .await
        .unwrap()
        .json()
        .clone()
}

async fn poll<F: Fn(&Value) -> bool>(
    b: &Browser,
    what: &str,
    script: &str,
    secs: u64,
    ok: F,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = js(b, script).await;
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// req: SCR-04 — dictation on the perio page through the real local recognizer: the read-back
// on screen, the depths in the grid, one assistant turn and one audit event per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_dictates_depths_on_the_perio_page() {
    let Some(home) =
        LocalWhisperConfig::default_home().filter(|h| LocalWhisperConfig::is_installed(h))
    else {
        assert!(
            std::env::var_os("CHARTROOM_SCRIBE_REQUIRED").is_none(),
            "CHARTROOM_SCRIBE_REQUIRED is set but the local scribe is not installed"
        );
        eprintln!("SKIPPED: the local scribe is not installed (run scripts/install-scribe)");
        return;
    };
    let mut config = LocalWhisperConfig::from_install(&home).unwrap();
    config.threads = 2;
    let whisper = LocalWhisper::spawn(config);
    let handle = whisper.handle();
    handle.wait_ready(Duration::from_secs(180)).await.unwrap();
    let assistant = Assistant {
        adapters: Arc::new(EgressAdapters::default()),
        local_transcription: Some(LocalTranscription::supervised(handle).unwrap()),
        operator_hosts: server::assistant::OperatorHosts::default(),
    };
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start_with_assistant(db.store().await, assistant).await;
    let email = crate::util::email_of(&db, world.a.user("clinician")).await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dictate-audio");
    std::fs::create_dir_all(&dir).unwrap();
    let (wav, clip_ms) = microphone_file(&dir);
    let mut b = Browser::start_with(&[
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        &format!("--use-file-for-fake-audio-capture={}%noloop", wav.display()),
        "--autoplay-policy=no-user-gesture-required",
    ])
    .await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(flow(&mut b, &db, &app, &world, &email, clip_ms))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    let _ = std::fs::remove_file(&wav);
    drop(whisper);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

#[allow(clippy::too_many_lines, reason = "one flow, step by step")]
async fn flow(
    b: &mut Browser,
    db: &TestDb,
    app: &TestApp,
    world: &World,
    email: &str,
    clip_ms: u64,
) {
    let p = world.a.id;
    let patient = world.a.patient;
    let token = app.token(world.a.user("clinician")).await;
    let api = format!("/api/v1/practices/{p}/patients/{patient}/perio-exams");
    let (s, v) = crate::util::call(app, Method::POST, &api, Some(&token), Some(&json!({}))).await;
    assert!(s.is_success(), "{v}");
    let exam = v["exam_id"].as_str().unwrap().to_owned();
    b.driver.goto(app.url("/app")).await.unwrap();
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "88a-dictate-enroll-start",
            "88b-dictate-enroll-qr",
            "88c-dictate-recovery-codes",
            "88d-dictate-home",
        ],
    )
    .await;
    b.driver
        .goto(app.url(&format!(
            "/app/practices/{p}/patients/{patient}/perio/{exam}"
        )))
        .await
        .unwrap();
    b.wait_for_text("h1", "Periodontal exam").await;
    // The control shows itself once the page's script runs (the page works without it).
    poll(
        b,
        "the Dictate button",
        "const v = document.getElementById('voice'); return v && !v.hidden;",
        10,
        |v| v == &json!(true),
    )
    .await;
    b.check_page("88e-dictate-ready").await;

    // Press, let the clip play, press again.
    b.click("#voice-toggle").await;
    let state = "const v = document.getElementById('voice');
                 return { state: v.dataset.state, ms: Number(v.dataset.recordedMs || 0),
                          pressed: document.getElementById('voice-toggle').getAttribute('aria-pressed'),
                          status: document.getElementById('voice-status').textContent };";
    let v = poll(b, "listening", state, 10, |v| v["state"] == "listening").await;
    assert_eq!(v["pressed"], "true", "{v}");
    poll(b, "the clip recorded", state, 20, |v| {
        v["ms"].as_u64().unwrap_or(0) >= clip_ms + 1000
    })
    .await;
    b.click("#voice-toggle").await;
    let sent = Instant::now();
    let v = poll(b, "the read-back", state, 60, |v| {
        v["state"] == "idle" && v["status"].as_str().unwrap_or("").contains("Heard")
    })
    .await;
    println!(
        "dictation read-back after {} ms (clip {clip_ms} ms, local Whisper): {}",
        sent.elapsed().as_millis(),
        v["status"]
    );
    let heard = js(
        b,
        "return document.getElementById('voice-heard').textContent;",
    )
    .await;
    let heard = heard.as_str().unwrap().to_lowercase();
    assert!(
        heard.contains("three") || heard.contains('3'),
        "what was heard is read back: {heard}"
    );
    let held = js(b, "return !!document.getElementById('voice-chart');").await == json!(true);
    b.check_page("88f-dictate-read-back").await;
    if held {
        // Low confidence asks first: "Chart “…”?" — charting it is the typed final.
        let question = js(
            b,
            "return document.getElementById('voice-readback').textContent;",
        )
        .await;
        println!("held for confirmation: {question}");
        b.click("#voice-chart").await;
        b.wait_for_text("#perio-message", "Charted").await;
        b.check_page("88g-dictate-confirmed").await;
    } else {
        let msg = js(
            b,
            "return document.getElementById('perio-message').textContent;",
        )
        .await;
        assert!(msg.as_str().unwrap().contains("Charted"), "{msg}");
    }
    // The grid: tooth 1 facial, 3 2 3 (distal, mid, mesial).
    let cells = js(
        b,
        "return ['DB', 'B', 'MB'].map(s => document.querySelector(
           'td[data-row=pd][data-tooth=\"1\"][data-site=' + s + ']').textContent);",
    )
    .await;
    assert_eq!(cells, json!(["3", "2", "3"]), "the grid after dictation");
    let (_, e) = crate::util::call(
        app,
        Method::GET,
        &format!("{api}/{exam}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        e["chart"]["teeth"]["1"]["pd"],
        json!({"DB": 3, "B": 2, "MB": 3}),
        "{e}"
    );

    // One turn and one audit event per recognizer call.
    let mut su = db.superuser_unsafe().await;
    let turns: Vec<(String, String)> =
        sqlx::query_as("select purpose, outcome from assistant_turn where practice_id = $1")
            .bind(p)
            .fetch_all(&mut su)
            .await
            .unwrap();
    let audits: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'assistant.turn'",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(!turns.is_empty() && turns.len() <= 2, "{turns:?}");
    assert!(
        turns
            .iter()
            .all(|(purpose, outcome)| purpose == "perio_voice" && outcome == "ok"),
        "{turns:?}"
    );
    assert_eq!(usize::try_from(audits).unwrap(), turns.len());
}

// An unsure hearing asks before charting, in the browser: with the practice's recognizer a
// scripted stand-in (low confidence), the page shows "Chart “…”?" with Chart and Discard;
// Discard charts nothing; a second clip, held again, is charted with its Chart button (the
// typed final's form). CSP and axe clean with the question shown.
#[tokio::test]
async fn an_unsure_hearing_asks_chart_or_discard() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let ear = testkit::standins::StandIn::openai().await;
    let mut su = db.superuser_unsafe().await;
    sqlx::query(
        "insert into ai_provider (practice_id, provider_id, label, adapter, purpose, base_url,
            model, hosting, vendor, training_disabled, enabled, created_at, updated_at)
         values ($1, gen_random_uuid(), 'Practice server', 'openai_transcription', 'transcription',
            $2, 'whisper-x', 'self_hosted', 'Operator', true, true, now(), now())",
    )
    .bind(world.a.id)
    .bind(ear.url())
    .execute(&mut su)
    .await
    .unwrap();
    drop(su);
    let unsure = || {
        let mut s = testkit::standins::StandInSegment::speech(0.0, 1.5, "Three two three.");
        s.avg_logprob = -2.5;
        testkit::standins::Reply::Transcript(vec![s])
    };
    // Two dictations, each heard twice: the first reading and the third a held final gets
    // (unsure again, so the final stays held).
    for _ in 0..4 {
        ear.script(unsure());
    }
    let email = crate::util::email_of(&db, world.a.user("clinician")).await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dictate-audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join(format!("tone-{}.wav", uuid::Uuid::new_v4().simple()));
    std::fs::write(&wav, crate::capture_api::tone_wav(20_000, 9)).unwrap();
    let mut b = Browser::start_with(&[
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        &format!("--use-file-for-fake-audio-capture={}", wav.display()),
        "--autoplay-policy=no-user-gesture-required",
    ])
    .await;
    let outcome = AssertUnwindSafe(held_flow(&mut b, &app, &world, &email))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    let _ = std::fs::remove_file(&wav);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
    assert_eq!(
        ear.requests(),
        4,
        "two calls per clip: the first reading and the held final's third reading"
    );
}

/// Dictates ~1 s of the fake microphone; returns the live status once idle again.
async fn dictate_once(b: &Browser) -> Value {
    let state = "const v = document.getElementById('voice');
                 return { state: v.dataset.state, ms: Number(v.dataset.recordedMs || 0),
                          status: document.getElementById('voice-status').textContent };";
    b.click("#voice-toggle").await;
    poll(b, "recording", state, 10, |v| {
        v["state"] == "listening" && v["ms"].as_u64().unwrap_or(0) >= 1000
    })
    .await;
    b.click("#voice-toggle").await;
    poll(b, "the read-back", state, 30, |v| {
        v["state"] == "idle" && v["status"].as_str().unwrap_or("").contains("Heard")
    })
    .await
}

async fn held_flow(b: &mut Browser, app: &TestApp, world: &World, email: &str) {
    let p = world.a.id;
    let patient = world.a.patient;
    let token = app.token(world.a.user("clinician")).await;
    let api = format!("/api/v1/practices/{p}/patients/{patient}/perio-exams");
    let (s, v) = crate::util::call(app, Method::POST, &api, Some(&token), Some(&json!({}))).await;
    assert!(s.is_success(), "{v}");
    let exam = v["exam_id"].as_str().unwrap().to_owned();
    b.driver.goto(app.url("/app")).await.unwrap();
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "89a-dictate-enroll-start",
            "89b-dictate-enroll-qr",
            "89c-dictate-recovery-codes",
            "89d-dictate-home",
        ],
    )
    .await;
    b.driver
        .goto(app.url(&format!(
            "/app/practices/{p}/patients/{patient}/perio/{exam}"
        )))
        .await
        .unwrap();
    poll(
        b,
        "the Dictate button",
        "const v = document.getElementById('voice'); return v && !v.hidden;",
        10,
        |v| v == &json!(true),
    )
    .await;
    let v = dictate_once(b).await;
    assert!(
        v["status"].as_str().unwrap().contains("Not charted yet"),
        "{v}"
    );
    let question = js(
        b,
        "return document.getElementById('voice-readback').textContent;",
    )
    .await;
    assert!(
        question
            .as_str()
            .unwrap()
            .contains("Chart “three two three”?"),
        "{question}"
    );
    let focused = js(
        b,
        "return document.activeElement && document.activeElement.id;",
    )
    .await;
    assert_eq!(focused, "voice-chart", "the question takes the focus");
    b.check_page("89e-dictate-held").await;
    // Discard: nothing charted.
    b.click("#voice-discard").await;
    b.wait_for_text("#voice-status", "Discarded").await;
    let gone = js(
        b,
        "return document.getElementById('voice-readback') === null;",
    )
    .await;
    assert_eq!(gone, json!(true));
    let (_, e) = crate::util::call(
        app,
        Method::GET,
        &format!("{api}/{exam}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(e["version"], 1, "{e}");
    assert_eq!(e["chart"]["teeth"], json!({}), "{e}");
    // Again, and Chart: the shown final through the typed route.
    dictate_once(b).await;
    b.click("#voice-chart").await;
    b.wait_for_text("#perio-message", "Charted").await;
    b.check_page("89f-dictate-charted").await;
    let (_, e) = crate::util::call(
        app,
        Method::GET,
        &format!("{api}/{exam}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        e["chart"]["teeth"]["1"]["pd"],
        json!({"DB": 3, "B": 2, "MB": 3}),
        "{e}"
    );
}
