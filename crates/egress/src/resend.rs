//! Mail through Resend (`POST {base}/emails`), and its delivery webhooks (Svix-signed).
//!
//! # Guarantees
//! - The request is `{"from", "to": [client], "subject", "text"}` built only from the
//!   practice's sender address, the client's address and the rendered
//!   [`outbound::EmailBody`]; the scanner reads the final JSON bytes before any connection
//!   ([`SendError::Refused`], nothing sent).
//! - The outbox row's [`IdempotencyKey`] is the `Idempotency-Key` header: Resend answers a
//!   repeat with the first result and sends nothing again ([`Idempotency::Provider`]).
//! - The receipt is Resend's email `id`; replies are capped and must have the documented
//!   shape. 429, 409 and 5xx are retried, other 4xx rejected.
//! - Webhooks are verified before anything in them is read: `svix-id`, `svix-timestamp`,
//!   `svix-signature` (`v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, several
//!   space-separated signatures accepted), compared in constant time, the timestamp within
//!   five minutes of now. `email.sent`, `email.delivered` and `email.bounced` become
//!   [`Inbound::Delivery`] (event id: `svix-id`); every other verified event is
//!   [`Inbound::Ignored`].

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use outbound::Scanner;

use crate::http::ApiKey;
use crate::send::{
    DeliveryStatus, EmailAddress, EmailRequest, Idempotency, Inbound, Mailer, Receipt, SendError,
    WebhookError, WebhookRequest, WebhookVerifier,
};
use crate::vendor_http::{self, BaseUrlError};

/// Resend's API base.
pub const RESEND_API: &str = "https://api.resend.com";
/// How far a webhook's timestamp may be from now, seconds.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// The Resend mailer.
pub struct ResendMailer {
    base: String,
    key: ApiKey,
    from: EmailAddress,
    client: reqwest::Client,
}

impl fmt::Debug for ResendMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResendMailer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct EmailJson<'a> {
    from: &'a str,
    to: [&'a str; 1],
    subject: &'a str,
    text: &'a str,
}

#[derive(serde::Deserialize)]
struct Created {
    id: String,
}

impl ResendMailer {
    /// A mailer calling `base` (normally [`RESEND_API`]) with `key`, sending from the
    /// practice's verified sender address `from`.
    ///
    /// # Errors
    /// [`BaseUrlError`] for a base that is not `https` (or `http` on loopback).
    pub fn new(
        base: &str,
        key: ApiKey,
        from: EmailAddress,
        timeout: Duration,
    ) -> Result<Self, BaseUrlError> {
        Ok(Self {
            base: vendor_http::base_url(base)?,
            key,
            from,
            client: vendor_http::client(timeout).map_err(|_| BaseUrlError)?,
        })
    }

    /// The exact JSON bytes sent for `email`.
    ///
    /// # Errors
    /// [`SendError::Malformed`] if the body cannot be encoded (never for rendered bodies).
    pub fn body(&self, email: &EmailRequest<'_>) -> Result<Vec<u8>, SendError> {
        serde_json::to_vec(&EmailJson {
            from: self.from.as_str(),
            to: [email.to.as_str()],
            subject: email.body.subject(),
            text: email.body.text(),
        })
        .map_err(|_| SendError::Malformed)
    }
}

/// Resend's ids: letters, digits and dashes, at most 100 characters.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

#[async_trait::async_trait]
impl Mailer for ResendMailer {
    fn vendor(&self) -> &'static str {
        "resend"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::Provider
    }

    async fn send_email(
        &self,
        scanner: &Scanner,
        email: EmailRequest<'_>,
    ) -> Result<Receipt, SendError> {
        let body = self.body(&email)?;
        scanner
            .scan(&body, Some(email.to.as_str()))
            .map_err(SendError::Refused)?;
        let reply = vendor_http::post(
            &self.client,
            &format!("{}/emails", self.base),
            &self.key,
            &email.key.0.as_hyphenated().to_string(),
            "application/json",
            body,
            &[],
        )
        .await?;
        let created: Created = serde_json::from_slice(&reply).map_err(|_| SendError::Malformed)?;
        if !plausible_id(&created.id) {
            return Err(SendError::Malformed);
        }
        Ok(Receipt {
            provider_id: created.id,
        })
    }
}

/// A Resend webhook signing secret (`whsec_` then base64). Never printed.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SvixSecret(Vec<u8>);

impl fmt::Debug for SvixSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SvixSecret(…)")
    }
}

/// A signing secret that is not `whsec_` + base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is whsec_ followed by base64")]
pub struct SecretError;

impl SvixSecret {
    /// Parses `whsec_…`.
    ///
    /// # Errors
    /// [`SecretError`].
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let b64 = secret.trim().strip_prefix("whsec_").ok_or(SecretError)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SecretError)?;
        if bytes.len() < 16 {
            return Err(SecretError);
        }
        Ok(Self(bytes))
    }

    /// The signature header value (`v1,…`) for a message: what Resend sends (for stand-ins
    /// and tests).
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = vendor_http::hmac_sha256(
            &self.0,
            &[
                id.as_bytes(),
                b".",
                timestamp.to_string().as_bytes(),
                b".",
                body,
            ],
        )
        .unwrap_or_default();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        )
    }
}

/// Verifies Resend's webhooks.
#[derive(Debug)]
pub struct ResendWebhook {
    secret: SvixSecret,
}

impl ResendWebhook {
    /// A verifier with the endpoint's signing secret.
    #[must_use]
    pub fn new(secret: SvixSecret) -> Self {
        Self { secret }
    }
}

#[derive(serde::Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(serde::Deserialize)]
struct EventData {
    #[serde(default)]
    email_id: Option<String>,
}

impl WebhookVerifier for ResendWebhook {
    fn vendor(&self) -> &'static str {
        "resend"
    }

    fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Inbound>, WebhookError> {
        if request.body.len() > vendor_http::MAX_WEBHOOK_BYTES {
            return Err(WebhookError::Malformed);
        }
        let id =
            vendor_http::header(request.headers, "svix-id").ok_or(WebhookError::BadSignature)?;
        let ts_text = vendor_http::header(request.headers, "svix-timestamp")
            .ok_or(WebhookError::BadSignature)?;
        let signatures = vendor_http::header(request.headers, "svix-signature")
            .ok_or(WebhookError::BadSignature)?;
        if id.is_empty() || id.len() > 100 || id.contains('.') {
            return Err(WebhookError::BadSignature);
        }
        let ts: i64 = ts_text
            .trim()
            .parse()
            .map_err(|_| WebhookError::BadSignature)?;
        let expected = vendor_http::hmac_sha256(
            &self.secret.0,
            &[
                id.as_bytes(),
                b".",
                ts_text.trim().as_bytes(),
                b".",
                request.body,
            ],
        )
        .ok_or(WebhookError::BadSignature)?;
        let good = signatures.split(' ').any(|s| {
            s.strip_prefix("v1,")
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .is_some_and(|sig| vendor_http::ct_eq(&sig, &expected))
        });
        if !good {
            return Err(WebhookError::BadSignature);
        }
        if (now.timestamp() - ts).abs() > WEBHOOK_TOLERANCE_SECS {
            return Err(WebhookError::Stale);
        }
        let event: Event =
            serde_json::from_slice(request.body).map_err(|_| WebhookError::Malformed)?;
        let status = match event.kind.as_str() {
            "email.sent" => Some(DeliveryStatus::Sent),
            "email.delivered" => Some(DeliveryStatus::Delivered),
            "email.bounced" => Some(DeliveryStatus::Failed),
            _ => None,
        };
        let event_id = id.to_owned();
        Ok(vec![match status {
            Some(status) => {
                let provider_id = event
                    .data
                    .and_then(|d| d.email_id)
                    .filter(|i| plausible_id(i))
                    .ok_or(WebhookError::Malformed)?;
                Inbound::Delivery {
                    event_id,
                    provider_id,
                    key: None,
                    status,
                }
            }
            None => Inbound::Ignored { event_id },
        }])
    }
}
