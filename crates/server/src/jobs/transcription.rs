//! The transcription job: turns uploaded audio chunks into transcript segments while the visit
//! goes on, so the transcript is ready soon after the capture stops.
//!
//! Each pass, for every practice, claims pending chunks one at a time as the owner role
//! (`for update skip locked`: several workers never take the same chunk), reads the chunk's
//! decrypted WAV from the blob store, and transcribes it through the practice's enabled
//! transcription provider from the registry — or, with none, the installation's built-in
//! local default — by way of [`crate::assistant::run_chunk_turn`]: the provider gate first,
//! then the adapter, then one assistant turn with its audit event. The segments (times offset
//! by the chunk's place in the capture, text sealed), the turn and the chunk's new state commit
//! together.
//!
//! # Chunk states
//! - `done`: segments stored; `silent`: the provider heard no speech.
//! - `refused`: the gate refused the provider (nothing sent); not retried.
//! - An error, a truncated reply or rate limiting leaves the chunk `pending` for the next pass
//!   until [`MAX_ATTEMPTS`] attempts, then `failed`. A chunk whose audio is gone is `failed`.
//! - With no provider at all (none registered, no local default), chunks stay `pending` and
//!   uncounted.

use std::time::Duration;

use domain::PracticeId;
use egress::{Segment, TranscriptionRequest};
use futures::StreamExt as _;
use store::crypto::{BlobStore, Keyring};
use store::transcripts::{ChunkState, ChunkWork, NewSegment};
use store::turns::Purpose;
use store::{OwnerStore, StoreError};

use super::{Job, JobContext};
use crate::assistant::{Assistant, TurnSubject, posture, run_chunk_turn};

/// Attempts before a chunk is given up (`failed`).
pub const MAX_ATTEMPTS: i16 = 3;

/// Longest WAV read for one chunk (bytes): the chunk table's own limit.
pub const CHUNK_MAX_BYTES: usize = 4 * 1024 * 1024;

/// How often `serve` looks for pending chunks.
pub const EVERY: Duration = Duration::from_secs(1);

/// Most chunks one practice gets in one pass (the others wait for the next).
pub const PER_PRACTICE: usize = 32;

/// What a pass did (counts only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Chunks transcribed with speech.
    pub done: u64,
    /// Chunks with no speech.
    pub silent: u64,
    /// Chunks the gate refused.
    pub refused: u64,
    /// Chunks left pending for a retry.
    pub retried: u64,
    /// Chunks given up.
    pub failed: u64,
    /// Chunks left untouched: no provider at all.
    pub no_provider: u64,
}

/// Reads a chunk's decrypted audio (at most [`CHUNK_MAX_BYTES`]).
async fn read_audio(
    blobs: &BlobStore,
    practice: PracticeId,
    object: store::crypto::BlobId,
) -> Result<Vec<u8>, String> {
    let mut stream = blobs
        .get_stream(practice, object)
        .await
        .map_err(|e| format!("reading audio failed: {}", e.code()))?;
    let mut out = Vec::new();
    while let Some(part) = stream.next().await {
        let part = part.map_err(|e| format!("reading audio failed: {}", e.code()))?;
        if out.len() + part.len() > CHUNK_MAX_BYTES {
            return Err("a chunk's audio is larger than the limit".into());
        }
        out.extend_from_slice(&part);
    }
    Ok(out)
}

fn retry_or_fail(work: &ChunkWork) -> ChunkState {
    if work.chunk.attempts + 1 >= MAX_ATTEMPTS {
        ChunkState::Failed
    } else {
        ChunkState::Pending
    }
}

/// Transcribes one claimed chunk and commits its outcome; the chunk's new state (`None`: no
/// provider, nothing changed).
pub async fn transcribe_chunk(
    mut work: ChunkWork,
    blobs: &BlobStore,
    keyring: &Keyring,
    assistant: &Assistant,
) -> Result<Option<ChunkState>, StoreError> {
    let practice = work.practice();
    let chunk = work.chunk.clone();
    let Some(object) = chunk.object_id else {
        work.finish(ChunkState::Failed).await?;
        return Ok(Some(ChunkState::Failed));
    };
    let (posture, transcriber) = match work.transcription_provider(keyring).await? {
        Some(p) => (posture(&p), assistant.adapters.transcriber(&p)),
        None => match &assistant.local_transcription {
            Some(local) => match local.posture().await {
                Some(p) => (p, Some(local.transcriber.clone())),
                None => return Ok(None),
            },
            None => return Ok(None),
        },
    };
    let wav = match read_audio(blobs, practice, object).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(%practice, capture = %chunk.capture_id, seq = chunk.seq, error = %e, "a chunk's audio could not be read");
            let state = retry_or_fail(&work);
            work.finish(state).await?;
            return Ok(Some(state));
        }
    };
    let prompt = serde_json::to_vec(&serde_json::json!({
        "capture_id": chunk.capture_id,
        "chunk_seq": chunk.seq,
        "audio_bytes": wav.len(),
        "duration_ms": chunk.duration_ms,
        "language": "en",
    }))
    .unwrap_or_default();
    let subject = TurnSubject {
        patient: chunk.patient_id,
        visit: Some(chunk.visit_id),
        capture: Some(chunk.capture_id),
        purpose: Purpose::Transcription,
    };
    let request = TranscriptionRequest {
        wav: bytes::Bytes::from(wav),
        prompt: None,
        language: Some("en".into()),
    };
    let called = run_chunk_turn(
        &mut work,
        keyring,
        &assistant.operator_hosts,
        subject,
        &posture,
        &prompt,
        |cleared| async move {
            match transcriber {
                Some(t) => t.transcribe(&cleared, request).await,
                None => Err(egress::EgressError::Malformed(
                    "no adapter for this provider's kind in this installation".into(),
                )),
            }
        },
    )
    .await?;
    let state = match &called.result {
        Ok(reply) => {
            let segs: Vec<NewSegment<'_>> = reply.segments.iter().map(new_segment).collect();
            let n = work.store_segments(keyring, called.turn, &segs).await?;
            if n == 0 {
                ChunkState::Silent
            } else {
                ChunkState::Done
            }
        }
        Err(egress::EgressError::Refused(_)) => ChunkState::Refused,
        Err(e) => {
            tracing::warn!(%practice, capture = %chunk.capture_id, seq = chunk.seq, error = %e, "transcribing a chunk failed");
            retry_or_fail(&work)
        }
    };
    work.finish(state).await?;
    Ok(Some(state))
}

fn new_segment(s: &Segment) -> NewSegment<'_> {
    NewSegment {
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        speaker: s.speaker.as_deref(),
        text: &s.text,
    }
}

/// One pass over `practice` (or every practice): transcribes up to [`PER_PRACTICE`] pending
/// chunks of each, at `now`.
pub async fn transcribe_pending(
    owner: &OwnerStore,
    blobs: &BlobStore,
    assistant: &Assistant,
    practice: Option<PracticeId>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<PassReport, StoreError> {
    let keyring = owner.keyring()?.clone();
    let mut report = PassReport::default();
    for p in super::practices(owner, practice).await? {
        for _ in 0..PER_PRACTICE {
            let Some(work) = owner.claim_chunk(p, now).await? else {
                break;
            };
            match transcribe_chunk(work, blobs, &keyring, assistant).await? {
                None => {
                    report.no_provider += 1;
                    break;
                }
                Some(ChunkState::Done) => report.done += 1,
                Some(ChunkState::Silent) => report.silent += 1,
                Some(ChunkState::Refused) => report.refused += 1,
                Some(ChunkState::Failed) => report.failed += 1,
                Some(ChunkState::Pending) => report.retried += 1,
            }
        }
    }
    Ok(report)
}

/// The transcription job on the owner role's store, every `every`.
#[derive(Debug)]
pub struct Transcription {
    owner: OwnerStore,
    blobs: std::sync::Arc<BlobStore>,
    assistant: Assistant,
    every: Duration,
}

impl Transcription {
    /// The job `serve` runs: every [`EVERY`].
    #[must_use]
    pub fn new(owner: OwnerStore, blobs: std::sync::Arc<BlobStore>, assistant: Assistant) -> Self {
        Self {
            owner,
            blobs,
            assistant,
            every: EVERY,
        }
    }
}

impl Job for Transcription {
    fn name(&self) -> &'static str {
        "transcription"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while ctx.tick(&mut tick).await {
            let outcome = transcribe_pending(
                &self.owner,
                &self.blobs,
                &self.assistant,
                None,
                ctx.clock().now(),
            )
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "a transcription pass failed");
                format!("a transcription pass failed: {e}")
            });
            ctx.report(outcome);
        }
    }
}
