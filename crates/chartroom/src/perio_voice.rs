//! `chartroom perio eval-voice`: the voice evaluation contract of
//! `shared/perio/voice/README.md`.
//!
//! Each clip of a manifest is sent to an OpenAI-compatible transcription endpoint
//! (`POST {url}/v1/audio/transcriptions`, multipart `file`, `model`, `prompt`, `language`,
//! `response_format=verbose_json`, `temperature=0`) through [`server::voice::recognize`],
//! the pipeline the perio page's dictation runs (prompt, snapping, confidence, second
//! reading, hold), and scored with [`perio::voice::apply_scored`] against the typed
//! utterance. The scoring is pure and lives in the `perio` crate; this module does the IO.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use perio::voice::{Heard, Policy, Scored, Verdict, apply_scored};
use serde_json::Value;

/// Largest clip sent (a dictated final is seconds long).
const MAX_CLIP_BYTES: u64 = 4 * 1024 * 1024;
/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// Largest recognizer reply read.
const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// One transcription may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts the local Whisper sidecar installed by `scripts/install-scribe` and waits until it
/// is ready (loading the model takes seconds).
pub async fn start_local()
-> anyhow::Result<(egress::local::LocalWhisper, egress::gate::ProviderPosture)> {
    let home = egress::local::LocalWhisperConfig::default_home()
        .context("no scribe home: set CHARTROOM_SCRIBE_HOME or HOME")?;
    let config = egress::local::LocalWhisperConfig::from_install(&home).context(
        "the local recognizer is not installed (run scripts/install-scribe) or give --recognizer-url",
    )?;
    let local = egress::local::LocalWhisper::spawn(config);
    let posture = local
        .handle()
        .wait_ready(Duration::from_secs(300))
        .await
        .context("the local recognizer did not start")?;
    Ok((local, posture))
}

/// Totals of a voice evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VoiceTotals {
    /// Finals scored.
    pub finals: usize,
    /// Exact finals.
    pub exact: usize,
    /// Flagged finals.
    pub flagged: usize,
    /// Wrong finals.
    pub wrong: usize,
    /// Session cases whose final chart equals `expect_chart`.
    pub charts_exact: usize,
    /// Session cases (with `expect_chart`).
    pub charts: usize,
}

impl std::fmt::Display for VoiceTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} finals: {} exact, {} flagged, {} wrong; {}/{} session charts exact",
            self.finals, self.exact, self.flagged, self.wrong, self.charts_exact, self.charts
        )
    }
}

/// A transcription client for an OpenAI-compatible endpoint.
pub struct Recognizer {
    client: reqwest::Client,
    url: String,
    model: String,
}

impl Recognizer {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8080`), sending the perio prompt.
    pub fn new(base_url: &str, model: &str) -> anyhow::Result<Self> {
        let base = url::Url::parse(base_url).context("--recognizer-url is not a URL")?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--recognizer-url must be http or https");
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            url: format!(
                "{}/v1/audio/transcriptions",
                base.as_str().trim_end_matches('/')
            ),
            model: model.to_owned(),
        })
    }

    /// Transcribes one WAV clip with a prompt.
    pub async fn transcribe(&self, wav: &[u8], prompt: &str) -> anyhow::Result<Heard> {
        let boundary = format!("chartroom-{:016x}", rand::random::<u64>());
        let mut body = Vec::with_capacity(wav.len() + 1024);
        for (name, value) in [
            ("model", self.model.as_str()),
            ("prompt", prompt),
            ("language", "en"),
            ("response_format", "verbose_json"),
            ("temperature", "0"),
        ] {
            let _ = write!(
                Bytes(&mut body),
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            );
        }
        let _ = write!(
            Bytes(&mut body),
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        );
        body.extend_from_slice(wav);
        let _ = write!(Bytes(&mut body), "\r\n--{boundary}--\r\n");
        let reply = self
            .client
            .post(&self.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .context("the recognizer did not answer")?;
        let status = reply.status();
        let bytes = reply
            .bytes()
            .await
            .context("reading the recognizer reply")?;
        if bytes.len() > MAX_REPLY_BYTES {
            bail!("the recognizer reply is over {MAX_REPLY_BYTES} bytes");
        }
        if !status.is_success() {
            bail!("the recognizer answered HTTP {status}");
        }
        let json: Value =
            serde_json::from_slice(&bytes).context("the recognizer reply is not JSON")?;
        Ok(heard_from_verbose_json(&json))
    }
}

/// The evaluation hears clips through the same pipeline as the perio page.
#[async_trait::async_trait]
impl server::voice::Ear for Recognizer {
    async fn hear(&self, wav: &bytes::Bytes, prompt: &str) -> Result<Heard, egress::EgressError> {
        self.transcribe(wav, prompt).await.map_err(|e| {
            tracing::warn!(error = %e, "the recognizer failed");
            egress::EgressError::Unreachable
        })
    }
}

/// `fmt::Write` into a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Reads a `verbose_json` transcription (the `OpenAI` shape): the text, the mean of the segments'
/// `avg_logprob` (weighted by their token counts when given) and the highest
/// `no_speech_prob`. A plain `json` reply gives the text alone.
#[must_use]
pub fn heard_from_verbose_json(json: &Value) -> Heard {
    let text = json
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let segments = json
        .get("segments")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut weight = 0.0;
    let mut sum = 0.0;
    let mut no_speech: Option<f64> = None;
    for s in segments {
        if let Some(lp) = s.get("avg_logprob").and_then(Value::as_f64) {
            let w = s.get("tokens").and_then(Value::as_array).map_or(1.0, |t| {
                f64::from(u32::try_from(t.len().max(1)).unwrap_or(u32::MAX))
            });
            sum += lp * w;
            weight += w;
        }
        if let Some(p) = s.get("no_speech_prob").and_then(Value::as_f64) {
            no_speech = Some(no_speech.map_or(p, |q| q.max(p)));
        }
    }
    Heard {
        text,
        avg_logprob: (weight > 0.0).then(|| sum / weight),
        no_speech_prob: no_speech,
    }
}

fn read_bounded(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > limit {
        bail!("{} is over {limit} bytes", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs the evaluation over manifests; prints one line per non-exact final and the totals.
pub async fn eval_voice(
    files: &[PathBuf],
    recognizer: &Recognizer,
    all: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<VoiceTotals> {
    let policy = Policy::default();
    let mut totals = VoiceTotals::default();
    let started = Instant::now();
    for file in files {
        let text = String::from_utf8(read_bounded(file, MAX_MANIFEST_BYTES)?)
            .with_context(|| format!("{} is not UTF-8", file.display()))?;
        let dir = file.parent().unwrap_or_else(|| Path::new("."));
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let case: Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON", file.display(), n + 1))?;
            let id = match case.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => format!("line {}", n + 1),
            };
            let empty = Value::Object(serde_json::Map::new());
            let mut session = perio::Session::from_ctx(case.get("ctx").unwrap_or(&empty))
                .with_context(|| format!("{} case {id}: ctx", file.display()))?;
            let utterances = strings(&case, "utterances");
            let clips = strings(&case, "clips");
            if utterances.len() != clips.len() || utterances.is_empty() {
                bail!(
                    "{} case {id}: {} utterances but {} clips",
                    file.display(),
                    utterances.len(),
                    clips.len()
                );
            }
            for (i, (typed, clip)) in utterances.iter().zip(&clips).enumerate() {
                let clip_path = dir.join(clip);
                if Path::new(clip).is_absolute() || clip.split('/').any(|c| c == "..") {
                    bail!(
                        "{} case {id}: clip path {clip:?} leaves the manifest's folder",
                        file.display()
                    );
                }
                let wav = bytes::Bytes::from(read_bounded(&clip_path, MAX_CLIP_BYTES)?);
                let outcome = server::voice::recognize(recognizer, &session, &wav, &policy)
                    .await
                    .with_context(|| {
                        format!("the recognizer on {} case {id} clip {i}", file.display())
                    })?;
                let heard: Vec<Heard> = outcome.readings.iter().map(|r| r.heard.clone()).collect();
                let voice = outcome.voice;
                let scored = apply_scored(&mut session, typed, voice);
                totals.finals += 1;
                match scored.verdict {
                    Verdict::Exact => totals.exact += 1,
                    Verdict::Flagged => totals.flagged += 1,
                    Verdict::Wrong => totals.wrong += 1,
                }
                if all || scored.verdict != Verdict::Exact {
                    writeln!(out, "{}", final_line(&id, i, typed, &heard, &scored))?;
                }
            }
            if let Some(want) = case.get("expect_chart") {
                totals.charts += 1;
                if perio::session::chart_to_json(session.chart()) == *want {
                    totals.charts_exact += 1;
                } else {
                    writeln!(out, "{id}: session chart differs from expect_chart")?;
                }
            }
        }
    }
    tracing::debug!(
        finals = totals.finals,
        secs = started.elapsed().as_secs_f64(),
        "voice evaluation done"
    );
    writeln!(out, "{totals}")?;
    Ok(totals)
}

/// One line about a final: id, index, the typed utterance, what was heard (every reading,
/// in order, separated by ` | `), the final and its outcome (or why it was held), the
/// verdict.
fn final_line(id: &str, i: usize, typed: &str, heard: &[Heard], scored: &Scored) -> String {
    let what = scored.applied.as_ref().map_or_else(
        || {
            let reasons: Vec<&str> = scored.voice.hold.iter().map(|h| h.name()).collect();
            format!("held: {}", reasons.join(","))
        },
        |o| {
            serde_json::to_value(o.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        },
    );
    format!(
        "{id} [{i}] expected {typed:?}, heard {} -> {:?} ({what}, confidence {:.2}): {}",
        heard
            .iter()
            .map(|h| format!("{:?}", h.text))
            .collect::<Vec<_>>()
            .join(" | "),
        scored.voice.text,
        scored.voice.confidence,
        scored.verdict.name()
    )
}

fn strings(case: &Value, key: &str) -> Vec<String> {
    case.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_json_confidence() {
        let json = serde_json::json!({
            "text": " Three two three.",
            "segments": [
                {"avg_logprob": -0.2, "no_speech_prob": 0.1, "tokens": [1, 2, 3]},
                {"avg_logprob": -0.6, "no_speech_prob": 0.3, "tokens": [4]}
            ]
        });
        let heard = heard_from_verbose_json(&json);
        assert_eq!(heard.text, " Three two three.");
        assert!((heard.avg_logprob.unwrap() + 0.3).abs() < 1e-9);
        assert!((heard.no_speech_prob.unwrap() - 0.3).abs() < 1e-9);
        let plain = heard_from_verbose_json(&serde_json::json!({"text": "x"}));
        assert_eq!((plain.avg_logprob, plain.no_speech_prob), (None, None));
    }

    #[test]
    fn summary_line_format() {
        let t = VoiceTotals {
            finals: 56,
            exact: 50,
            flagged: 6,
            wrong: 0,
            charts_exact: 2,
            charts: 3,
        };
        assert_eq!(
            t.to_string(),
            "56 finals: 50 exact, 6 flagged, 0 wrong; 2/3 session charts exact"
        );
    }
}
