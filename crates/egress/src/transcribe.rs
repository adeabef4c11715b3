//! Transcription adapters: one interface, several wire formats.

use crate::{Cleared, EgressError, Usage};

/// One clip to transcribe.
#[derive(Debug, Clone)]
pub struct TranscriptionRequest {
    /// WAV audio (16-bit PCM, mono).
    pub wav: bytes::Bytes,
    /// Words the recognizer should expect (vocabulary prompt), if any.
    pub prompt: Option<String>,
    /// ISO 639-1 language, e.g. `en`.
    pub language: Option<String>,
}

/// One recognized segment, times relative to the clip's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, milliseconds.
    pub start_ms: u64,
    /// End, milliseconds.
    pub end_ms: u64,
    /// The text.
    pub text: String,
    /// Speaker label when the provider gives one.
    pub speaker: Option<String>,
    /// The provider's probability that the segment is not speech, when given.
    pub no_speech_prob: Option<f32>,
    /// The provider's mean token log-probability, when given.
    pub avg_logprob: Option<f32>,
}

/// A provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionReply {
    /// The segments kept (after the filters against invented text).
    pub segments: Vec<Segment>,
    /// Token counts, when reported.
    pub usage: Usage,
}

/// A transcription provider.
#[async_trait::async_trait]
pub trait Transcriber: Send + Sync {
    /// Transcribes one clip through a provider the gate cleared.
    async fn transcribe(
        &self,
        provider: &Cleared,
        request: TranscriptionRequest,
    ) -> Result<TranscriptionReply, EgressError>;
}
