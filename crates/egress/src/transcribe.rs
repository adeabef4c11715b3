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

/// One segment as the provider gave it, before the filters.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSegment {
    /// The recognized segment.
    pub segment: Segment,
    /// The provider's gzip compression ratio of the text, when given (high = repetition).
    pub compression_ratio: Option<f32>,
}

/// Above this `no_speech_prob`, with a low `avg_logprob`, a segment is taken for silence.
pub const NO_SPEECH_THRESHOLD: f32 = 0.6;
/// Below this `avg_logprob` a probable-silence segment is dropped (Whisper's own threshold).
pub const LOGPROB_THRESHOLD: f32 = -1.0;
/// Above this compression ratio the text is a repetition loop (Whisper's own threshold).
pub const COMPRESSION_RATIO_THRESHOLD: f32 = 2.4;

/// Phrases recognizers invent on silence (normalized: lower case, letters, digits and single
/// spaces). A segment whose whole text is one of them is dropped.
const SILENCE_PHRASES: &[&str] = &[
    "you",
    "thank you for watching",
    "thanks for watching",
    "thank you so much for watching",
    "thank you for watching please subscribe",
    "please subscribe",
    "please like and subscribe",
    "like and subscribe",
    "dont forget to like and subscribe",
    "see you in the next video",
    "bye bye",
];

/// Beginnings of invented credits (normalized as above): a segment starting with one is dropped.
const SILENCE_PREFIXES: &[&str] = &[
    "subtitles by",
    "subtitle by",
    "subtitled by",
    "captions by",
    "captioned by",
    "closed captioning by",
    "transcribed by",
    "transcription by",
    "translated by",
    "amara org",
];

/// Why a segment was dropped (for counts in logs; never the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Empty after trimming.
    Empty,
    /// Probably silence: high no-speech probability with low confidence.
    NoSpeech,
    /// A repetition loop.
    Repetition,
    /// A phrase recognizers invent on silence.
    SilencePhrase,
}

/// Why `segment` should not be kept, if it should not: the filters against invented text.
#[must_use]
pub fn drop_reason(raw: &RawSegment) -> Option<Dropped> {
    let s = &raw.segment;
    let text = normalize(&s.text);
    if text.is_empty() {
        return Some(Dropped::Empty);
    }
    if let (Some(ns), Some(lp)) = (s.no_speech_prob, s.avg_logprob)
        && ns > NO_SPEECH_THRESHOLD
        && lp < LOGPROB_THRESHOLD
    {
        return Some(Dropped::NoSpeech);
    }
    if raw
        .compression_ratio
        .is_some_and(|r| r > COMPRESSION_RATIO_THRESHOLD)
    {
        return Some(Dropped::Repetition);
    }
    if SILENCE_PHRASES.contains(&text.as_str())
        || SILENCE_PREFIXES
            .iter()
            .any(|p| text == *p || text.starts_with(&format!("{p} ")))
    {
        return Some(Dropped::SilencePhrase);
    }
    None
}

/// Keeps the segments no filter drops, in order, with their text trimmed.
#[must_use]
pub fn filter_segments(raw: Vec<RawSegment>) -> Vec<Segment> {
    let total = raw.len();
    let kept: Vec<Segment> = raw
        .into_iter()
        .filter(|r| drop_reason(r).is_none())
        .map(|r| Segment {
            text: r.segment.text.trim().to_owned(),
            ..r.segment
        })
        .collect();
    if kept.len() < total {
        tracing::debug!(
            dropped = total - kept.len(),
            kept = kept.len(),
            "transcript segments dropped as probable invented text"
        );
    }
    kept
}

/// Lower case, letters and digits only, words separated by single spaces.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        let w: String = word
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '.')
            .flat_map(char::to_lowercase)
            .collect();
        // "amara.org" → "amara org"; a sentence-ending dot goes away.
        for part in w.split('.').filter(|p| !p.is_empty()) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str, ns: Option<f32>, lp: Option<f32>, cr: Option<f32>) -> RawSegment {
        RawSegment {
            segment: Segment {
                start_ms: 0,
                end_ms: 1000,
                text: text.into(),
                speaker: None,
                no_speech_prob: ns,
                avg_logprob: lp,
            },
            compression_ratio: cr,
        }
    }

    #[test]
    fn filters_against_invented_text() {
        use super::Dropped::{Empty, NoSpeech, Repetition, SilencePhrase};
        type Case = (
            &'static str,
            Option<f32>,
            Option<f32>,
            Option<f32>,
            Option<Dropped>,
        );
        let cases: &[Case] = &[
            (
                "Probing depth four on the mesial.",
                Some(0.01),
                Some(-0.2),
                Some(1.3),
                None,
            ),
            ("   ", None, None, None, Some(Empty)),
            (
                "Bleeding on probing.",
                Some(0.9),
                Some(-1.5),
                Some(1.2),
                Some(NoSpeech),
            ),
            // High no-speech but confident: real (quiet) speech, kept.
            (
                "Bleeding on probing.",
                Some(0.9),
                Some(-0.3),
                Some(1.2),
                None,
            ),
            // Low confidence alone: kept (the clinician reviews it).
            (
                "Suppuration on three.",
                Some(0.1),
                Some(-1.4),
                Some(1.1),
                None,
            ),
            (
                "three three three three three three three three",
                None,
                None,
                Some(3.1),
                Some(Repetition),
            ),
            (
                "Thank you for watching!",
                Some(0.2),
                Some(-0.5),
                Some(1.0),
                Some(SilencePhrase),
            ),
            (
                "Thanks for watching.",
                None,
                None,
                None,
                Some(SilencePhrase),
            ),
            (" you", Some(0.3), Some(-0.6), None, Some(SilencePhrase)),
            ("You.", None, None, None, Some(SilencePhrase)),
            (
                "Subtitles by the Amara.org community",
                None,
                None,
                None,
                Some(SilencePhrase),
            ),
            (
                "Transcribed by ESO, translated by —",
                None,
                None,
                None,
                Some(SilencePhrase),
            ),
            (
                "Please like and subscribe",
                None,
                None,
                None,
                Some(SilencePhrase),
            ),
            // Real speech that merely contains such words: kept.
            ("Thank you, open a little wider.", None, None, None, None),
            ("You have some recession on eight.", None, None, None, None),
            (
                "Subtitles are not something we use here.",
                None,
                None,
                None,
                None,
            ),
        ];
        for (text, ns, lp, cr, want) in cases {
            assert_eq!(drop_reason(&raw(text, *ns, *lp, *cr)), *want, "{text:?}");
        }
    }

    #[test]
    fn filter_keeps_order_and_trims() {
        let kept = filter_segments(vec![
            raw(" one ", None, None, None),
            raw("you", None, None, None),
            raw("two", None, None, None),
        ]);
        let texts: Vec<_> = kept.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["one", "two"]);
    }
}
