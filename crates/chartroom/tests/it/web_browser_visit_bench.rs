//! Benchmark, not part of the suite (ignored; run by hand, see BENCHMARKS.md): a synthetic
//! visit of N minutes (default 10) captured **through the browser** — Chromium's fake
//! microphone playing a WAV of espeak-ng speech into the visit page's recorder, which uploads
//! a chunk about every 5 s over HTTPS — while the transcription job transcribes each chunk with
//! the real local Whisper as the visit goes on. Printed: seconds from the click on Stop to the
//! complete transcript and to the draft, and the resident memory of the process that runs the
//! server (the test process: server, job and `WebDriver` client) sampled every 30 s during
//! capture. Nothing is asserted about time.
//!
//! `CHARTROOM_BENCH_MINUTES=10 cargo test -p chartroom --test it web_browser_visit_bench -- --ignored --nocapture`

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use egress::local::{LocalHandle, LocalWhisper, LocalWhisperConfig};
use futures::FutureExt as _;
use reqwest::Method;
use serde_json::json;
use testkit::{TestApp, TestDb, World};

use crate::web_browser::{Browser, sign_in_enrolling};
use crate::web_browser_visit::{api, indicator, installed_home, recorder, run};

/// Lines of a synthetic dental hygiene visit (no real person), repeated to length.
const LINES: &[&str] = &[
    "Good morning, please have a seat and tell me how your teeth have been since the last cleaning.",
    "The patient reports some sensitivity on the lower left side when drinking cold water.",
    "No bleeding when brushing, flossing about three times a week.",
    "Medical history reviewed, no changes, no new medications.",
    "Starting the periodontal charting on the upper right.",
    "Probing depths are mostly two and three millimeters, with a four on the distal of tooth three.",
    "Light bleeding on probing around the lower anterior teeth.",
    "Moderate calculus on the lingual of the lower incisors.",
    "Scaling the lower anterior region now, let me know if anything is uncomfortable.",
    "Polishing with a fine paste, then fluoride varnish.",
    "We talked about flossing once a day and a soft toothbrush.",
    "Recommend a desensitizing toothpaste for the cold sensitivity.",
    "Return in six months for the next cleaning and exam.",
];

/// `minutes` of speech (espeak-ng `en-us`, 160 words a minute) as 16 kHz mono 16-bit WAV.
fn speak_minutes(dir: &Path, wav: &Path, minutes: u64) {
    // ≈ 150 words per pass over LINES: enough passes for the length, then cut to it.
    let passes = usize::try_from(minutes * 160 / 150 + 2).unwrap();
    let text = vec![LINES.join(" "); passes].join(" ");
    let raw = dir.join("visit-raw.wav");
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(&raw)
        .arg(&text));
    run(Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(wav)
        .args(["trim", "0", &(minutes * 60).to_string()]));
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark of N minutes: run by hand (BENCHMARKS.md)"]
async fn a_long_visit_captured_in_the_browser() {
    let minutes: u64 = std::env::var("CHARTROOM_BENCH_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let Some(home) = installed_home() else {
        return;
    };
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let local = LocalWhisper::spawn(LocalWhisperConfig::from_install(&home).unwrap());
    let email = crate::util::email_of(&db, world.a.user("clinician")).await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("visit-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("visit.wav");
    speak_minutes(&dir, &wav, minutes);
    let mut b = Browser::start_with(&[
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        &format!("--use-file-for-fake-audio-capture={}", wav.display()),
        "--autoplay-policy=no-user-gesture-required",
    ])
    .await;
    let outcome = AssertUnwindSafe(bench(
        &mut b,
        &db,
        &app,
        &world,
        &email,
        &local.handle(),
        minutes,
    ))
    .catch_unwind()
    .await;
    let quit = b.driver.quit().await;
    local.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

#[allow(clippy::too_many_lines, reason = "one run, step by step")]
async fn bench(
    b: &mut Browser,
    db: &TestDb,
    app: &TestApp,
    world: &World,
    email: &str,
    local: &LocalHandle,
    minutes: u64,
) {
    let p = world.a.id;
    let base = format!("/api/v1/practices/{p}");
    let token = app.token(world.a.user("clinician")).await;
    let v = api(
        app,
        Method::POST,
        &format!("{base}/patients/{}/visits", world.a.patient),
        &token,
        Some(&json!({})),
    )
    .await;
    let visit = v["visit_id"].as_str().unwrap().to_owned();
    b.driver.goto(app.url("/app")).await.unwrap();
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "190-bench-enroll-start",
            "191-bench-enroll-qr",
            "192-bench-recovery-codes",
            "193-bench-home",
        ],
    )
    .await;
    b.driver
        .goto(app.url(&format!("/app/practices/{p}/visits/{visit}")))
        .await
        .unwrap();
    b.wait_for_text("h1", "Visit").await;
    b.click("#consent-record").await;
    b.wait_for_text("#consent-active", "the patient").await;
    local.wait_ready(Duration::from_secs(300)).await.unwrap();

    // The transcription job, as `serve` runs it: a pass over pending chunks, again and again.
    let assistant = server::assistant::Assistant {
        adapters: Arc::new(server::assistant::EgressAdapters::default()),
        local_transcription: Some(
            server::assistant::LocalTranscription::supervised(local.clone()).unwrap(),
        ),
        operator_hosts: server::assistant::OperatorHosts::default(),
    };
    let owner = db.owner().await;
    let blobs = app.blobs.clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let job = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut done, mut silent) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                let r = server::jobs::transcription::transcribe_pending(
                    &owner,
                    blobs.as_ref(),
                    &assistant,
                    Some(p),
                    chrono::Utc::now(),
                )
                .await
                .unwrap();
                assert_eq!((r.refused, r.failed, r.no_provider), (0, 0, 0), "{r:?}");
                done += r.done;
                silent += r.silent;
                if r.done + r.silent == 0 {
                    // Nothing pending: the job's idle interval.
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            (done, silent)
        })
    };

    b.click("#rec-start").await;
    let started = Instant::now();
    let chunks_wanted = i64::try_from(minutes * 60 / 5).unwrap();
    let mut rss = vec![rss_mib()];
    let mut next_sample = started + Duration::from_secs(30);
    loop {
        let r = recorder(b).await;
        if r["uploaded"].as_i64().unwrap_or(0) >= chunks_wanted {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(minutes * 60 + 180),
            "recording stalled: {r}"
        );
        if Instant::now() >= next_sample {
            rss.push(rss_mib());
            next_sample += Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(indicator(b).await["shown"], true);
    b.click("#rec-stop").await;
    let stopped = Instant::now();
    let captured = stopped - started;
    rss.push(rss_mib());
    // Stopped on the server, every chunk uploaded.
    let caps = api(
        app,
        Method::GET,
        &format!("{base}/visits/{visit}/captures"),
        &token,
        None,
    )
    .await;
    let capture = caps[0]["capture_id"].as_str().unwrap().to_owned();
    let (transcript_s, pending_at_stop, chunks) = {
        let mut pending_at_stop = None;
        loop {
            let c = api(
                app,
                Method::GET,
                &format!("{base}/captures/{capture}"),
                &token,
                None,
            )
            .await;
            let t = api(
                app,
                Method::GET,
                &format!("{base}/captures/{capture}/transcript"),
                &token,
                None,
            )
            .await;
            if c["state"] == "stopped" {
                if pending_at_stop.is_none() {
                    pending_at_stop = t["progress"]["pending"].as_i64();
                }
                if t["progress"]["pending"] == 0 {
                    break (
                        stopped.elapsed().as_secs_f64(),
                        pending_at_stop.unwrap_or(0),
                        c["chunks"].as_u64().unwrap_or(0),
                    );
                }
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(1800),
                "transcript not done: {t}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let t0 = Instant::now();
    let draft = api(
        app,
        Method::POST,
        &format!("{base}/visits/{visit}/drafts"),
        &token,
        Some(&json!({"template": "dental_hygiene"})),
    )
    .await;
    let draft_s = transcript_s + t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let (done, silent) = job.await.unwrap();
    let first = rss.first().copied().unwrap_or(0.0);
    let last = rss.last().copied().unwrap_or(0.0);
    let max = rss.iter().copied().fold(0.0, f64::max);
    println!(
        "browser visit {minutes} min: recorded {:.0} s, {chunks} chunks ({done} with speech, {silent} silent); pending at stop {pending_at_stop}",
        captured.as_secs_f64()
    );
    println!("stop -> complete transcript: {transcript_s:.1} s");
    println!(
        "stop -> draft ({}, {} sentences): {draft_s:.1} s",
        if draft["ai_written"] == true {
            "AI"
        } else {
            "default draft, not AI-written"
        },
        draft["sentences"].as_array().map_or(0, Vec::len)
    );
    println!(
        "resident memory (test process: server, job, WebDriver client) every 30 s: first {first:.1} MiB, last {last:.1} MiB, max {max:.1} MiB, samples {:?}",
        rss.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>()
    );
}
