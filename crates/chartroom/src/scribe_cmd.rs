//! The scribe's offline local transcription default in the binary: the `serve` options that
//! run it, and `chartroom scribe …` (its real-time factor, and the evaluation on synthetic
//! visits).
//!
//! The local default is a Whisper sidecar installed by `scripts/install-scribe` and supervised
//! by [`egress::local`]; `serve` runs it on demand (the first transcription starts it) when it
//! is installed, or at start with `--scribe-local on`. The commands here synthesize speech
//! with espeak-ng and sox (installed by the same script), never read practice data, and print
//! figures only. They speak to the sidecar through the production transcription adapter
//! ([`egress::OpenAiTranscriber`]) behind the provider gate; `scribe eval` drafts each
//! transcript as the server would (the default draft, and with `--drafter-url` a self-hosted
//! OpenAI-compatible chat provider through [`egress::OpenAiDrafter`]) and scores the drafts
//! with the server's own evidence check.

mod visits;
mod wer;

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use egress::local::{LocalListen, LocalWhisper, LocalWhisperConfig};
use egress::{
    Cleared, DraftRequest, Drafter as _, Hosting, Limits, OpenAiDrafter, OpenAiTranscriber,
    ProviderPosture, Transcriber as _, TranscriptionRequest,
};
use store::drafts::NewSentence;
use visits::{SYNTHETIC_MARKER, VisitKind};

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

/// Where `serve`'s local transcription default listens.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScribeListen {
    /// A Unix socket (mode 0600) in the private directory `<data-dir>/scribe` (mode 0700):
    /// only Chartroom's user can reach it.
    Unix,
    /// 127.0.0.1, on a port the kernel picks (any local user can connect).
    Loopback,
}

/// The socket directory of the local default under the data directory.
pub(crate) const SOCKET_SUBDIR: &str = "scribe";

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

    /// Where the local transcription default listens: a Unix socket in the private directory
    /// `<data-dir>/scribe` (the default), or loopback TCP.
    #[arg(long = "scribe-listen", env = "CHARTROOM_SCRIBE_LISTEN", value_enum, value_name = "WHERE",
          default_value_t = ScribeListen::Unix)]
    pub socket: ScribeListen,

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
pub(crate) fn start_local(
    args: &ScribeLocalArgs,
    data_dir: &Path,
) -> anyhow::Result<Option<LocalWhisper>> {
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
    if args.socket == ScribeListen::Unix {
        let data_dir = std::path::absolute(data_dir)
            .with_context(|| format!("the data directory {}", data_dir.display()))?;
        config.listen = LocalListen::unix(data_dir.join(SOCKET_SUBDIR)).context(
            "--scribe-listen unix (use a shorter --data-dir, or --scribe-listen loopback)",
        )?;
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
        drafter: DrafterOptions,
        #[command(flatten)]
        local: LocalOptions,
    },
}

/// The drafting provider `scribe eval` drafts through besides the default draft.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct DrafterOptions {
    /// Also draft every transcript through this OpenAI-compatible chat-completions provider
    /// (its base URL: `URL/v1/chat/completions`). Self-hosted only: loopback, `localhost` or
    /// a Unix socket, as the provider gate decides before any connection. Without it only the
    /// default draft (not AI-written) is measured.
    #[arg(long, value_name = "URL", requires = "drafter_model")]
    pub drafter_url: Option<String>,
    /// The model name sent to `--drafter-url`.
    #[arg(long, value_name = "MODEL", requires = "drafter_url")]
    pub drafter_model: Option<String>,
}

/// The longest `--drafter-url` / `--drafter-model` accepted.
const MAX_DRAFTER_ARG: usize = 2048;

/// A drafting provider the gate cleared, with its adapter.
struct ProviderDrafter {
    cleared: Cleared,
    adapter: OpenAiDrafter,
}

impl DrafterOptions {
    /// The provider of `--drafter-url`, through the gate (refused before any connection when
    /// it is not self-hosted); `None` without one.
    fn open(&self) -> anyhow::Result<Option<ProviderDrafter>> {
        let (Some(url), Some(model)) = (&self.drafter_url, &self.drafter_model) else {
            return Ok(None);
        };
        if url.len() > MAX_DRAFTER_ARG || model.len() > MAX_DRAFTER_ARG || model.trim().is_empty() {
            anyhow::bail!("--drafter-url and --drafter-model: give a URL and a model name");
        }
        let posture = ProviderPosture {
            provider_id: None,
            label: "drafting provider (--drafter-url)".to_owned(),
            base_url: url.clone(),
            model: model.trim().to_owned(),
            hosting: Hosting::SelfHosted,
            baa: None,
            training_disabled: true,
            enabled: true,
        };
        let cleared = egress::gate(&posture).map_err(|e| {
            anyhow::anyhow!(
                "--drafter-url refused by the provider gate: {e} (the evaluation drafts through a self-hosted provider: loopback, localhost or a Unix socket)"
            )
        })?;
        let adapter = OpenAiDrafter::with_limits(None, eval_limits())?;
        Ok(Some(ProviderDrafter { cleared, adapter }))
    }
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
            drafter,
            local,
        } => {
            eval(
                &EvalPlan {
                    visits: usize::try_from(visits)?,
                    seed,
                    voices,
                    json,
                    write_visits,
                    drafter,
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
    /// The kept segments' texts, joined.
    text: String,
    /// The segments kept (after the filters against invented text).
    segments: Vec<egress::Segment>,
}

/// The commands' limits on one call: the production limits, with time for a long clip on a
/// slow machine.
fn eval_limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(3600),
        ..Limits::default()
    }
}

/// The local default behind the gate, spoken to through the production adapter.
struct Ear {
    cleared: Cleared,
    adapter: OpenAiTranscriber,
}

impl Ear {
    fn new(posture: &ProviderPosture) -> anyhow::Result<Self> {
        Ok(Self {
            cleared: egress::gate(posture).map_err(anyhow::Error::msg)?,
            adapter: OpenAiTranscriber::with_limits(None, eval_limits())?,
        })
    }

    /// Transcribes one WAV (English, no prompt), as the transcription job does.
    async fn transcribe(&self, wav: &[u8]) -> anyhow::Result<Heard> {
        let reply = self
            .adapter
            .transcribe(
                &self.cleared,
                TranscriptionRequest {
                    wav: bytes::Bytes::copy_from_slice(wav),
                    prompt: None,
                    language: Some("en".to_owned()),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("the local transcription sidecar: {e}"))?;
        let text = reply
            .segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Heard {
            text,
            segments: reply.segments,
        })
    }
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
    let ear = Ear::new(&posture)?;
    ear.transcribe(&warm).await?;
    let config = local.handle().config().clone();
    println!(
        "local transcription: {} ({} threads, beam {}), {audio_secs:.1} s of synthetic speech",
        posture.label, config.threads, config.beam_size
    );
    let mut factors = Vec::new();
    let mut word_error = 0.0;
    for run in 1..=runs {
        let started = Instant::now();
        let heard = ear.transcribe(&clip).await?;
        let compute = started.elapsed().as_secs_f64();
        let factor = compute / audio_secs;
        word_error = wer::rate(&text, &heard.text);
        println!(
            "run {run}: {compute:.1} s compute, real-time factor {factor:.3}, {} segments, word error rate {:.1} %",
            heard.segments.len(),
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
    drafter: DrafterOptions,
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
    /// Transcript segments kept.
    segments: usize,
    /// The drafts of this clip's transcript.
    drafting: ClipDrafting,
}

/// The drafts of one transcript.
#[derive(serde::Serialize, Clone, Debug)]
struct ClipDrafting {
    /// The default draft (no provider): the template filled with transcript excerpts.
    default: DraftingFigures,
    /// The `--drafter-url` provider's draft, when one is given and it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<DraftingFigures>,
    /// Why the provider gave no draft (truncated, rate limited, malformed …), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_error: Option<String>,
}

/// The drafting figures of one draft, or summed over drafts (issue 18 item 9).
#[derive(serde::Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct DraftingFigures {
    /// Draft sentences in all.
    pub sentences: usize,
    /// Sentences citing at least one transcript segment that exists.
    pub citing: usize,
    /// `citing` over `sentences` (0 for no sentence).
    pub evidence_coverage: f64,
    /// Sentences the evidence check flagged ([`egress::evidence`]: no evidence, an unknown
    /// segment, numbers, teeth, drugs or negations absent from the cited segments): each must
    /// be accepted one by one before signing.
    pub flagged_sentences: usize,
}

impl DraftingFigures {
    /// The figures of `sentences`, a draft of `segments` (id, text).
    fn of(sentences: &[NewSentence], segments: &[(domain::SegmentId, String)]) -> Self {
        let citing = sentences
            .iter()
            .filter(|s| {
                s.evidence
                    .iter()
                    .any(|e| segments.iter().any(|(id, _)| id == e))
            })
            .count();
        let flagged = sentences.iter().filter(|s| !s.flags.is_empty()).count();
        Self::from_counts(sentences.len(), citing, flagged)
    }

    fn from_counts(sentences: usize, citing: usize, flagged_sentences: usize) -> Self {
        Self {
            sentences,
            citing,
            evidence_coverage: (wer::ratio(citing, sentences) * 1000.0).round() / 1000.0,
            flagged_sentences,
        }
    }

    /// The figures of several drafts together.
    fn sum<'a>(all: impl Iterator<Item = &'a Self>) -> Self {
        let (n, c, f) = all.fold((0, 0, 0), |(n, c, f), d| {
            (n + d.sentences, c + d.citing, f + d.flagged_sentences)
        });
        Self::from_counts(n, c, f)
    }
}

/// Drafts `heard` (a transcript of a visit of `kind`) as the server does and scores each
/// draft: the default draft ([`server::actions::scribe::default_sentences`], no findings: a
/// synthetic visit has no chart) and, with a provider, its draft through the adapter, every
/// sentence through the server's evidence check ([`server::actions::scribe::checked_sentences`]).
async fn draft_figures(
    kind: VisitKind,
    heard: &Heard,
    provider: Option<&ProviderDrafter>,
) -> ClipDrafting {
    let capture = domain::CaptureId::new();
    let segments: Vec<store::transcripts::Segment> = heard
        .segments
        .iter()
        .map(|s| store::transcripts::Segment {
            segment_id: domain::SegmentId::new(),
            capture_id: capture,
            chunk_seq: 0,
            start_ms: i64::try_from(s.start_ms).unwrap_or(i64::MAX),
            end_ms: i64::try_from(s.end_ms).unwrap_or(i64::MAX),
            speaker: s.speaker.clone(),
            revision: 0,
            text: s.text.trim().to_owned(),
        })
        .collect();
    let pairs: Vec<(domain::SegmentId, String)> = segments
        .iter()
        .map(|s| (s.segment_id, s.text.clone()))
        .collect();
    let default = DraftingFigures::of(
        &server::actions::scribe::default_sentences(&[], &segments),
        &pairs,
    );
    let (provider, provider_error) = match provider {
        None => (None, None),
        Some(p) => {
            let request = DraftRequest {
                template: kind.name().to_owned(),
                segments: pairs.clone(),
                findings: Vec::new(),
                edit: None,
            };
            match p.adapter.draft(&p.cleared, request).await {
                Ok(reply) => (
                    Some(DraftingFigures::of(
                        &server::actions::scribe::checked_sentences(&reply.sentences, &pairs),
                        &pairs,
                    )),
                    None,
                ),
                Err(e) => (None, Some(e.to_string())),
            }
        }
    };
    ClipDrafting {
        default,
        provider,
        provider_error,
    }
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
    // The drafting provider goes through the gate before anything runs.
    let drafter = plan.drafter.open()?;
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
    let ear = Ear::new(&posture)?;
    let mut scored = Vec::new();
    for (i, visit) in visits.iter().enumerate() {
        for (j, voice) in plan.voices.iter().enumerate() {
            let (wav, audio_seconds) =
                speak(&scratch.0, &format!("v{i}-{j}"), voice, &visit.text())?;
            let started = Instant::now();
            let heard = ear.transcribe(&wav).await?;
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
                segments: heard.segments.len(),
                drafting: draft_figures(visit.kind, &heard, drafter.as_ref()).await,
            };
            if !plan.json {
                print_clip(&s);
            }
            scored.push(s);
        }
    }
    local.stop().await;
    let report = summarize(
        &scored,
        &plan.voices,
        &posture,
        &drafting_summary(&scored, drafter.as_ref()),
    );
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

fn print_clip(s: &Scored) {
    let d = &s.drafting;
    let draft = |f: &DraftingFigures| {
        format!(
            "{} sentences, {:.0} % cite, {} flagged",
            f.sentences,
            f.evidence_coverage * 100.0,
            f.flagged_sentences
        )
    };
    let provider = match (&d.provider, &d.provider_error) {
        (Some(f), _) => format!("; provider draft {}", draft(f)),
        (None, Some(e)) => format!("; provider draft failed: {e}"),
        (None, None) => String::new(),
    };
    println!(
        "{:<28} {:<8} {:>5.1} s audio {:>5.1} s compute  WER {:>5.1} % ({}/{} words)  default draft {}{provider}",
        s.visit,
        s.voice,
        s.audio_seconds,
        s.compute_seconds,
        s.word_error_rate * 100.0,
        s.word_errors,
        s.reference_words,
        draft(&d.default),
    );
}

/// The figures of the drafts `pick` chooses (`None`: a clip without one), over all clips and
/// per visit (its clips in every voice together).
fn drafting_figures(
    scored: &[Scored],
    pick: fn(&ClipDrafting) -> Option<&DraftingFigures>,
) -> (DraftingFigures, serde_json::Map<String, serde_json::Value>) {
    let sum = |visit: Option<&str>| {
        DraftingFigures::sum(
            scored
                .iter()
                .filter(|s| visit.is_none_or(|v| s.visit == v))
                .filter_map(|s| pick(&s.drafting)),
        )
    };
    let mut by_visit = serde_json::Map::new();
    for s in scored {
        if !by_visit.contains_key(&s.visit) {
            by_visit.insert(s.visit.clone(), serde_json::json!(sum(Some(&s.visit))));
        }
    }
    (sum(None), by_visit)
}

/// The drafting half of the report: the default draft's figures and, with a provider, its.
fn drafting_summary(scored: &[Scored], provider: Option<&ProviderDrafter>) -> serde_json::Value {
    let (all, by_visit) = drafting_figures(scored, |d| Some(&d.default));
    let default = serde_json::json!({
        "label": "the default draft (no drafting provider; not AI-written)",
        "all": all,
        "by_visit": by_visit,
    });
    let Some(p) = provider else {
        return serde_json::json!({ "default": default });
    };
    let (all, by_visit) = drafting_figures(scored, |d| d.provider.as_ref());
    serde_json::json!({
        "default": default,
        "provider": {
            "label": p.cleared.posture().label,
            "model": p.cleared.posture().model,
            "drafts": scored.iter().filter(|s| s.drafting.provider.is_some()).count(),
            "failed": scored.iter().filter(|s| s.drafting.provider_error.is_some()).count(),
            "all": all,
            "by_visit": by_visit,
        },
    })
}

fn summarize(
    scored: &[Scored],
    voices: &[String],
    posture: &ProviderPosture,
    drafting: &serde_json::Value,
) -> serde_json::Value {
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
        "drafting": drafting,
    })
}
