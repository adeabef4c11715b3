//! The scribe's offline local transcription default in the binary: the `serve` options that
//! run it, and `chartroom scribe …` (its real-time factor, and the evaluation on synthetic
//! visits).
//!
//! The local default is a Whisper sidecar installed by `scripts/install-scribe` and supervised
//! by [`egress::local`]; `serve` runs it on demand (the first transcription starts it) when it
//! is installed, or at start with `--scribe-local on`. The commands here synthesize speech
//! with espeak-ng and sox (installed by the same script), never read practice data, and print
//! figures only.

mod visits;
mod wer;

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use egress::ProviderPosture;
use egress::local::{LocalWhisper, LocalWhisperConfig};
use visits::{SYNTHETIC_MARKER, Visit, VisitKind};

/// Whether `serve` runs the local transcription default.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScribeLocal {
    /// When installed: started on first use (a server that never transcribes never loads the
    /// model). When not installed: off, with a notice.
    Auto,
    /// Required: started with the server; `serve` refuses to start when it is not installed.
    On,
    /// Never run.
    Off,
}

/// The `serve` options of the local transcription default.
#[derive(Args, Debug, Clone)]
pub(crate) struct ScribeLocalArgs {
    /// The scribe's offline local transcription default (a Whisper sidecar on loopback,
    /// installed by scripts/install-scribe).
    #[arg(long = "scribe-local", env = "CHARTROOM_SCRIBE_LOCAL", value_enum,
          default_value_t = ScribeLocal::Auto)]
    pub mode: ScribeLocal,

    /// Where scripts/install-scribe installed it; default `$HOME/.cache/chartroom-scribe`.
    #[arg(long = "scribe-home", env = "CHARTROOM_SCRIBE_HOME")]
    pub home: Option<PathBuf>,

    /// CPU threads for local transcription; default: the machine's cores, at most 4.
    #[arg(long = "scribe-threads", env = "CHARTROOM_SCRIBE_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
}

fn scribe_home(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => LocalWhisperConfig::default_home()
            .context("no scribe home: set CHARTROOM_SCRIBE_HOME or HOME"),
    }
}

/// Starts supervising the local transcription default as `args` say: `None` when it is off
/// (or, with `auto`, not installed). The caller stops it with the server
/// ([`LocalWhisper::stop`]) and hands [`LocalWhisper::handle`] to the transcription job,
/// whose provider is then `handle.wait_ready(…)`'s posture (self-hosted, loopback).
pub(crate) fn start_local(args: &ScribeLocalArgs) -> anyhow::Result<Option<LocalWhisper>> {
    if args.mode == ScribeLocal::Off {
        tracing::info!("the scribe's local transcription default is off (--scribe-local off)");
        return Ok(None);
    }
    let home = scribe_home(args.home.as_deref())?;
    let mut config = match LocalWhisperConfig::from_install(&home) {
        Ok(config) => config,
        Err(e) if args.mode == ScribeLocal::Auto => {
            tracing::info!(error = %e, "the scribe's local transcription default is off");
            return Ok(None);
        }
        Err(e) => return Err(e).context("--scribe-local on"),
    };
    if let Some(threads) = args.threads {
        config.threads = threads;
    }
    Ok(Some(if args.mode == ScribeLocal::On {
        tracing::info!(model = %config.model_name, "starting the scribe's local transcription default");
        LocalWhisper::spawn(config)
    } else {
        tracing::info!(model = %config.model_name, "the scribe's local transcription default starts on first use");
        LocalWhisper::spawn_on_demand(config)
    }))
}

/// `chartroom scribe …`.
#[derive(Subcommand)]
pub(crate) enum ScribeCommand {
    /// Measure the local default's real-time factor (seconds of compute per second of audio)
    /// on a synthetic visit spoken by espeak-ng.
    Rtf {
        /// Seconds of speech to transcribe (the visit text is repeated to reach it).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(5..=1800))]
        seconds: u32,
        /// Timed runs (after one warm-up run); the report gives each and the median.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
        #[command(flatten)]
        local: LocalOptions,
    },
    /// Evaluate the scribe on synthetic visits (dental hygiene, dental exam, massage), each
    /// spoken by two synthetic voices: word error rate per visit and overall. No practice
    /// data is read.
    Eval {
        /// Visits to generate (cycling through the kinds).
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=300))]
        visits: u32,
        /// Seed of the visit generator (same seed, same visits).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// espeak-ng voices, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = ["en-us".to_owned(), "en-gb".to_owned()])]
        voices: Vec<String>,
        /// Print one JSON report instead of text.
        #[arg(long)]
        json: bool,
        /// Write the generated visits (the reference texts, marked synthetic) to this JSONL file.
        #[arg(long, value_name = "FILE.jsonl")]
        write_visits: Option<PathBuf>,
        #[command(flatten)]
        local: LocalOptions,
    },
}

/// How the commands run the local default.
#[derive(Args, Debug, Clone)]
pub(crate) struct LocalOptions {
    /// Where scripts/install-scribe installed it; default `$HOME/.cache/chartroom-scribe`.
    #[arg(long, env = "CHARTROOM_SCRIBE_HOME")]
    pub scribe_home: Option<PathBuf>,
    /// CPU threads; default: the machine's cores, at most 4.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    /// Beam width (1: greedy; 5: Whisper's default, the server's default).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=10))]
    pub beam_size: u8,
}

impl LocalOptions {
    async fn start(&self) -> anyhow::Result<(LocalWhisper, ProviderPosture)> {
        let home = scribe_home(self.scribe_home.as_deref())?;
        let mut config = LocalWhisperConfig::from_install(&home)?;
        if let Some(t) = self.threads {
            config.threads = t;
        }
        config.beam_size = self.beam_size;
        let local = LocalWhisper::spawn(config);
        let posture = local
            .handle()
            .wait_ready(Duration::from_secs(300))
            .await
            .context("the local transcription sidecar did not start")?;
        Ok((local, posture))
    }
}

/// Runs a scribe subcommand.
pub(crate) async fn run(cmd: ScribeCommand) -> anyhow::Result<()> {
    match cmd {
        ScribeCommand::Rtf {
            seconds,
            runs,
            local,
        } => rtf(seconds, runs, &local).await,
        ScribeCommand::Eval {
            visits,
            seed,
            voices,
            json,
            write_visits,
            local,
        } => {
            eval(
                &EvalPlan {
                    visits: usize::try_from(visits)?,
                    seed,
                    voices,
                    json,
                    write_visits,
                },
                &local,
            )
            .await
        }
    }
}

/// A private scratch directory for synthesized audio, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let nonce: [u8; 8] = rand::random();
        let dir = std::env::temp_dir().join(format!("chartroom-scribe-{}", hex::encode(nonce)));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_tool(cmd: &mut Process) -> anyhow::Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().with_context(|| {
        format!("cannot run {program} (scripts/install-scribe installs espeak-ng and sox)")
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Speaks `text` with espeak-ng's `voice` into a 16 kHz mono 16-bit WAV; returns its bytes
/// and length in seconds.
fn speak(dir: &Path, name: &str, voice: &str, text: &str) -> anyhow::Result<(Vec<u8>, f64)> {
    let text_file = dir.join(format!("{name}.txt"));
    let raw = dir.join(format!("{name}-raw.wav"));
    let wav = dir.join(format!("{name}.wav"));
    std::fs::write(&text_file, text)?;
    run_tool(
        Process::new("espeak-ng")
            .args(["-v", voice, "-s", "150", "-f"])
            .arg(&text_file)
            .arg("-w")
            .arg(&raw),
    )?;
    run_tool(
        Process::new("sox")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16"])
            .arg(&wav),
    )?;
    let bytes = std::fs::read(&wav)?;
    let seconds = wav_seconds(&bytes).context("sox wrote an unexpected WAV")?;
    Ok((bytes, seconds))
}

/// The length of a canonical 16 kHz mono 16-bit PCM WAV (as sox writes it).
fn wav_seconds(wav: &[u8]) -> Option<f64> {
    let data = wav.windows(4).position(|w| w == b"data")?;
    let len = wav.get(data + 4..data + 8)?;
    let len = u32::from_le_bytes(len.try_into().ok()?);
    Some(f64::from(len) / 32_000.0)
}

/// What the local default returned for one clip.
struct Heard {
    text: String,
    segments: usize,
}

/// Transcribes one WAV through the provider's OpenAI-compatible endpoint (`verbose_json`).
// Hook: once `egress::OpenAiTranscriber` is in, call it here through the gate with the same
// posture (`egress::gate(posture)`), so the evaluation goes through the production adapter.
async fn transcribe(
    client: &reqwest::Client,
    posture: &ProviderPosture,
    wav: &[u8],
) -> anyhow::Result<Heard> {
    #[derive(serde::Deserialize)]
    struct Reply {
        text: String,
        segments: Vec<serde_json::Value>,
    }
    let cleared = egress::gate(posture).map_err(anyhow::Error::msg)?;
    let boundary = format!("chartroom-{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut body = Vec::with_capacity(wav.len() + 1024);
    for (name, value) in [
        ("model", posture.model.as_str()),
        ("language", "en"),
        ("temperature", "0"),
        ("response_format", "verbose_json"),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(wav);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let url = format!(
        "{}/v1/audio/transcriptions",
        cleared.base_url().as_str().trim_end_matches('/')
    );
    let reply = client
        .post(url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .context("the local transcription sidecar did not answer")?;
    let status = reply.status();
    if !status.is_success() {
        anyhow::bail!("the local transcription sidecar answered {status}");
    }
    let reply: Reply = reply.json().await.context("an unexpected reply")?;
    Ok(Heard {
        text: reply.text,
        segments: reply.segments.len(),
    })
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(3600))
        .build()?)
}

async fn rtf(seconds: u32, runs: u32, options: &LocalOptions) -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    // Enough visit text to reach `seconds` (espeak-ng at `-s 150` speaks about 163 of these
    // words a minute: short words, few pauses).
    let target_words = usize::try_from(seconds)? * 163 / 60;
    let mut text = String::new();
    let mut seed = 1;
    while wer::normalize(&text).len() < target_words {
        for v in visits::generate(seed, 3) {
            text.push_str(&v.text());
            text.push(' ');
        }
        seed += 1;
    }
    let words: Vec<&str> = text.split_whitespace().take(target_words).collect();
    let mut text = words.join(" ");
    text.push('.');
    let (clip, audio_secs) = speak(&scratch.0, "rtf", "en-us", &text)?;
    let (warm, _) = speak(
        &scratch.0,
        "warm",
        "en-us",
        "This is a synthetic warm up clip.",
    )?;
    let (local, posture) = options.start().await?;
    let client = http_client()?;
    transcribe(&client, &posture, &warm).await?;
    let config = local.handle().config().clone();
    println!(
        "local transcription: {} ({} threads, beam {}), {audio_secs:.1} s of synthetic speech",
        posture.label, config.threads, config.beam_size
    );
    let mut factors = Vec::new();
    let mut word_error = 0.0;
    for run in 1..=runs {
        let started = Instant::now();
        let heard = transcribe(&client, &posture, &clip).await?;
        let compute = started.elapsed().as_secs_f64();
        let factor = compute / audio_secs;
        word_error = wer::rate(&text, &heard.text);
        println!(
            "run {run}: {compute:.1} s compute, real-time factor {factor:.3}, {} segments, word error rate {:.1} %",
            heard.segments,
            word_error * 100.0
        );
        factors.push(factor);
    }
    factors.sort_by(f64::total_cmp);
    let median = factors.get(factors.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "median real-time factor {median:.3} ({:.1}x faster than real time); word error rate {:.1} %",
        1.0 / median,
        word_error * 100.0
    );
    local.stop().await;
    Ok(())
}

struct EvalPlan {
    visits: usize,
    seed: u64,
    voices: Vec<String>,
    json: bool,
    write_visits: Option<PathBuf>,
}

/// One visit spoken by one voice, scored.
#[derive(serde::Serialize)]
struct Scored {
    visit: String,
    kind: VisitKind,
    voice: String,
    audio_seconds: f64,
    compute_seconds: f64,
    reference_words: usize,
    word_errors: usize,
    word_error_rate: f64,
    /// Drafting figures (evidence coverage, flagged sentences) for this visit; `None` until
    /// drafting is evaluated (see [`DraftingFigures`]).
    drafting: Option<DraftingFigures>,
}

/// The drafting half of the evaluation (issue 18 item 9): filled in by
/// [`draft_figures`] once the drafting job can run on a transcript.
#[derive(serde::Serialize, Clone, Debug, Default)]
pub(crate) struct DraftingFigures {
    /// Draft sentences citing at least one transcript segment, over all draft sentences.
    pub evidence_coverage: f64,
    /// Draft sentences flagged (no evidence, or numbers, teeth, drugs or negations absent
    /// from the cited segments).
    pub flagged_sentences: usize,
    /// Draft sentences in all.
    pub sentences: usize,
}

/// Hook for the drafting evaluation: draft a note from `transcript` (what the local default
/// heard of `visit`) and score it. Returns `None` while no drafter is wired in here.
fn draft_figures(_visit: &Visit, _transcript: &str) -> Option<DraftingFigures> {
    None
}

async fn eval(plan: &EvalPlan, options: &LocalOptions) -> anyhow::Result<()> {
    if plan.voices.is_empty() || plan.voices.len() > 8 {
        anyhow::bail!("give one to eight voices");
    }
    for v in &plan.voices {
        if v.is_empty()
            || v.len() > 40
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-+_".contains(c))
        {
            anyhow::bail!("not an espeak-ng voice name: {v:?}");
        }
    }
    let visits = visits::generate(plan.seed, plan.visits);
    if let Some(path) = &plan.write_visits {
        let mut out = String::new();
        for v in &visits {
            out.push_str(&serde_json::to_string(v)?);
            out.push('\n');
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    let scratch = Scratch::new()?;
    let (local, posture) = options.start().await?;
    let client = http_client()?;
    let mut scored = Vec::new();
    for (i, visit) in visits.iter().enumerate() {
        for (j, voice) in plan.voices.iter().enumerate() {
            let (wav, audio_seconds) =
                speak(&scratch.0, &format!("v{i}-{j}"), voice, &visit.text())?;
            let started = Instant::now();
            let heard = transcribe(&client, &posture, &wav).await?;
            let compute_seconds = started.elapsed().as_secs_f64();
            let reference = wer::normalize(&visit.text());
            let errors = wer::edits(&reference, &wer::normalize(&heard.text));
            let s = Scored {
                visit: visit.id.clone(),
                kind: visit.kind,
                voice: voice.clone(),
                audio_seconds,
                compute_seconds,
                reference_words: reference.len(),
                word_errors: errors,
                word_error_rate: wer::ratio(errors, reference.len()),
                drafting: draft_figures(visit, &heard.text),
            };
            if !plan.json {
                println!(
                    "{:<28} {:<8} {:>5.1} s audio {:>5.1} s compute  WER {:>5.1} % ({}/{} words)",
                    s.visit,
                    s.voice,
                    s.audio_seconds,
                    s.compute_seconds,
                    s.word_error_rate * 100.0,
                    s.word_errors,
                    s.reference_words
                );
            }
            scored.push(s);
        }
    }
    local.stop().await;
    let report = summarize(&scored, &plan.voices, &posture);
    if plan.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "marker": SYNTHETIC_MARKER,
                "seed": plan.seed,
                "summary": report,
                "visits": scored,
            }))?
        );
    } else {
        for (key, value) in report.as_object().into_iter().flatten() {
            println!("{key}: {value}");
        }
    }
    Ok(())
}

fn summarize(scored: &[Scored], voices: &[String], posture: &ProviderPosture) -> serde_json::Value {
    let total = |f: &dyn Fn(&Scored) -> bool| {
        let (e, w) = scored.iter().filter(|s| f(s)).fold((0, 0), |(e, w), s| {
            (e + s.word_errors, w + s.reference_words)
        });
        (wer::ratio(e, w) * 1000.0).round() / 10.0
    };
    let audio: f64 = scored.iter().map(|s| s.audio_seconds).sum();
    let compute: f64 = scored.iter().map(|s| s.compute_seconds).sum();
    let mut by_kind = serde_json::Map::new();
    for kind in VisitKind::ALL {
        if scored.iter().any(|s| s.kind == kind) {
            by_kind.insert(kind.name().to_owned(), total(&|s| s.kind == kind).into());
        }
    }
    let mut by_voice = serde_json::Map::new();
    for voice in voices {
        by_voice.insert(voice.clone(), total(&|s| &s.voice == voice).into());
    }
    serde_json::json!({
        "provider": posture.label,
        "model": posture.model,
        "clips": scored.len(),
        "word_error_rate_percent": total(&|_| true),
        "word_error_rate_percent_by_kind": by_kind,
        "word_error_rate_percent_by_voice": by_voice,
        "audio_seconds": (audio * 10.0).round() / 10.0,
        "real_time_factor": if audio > 0.0 { ((compute / audio) * 1000.0).round() / 1000.0 } else { 0.0 },
        "drafting": serde_json::Value::Null,
    })
}
