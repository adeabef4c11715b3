//! Sending to a client: the traits every messaging adapter implements (SMS carriers, mail,
//! push), the addresses they send to, and what their verified webhooks report back.
//!
//! The outbox job holds one adapter per channel behind these traits; each adapter builds the
//! provider's wire request from a rendered [`outbound`] message, runs the practice's
//! [`Scanner`] over the final request bytes (fail closed: a finding is
//! [`SendError::Refused`] and nothing is sent), then sends with the outbox row's
//! [`IdempotencyKey`]. Adapters that have no provider-side idempotency say so
//! ([`Idempotency`]), so the job knows what a send interrupted by a crash may have done.

use outbound::{EmailBody, PushPayload, Scanner, SmsBody};

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The scanner found something in the final bytes; nothing was sent.
    #[error("refused by the outbound scanner: {0:?}")]
    Refused(outbound::Finding),
    /// The registry gate refused the provider (no connection was opened).
    #[error("provider refused by the gate: {0}")]
    Gate(#[from] crate::gate::Refusal),
    /// The provider refused the message for good (bad number, unsubscribed, 4xx).
    #[error("the provider rejected the message (HTTP {status})")]
    Rejected {
        /// The provider's status (or an SMTP reply code).
        status: u16,
    },
    /// Try again later (5xx, 429, a timeout after the request may have arrived).
    #[error("temporary failure; retry (after {retry_after_secs:?} s)")]
    Retry {
        /// The provider's hint, when given.
        retry_after_secs: Option<u64>,
    },
    /// The provider could not be reached at all (nothing arrived).
    #[error("the provider could not be reached")]
    Unreachable,
    /// The provider's reply did not have the documented shape.
    #[error("the provider's reply was malformed")]
    Malformed,
}

impl SendError {
    /// Whether the outbox should try again later.
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Retry { .. } | Self::Unreachable | Self::Malformed
        )
    }
}

/// A client's mobile number, E.164 (`+` then 8–15 digits, not starting with 0). Never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses an E.164 number (spaces, dashes, dots and parentheses are removed first).
    ///
    /// # Errors
    /// [`AddressError`] otherwise.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let compact: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = compact.strip_prefix('+').ok_or(AddressError)?;
        if (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
        {
            Ok(Self(compact))
        } else {
            Err(AddressError)
        }
    }

    /// The number, E.164.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneNumber(…)")
    }
}

/// A client's email address (`local@domain`, at most 254 bytes, no spaces or angle brackets).
/// Never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses an address.
    ///
    /// # Errors
    /// [`AddressError`] otherwise.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let s = s.trim();
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError)?;
        let bad = |c: char| c.is_whitespace() || c.is_control() || "<>,;\"\\()[]".contains(c);
        if s.len() > 254
            || local.is_empty()
            || local.len() > 64
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || s.chars().any(bad)
            || domain.contains('@')
        {
            return Err(AddressError);
        }
        Ok(Self(s.to_owned()))
    }

    /// The address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailAddress(…)")
    }
}

/// A phone number or email address that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid address")]
pub struct AddressError;

/// The outbox row's key for one message: the provider deduplicates on it where it can, and it
/// rides in the status-callback URL where the provider has no key of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(pub uuid::Uuid);

/// What a provider does with a repeated [`IdempotencyKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// The provider answers a repeat with the first result and sends nothing again
    /// (an `Idempotency-Key` header): an interrupted send may simply be retried.
    Provider,
    /// The provider has no key; a repeat would send again. The key rides in the per-message
    /// status callback, so a send interrupted by a crash is settled by the callback (or, after
    /// the outbox's wait, retried).
    CallbackOnly,
    /// No key and no callback (plain SMTP): a repeat sends again. The key is the
    /// `Message-ID`, so receivers may deduplicate.
    None,
}

/// The provider's receipt for an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's message id (opaque; no PHI).
    pub provider_id: String,
}

/// An SMS to send.
#[derive(Debug)]
pub struct SmsRequest<'a> {
    /// The client's number.
    pub to: &'a PhoneNumber,
    /// The rendered body.
    pub body: &'a SmsBody,
    /// The outbox row's key.
    pub key: IdempotencyKey,
}

/// An email to send.
#[derive(Debug)]
pub struct EmailRequest<'a> {
    /// The client's address.
    pub to: &'a EmailAddress,
    /// The rendered subject and body.
    pub body: &'a EmailBody,
    /// The outbox row's key.
    pub key: IdempotencyKey,
}

/// A browser's push subscription (RFC 8030 endpoint, RFC 8291 keys). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// The push service's endpoint URL.
    pub endpoint: url::Url,
    /// The user agent's P-256 public key (65 bytes, uncompressed), `p256dh`.
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret, `auth`.
    pub auth: Vec<u8>,
}

impl std::fmt::Debug for PushSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushSubscription(…)")
    }
}

/// A push message to send: always the one content-free payload.
#[derive(Debug)]
pub struct PushRequest<'a> {
    /// Where.
    pub subscription: &'a PushSubscription,
    /// What (content-free).
    pub payload: PushPayload,
    /// The outbox row's key.
    pub key: IdempotencyKey,
}

/// An SMS carrier (Telnyx, Twilio, or a loopback stand-in in tests).
#[async_trait::async_trait]
pub trait SmsCarrier: Send + Sync {
    /// The vendor, as the subprocessor registry names it.
    fn vendor(&self) -> &'static str;
    /// What a repeated key does.
    fn idempotency(&self) -> Idempotency;
    /// Builds the request, scans its final bytes, sends it.
    ///
    /// # Errors
    /// [`SendError`].
    async fn send_sms(&self, scanner: &Scanner, sms: SmsRequest<'_>) -> Result<Receipt, SendError>;
}

/// A mail service (SMTP with DKIM, Resend, …).
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// The vendor, as the subprocessor registry names it.
    fn vendor(&self) -> &'static str;
    /// What a repeated key does.
    fn idempotency(&self) -> Idempotency;
    /// Builds the message (MIME or the provider's JSON), scans its final bytes, sends it.
    ///
    /// # Errors
    /// [`SendError`].
    async fn send_email(
        &self,
        scanner: &Scanner,
        email: EmailRequest<'_>,
    ) -> Result<Receipt, SendError>;
}

/// A Web Push sender (RFC 8030 + RFC 8291 + VAPID, RFC 8292).
#[async_trait::async_trait]
pub trait PushSender: Send + Sync {
    /// Scans the plaintext payload, encrypts it for the subscription, sends it.
    ///
    /// # Errors
    /// [`SendError`]; a `404`/`410` from the push service is [`SendError::Rejected`] (the
    /// subscription is gone).
    async fn send_push(
        &self,
        scanner: &Scanner,
        push: PushRequest<'_>,
    ) -> Result<Receipt, SendError>;
}

/// What a verified delivery webhook reports about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Handed to the network.
    Sent,
    /// Delivered to the handset or mailbox.
    Delivered,
    /// Failed for good.
    Failed,
}

/// A keyword a client texted back (carrier-handled or ours; we mirror it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// STOP, UNSUBSCRIBE, CANCEL, END, QUIT, STOPALL, REVOKE, OPTOUT.
    Stop,
    /// START, UNSTOP, YES, OPTIN.
    Start,
    /// HELP, INFO.
    Help,
}

/// A verified inbound webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A delivery status for a message we sent.
    Delivery {
        /// The provider's event id (replays are refused on it).
        event_id: String,
        /// The provider's message id, as in the [`Receipt`].
        provider_id: String,
        /// Our key, when the provider echoed it (callback URL or metadata).
        key: Option<IdempotencyKey>,
        /// The status.
        status: DeliveryStatus,
    },
    /// A client texted a keyword (anything else a client texts is dropped unread).
    Keyword {
        /// The provider's event id (replays are refused on it).
        event_id: String,
        /// The client's number.
        from: PhoneNumber,
        /// Which keyword.
        keyword: Keyword,
    },
    /// A verified event we do not act on.
    Ignored {
        /// The provider's event id.
        event_id: String,
    },
}

/// Why a webhook was refused (before anything in it was acted on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature, or not ours.
    #[error("bad signature")]
    BadSignature,
    /// The signed timestamp is outside the tolerance.
    #[error("stale timestamp")]
    Stale,
    /// The body is not the provider's documented shape (or too large).
    #[error("malformed webhook")]
    Malformed,
}

/// A webhook request as it arrived, before anything in it is trusted.
#[derive(Debug)]
pub struct WebhookRequest<'a> {
    /// The full URL the provider called (public origin, path and query), as the provider
    /// signed it (Twilio signs the URL).
    pub url: &'a str,
    /// The request's headers.
    pub headers: &'a reqwest::header::HeaderMap,
    /// The raw body, exactly as received.
    pub body: &'a [u8],
}

/// Verifies and reads a messaging provider's webhooks (Telnyx Ed25519 over `timestamp|body`,
/// Twilio HMAC-SHA1 over the URL and sorted form fields, …). The caller refuses replays on
/// the returned event ids and acts only on what this returns.
pub trait WebhookVerifier: Send + Sync {
    /// The vendor, as the subprocessor registry names it (and the webhook path segment).
    fn vendor(&self) -> &'static str;
    /// Checks the signature (and, where the provider signs one, the timestamp against `now`
    /// with the provider's tolerance), then parses the events.
    ///
    /// # Errors
    /// [`WebhookError`]; nothing in the body is returned unless the signature holds.
    fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Inbound>, WebhookError>;
}
