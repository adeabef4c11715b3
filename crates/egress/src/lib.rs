//! The one door out of Chartroom: the provider gate, the adapters that speak to transcription
//! and drafting providers, the sending interface of the messaging adapters ([`send`]) and
//! those adapters: SMS through [`telnyx`] or [`twilio`], Web Push through [`webpush`].
//!
//! # Guarantees
//! - No adapter opens a connection without a [`Cleared`] provider, and the only way to get one
//!   is [`gate`]: a provider that is self-hosted (loopback, a Unix socket, the operator's own
//!   host), or a vendor with a BAA attested (by whom, when, which document) and training
//!   disabled. Anything else is refused before any byte leaves.
//! - A reply cut short by the provider's token limit is an error ([`EgressError::Truncated`]),
//!   never a partial note; rate limiting is an error with the provider's retry hint.
//! - Adapters never follow redirects, give up after [`Limits::timeout`], and refuse replies
//!   larger than [`Limits::max_reply_bytes`] or not of the documented shape
//!   ([`EgressError::Malformed`]); a draft is either wholly valid or refused, never half-read.
//! - Transcripts are filtered against text recognizers invent on silence
//!   ([`transcribe::drop_reason`]); draft evidence ids are returned as the model gave them
//!   (ids not in the request included) for the caller's evidence check.
//! - API keys ([`ApiKey`]) never print and errors never carry prompt, transcript or reply text.
//! - The subprocessor registry ([`registry`]) is built from the deployment's integrations file:
//!   a PHI-touching subprocessor without a signed BAA is refused, a new one is active only
//!   after the notice period, and [`registry::Registry::allowed_hosts`] is the one list of
//!   hosts the messaging and payment adapters may call.
//! - Mail, payments and geocoding ([`smtp`], [`resend`], [`stripe`], [`geocode`]) build their
//!   wire bytes only from typed [`outbound`] values, run the practice's scanner (or, for
//!   geocoding, the address gate) over the final bytes before any connection, and verify
//!   webhooks (signature, then timestamp) before reading them.
//! - The audit log goes only to the operator's own log sink ([`audit_sink`], OTLP/HTTP), as
//!   typed records, and a batch counts as delivered only when the sink accepted all of it.
//! - This crate has no database access: the caller reads the registry, records the assistant
//!   turn and audits it.

pub mod anthropic;
pub mod audit_sink;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod aws_transcribe;
pub mod draft;
pub mod evidence;
pub mod gate;
pub mod geocode;
mod http;
pub mod local;
mod messaging;
pub mod openai;
pub mod registry;
pub mod resend;
pub mod send;
pub mod smtp;
pub mod stripe;
pub mod telnyx;
pub mod transcribe;
pub mod twilio;
mod unix;
mod vendor_http;
pub mod webpush;

pub use anthropic::AnthropicDrafter;
#[cfg(feature = "aws")]
pub use aws::{AwsEnv, BedrockDrafter};
#[cfg(feature = "aws")]
pub use aws_transcribe::{MedicalKind, TranscribeMedical};
pub use draft::{DraftReply, DraftRequest, DraftSection, DraftSentence, Drafter, EditRequest};
pub use gate::{
    BaaAttestation, Cleared, Hosting, Local, ProviderPosture, Refusal, gate, gate_with_hosts,
};
pub use http::{ApiKey, Limits};
pub use messaging::{ConfigError as MessagingConfigError, messaging_limits};
pub use openai::{OpenAiDrafter, OpenAiTranscriber};
/// The typed outbound payloads (messages, push, payments) and the scanner they pass.
pub use outbound;
pub use transcribe::{Segment, Transcriber, TranscriptionReply, TranscriptionRequest};
pub use vendor_http::BaseUrlError;

/// Why an AI call failed.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The gate refused the provider (no connection was opened).
    #[error("provider refused by the gate: {0}")]
    Refused(#[from] Refusal),
    /// The reply stopped at the provider's token limit.
    #[error("the provider's reply was truncated at its token limit")]
    Truncated,
    /// The provider asked us to slow down.
    #[error("the provider is rate limiting (retry after {retry_after_secs:?} s)")]
    RateLimited {
        /// The provider's `Retry-After`, when given.
        retry_after_secs: Option<u64>,
    },
    /// The provider answered with an HTTP error.
    #[error("the provider answered HTTP {0}")]
    Status(u16),
    /// The provider's reply did not have the documented shape.
    #[error("the provider's reply was malformed: {0}")]
    Malformed(String),
    /// The provider could not be reached.
    #[error("the provider could not be reached")]
    Unreachable,
}

/// Token counts a provider reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: Option<u32>,
    /// Output tokens.
    pub output_tokens: Option<u32>,
}
