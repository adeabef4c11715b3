//! Telnyx Messaging API v2: sending an SMS ([`Telnyx`], a [`SmsCarrier`]) and reading its
//! signed webhooks ([`TelnyxWebhooks`], a [`WebhookVerifier`]).
//!
//! # Guarantees
//! - The request is `POST {base}/v2/messages`, JSON `{from | messaging_profile_id, to, text,
//!   webhook_url, use_profile_webhooks: false}`, with the API key as a bearer token. Its final
//!   bytes pass the practice's [`Scanner`] first (the recipient's own number allowed, our
//!   status-callback URL blanked: see `scan` in the shared messaging code); a finding is
//!   [`SendError::Refused`] and no connection is opened.
//! - Telnyx documents no `Idempotency-Key` for `POST /v2/messages` (its general idempotency
//!   page applies only to endpoints whose reference declares the header, and the message
//!   endpoint's does not): [`Idempotency::CallbackOnly`]. The outbox key rides in the
//!   per-message `webhook_url` (`?key={uuid}`), which Telnyx echoes inside the signed event.
//! - Replies: 2xx → [`Receipt`] with `data.id`; 429 and 5xx → [`SendError::Retry`] (with
//!   `Retry-After`); other 4xx → [`SendError::Rejected`] (a recipient who texted STOP is
//!   Telnyx error 40300); unreachable → [`SendError::Unreachable`]; a reply over the cap or
//!   not of the documented shape → [`SendError::Malformed`]. Redirects are never followed.
//! - Webhooks are read only after the Ed25519 signature (`telnyx-signature-ed25519`, base64)
//!   over `{telnyx-timestamp}|{raw body}` verifies with the account's public key and the
//!   timestamp is within 300 s of `now`. The outbox key of a delivery event is taken from the
//!   signed body (`payload.webhook_url`), never from the unsigned request URL. An inbound text
//!   is returned only as a STOP / START / HELP [`Keyword`](crate::send::Keyword); any other
//!   text is dropped unread ([`Inbound::Ignored`]).
//! - The API key never prints; errors carry no number, text or key.

use std::fmt;

use base64::Engine as _;
use outbound::Scanner;
use serde::{Deserialize, Serialize};

use crate::messaging::{self, Carrier, ConfigError};
use crate::send::{
    DeliveryStatus, Idempotency, Inbound, PhoneNumber, Receipt, SendError, SmsCarrier, SmsRequest,
    WebhookError, WebhookRequest, WebhookVerifier,
};
use crate::{ApiKey, Limits};

/// The vendor's name in the subprocessor registry (and the webhook path segment).
pub const VENDOR: &str = "telnyx";
/// Telnyx's production API origin.
pub const API_BASE: &str = "https://api.telnyx.com";
/// How far a webhook's signed timestamp may be from now.
pub const TOLERANCE_SECS: i64 = 300;

/// Who a message is sent from.
#[derive(Clone)]
pub enum TelnyxSender {
    /// One of the practice's Telnyx numbers (`from`). The scanner must know it as the
    /// practice's own phone, or the number in the request body is refused as a digit run.
    Number(PhoneNumber),
    /// A messaging profile's number pool (`messaging_profile_id`).
    Profile(uuid::Uuid),
}

impl fmt::Debug for TelnyxSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(_) => f.write_str("TelnyxSender::Number(…)"),
            Self::Profile(id) => write!(f, "TelnyxSender::Profile({id})"),
        }
    }
}

/// How to reach Telnyx.
#[derive(Debug, Clone)]
pub struct TelnyxConfig {
    /// The API origin ([`API_BASE`]; a loopback stand-in in tests).
    pub base_url: url::Url,
    /// The API v2 key (bearer token).
    pub api_key: ApiKey,
    /// Who messages come from.
    pub sender: TelnyxSender,
    /// Our public webhook URL for Telnyx delivery events (no query: the key is added per
    /// message).
    pub callback: url::Url,
    /// Timeouts and the reply cap ([`crate::messaging_limits`]).
    pub limits: Limits,
}

/// The Telnyx SMS adapter.
#[derive(Debug, Clone)]
pub struct Telnyx {
    config: TelnyxConfig,
    endpoint: url::Url,
    client: reqwest::Client,
}

impl Telnyx {
    /// An adapter for `config`.
    ///
    /// # Errors
    /// [`ConfigError`] when the base or callback URL is not `https` (plain `http` only on
    /// loopback), carries credentials, a query or a fragment.
    pub fn new(config: TelnyxConfig) -> Result<Self, ConfigError> {
        messaging::check_url(&config.base_url, "the Telnyx base URL")?;
        messaging::check_url(&config.callback, "the Telnyx callback URL")?;
        let endpoint = messaging::join(&config.base_url, "/v2/messages")?;
        let client = messaging::client(&config.limits)?;
        Ok(Self {
            config,
            endpoint,
            client,
        })
    }
}

#[derive(Serialize)]
struct SendBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messaging_profile_id: Option<String>,
    to: &'a str,
    text: &'a str,
    webhook_url: &'a str,
    use_profile_webhooks: bool,
}

#[derive(Deserialize)]
struct SendReply {
    data: SendReplyData,
}

#[derive(Deserialize)]
struct SendReplyData {
    id: String,
}

#[async_trait::async_trait]
impl SmsCarrier for Telnyx {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::CallbackOnly
    }

    async fn send_sms(&self, scanner: &Scanner, sms: SmsRequest<'_>) -> Result<Receipt, SendError> {
        let callback = messaging::callback_url(&self.config.callback, sms.key);
        let (from, messaging_profile_id) = match &self.config.sender {
            TelnyxSender::Number(n) => (Some(n.as_str()), None),
            TelnyxSender::Profile(id) => (None, Some(id.to_string())),
        };
        let body = serde_json::to_vec(&SendBody {
            from,
            messaging_profile_id,
            to: sms.to.as_str(),
            text: sms.body.as_str(),
            webhook_url: callback.as_str(),
            use_profile_webhooks: false,
        })
        .map_err(|_| SendError::Malformed)?;
        // A URL never holds `"` or `\`, so its JSON encoding is the URL itself.
        messaging::scan(scanner, &body, callback.as_str(), sms.to.as_str())?;
        let request = self
            .client
            .post(self.endpoint.clone())
            .bearer_auth(self.config.api_key.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        let reply = messaging::send(request, &self.config.limits).await?;
        let parsed: SendReply =
            serde_json::from_slice(&reply.body).map_err(|_| SendError::Malformed)?;
        if !messaging::is_opaque_id(&parsed.data.id) {
            return Err(SendError::Malformed);
        }
        Ok(Receipt {
            provider_id: parsed.data.id,
        })
    }
}

/// Verifies and reads Telnyx messaging webhooks.
#[derive(Clone)]
pub struct TelnyxWebhooks {
    public_key: [u8; 32],
}

impl fmt::Debug for TelnyxWebhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TelnyxWebhooks(…)")
    }
}

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410), before the 32 key bytes.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl TelnyxWebhooks {
    /// A verifier for the account's Ed25519 public key (32 bytes).
    #[must_use]
    pub fn new(public_key: [u8; 32]) -> Self {
        Self { public_key }
    }

    /// A verifier for the public key as the Telnyx portal shows it: base64 of the 32 raw key
    /// bytes (or of its DER `SubjectPublicKeyInfo`).
    ///
    /// # Errors
    /// [`ConfigError`] when it is neither.
    pub fn from_base64(key: &str) -> Result<Self, ConfigError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| ConfigError("the Telnyx public key is not base64"))?;
        let raw = match bytes.strip_prefix(&SPKI_ED25519_PREFIX[..]) {
            Some(rest) => rest,
            None => bytes.as_slice(),
        };
        let public_key: [u8; 32] = raw
            .try_into()
            .map_err(|_| ConfigError("the Telnyx public key is not an Ed25519 key"))?;
        Ok(Self { public_key })
    }

    fn check_signature(
        &self,
        request: &WebhookRequest<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), WebhookError> {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let signature = header("telnyx-signature-ed25519").ok_or(WebhookError::BadSignature)?;
        let timestamp = header("telnyx-timestamp").ok_or(WebhookError::BadSignature)?;
        if timestamp.is_empty()
            || timestamp.len() > 12
            || !timestamp.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(WebhookError::BadSignature);
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| WebhookError::BadSignature)?;
        let mut signed = Vec::with_capacity(timestamp.len() + 1 + request.body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.push(b'|');
        signed.extend_from_slice(request.body);
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ED25519,
            &self.public_key,
        )
        .verify(&signed, &signature)
        .map_err(|_| WebhookError::BadSignature)?;
        let at: i64 = timestamp.parse().map_err(|_| WebhookError::BadSignature)?;
        if (now.timestamp() - at).abs() > TOLERANCE_SECS {
            return Err(WebhookError::Stale);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Envelope {
    data: Event,
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "event_type")]
    kind: String,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    to: Vec<Party>,
    #[serde(default)]
    from: Option<Party>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    webhook_url: Option<String>,
}

#[derive(Deserialize)]
struct Party {
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// A Telnyx per-recipient status as ours: `sent` (and `delivery_unconfirmed`: handed to the
/// network, no handset receipt) → sent; `delivered`; `sending_failed`, `delivery_failed`,
/// `expired` → failed; anything else (queued, sending) is not acted on.
fn delivery_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "sent" | "delivery_unconfirmed" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "sending_failed" | "delivery_failed" | "expired" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

fn read_event(event: Event) -> Result<Inbound, WebhookError> {
    if !messaging::is_opaque_id(&event.id) {
        return Err(WebhookError::Malformed);
    }
    let event_id = event.id;
    let ignored = |event_id: String| Ok(Inbound::Ignored { event_id });
    match event.kind.as_str() {
        "message.sent" | "message.finalized" => {
            let payload = event.payload.ok_or(WebhookError::Malformed)?;
            let provider_id = payload.id.ok_or(WebhookError::Malformed)?;
            if !messaging::is_opaque_id(&provider_id) {
                return Err(WebhookError::Malformed);
            }
            let status = payload
                .to
                .first()
                .and_then(|p| p.status.as_deref())
                .ok_or(WebhookError::Malformed)?;
            let Some(status) = delivery_status(status) else {
                return ignored(event_id);
            };
            Ok(Inbound::Delivery {
                event_id,
                provider_id,
                key: payload
                    .webhook_url
                    .as_deref()
                    .and_then(messaging::key_in_url),
                status,
            })
        }
        "message.received" => {
            let payload = event.payload.ok_or(WebhookError::Malformed)?;
            let keyword = payload
                .text
                .as_deref()
                .and_then(|t| messaging::keyword(t, Carrier::Telnyx));
            let from = payload
                .from
                .and_then(|p| p.phone_number)
                .and_then(|n| PhoneNumber::parse(&n).ok());
            match (keyword, from) {
                (Some(keyword), Some(from)) => Ok(Inbound::Keyword {
                    event_id,
                    from,
                    keyword,
                }),
                _ => ignored(event_id),
            }
        }
        _ => ignored(event_id),
    }
}

impl WebhookVerifier for TelnyxWebhooks {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Inbound>, WebhookError> {
        if request.body.len() > messaging::MAX_WEBHOOK_BYTES {
            return Err(WebhookError::Malformed);
        }
        self.check_signature(request, now)?;
        let envelope: Envelope =
            serde_json::from_slice(request.body).map_err(|_| WebhookError::Malformed)?;
        Ok(vec![read_event(envelope.data)?])
    }
}
