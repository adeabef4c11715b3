//! Twilio Programmable Messaging: sending an SMS ([`Twilio`], a [`SmsCarrier`]) and reading
//! its signed webhooks ([`TwilioWebhooks`], a [`WebhookVerifier`]).
//!
//! # Guarantees
//! - The request is `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded
//!   `To`, `From` or `MessagingServiceSid`, `StatusCallback`, `Body`, with HTTP basic auth (the
//!   account SID and auth token, or an API key SID and secret). Its final bytes pass the
//!   practice's [`Scanner`] first (the recipient's own number allowed, our status-callback URL
//!   blanked: see `scan` in the shared messaging code); a finding is [`SendError::Refused`] and no
//!   connection is opened.
//! - Twilio's Messages resource takes no idempotency key: [`Idempotency::CallbackOnly`]. The
//!   outbox key rides in the `StatusCallback` URL (`?key={uuid}`), which Twilio signs.
//! - Replies: 2xx → [`Receipt`] with `sid`; 429 and 5xx → [`SendError::Retry`] (with
//!   `Retry-After`); other 4xx → [`SendError::Rejected`] (an unsubscribed recipient is Twilio
//!   error 21610, HTTP 400); unreachable → [`SendError::Unreachable`]; a reply over the cap or
//!   not of the documented shape → [`SendError::Malformed`]. Redirects are never followed.
//! - Webhooks are read only after `X-Twilio-Signature` verifies: base64 of HMAC-SHA1 keyed
//!   with the account's auth token over the full URL Twilio called followed by every POST
//!   parameter's name and value, sorted by name (compared in constant time). Twilio signs no
//!   timestamp: replays are refused by the caller on the event ids — `{MessageSid}:{MessageStatus}`
//!   for a status callback (each status arrives once), `{MessageSid}` for an inbound message.
//! - An inbound text is returned only as a STOP / START / HELP
//!   [`Keyword`](crate::send::Keyword) — Twilio's `OptOutType` (sent when Advanced Opt-Out
//!   matched a keyword) is mirrored as is, otherwise Twilio's default keyword lists apply; any
//!   other text is dropped unread ([`Inbound::Ignored`]).
//! - Credentials never print; errors carry no number, text or key.

use std::fmt;

use base64::Engine as _;
use outbound::Scanner;
use serde::Deserialize;

use crate::messaging::{self, Carrier, ConfigError};
use crate::send::{
    DeliveryStatus, Idempotency, Inbound, Keyword, PhoneNumber, Receipt, SendError, SmsCarrier,
    SmsRequest, WebhookError, WebhookRequest, WebhookVerifier,
};
use crate::{ApiKey, Limits};

/// The vendor's name in the subprocessor registry (and the webhook path segment).
pub const VENDOR: &str = "twilio";
/// Twilio's production API origin.
pub const API_BASE: &str = "https://api.twilio.com";

/// Whether `sid` is a Twilio SID with `prefix`: the two letters and 32 hex digits.
fn is_sid(sid: &str, prefixes: &[&str]) -> bool {
    sid.len() == 34
        && prefixes.iter().any(|p| sid.starts_with(p))
        && sid.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

/// How the adapter authenticates.
#[derive(Clone)]
pub enum TwilioAuth {
    /// The account SID and its auth token.
    AuthToken(ApiKey),
    /// An API key (`SK…`) and its secret.
    ApiKey {
        /// The API key's SID.
        sid: String,
        /// Its secret.
        secret: ApiKey,
    },
}

impl fmt::Debug for TwilioAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthToken(_) => f.write_str("TwilioAuth::AuthToken(…)"),
            Self::ApiKey { sid, .. } => write!(f, "TwilioAuth::ApiKey({sid}, …)"),
        }
    }
}

/// Who a message is sent from.
#[derive(Clone)]
pub enum TwilioSender {
    /// One of the practice's Twilio numbers (`From`). The scanner must know it as the
    /// practice's own phone, or the number in the request body is refused as a digit run.
    Number(PhoneNumber),
    /// A Messaging Service (`MessagingServiceSid`, `MG…`).
    MessagingService(String),
}

impl fmt::Debug for TwilioSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(_) => f.write_str("TwilioSender::Number(…)"),
            Self::MessagingService(sid) => write!(f, "TwilioSender::MessagingService({sid})"),
        }
    }
}

/// How to reach Twilio.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// The API origin ([`API_BASE`]; a loopback stand-in in tests).
    pub base_url: url::Url,
    /// The account SID (`AC…`).
    pub account_sid: String,
    /// The credentials.
    pub auth: TwilioAuth,
    /// Who messages come from.
    pub sender: TwilioSender,
    /// Our public status-callback URL for Twilio (no query: the key is added per message).
    pub callback: url::Url,
    /// Timeouts and the reply cap ([`crate::messaging_limits`]).
    pub limits: Limits,
}

/// The Twilio SMS adapter.
#[derive(Debug, Clone)]
pub struct Twilio {
    config: TwilioConfig,
    endpoint: url::Url,
    client: reqwest::Client,
}

impl Twilio {
    /// An adapter for `config`.
    ///
    /// # Errors
    /// [`ConfigError`] when a URL is not `https` (plain `http` only on loopback) or carries
    /// credentials, a query or a fragment, or a SID is not of its documented shape.
    pub fn new(config: TwilioConfig) -> Result<Self, ConfigError> {
        messaging::check_url(&config.base_url, "the Twilio base URL")?;
        messaging::check_url(&config.callback, "the Twilio callback URL")?;
        if !is_sid(&config.account_sid, &["AC"]) {
            return Err(ConfigError("the Twilio account SID"));
        }
        if let TwilioAuth::ApiKey { sid, .. } = &config.auth
            && !is_sid(sid, &["SK"])
        {
            return Err(ConfigError("the Twilio API key SID"));
        }
        if let TwilioSender::MessagingService(sid) = &config.sender
            && !is_sid(sid, &["MG"])
        {
            return Err(ConfigError("the Twilio messaging service SID"));
        }
        let endpoint = messaging::join(
            &config.base_url,
            &format!("/2010-04-01/Accounts/{}/Messages.json", config.account_sid),
        )?;
        let client = messaging::client(&config.limits)?;
        Ok(Self {
            config,
            endpoint,
            client,
        })
    }
}

#[derive(Deserialize)]
struct SendReply {
    sid: String,
}

#[async_trait::async_trait]
impl SmsCarrier for Twilio {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::CallbackOnly
    }

    async fn send_sms(&self, scanner: &Scanner, sms: SmsRequest<'_>) -> Result<Receipt, SendError> {
        let callback = messaging::callback_url(&self.config.callback, sms.key);
        // The serializer is not `Send`: it lives only in this block.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("To", sms.to.as_str());
            match &self.config.sender {
                TwilioSender::Number(n) => form.append_pair("From", n.as_str()),
                TwilioSender::MessagingService(sid) => form.append_pair("MessagingServiceSid", sid),
            };
            // `Body` goes last: an SMS may end with its link, and a link followed by
            // `&Field=` in the decoded form would not read as a link of its own.
            form.append_pair("StatusCallback", callback.as_str());
            form.append_pair("Body", sms.body.as_str());
            form.finish().into_bytes()
        };
        let encoded_callback: String =
            url::form_urlencoded::byte_serialize(callback.as_str().as_bytes()).collect();
        messaging::scan(scanner, &body, &encoded_callback, sms.to.as_str())?;
        let (user, secret) = match &self.config.auth {
            TwilioAuth::AuthToken(token) => (self.config.account_sid.as_str(), token.expose()),
            TwilioAuth::ApiKey { sid, secret } => (sid.as_str(), secret.expose()),
        };
        let request = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(user, Some(secret))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        let reply = messaging::send(request, &self.config.limits).await?;
        let parsed: SendReply =
            serde_json::from_slice(&reply.body).map_err(|_| SendError::Malformed)?;
        if !is_sid(&parsed.sid, &["SM", "MM"]) {
            return Err(SendError::Malformed);
        }
        Ok(Receipt {
            provider_id: parsed.sid,
        })
    }
}

/// Verifies and reads Twilio messaging webhooks (status callbacks and inbound messages).
#[derive(Clone)]
pub struct TwilioWebhooks {
    auth_token: ApiKey,
}

impl fmt::Debug for TwilioWebhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TwilioWebhooks(…)")
    }
}

/// The string Twilio signs: the URL, then each parameter's name and value, sorted by name
/// (and value, for repeated names).
#[must_use]
pub fn signed_string(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut out = String::from(url);
    for (name, value) in sorted {
        out.push_str(name);
        out.push_str(value);
    }
    out
}

impl TwilioWebhooks {
    /// A verifier keyed with the account's auth token (Twilio signs webhooks with the
    /// primary auth token, also when the REST calls use an API key).
    #[must_use]
    pub fn new(auth_token: ApiKey) -> Self {
        Self { auth_token }
    }
}

/// Twilio's `MessageStatus` as ours: `sent`; `delivered` (and `read`) → delivered;
/// `undelivered`, `failed`, `canceled` → failed; anything else (queued, sending, accepted,
/// scheduled) is not acted on.
fn delivery_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" | "read" => Some(DeliveryStatus::Delivered),
        "undelivered" | "failed" | "canceled" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

impl WebhookVerifier for TwilioWebhooks {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn verify(
        &self,
        request: &WebhookRequest<'_>,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Inbound>, WebhookError> {
        if request.body.len() > messaging::MAX_WEBHOOK_BYTES {
            return Err(WebhookError::Malformed);
        }
        let signature = request
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::BadSignature)?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| WebhookError::BadSignature)?;
        let params: Vec<(String, String)> = url::form_urlencoded::parse(request.body)
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        let key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            self.auth_token.expose().as_bytes(),
        );
        aws_lc_rs::hmac::verify(
            &key,
            signed_string(request.url, &params).as_bytes(),
            &signature,
        )
        .map_err(|_| WebhookError::BadSignature)?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let message_sid = param("MessageSid").ok_or(WebhookError::Malformed)?;
        if !is_sid(message_sid, &["SM", "MM"]) {
            return Err(WebhookError::Malformed);
        }
        if let Some(status) = param("MessageStatus") {
            if !messaging::is_opaque_id(status) {
                return Err(WebhookError::Malformed);
            }
            let event_id = format!("{message_sid}:{status}");
            let Some(status) = delivery_status(status) else {
                return Ok(vec![Inbound::Ignored { event_id }]);
            };
            return Ok(vec![Inbound::Delivery {
                event_id,
                provider_id: message_sid.to_owned(),
                key: messaging::key_in_url(request.url),
                status,
            }]);
        }
        let event_id = message_sid.to_owned();
        let keyword = match param("OptOutType") {
            Some(t) if t.eq_ignore_ascii_case("STOP") => Some(Keyword::Stop),
            Some(t) if t.eq_ignore_ascii_case("START") => Some(Keyword::Start),
            Some(t) if t.eq_ignore_ascii_case("HELP") => Some(Keyword::Help),
            _ => param("Body").and_then(|b| messaging::keyword(b, Carrier::Twilio)),
        };
        let from = param("From").and_then(|f| PhoneNumber::parse(f).ok());
        Ok(vec![match (keyword, from) {
            (Some(keyword), Some(from)) => Inbound::Keyword {
                event_id,
                from,
                keyword,
            },
            _ => Inbound::Ignored { event_id },
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's documented example: the auth token `12345`, the URL
    /// `https://mycompany.com/myapp.php?foo=1&bar=2` and five POST parameters give the
    /// signature `GvWf1cFY/Q7PnoempGyD5oXAezc=`.
    #[test]
    fn the_documented_signature_example_verifies() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        let s = signed_string("https://mycompany.com/myapp.php?foo=1&bar=2", &params);
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"12345");
        let tag = aws_lc_rs::hmac::sign(&key, s.as_bytes());
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
    }
}
