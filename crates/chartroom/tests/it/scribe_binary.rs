//! The scribe through the real binary: `chartroom demo` on its embedded PostgreSQL with the
//! supervised local Whisper, a clinician records a consented visit over HTTPS in two chunks of
//! synthetic speech, stops, and the transcription job (owner role, in the binary) writes the
//! transcript through the local default; the default draft (no drafting provider) cites it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use egress::local::LocalWhisperConfig;
use serde_json::{Value, json};

use crate::embedded_binary::{client_for, sign_in, start, stop};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// Synthetic speech (espeak-ng), 16 kHz mono 16-bit PCM: no real person.
fn speak(dir: &Path, name: &str, text: &str) -> Vec<u8> {
    let raw = dir.join(format!("{name}-raw.wav"));
    let wav = dir.join(format!("{name}.wav"));
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg(text));
    run(Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav));
    std::fs::read(wav).unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

// req: SCR-01, SCR-04
#[tokio::test]
async fn the_binary_transcribes_a_recorded_visit_with_the_local_default() {
    let Some(home) = LocalWhisperConfig::default_home() else {
        panic!("no home directory for the local transcription default");
    };
    if !LocalWhisperConfig::is_installed(&home) {
        eprintln!(
            "skipped: the local transcription default is not installed at {} (scripts/install-scribe; ./dev test installs it)",
            home.display()
        );
        return;
    }
    let dir = Path::new("/tmp").join(format!("chartroom-it-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let clips = [
        speak(
            &dir,
            "first",
            "The patient reports sensitivity on the lower left molar when drinking cold water.",
        ),
        speak(
            &dir,
            "second",
            "We scaled and polished today and reviewed flossing. Return in six months.",
        ),
    ];

    let running = start(&dir, "demo").await;
    let base = running.base.clone();
    let http = client_for(&dir);
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();
    let clinician = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "clinician@harbor.demo.invalid")
        .unwrap();
    let login = json!({"email": clinician["email"], "password": clinician["password"]});
    let token = sign_in(&http, &base, &login, &mut None).await;
    let (_, me) = send(http.get(format!("{base}/api/v1/me")).bearer_auth(&token)).await;
    let practice = me["practices"][0]["practice_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = format!("{base}/api/v1/practices/{practice}");
    let (s, patients) = send(http.get(format!("{api}/patients")).bearer_auth(&token)).await;
    assert_eq!(s, 200, "{patients}");
    // The first patient on this clinician's care team (the demo shares patients out).
    let mut visit = None;
    for p in patients["items"].as_array().unwrap() {
        let id = p["patient_id"].as_str().unwrap();
        let (s, v) = send(
            http.post(format!("{api}/patients/{id}/visits"))
                .bearer_auth(&token)
                .json(&json!({})),
        )
        .await;
        if s == 201 {
            visit = Some(v);
            break;
        }
    }
    let visit = visit.expect("a patient on the clinician's care team");
    let visit = visit["visit_id"].as_str().unwrap().to_owned();
    // No consent, no capture.
    let (s, _) = send(
        http.post(format!("{api}/visits/{visit}/captures"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(s, 409);
    let (s, consent) = send(
        http.post(format!("{api}/visits/{visit}/consents"))
            .bearer_auth(&token)
            .json(&json!({"consented_by": "patient", "method": "verbal"})),
    )
    .await;
    assert_eq!(s, 201, "{consent}");
    let (s, capture) = send(
        http.post(format!("{api}/visits/{visit}/captures"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(s, 201, "{capture}");
    let capture = capture["capture_id"].as_str().unwrap().to_owned();
    for (seq, wav) in clips.iter().enumerate() {
        let (s, v) = send(
            http.put(format!("{api}/captures/{capture}/chunks/{seq}"))
                .bearer_auth(&token)
                .header("content-type", "audio/wav")
                .body(wav.clone()),
        )
        .await;
        assert!(s == 200 || s == 201, "chunk {seq}: {s} {v}");
    }
    let (s, v) = send(
        http.post(format!("{api}/captures/{capture}/stop"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // The job transcribes in the binary; the model loads on first use. Bounded wait.
    let deadline = Instant::now() + Duration::from_secs(300);
    let transcript = loop {
        let (s, t) = send(
            http.get(format!("{api}/captures/{capture}/transcript"))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(s, 200, "{t}");
        if t["progress"]["pending"] == 0 {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the transcript was not ready in time: {}",
            t["progress"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        transcript["progress"]["done"], 2,
        "{}",
        transcript["progress"]
    );
    let text = transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    for word in ["sensitivity", "cold water", "polished", "six months"] {
        assert!(
            text.contains(word),
            "{word:?} missing from the transcript: {text}"
        );
    }
    // Times are in the capture: the second chunk's segments start after the first chunk.
    let second_start = transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["chunk_seq"] == 1)
        .map(|s| s["start_ms"].as_i64().unwrap())
        .min()
        .unwrap();
    assert!(second_start >= 3000, "{second_start}");

    // No drafting provider: the default draft, not AI-written, citing the segments.
    let (s, draft) = send(
        http.post(format!("{api}/visits/{visit}/drafts"))
            .bearer_auth(&token)
            .json(&json!({"template": "dental_hygiene"})),
    )
    .await;
    assert_eq!(s, 201, "{draft}");
    assert_eq!(draft["ai_written"], false);
    assert!(
        draft["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| !s["evidence"].as_array().unwrap().is_empty()),
        "the default draft quotes the transcript with its evidence"
    );
    stop(running).await;
    let _ = std::fs::remove_dir_all(&dir);
}
