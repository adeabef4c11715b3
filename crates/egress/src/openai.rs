//! OpenAI-compatible adapters: `/v1/audio/transcriptions` (verbose JSON) and
//! `/v1/chat/completions` (strict JSON-schema output). The same wire format is spoken by
//! the servers of `whisper.cpp`, `faster-whisper`, `vLLM`, `Ollama` and `llama.cpp`, and `OpenAI`.

use serde::Deserialize;

use crate::draft::{self, DraftReply, DraftRequest, Drafter};
use crate::http::{self, ApiKey, Limits, Transport};
use crate::transcribe::{
    RawSegment, Segment, Transcriber, TranscriptionReply, TranscriptionRequest, filter_segments,
};
use crate::{Cleared, EgressError, Usage};

/// The largest clip sent in one call (the documented upload limit of `OpenAI`).
pub const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;
/// The longest vocabulary prompt sent.
pub const MAX_PROMPT_CHARS: usize = 2000;

/// Transcription through an OpenAI-compatible `/v1/audio/transcriptions`.
#[derive(Debug, Clone)]
pub struct OpenAiTranscriber {
    transport: Transport,
    api_key: Option<ApiKey>,
}

impl OpenAiTranscriber {
    /// An adapter with the default [`Limits`]; `api_key` is sent as a bearer token when given.
    pub fn new(api_key: Option<ApiKey>) -> Result<Self, EgressError> {
        Self::with_limits(api_key, Limits::default())
    }

    /// An adapter with explicit limits.
    pub fn with_limits(api_key: Option<ApiKey>, limits: Limits) -> Result<Self, EgressError> {
        Ok(Self {
            transport: Transport::new(limits)?,
            api_key,
        })
    }
}

#[derive(Deserialize)]
struct VerboseJson {
    segments: Vec<WireSegment>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireSegment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    no_speech_prob: Option<f32>,
    #[serde(default)]
    avg_logprob: Option<f32>,
    #[serde(default)]
    compression_ratio: Option<f32>,
    #[serde(default)]
    speaker: Option<String>,
}

#[derive(Deserialize)]
#[allow(clippy::struct_field_names, reason = "the providers' own field names")]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens.or(self.prompt_tokens),
            output_tokens: self.output_tokens.or(self.completion_tokens),
        }
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "checked first: finite, non-negative, at most a day"
)]
pub(crate) fn seconds_to_ms(s: f64) -> Result<u64, EgressError> {
    if !s.is_finite() || !(0.0..=86_400.0).contains(&s) {
        return Err(EgressError::Malformed(
            "a segment time is out of range".into(),
        ));
    }
    Ok((s * 1000.0).round() as u64)
}

/// Parses a verbose-JSON transcription reply and applies the filters.
pub(crate) fn parse_transcription(body: &[u8]) -> Result<TranscriptionReply, EgressError> {
    let reply: VerboseJson = http::parse_json(body, "the transcription")?;
    let mut raw = Vec::with_capacity(reply.segments.len());
    for s in reply.segments {
        let start_ms = seconds_to_ms(s.start)?;
        let end_ms = seconds_to_ms(s.end)?;
        if end_ms < start_ms {
            return Err(EgressError::Malformed(
                "a segment ends before it starts".into(),
            ));
        }
        raw.push(RawSegment {
            segment: Segment {
                start_ms,
                end_ms,
                text: s.text,
                speaker: s.speaker,
                no_speech_prob: s.no_speech_prob,
                avg_logprob: s.avg_logprob,
            },
            compression_ratio: s.compression_ratio,
        });
    }
    Ok(TranscriptionReply {
        segments: filter_segments(raw),
        usage: reply
            .usage
            .as_ref()
            .map(WireUsage::usage)
            .unwrap_or_default(),
    })
}

/// Appends one multipart form field.
fn field(body: &mut Vec<u8>, boundary: &str, name: &str, value: &str) {
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(value.as_bytes());
    body.extend_from_slice(b"\r\n");
}

/// The multipart body of a transcription request.
fn multipart(model: &str, request: &TranscriptionRequest, boundary: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(request.wav.len().saturating_add(1024));
    field(&mut body, boundary, "model", model);
    field(&mut body, boundary, "response_format", "verbose_json");
    field(&mut body, boundary, "temperature", "0");
    if let Some(prompt) = request.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
        let prompt: String = prompt.chars().take(MAX_PROMPT_CHARS).collect();
        field(&mut body, boundary, "prompt", &prompt);
    }
    if let Some(language) = request
        .language
        .as_deref()
        .filter(|l| l.len() <= 8 && l.chars().all(|c| c.is_ascii_alphabetic() || c == '-'))
    {
        field(&mut body, boundary, "language", language);
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&request.wav);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[async_trait::async_trait]
impl Transcriber for OpenAiTranscriber {
    async fn transcribe(
        &self,
        provider: &Cleared,
        request: TranscriptionRequest,
    ) -> Result<TranscriptionReply, EgressError> {
        if request.wav.len() > MAX_AUDIO_BYTES {
            return Err(EgressError::Malformed(format!(
                "the clip is larger than {MAX_AUDIO_BYTES} bytes"
            )));
        }
        let boundary = format!("chartroom-{}", uuid::Uuid::new_v4().simple());
        let body = multipart(&provider.posture().model, &request, &boundary);
        let body = self
            .transport
            .post(
                provider,
                "/v1/audio/transcriptions",
                &format!("multipart/form-data; boundary={boundary}"),
                body,
                self.api_key.as_ref(),
            )
            .await?;
        parse_transcription(&body)
    }
}

/// Drafting through an OpenAI-compatible `/v1/chat/completions` with strict JSON-schema output.
#[derive(Debug, Clone)]
pub struct OpenAiDrafter {
    transport: Transport,
    api_key: Option<ApiKey>,
}

impl OpenAiDrafter {
    /// An adapter with the default [`Limits`]; `api_key` is sent as a bearer token when given.
    pub fn new(api_key: Option<ApiKey>) -> Result<Self, EgressError> {
        Self::with_limits(api_key, Limits::default())
    }

    /// An adapter with explicit limits.
    pub fn with_limits(api_key: Option<ApiKey>, limits: Limits) -> Result<Self, EgressError> {
        Ok(Self {
            transport: Transport::new(limits)?,
            api_key,
        })
    }
}

#[derive(Deserialize)]
struct ChatReply {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

/// Parses a chat-completions reply into a draft.
pub(crate) fn parse_chat(body: &[u8]) -> Result<DraftReply, EgressError> {
    let reply: ChatReply = http::parse_json(body, "the chat completion")?;
    let usage = reply
        .usage
        .as_ref()
        .map(WireUsage::usage)
        .unwrap_or_default();
    let [choice] = reply.choices.as_slice() else {
        return Err(EgressError::Malformed(
            "the chat completion does not have exactly one choice".into(),
        ));
    };
    match choice.finish_reason.as_deref() {
        Some("length") => return Err(EgressError::Truncated),
        Some("stop") | None => {}
        Some(_) => {
            return Err(EgressError::Malformed(
                "the chat completion stopped for an unexpected reason".into(),
            ));
        }
    }
    if choice.message.refusal.is_some() {
        return Err(EgressError::Malformed("the model declined to draft".into()));
    }
    let Some(content) = choice.message.content.as_deref() else {
        return Err(EgressError::Malformed(
            "the chat completion has no content".into(),
        ));
    };
    let sentences = draft::parse_sentences(
        &serde_json::from_str::<serde_json::Value>(content)
            .map_err(|_| EgressError::Malformed("the draft is not JSON".into()))?,
    )?;
    Ok(DraftReply { sentences, usage })
}

#[async_trait::async_trait]
impl Drafter for OpenAiDrafter {
    async fn draft(
        &self,
        provider: &Cleared,
        request: DraftRequest,
    ) -> Result<DraftReply, EgressError> {
        let body = serde_json::json!({
            "model": provider.posture().model,
            "messages": [
                {"role": "system", "content": draft::instructions(&request)},
                {"role": "user", "content": draft::user_message(&request)},
            ],
            "temperature": 0,
            "max_tokens": self.transport.limits().max_output_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": draft::SCHEMA_NAME,
                    "strict": true,
                    "schema": draft::schema(),
                },
            },
        });
        let body = serde_json::to_vec(&body)
            .map_err(|_| EgressError::Malformed("the request could not be built".into()))?;
        let body = self
            .transport
            .post(
                provider,
                "/v1/chat/completions",
                "application/json",
                body,
                self.api_key.as_ref(),
            )
            .await?;
        parse_chat(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_json_segments_become_milliseconds_and_are_filtered() {
        let body = br#"{"task":"transcribe","language":"english","duration":4.2,"text":"x",
            "segments":[
              {"id":0,"seek":0,"start":0.0,"end":1.52,"text":" Probing four.","tokens":[1],
               "temperature":0.0,"avg_logprob":-0.2,"compression_ratio":1.1,"no_speech_prob":0.01},
              {"id":1,"seek":0,"start":1.52,"end":4.2,"text":" Thank you for watching.","tokens":[2],
               "temperature":0.0,"avg_logprob":-0.9,"compression_ratio":1.0,"no_speech_prob":0.5}
            ]}"#;
        let reply = parse_transcription(body).unwrap();
        assert_eq!(reply.segments.len(), 1);
        let s = &reply.segments[0];
        assert_eq!(
            (s.start_ms, s.end_ms, s.text.as_str()),
            (0, 1520, "Probing four.")
        );
        assert_eq!(s.avg_logprob, Some(-0.2));
    }

    #[test]
    fn malformed_transcriptions_are_refused() {
        for body in [
            &br#"{"text":"no segments"}"#[..],
            br#"{"segments":[{"start":"a","end":1,"text":"x"}]}"#,
            br#"{"segments":[{"start":2.0,"end":1.0,"text":"x"}]}"#,
            br#"{"segments":[{"start":-1.0,"end":1.0,"text":"x"}]}"#,
            b"not json",
        ] {
            assert!(
                matches!(parse_transcription(body), Err(EgressError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn multipart_carries_the_fields() {
        let req = TranscriptionRequest {
            wav: bytes::Bytes::from_static(b"RIFF"),
            prompt: Some("furcation".into()),
            language: Some("en".into()),
        };
        let body = String::from_utf8_lossy(&multipart("whisper-1", &req, "B")).into_owned();
        for want in [
            "name=\"model\"\r\n\r\nwhisper-1\r\n",
            "name=\"response_format\"\r\n\r\nverbose_json\r\n",
            "name=\"prompt\"\r\n\r\nfurcation\r\n",
            "name=\"language\"\r\n\r\nen\r\n",
            "filename=\"clip.wav\"",
        ] {
            assert!(body.contains(want), "{want}");
        }
        assert!(body.ends_with("--B--\r\n"));
    }
}
