//! AWS Transcribe Medical through the official SDK (cargo feature `aws`):
//! `StartMedicalStreamTranscription`, specialty primary care, the clip streamed as audio
//! events of 100 ms of 16-bit PCM, final results only, speaker labels (conversation) into
//! [`Segment::speaker`]. The SDK is pointed at the cleared provider's base URL (the regional
//! `transcribestreaming` endpoint, or a VPC endpoint), so the gate's decision is the address
//! called; credentials come from the standard AWS chain (instance role, environment).
//!
//! Transcribe Medical hears US English only; a request for another language is refused before
//! any connection opens.

use aws_sdk_transcribestreaming::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_transcribestreaming::operation::start_medical_stream_transcription::StartMedicalStreamTranscriptionError;
use aws_sdk_transcribestreaming::types::error::{
    AudioStreamError, MedicalTranscriptResultStreamError,
};
use aws_sdk_transcribestreaming::types::{
    AudioEvent, AudioStream, ItemType, LanguageCode, MediaEncoding, MedicalResult,
    MedicalTranscriptResultStream, Specialty, Type,
};
use aws_smithy_types::Blob;

use crate::aws::AwsEnv;
use crate::http::Limits;
use crate::openai::{MAX_AUDIO_BYTES, seconds_to_ms};
use crate::transcribe::{
    RawSegment, Segment, Transcriber, TranscriptionReply, TranscriptionRequest, filter_segments,
};
use crate::{Cleared, EgressError, Usage};

/// Audio per event: 100 ms at 16 kHz, 16-bit (AWS recommends 50–200 ms chunks).
const EVENT_BYTES: usize = 3200;
/// The most final results read from one stream.
const MAX_RESULTS: usize = 10_000;

/// What is being transcribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MedicalKind {
    /// A clinician and a patient talking (speaker labels asked for).
    Conversation,
    /// One clinician dictating.
    Dictation,
}

/// Transcription through AWS Transcribe Medical streaming.
#[derive(Debug, Clone)]
pub struct TranscribeMedical {
    env: AwsEnv,
    region: Option<String>,
    kind: MedicalKind,
    limits: Limits,
}

impl TranscribeMedical {
    /// An adapter with `env` (the AWS configuration, loaded on first use) and, when given,
    /// `region` (else the configured one).
    #[must_use]
    pub fn new(env: AwsEnv, region: Option<String>, kind: MedicalKind, limits: Limits) -> Self {
        Self {
            env,
            region,
            kind,
            limits,
        }
    }
}

/// The sample rate and the PCM samples of a 16-bit mono PCM WAV.
fn pcm_of_wav(b: &[u8]) -> Result<(i32, &[u8]), EgressError> {
    let bad = || EgressError::Malformed("the clip is not 16-bit mono PCM WAV".into());
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(
            b.get(at..at.checked_add(2)?)?.try_into().ok()?,
        ))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            b.get(at..at.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err(bad());
    }
    let mut at = 12usize;
    let mut rate = None;
    loop {
        let id = b
            .get(at..at.checked_add(4).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        let len = usize::try_from(u32_at(at + 4).ok_or_else(bad)?).map_err(|_| bad())?;
        let body = at.checked_add(8).ok_or_else(bad)?;
        let end = body.checked_add(len).ok_or_else(bad)?;
        if id == b"fmt " {
            let (tag, channels, r, bits) = (
                u16_at(body).ok_or_else(bad)?,
                u16_at(body + 2).ok_or_else(bad)?,
                u32_at(body + 4).ok_or_else(bad)?,
                u16_at(body + 14).ok_or_else(bad)?,
            );
            if len < 16 || tag != 1 || channels != 1 || bits != 16 || !(8000..=48_000).contains(&r)
            {
                return Err(bad());
            }
            rate = Some(i32::try_from(r).map_err(|_| bad())?);
        } else if id == b"data" {
            let rate = rate.ok_or_else(bad)?;
            return Ok((rate, b.get(body..end.min(b.len())).ok_or_else(bad)?));
        }
        // Chunks are padded to an even length.
        at = end.checked_add(len % 2).ok_or_else(bad)?;
    }
}

/// The segments of the final results: one per speaker turn when the items carry speaker
/// labels, else one per result. Items are joined with spaces, punctuation attached.
pub(crate) fn raw_segments(results: &[MedicalResult]) -> Result<Vec<RawSegment>, EgressError> {
    let mut out = Vec::new();
    let mut push = |start: f64, end: f64, text: String, speaker: Option<String>| {
        let (start_ms, end_ms) = (seconds_to_ms(start)?, seconds_to_ms(end)?);
        if end_ms < start_ms {
            return Err(EgressError::Malformed(
                "a segment ends before it starts".into(),
            ));
        }
        out.push(RawSegment {
            segment: Segment {
                start_ms,
                end_ms,
                text,
                speaker,
                no_speech_prob: None,
                avg_logprob: None,
            },
            compression_ratio: None,
        });
        Ok(())
    };
    for result in results.iter().filter(|r| !r.is_partial()) {
        let Some(best) = result.alternatives().first() else {
            continue;
        };
        let items = best.items();
        if !items.iter().any(|i| i.speaker().is_some()) {
            push(
                result.start_time(),
                result.end_time(),
                best.transcript().unwrap_or_default().to_owned(),
                None,
            )?;
            continue;
        }
        // (speaker, start, end, text) of the turn being built.
        let mut turn: Option<(Option<String>, f64, f64, String)> = None;
        for item in items {
            let content = item.content().unwrap_or_default();
            if item.r#type() == Some(&ItemType::Punctuation) {
                if let Some((_, _, _, text)) = turn.as_mut() {
                    text.push_str(content);
                }
                continue;
            }
            let speaker = item.speaker().map(str::to_owned);
            match turn.as_mut() {
                Some((s, _, end, text)) if *s == speaker => {
                    text.push(' ');
                    text.push_str(content);
                    *end = item.end_time();
                }
                _ => {
                    if let Some((s, start, end, text)) = turn.take() {
                        push(start, end, text, s)?;
                    }
                    turn = Some((
                        speaker,
                        item.start_time(),
                        item.end_time(),
                        content.to_owned(),
                    ));
                }
            }
        }
        if let Some((s, start, end, text)) = turn {
            push(start, end, text, s)?;
        }
    }
    Ok(out)
}

fn start_error<R>(e: &SdkError<StartMedicalStreamTranscriptionError, R>) -> EgressError {
    match e {
        SdkError::ServiceError(s) => match s.err() {
            StartMedicalStreamTranscriptionError::LimitExceededException(_)
            | StartMedicalStreamTranscriptionError::ServiceUnavailableException(_) => {
                EgressError::RateLimited {
                    retry_after_secs: None,
                }
            }
            StartMedicalStreamTranscriptionError::BadRequestException(_) => {
                EgressError::Status(400)
            }
            StartMedicalStreamTranscriptionError::ConflictException(_) => EgressError::Status(409),
            other => match other.code() {
                Some("AccessDeniedException" | "UnrecognizedClientException") => {
                    EgressError::Status(403)
                }
                _ => EgressError::Status(500),
            },
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => EgressError::Unreachable,
        _ => EgressError::Malformed("the Transcribe Medical reply could not be read".into()),
    }
}

fn stream_error<R>(e: &SdkError<MedicalTranscriptResultStreamError, R>) -> EgressError {
    match e {
        SdkError::ServiceError(s) => match s.err() {
            MedicalTranscriptResultStreamError::LimitExceededException(_)
            | MedicalTranscriptResultStreamError::ServiceUnavailableException(_) => {
                EgressError::RateLimited {
                    retry_after_secs: None,
                }
            }
            MedicalTranscriptResultStreamError::BadRequestException(_) => EgressError::Status(400),
            MedicalTranscriptResultStreamError::ConflictException(_) => EgressError::Status(409),
            _ => EgressError::Status(500),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => EgressError::Unreachable,
        _ => EgressError::Malformed("the Transcribe Medical stream could not be read".into()),
    }
}

#[async_trait::async_trait]
impl Transcriber for TranscribeMedical {
    async fn transcribe(
        &self,
        provider: &Cleared,
        request: TranscriptionRequest,
    ) -> Result<TranscriptionReply, EgressError> {
        let base = provider.base_url();
        if base.scheme() != "https" && base.scheme() != "http" {
            return Err(EgressError::Unreachable);
        }
        if request.wav.len() > MAX_AUDIO_BYTES {
            return Err(EgressError::Malformed(format!(
                "the clip is larger than {MAX_AUDIO_BYTES} bytes"
            )));
        }
        if request
            .language
            .as_deref()
            .is_some_and(|l| !matches!(l, "en" | "en-US" | "en-us"))
        {
            return Err(EgressError::Malformed(
                "Transcribe Medical transcribes US English only".into(),
            ));
        }
        let (rate, pcm) = pcm_of_wav(&request.wav)?;
        let events: Vec<Result<AudioStream, AudioStreamError>> = pcm
            .chunks(EVENT_BYTES)
            .map(|c| {
                Ok(AudioStream::AudioEvent(
                    AudioEvent::builder()
                        .audio_chunk(Blob::new(c.to_vec()))
                        .build(),
                ))
            })
            .collect();
        let sdk = self.env.config(self.region.as_deref()).await;
        let config = aws_sdk_transcribestreaming::config::Builder::from(&sdk)
            .endpoint_url(base.as_str().trim_end_matches('/'))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(self.limits.connect_timeout)
                    .build(),
            )
            .build();
        let client = aws_sdk_transcribestreaming::Client::from_conf(config);
        let call = async {
            let mut out = client
                .start_medical_stream_transcription()
                .language_code(LanguageCode::EnUs)
                .media_sample_rate_hertz(rate)
                .media_encoding(MediaEncoding::Pcm)
                .specialty(Specialty::Primarycare)
                .r#type(match self.kind {
                    MedicalKind::Conversation => Type::Conversation,
                    MedicalKind::Dictation => Type::Dictation,
                })
                .show_speaker_label(self.kind == MedicalKind::Conversation)
                .audio_stream(futures_util::stream::iter(events).into())
                .send()
                .await
                .map_err(|e| start_error(&e))?;
            let mut results = Vec::new();
            let mut text_bytes = 0usize;
            while let Some(event) = out
                .transcript_result_stream
                .recv()
                .await
                .map_err(|e| stream_error(&e))?
            {
                let MedicalTranscriptResultStream::TranscriptEvent(event) = event else {
                    continue;
                };
                for result in event
                    .transcript()
                    .map(aws_sdk_transcribestreaming::types::MedicalTranscript::results)
                    .unwrap_or_default()
                    .iter()
                    .filter(|r| !r.is_partial())
                {
                    text_bytes = text_bytes.saturating_add(
                        result
                            .alternatives()
                            .first()
                            .and_then(|a| a.transcript())
                            .map_or(0, str::len),
                    );
                    if results.len() >= MAX_RESULTS || text_bytes > self.limits.max_reply_bytes {
                        return Err(EgressError::Malformed(
                            "the transcript is larger than the limit".into(),
                        ));
                    }
                    results.push(result.clone());
                }
            }
            Ok(results)
        };
        let results = tokio::time::timeout(self.limits.timeout, call)
            .await
            .map_err(|_| EgressError::Unreachable)??;
        Ok(TranscriptionReply {
            segments: filter_segments(raw_segments(&results)?),
            usage: Usage::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_transcribestreaming::types::{MedicalAlternative, MedicalItem};

    use super::*;

    fn item(
        kind: ItemType,
        content: &str,
        start: f64,
        end: f64,
        speaker: Option<&str>,
    ) -> MedicalItem {
        let b = MedicalItem::builder()
            .r#type(kind)
            .content(content)
            .start_time(start)
            .end_time(end);
        match speaker {
            Some(s) => b.speaker(s).build(),
            None => b.build(),
        }
    }

    #[test]
    fn final_results_become_segments_split_by_speaker() {
        use ItemType::{Pronunciation as W, Punctuation as P};
        let conversation = MedicalResult::builder()
            .start_time(0.5)
            .end_time(4.25)
            .is_partial(false)
            .alternatives(
                MedicalAlternative::builder()
                    .transcript("Any sensitivity? Yes, upper left.")
                    .items(item(W, "Any", 0.5, 0.7, Some("0")))
                    .items(item(W, "sensitivity", 0.7, 1.4, Some("0")))
                    .items(item(P, "?", 1.4, 1.4, None))
                    .items(item(W, "Yes", 2.0, 2.3, Some("1")))
                    .items(item(P, ",", 2.3, 2.3, None))
                    .items(item(W, "upper", 2.4, 2.8, Some("1")))
                    .items(item(W, "left", 2.8, 4.25, Some("1")))
                    .items(item(P, ".", 4.25, 4.25, None))
                    .build(),
            )
            .build();
        let partial = MedicalResult::builder()
            .start_time(5.0)
            .end_time(6.0)
            .is_partial(true)
            .alternatives(MedicalAlternative::builder().transcript("Probing").build())
            .build();
        let dictation = MedicalResult::builder()
            .start_time(7.0)
            .end_time(9.5)
            .is_partial(false)
            .alternatives(
                MedicalAlternative::builder()
                    .transcript("Probing depth four on the mesial.")
                    .build(),
            )
            .build();
        let empty = MedicalResult::builder()
            .start_time(10.0)
            .end_time(11.0)
            .build();
        let raw = raw_segments(&[conversation, partial, dictation, empty]).unwrap();
        let got: Vec<(u64, u64, &str, Option<&str>)> = raw
            .iter()
            .map(|r| {
                let s = &r.segment;
                (s.start_ms, s.end_ms, s.text.as_str(), s.speaker.as_deref())
            })
            .collect();
        assert_eq!(
            got,
            [
                (500, 1400, "Any sensitivity?", Some("0")),
                (2000, 4250, "Yes, upper left.", Some("1")),
                (7000, 9500, "Probing depth four on the mesial.", None),
            ]
        );
        // The filters against invented text apply as for every provider.
        let kept = filter_segments(raw);
        assert_eq!(kept.len(), 3);
    }

    #[test]
    fn bad_times_are_refused() {
        let backwards = MedicalResult::builder()
            .start_time(3.0)
            .end_time(1.0)
            .alternatives(MedicalAlternative::builder().transcript("x").build())
            .build();
        let negative = MedicalResult::builder()
            .start_time(-1.0)
            .end_time(1.0)
            .alternatives(MedicalAlternative::builder().transcript("x").build())
            .build();
        for r in [backwards, negative] {
            assert!(matches!(raw_segments(&[r]), Err(EgressError::Malformed(_))));
        }
    }

    #[test]
    fn the_clip_is_read_as_pcm() {
        let mut wav = b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00".to_vec();
        wav.extend_from_slice(&16_000u32.to_le_bytes());
        wav.extend_from_slice(&32_000u32.to_le_bytes());
        wav.extend_from_slice(b"\x02\x00\x10\x00LIST\x03\x00\x00\x00abc\x00data\x04\x00\x00\x00");
        wav.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(pcm_of_wav(&wav).unwrap(), (16_000, &[1u8, 2, 3, 4][..]));
        let mut stereo = wav.clone();
        stereo[22] = 2;
        for bad in [&b"RIFF"[..], b"not a wav at all", &stereo, &wav[..40]] {
            assert!(matches!(pcm_of_wav(bad), Err(EgressError::Malformed(_))));
        }
    }
}
