//! `chartroom-bench scribe-visit`: a synthetic visit of N minutes recorded into the real
//! `chartroom` binary (`demo`, embedded PostgreSQL, the supervised local Whisper) over HTTPS,
//! in 5-second WAV chunks at the pace a browser's recorder sends them, through the same chunk
//! route the visit page's recorder uses. Reported: seconds from stop to the complete
//! transcript and to the draft, the server's resident memory during capture (sampled at every
//! chunk), and the local transcription's real-time factor over the visit.
//!
//! The speech is espeak-ng reading a generated, clearly synthetic visit (no real person).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

const CHUNK_MS: u64 = 5_000;
const RATE: u64 = 16_000;

/// Lines of a synthetic dental hygiene visit, spoken in turn until the visit is long enough.
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

fn wav_pcm(wav: &[u8]) -> anyhow::Result<&[u8]> {
    // RIFF header: find the "data" chunk.
    let mut at = 12;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let len = u32::from_le_bytes([wav[at + 4], wav[at + 5], wav[at + 6], wav[at + 7]]) as usize;
        if id == b"data" {
            let end = (at + 8 + len).min(wav.len());
            return Ok(&wav[at + 8..end]);
        }
        at += 8 + len + (len & 1);
    }
    bail!("no data chunk in the WAV")
}

fn wav_of(pcm: &[u8]) -> Vec<u8> {
    let len = u32::try_from(pcm.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(pcm.len() + 44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// `minutes` of synthetic speech, 16 kHz mono 16-bit PCM (two voices, alternating lines).
fn synthesize(dir: &Path, minutes: u64) -> anyhow::Result<Vec<u8>> {
    let want = minutes * 60 * RATE * 2;
    let mut pcm = Vec::new();
    let mut i = 0usize;
    while (pcm.len() as u64) < want {
        let line = LINES[i % LINES.len()];
        let voice = if i.is_multiple_of(2) {
            "en-us"
        } else {
            "en-gb"
        };
        let raw = dir.join("line-raw.wav");
        let wav = dir.join("line.wav");
        let ok = std::process::Command::new("espeak-ng")
            .args(["-v", voice, "-s", "160", "-w"])
            .arg(&raw)
            .arg(line)
            .status()
            .context("espeak-ng (scripts/install-scribe installs it)")?;
        ensure!(ok.success(), "espeak-ng failed");
        let ok = std::process::Command::new("sox")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["pad", "0", "0.6"])
            .status()
            .context("sox")?;
        ensure!(ok.success(), "sox failed");
        pcm.extend_from_slice(wav_pcm(&std::fs::read(&wav)?)?);
        i += 1;
    }
    pcm.truncate(usize::try_from(want)?);
    Ok(pcm)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let res = req.send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn sign_in(http: &reqwest::Client, base: &str, login: &Value) -> anyhow::Result<String> {
    let (_, res) = send(http.post(format!("{base}/api/v1/auth/login")).json(login)).await?;
    let token = res["token"]
        .as_str()
        .context("password sign-in")?
        .to_owned();
    ensure!(
        res["next"] == "enroll_second_factor",
        "a fresh demo account: {}",
        res["next"]
    );
    let (_, enroll) = send(
        http.post(format!("{base}/api/v1/auth/mfa/totp"))
            .bearer_auth(&token),
    )
    .await?;
    let key = server::identity::totp::TotpKey::from_uri(
        enroll["otpauth_uri"].as_str().context("otpauth uri")?,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let code = key.code_at(chrono::Utc::now());
    let (_, done) = send(
        http.post(format!("{base}/api/v1/auth/mfa/totp/confirm"))
            .bearer_auth(&token)
            .json(&json!({ "code": code })),
    )
    .await?;
    Ok(done["token"].as_str().context("enrollment")?.to_owned())
}

pub async fn scribe_visit(minutes: u64, server: Option<PathBuf>) -> anyhow::Result<()> {
    let server = match server {
        Some(s) => s,
        None => std::env::current_exe()?
            .parent()
            .context("the harness's directory")?
            .join("chartroom"),
    };
    ensure!(
        server.is_file(),
        "{} not found: build it (cargo build --release -p chartroom) or pass --server",
        server.display()
    );
    let dir = std::env::temp_dir().join(format!(
        "chartroom-bench-scribe-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    println!("synthesizing a {minutes}-minute visit (espeak-ng, two voices)");
    let pcm = synthesize(&dir, minutes)?;
    let chunk_bytes = usize::try_from(CHUNK_MS * RATE * 2 / 1000)?;

    let mut child = Command::new(&server)
        .args(["--data-dir"])
        .arg(&dir)
        .args(["demo", "--listen", "127.0.0.1:0", "--scribe-local", "on"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("start chartroom")?;
    let pid = child.id().context("pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let base = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("Chartroom listening on ") {
                return Ok(rest.trim().to_owned());
            }
        }
        bail!("chartroom exited before listening")
    })
    .await
    .context("chartroom did not listen in time")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let pem = std::fs::read(dir.join("secrets/tls-cert.pem"))?;
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .build()?;
    let creds: Value = serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json"))?)?;
    let clinician = creds
        .as_array()
        .context("credentials")?
        .iter()
        .find(|a| a["email"] == "clinician@harbor.demo.invalid")
        .context("the demo clinician")?;
    let token = sign_in(
        &http,
        &base,
        &json!({"email": clinician["email"], "password": clinician["password"]}),
    )
    .await?;
    let (_, me) = send(http.get(format!("{base}/api/v1/me")).bearer_auth(&token)).await?;
    let practice = me["practices"][0]["practice_id"]
        .as_str()
        .context("practice")?
        .to_owned();
    let api = format!("{base}/api/v1/practices/{practice}");
    let (_, patients) = send(http.get(format!("{api}/patients")).bearer_auth(&token)).await?;
    let mut visit = None;
    for p in patients["items"].as_array().context("patients")? {
        let id = p["patient_id"].as_str().context("patient id")?;
        let (s, v) = send(
            http.post(format!("{api}/patients/{id}/visits"))
                .bearer_auth(&token)
                .json(&json!({})),
        )
        .await?;
        if s == 201 {
            visit = Some(v["visit_id"].as_str().context("visit id")?.to_owned());
            break;
        }
    }
    let visit = visit.context("a patient on the clinician's care team")?;
    let (s, v) = send(
        http.post(format!("{api}/visits/{visit}/consents"))
            .bearer_auth(&token)
            .json(&json!({"consented_by": "patient", "method": "verbal"})),
    )
    .await?;
    ensure!(s == 201, "consent: {s} {v}");
    let (s, v) = send(
        http.post(format!("{api}/visits/{visit}/captures"))
            .bearer_auth(&token),
    )
    .await?;
    ensure!(s == 201, "capture: {s} {v}");
    let capture = v["capture_id"].as_str().context("capture id")?.to_owned();

    // Capture: one chunk every 5 s of wall clock, as the recorder sends them.
    let started = Instant::now();
    let mut rss = Vec::new();
    let chunks: Vec<&[u8]> = pcm.chunks(chunk_bytes).collect();
    for (seq, chunk) in chunks.iter().enumerate() {
        let due = started + Duration::from_millis(CHUNK_MS * (seq as u64 + 1));
        tokio::time::sleep_until(due.into()).await;
        let (s, v) = send(
            http.put(format!("{api}/captures/{capture}/chunks/{seq}"))
                .bearer_auth(&token)
                .header("content-type", "audio/wav")
                .body(wav_of(chunk)),
        )
        .await?;
        ensure!(s == 200 || s == 201, "chunk {seq}: {s} {v}");
        if let Some(r) = rss_kib(pid) {
            rss.push(r);
        }
    }
    let (s, v) = send(
        http.post(format!("{api}/captures/{capture}/stop"))
            .bearer_auth(&token),
    )
    .await?;
    ensure!(s == 200, "stop: {s} {v}");
    let stopped = Instant::now();
    let captured = stopped - started;
    let mut pending_at_stop = None;
    let transcript_s = loop {
        let (s, t) = send(
            http.get(format!("{api}/captures/{capture}/transcript"))
                .bearer_auth(&token),
        )
        .await?;
        ensure!(s == 200, "transcript: {s}");
        if pending_at_stop.is_none() {
            pending_at_stop = t["progress"]["pending"].as_i64();
        }
        if t["progress"]["pending"] == 0 {
            println!("transcript progress: {}", t["progress"]);
            break stopped.elapsed().as_secs_f64();
        }
        ensure!(
            stopped.elapsed() < Duration::from_secs(1800),
            "transcript not done in 30 min"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let t0 = Instant::now();
    let (s, draft) = send(
        http.post(format!("{api}/visits/{visit}/drafts"))
            .bearer_auth(&token)
            .json(&json!({"template": "dental_hygiene"})),
    )
    .await?;
    ensure!(s == 201, "draft: {s} {draft}");
    let draft_s = transcript_s + t0.elapsed().as_secs_f64();

    let first = rss.first().copied().unwrap_or(0);
    let last = rss.last().copied().unwrap_or(0);
    let max = rss.iter().copied().max().unwrap_or(0);
    let quarter = rss.get(rss.len() / 4).copied().unwrap_or(0);
    println!(
        "visit {minutes} min: {} chunks over {:.0} s; pending at stop {}",
        chunks.len(),
        captured.as_secs_f64(),
        pending_at_stop.unwrap_or(-1)
    );
    println!("stop -> complete transcript: {transcript_s:.1} s");
    println!(
        "stop -> draft ({}): {draft_s:.1} s",
        if draft["ai_written"] == true {
            "AI"
        } else {
            "default, not AI-written"
        }
    );
    println!(
        "server RSS during capture (KiB): first {first}, at 1/4 {quarter}, last {last}, max {max}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
