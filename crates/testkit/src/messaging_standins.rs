//! Stand-ins for the paid messaging services — Telnyx Messaging v2, Twilio Programmable
//! Messaging and a Web Push service — for tests only.
//!
//! Each stand-in is a real HTTP server on `127.0.0.1:0` that checks what the real service
//! checks and answers in its documented shapes:
//! - [`TelnyxStandIn`]: `POST /v2/messages` (bearer API key, JSON `to`, `text`, `from` or
//!   `messaging_profile_id`, optional `webhook_url`; `{"data": {...message}}` or Telnyx's
//!   `{"errors": [...]}`), and signed webhooks like Telnyx's (Ed25519 over
//!   `{timestamp}|{body}`, headers `telnyx-signature-ed25519` and `telnyx-timestamp`) with a
//!   key pair made at start ([`TelnyxStandIn::public_key_base64`]).
//! - [`TwilioStandIn`]: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (HTTP basic
//!   auth, form `To`, `Body`, `From` or `MessagingServiceSid`, optional `StatusCallback`; the
//!   message resource with `sid`, or Twilio's `{code, message, more_info, status}`), and
//!   webhooks signed like Twilio's (`X-Twilio-Signature`: HMAC-SHA1 with the auth token over
//!   the URL and the sorted parameters).
//! - [`PushServiceStandIn`]: RFC 8030 `POST /push/{id}` for subscriptions it made
//!   ([`PushServiceStandIn::subscribe`], a user agent's P-256 key pair and auth secret); it
//!   requires `TTL`, `Content-Encoding: aes128gcm` and a valid VAPID `Authorization` (RFC
//!   8292: the ES256 JWT verifies with `k`, `aud` is this origin, `exp` within 24 h, `sub`
//!   present), and decrypts the body (RFC 8291) with the subscription's private key, so a
//!   test sees exactly what arrived ([`PushServiceStandIn::received`]).
//!
//! Replies are scripted ([`MessagingReply`], first in first out; with nothing scripted the
//! stand-in accepts). Every request that reaches a server, valid or not, is counted
//! (`requests()`), so a test can prove that a refused send never connected.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::KeyPair as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Value, json};

/// A scripted reply of a messaging stand-in.
#[derive(Debug, Clone)]
pub enum MessagingReply {
    /// Accept (the default).
    Normal,
    /// This HTTP status with the service's error envelope (nothing accepted).
    Status(u16),
    /// HTTP 429 with `Retry-After`.
    RateLimited {
        /// The `Retry-After` seconds.
        retry_after_secs: u64,
    },
    /// Accept, with the reply padded by an ignored field to at least this many bytes.
    Oversized(usize),
    /// Never answer (the client's timeout fires).
    Hang,
    /// Accept, but answer `200` with a body that lacks the id.
    Malformed,
}

/// A webhook as a provider would send it: where to, its headers and its exact body.
#[derive(Debug, Clone)]
pub struct SignedWebhook {
    /// The URL it is sent to (and, for Twilio, signed with).
    pub url: String,
    /// Its headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl SignedWebhook {
    /// The headers as a header map (what a verifier reads).
    #[must_use]
    pub fn header_map(&self) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                reqwest::header::HeaderValue::from_str(value).expect("header value"),
            );
        }
        map
    }

    /// Posts it to its URL like the provider would; the HTTP status of the answer.
    pub async fn post(&self) -> u16 {
        let mut request = reqwest::Client::new()
            .post(&self.url)
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
            .send()
            .await
            .expect("the webhook receiver answers")
            .status()
            .as_u16()
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn b64url() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

async fn serve(router: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port for the stand-in");
    let addr = listener.local_addr().expect("the stand-in's address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// Applies a scripted non-accepting reply, if the next one is; `None` to accept (with the
/// padding an [`MessagingReply::Oversized`] asks for, or a malformed flag).
enum Scripted {
    Accept { pad: usize, malformed: bool },
    Answer(Response),
}

async fn scripted(next: Option<MessagingReply>, error: impl Fn(u16) -> Response) -> Scripted {
    match next.unwrap_or(MessagingReply::Normal) {
        MessagingReply::Normal => Scripted::Accept {
            pad: 0,
            malformed: false,
        },
        MessagingReply::Oversized(n) => Scripted::Accept {
            pad: n,
            malformed: false,
        },
        MessagingReply::Malformed => Scripted::Accept {
            pad: 0,
            malformed: true,
        },
        MessagingReply::Status(s) => Scripted::Answer(error(s)),
        MessagingReply::RateLimited { retry_after_secs } => {
            let mut r = error(429);
            r.headers_mut().insert(
                header::RETRY_AFTER,
                retry_after_secs.to_string().parse().expect("header value"),
            );
            Scripted::Answer(r)
        }
        MessagingReply::Hang => {
            std::future::pending::<()>().await;
            Scripted::Answer(error(500))
        }
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Telnyx

/// A message the Telnyx stand-in accepted.
#[derive(Debug, Clone)]
pub struct TelnyxMessage {
    /// The message id it answered with (`data.id`).
    pub id: String,
    /// `from`, if given.
    pub from: Option<String>,
    /// `messaging_profile_id`, if given.
    pub messaging_profile_id: Option<String>,
    /// `to`.
    pub to: String,
    /// `text`.
    pub text: String,
    /// `webhook_url`, if given.
    pub webhook_url: Option<String>,
    /// The raw request body.
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct TelnyxInner {
    script: VecDeque<MessagingReply>,
    requests: usize,
    messages: Vec<TelnyxMessage>,
}

struct TelnyxShared {
    api_key: String,
    inner: Mutex<TelnyxInner>,
}

/// A running Telnyx stand-in; stops when dropped.
pub struct TelnyxStandIn {
    addr: SocketAddr,
    shared: Arc<TelnyxShared>,
    signing: aws_lc_rs::signature::Ed25519KeyPair,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TelnyxStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn telnyx_error(status: u16) -> Response {
    let (code, title) = match status {
        401 => ("10009", "Authentication failed"),
        403 => ("40300", "Blocked due to STOP message"),
        422 => ("10005", "Invalid parameter"),
        429 => ("10011", "Too many requests"),
        s if s >= 500 => ("10007", "Unexpected error"),
        _ => ("10015", "Bad request"),
    };
    json_response(
        status,
        &json!({"errors": [{"code": code, "title": title, "detail": title}]}),
    )
}

async fn telnyx_messages(
    State(shared): State<Arc<TelnyxShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = {
        let mut inner = shared.inner.lock().expect("stand-in state");
        inner.requests += 1;
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(format!("Bearer {}", shared.api_key).as_str())
        {
            return telnyx_error(401);
        }
        if !headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return telnyx_error(400);
        }
        inner.script.pop_front()
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return telnyx_error(400);
    };
    let text_of = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_owned);
    let (to, text) = (text_of("to"), text_of("text"));
    let (from, profile) = (text_of("from"), text_of("messaging_profile_id"));
    let valid = to.as_deref().is_some_and(is_e164)
        && text.as_deref().is_some_and(|t| !t.is_empty())
        && (from.as_deref().is_some_and(is_e164) || profile.is_some());
    if !valid {
        return telnyx_error(422);
    }
    let (pad, malformed) = match scripted(next, telnyx_error).await {
        Scripted::Answer(r) => return r,
        Scripted::Accept { pad, malformed } => (pad, malformed),
    };
    let message = TelnyxMessage {
        id: uuid::Uuid::new_v4().to_string(),
        from,
        messaging_profile_id: profile,
        to: to.unwrap_or_default(),
        text: text.unwrap_or_default(),
        webhook_url: text_of("webhook_url"),
        raw: body.to_vec(),
    };
    let mut data = telnyx_message_json(&message, "queued");
    if malformed {
        data = json!({"record_type": "message"});
    }
    let mut reply = json!({ "data": data });
    if pad > 0 {
        reply["padding"] = Value::String("x".repeat(pad));
    }
    shared
        .inner
        .lock()
        .expect("stand-in state")
        .messages
        .push(message);
    json_response(200, &reply)
}

fn telnyx_message_json(m: &TelnyxMessage, status: &str) -> Value {
    json!({
        "record_type": "message",
        "direction": "outbound",
        "id": m.id,
        "type": "SMS",
        "messaging_profile_id": m.messaging_profile_id,
        "from": {"phone_number": m.from, "carrier": "Telnyx", "line_type": "Wireless"},
        "to": [{"phone_number": m.to, "status": status, "carrier": "T-Mobile USA", "line_type": "Wireless"}],
        "text": m.text,
        "encoding": "GSM-7",
        "parts": 1,
        "webhook_url": m.webhook_url,
        "webhook_failover_url": null,
        "errors": [],
    })
}

impl TelnyxStandIn {
    /// A stand-in that accepts `api_key` as the bearer token.
    pub async fn start(api_key: &str) -> Self {
        let shared = Arc::new(TelnyxShared {
            api_key: api_key.to_owned(),
            inner: Mutex::new(TelnyxInner::default()),
        });
        let router = Router::new()
            .route("/v2/messages", post(telnyx_messages))
            .fallback(|| async { telnyx_error(404) })
            .with_state(Arc::clone(&shared));
        let (addr, task) = serve(router).await;
        let signing =
            aws_lc_rs::signature::Ed25519KeyPair::generate().expect("an Ed25519 key pair");
        Self {
            addr,
            shared,
            signing,
            task,
        }
    }

    /// The API origin (`http://127.0.0.1:{port}`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The webhook signing public key, base64 (as the Telnyx portal shows it).
    #[must_use]
    pub fn public_key_base64(&self) -> String {
        b64().encode(self.signing.public_key().as_ref())
    }

    /// Scripts the next reply.
    pub fn script(&self, reply: MessagingReply) {
        self.shared
            .inner
            .lock()
            .expect("stand-in state")
            .script
            .push_back(reply);
    }

    /// How many requests reached the server.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.shared.inner.lock().expect("stand-in state").requests
    }

    /// The messages it accepted.
    #[must_use]
    pub fn messages(&self) -> Vec<TelnyxMessage> {
        self.shared
            .inner
            .lock()
            .expect("stand-in state")
            .messages
            .clone()
    }

    /// A webhook event envelope (`{"data": {...}, "meta": {...}}`) with a fresh event id.
    #[must_use]
    pub fn event(event_type: &str, payload: &Value, url: &str) -> Value {
        json!({
            "data": {
                "event_type": event_type,
                "id": uuid::Uuid::new_v4().to_string(),
                "occurred_at": "2026-01-01T00:00:00.000+00:00",
                "payload": payload,
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": url},
        })
    }

    /// A `message.sent` (status `sent`) or `message.finalized` (any other status:
    /// `delivered`, `delivery_failed`, `sending_failed`, `delivery_unconfirmed`) event for a
    /// message it accepted, echoing the message as Telnyx does (its `webhook_url` included).
    #[must_use]
    pub fn delivery_event(&self, message_id: &str, status: &str) -> (String, Value) {
        let message = self
            .messages()
            .into_iter()
            .find(|m| m.id == message_id)
            .expect("a message this stand-in accepted");
        let url = message
            .webhook_url
            .clone()
            .expect("the message named a webhook_url");
        let event_type = if status == "sent" {
            "message.sent"
        } else {
            "message.finalized"
        };
        let payload = telnyx_message_json(&message, status);
        let event = Self::event(event_type, &payload, &url);
        (url, event)
    }

    /// A `message.received` event: `from` texted `text` to the practice's number `to`.
    #[must_use]
    pub fn inbound_event(from: &str, to: &str, text: &str, url: &str) -> Value {
        let payload = json!({
            "record_type": "message",
            "direction": "inbound",
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "SMS",
            "from": {"phone_number": from, "carrier": "T-Mobile USA", "line_type": "Wireless"},
            "to": [{"phone_number": to, "status": "webhook_delivered", "carrier": "Telnyx", "line_type": "Wireless"}],
            "text": text,
            "encoding": "GSM-7",
            "parts": 1,
            "media": [],
        });
        Self::event("message.received", &payload, url)
    }

    /// The base64 Ed25519 signature of `{timestamp}|{body}`.
    #[must_use]
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let mut signed = timestamp.to_string().into_bytes();
        signed.push(b'|');
        signed.extend_from_slice(body);
        b64().encode(self.signing.sign(&signed).as_ref())
    }

    /// `event` as Telnyx would send it to `url` at `timestamp` (Unix seconds).
    #[must_use]
    pub fn signed(&self, url: &str, event: &Value, timestamp: i64) -> SignedWebhook {
        let body = event.to_string().into_bytes();
        SignedWebhook {
            url: url.to_owned(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("telnyx-timestamp".into(), timestamp.to_string()),
                (
                    "telnyx-signature-ed25519".into(),
                    self.sign(timestamp, &body),
                ),
            ],
            body,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Twilio

/// A message the Twilio stand-in accepted.
#[derive(Debug, Clone)]
pub struct TwilioMessage {
    /// The `sid` it answered with.
    pub sid: String,
    /// The form fields, as sent.
    pub fields: Vec<(String, String)>,
    /// The raw request body.
    pub raw: Vec<u8>,
    /// The basic-auth user name used.
    pub user: String,
}

impl TwilioMessage {
    /// A form field.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct TwilioInner {
    script: VecDeque<MessagingReply>,
    requests: usize,
    messages: Vec<TwilioMessage>,
    credentials: Vec<(String, String)>,
}

struct TwilioShared {
    account_sid: String,
    inner: Mutex<TwilioInner>,
}

/// A running Twilio stand-in; stops when dropped.
pub struct TwilioStandIn {
    addr: SocketAddr,
    shared: Arc<TwilioShared>,
    auth_token: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TwilioStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn twilio_error(status: u16) -> Response {
    let (code, message) = match status {
        401 => (20003, "Authenticate"),
        404 => (20404, "The requested resource was not found"),
        429 => (20429, "Too Many Requests"),
        s if s >= 500 => (20500, "Internal Server Error"),
        _ => (21211, "The 'To' number is not a valid phone number."),
    };
    json_response(
        status,
        &json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = b64().decode(value.strip_prefix("Basic ")?).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn twilio_messages(
    State(shared): State<Arc<TwilioShared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (next, user) = {
        let mut inner = shared.inner.lock().expect("stand-in state");
        inner.requests += 1;
        let Some(creds) = basic_auth(&headers).filter(|c| inner.credentials.contains(c)) else {
            return twilio_error(401);
        };
        if account != shared.account_sid {
            return twilio_error(404);
        }
        if !headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            return twilio_error(400);
        }
        (inner.script.pop_front(), creds.0)
    };
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let valid = field("To").as_deref().is_some_and(is_e164)
        && field("Body").is_some_and(|b| !b.is_empty())
        && (field("From").as_deref().is_some_and(is_e164)
            || field("MessagingServiceSid").is_some_and(|s| s.starts_with("MG")));
    if !valid {
        return twilio_error(400);
    }
    let (pad, malformed) = match scripted(next, twilio_error).await {
        Scripted::Answer(r) => return r,
        Scripted::Accept { pad, malformed } => (pad, malformed),
    };
    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let mut reply = json!({
        "account_sid": shared.account_sid,
        "api_version": "2010-04-01",
        "body": field("Body"),
        "date_created": "Thu, 01 Jan 2026 00:00:00 +0000",
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": field("From"),
        "messaging_service_sid": field("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "sid": sid,
        "status": "queued",
        "to": field("To"),
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{sid}.json", shared.account_sid),
    });
    if malformed {
        reply = json!({"status": "queued"});
    }
    if pad > 0 {
        reply["padding"] = Value::String("x".repeat(pad));
    }
    shared
        .inner
        .lock()
        .expect("stand-in state")
        .messages
        .push(TwilioMessage {
            sid,
            fields,
            raw: body.to_vec(),
            user,
        });
    json_response(201, &reply)
}

impl TwilioStandIn {
    /// A stand-in for account `account_sid` whose auth token is `auth_token`.
    pub async fn start(account_sid: &str, auth_token: &str) -> Self {
        let shared = Arc::new(TwilioShared {
            account_sid: account_sid.to_owned(),
            inner: Mutex::new(TwilioInner {
                credentials: vec![(account_sid.to_owned(), auth_token.to_owned())],
                ..TwilioInner::default()
            }),
        });
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(twilio_messages),
            )
            .fallback(|| async { twilio_error(404) })
            .with_state(Arc::clone(&shared));
        let (addr, task) = serve(router).await;
        Self {
            addr,
            shared,
            auth_token: auth_token.to_owned(),
            task,
        }
    }

    /// Also accepts the API key `sid` with `secret`.
    pub fn add_api_key(&self, sid: &str, secret: &str) {
        self.shared
            .inner
            .lock()
            .expect("stand-in state")
            .credentials
            .push((sid.to_owned(), secret.to_owned()));
    }

    /// The API origin (`http://127.0.0.1:{port}`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts the next reply.
    pub fn script(&self, reply: MessagingReply) {
        self.shared
            .inner
            .lock()
            .expect("stand-in state")
            .script
            .push_back(reply);
    }

    /// How many requests reached the server.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.shared.inner.lock().expect("stand-in state").requests
    }

    /// The messages it accepted.
    #[must_use]
    pub fn messages(&self) -> Vec<TwilioMessage> {
        self.shared
            .inner
            .lock()
            .expect("stand-in state")
            .messages
            .clone()
    }

    /// `X-Twilio-Signature` for `url` and `params`: base64 HMAC-SHA1 with the auth token over
    /// the URL followed by each parameter's name and value, sorted.
    #[must_use]
    pub fn sign(&self, url: &str, params: &[(String, String)]) -> String {
        let mut sorted: Vec<&(String, String)> = params.iter().collect();
        sorted.sort();
        let mut data = url.to_owned();
        for (n, v) in sorted {
            data.push_str(n);
            data.push_str(v);
        }
        let key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            self.auth_token.as_bytes(),
        );
        b64().encode(aws_lc_rs::hmac::sign(&key, data.as_bytes()).as_ref())
    }

    /// `params` form-encoded and signed for `url`, as Twilio would post them.
    #[must_use]
    pub fn signed(&self, url: &str, params: &[(String, String)]) -> SignedWebhook {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (n, v) in params {
            form.append_pair(n, v);
        }
        SignedWebhook {
            url: url.to_owned(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("x-twilio-signature".into(), self.sign(url, params)),
                (
                    "i-twilio-idempotency-token".into(),
                    uuid::Uuid::new_v4().to_string(),
                ),
            ],
            body: form.finish().into_bytes(),
        }
    }

    /// A status callback for a message it accepted (`MessageStatus`: `sent`, `delivered`,
    /// `undelivered`, `failed`, …), to the message's `StatusCallback` URL.
    #[must_use]
    pub fn status_callback(&self, sid: &str, status: &str) -> SignedWebhook {
        let message = self
            .messages()
            .into_iter()
            .find(|m| m.sid == sid)
            .expect("a message this stand-in accepted");
        let url = message
            .field("StatusCallback")
            .expect("the message named a StatusCallback")
            .to_owned();
        let mut params: Vec<(String, String)> = vec![
            ("AccountSid".into(), self.shared.account_sid.clone()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("MessageSid".into(), sid.to_owned()),
            ("MessageStatus".into(), status.to_owned()),
            ("SmsSid".into(), sid.to_owned()),
            ("SmsStatus".into(), status.to_owned()),
            (
                "To".into(),
                message.field("To").unwrap_or_default().to_owned(),
            ),
        ];
        if let Some(from) = message.field("From") {
            params.push(("From".into(), from.to_owned()));
        }
        if let Some(service) = message.field("MessagingServiceSid") {
            params.push(("MessagingServiceSid".into(), service.to_owned()));
        }
        if matches!(status, "undelivered" | "failed") {
            params.push(("ErrorCode".into(), "30003".into()));
        }
        self.signed(&url, &params)
    }

    /// An inbound message webhook: `from` texted `body` to the practice's number `to`;
    /// `opt_out_type` as Advanced Opt-Out sets it (`STOP`, `START`, `HELP`).
    #[must_use]
    pub fn inbound(
        &self,
        url: &str,
        from: &str,
        to: &str,
        body: &str,
        opt_out_type: Option<&str>,
    ) -> SignedWebhook {
        let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
        let mut params: Vec<(String, String)> = vec![
            ("AccountSid".into(), self.shared.account_sid.clone()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("Body".into(), body.to_owned()),
            ("From".into(), from.to_owned()),
            ("MessageSid".into(), sid.clone()),
            ("NumMedia".into(), "0".into()),
            ("NumSegments".into(), "1".into()),
            ("SmsMessageSid".into(), sid.clone()),
            ("SmsSid".into(), sid),
            ("SmsStatus".into(), "received".into()),
            ("To".into(), to.to_owned()),
        ];
        if let Some(t) = opt_out_type {
            params.push(("OptOutType".into(), t.to_owned()));
        }
        self.signed(url, &params)
    }
}

// ---------------------------------------------------------------------------------------
// Web Push

/// A subscription the push stand-in made (what a browser would hand the application).
#[derive(Debug, Clone)]
pub struct StandInSubscription {
    /// Its id (the endpoint's last segment).
    pub id: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// The user agent's P-256 public key (65 bytes).
    pub p256dh: Vec<u8>,
    /// The 16-byte auth secret.
    pub auth: Vec<u8>,
}

/// A push message the stand-in accepted and decrypted.
#[derive(Debug, Clone)]
pub struct PushDelivery {
    /// The subscription id.
    pub subscription: String,
    /// The decrypted payload.
    pub plaintext: Vec<u8>,
    /// The raw (encrypted) body.
    pub ciphertext: Vec<u8>,
    /// `TTL`.
    pub ttl: u64,
    /// `Urgency`, if given.
    pub urgency: Option<String>,
    /// `Topic`, if given.
    pub topic: Option<String>,
    /// The VAPID JWT's `sub`.
    pub vapid_subject: String,
    /// The VAPID public key (`k`), URL-safe base64.
    pub vapid_key: String,
    /// The `Authorization` header as it arrived (to replay or alter it in a test).
    pub authorization: String,
}

struct PushSub {
    private: Vec<u8>,
    public: Vec<u8>,
    auth: Vec<u8>,
    gone: bool,
}

#[derive(Default)]
struct PushInner {
    script: VecDeque<MessagingReply>,
    requests: usize,
    subscriptions: HashMap<String, PushSub>,
    received: Vec<PushDelivery>,
}

struct PushShared {
    origin: Mutex<String>,
    inner: Mutex<PushInner>,
}

/// A running Web Push service stand-in; stops when dropped.
pub struct PushServiceStandIn {
    addr: SocketAddr,
    shared: Arc<PushShared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PushServiceStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn push_error(status: u16) -> Response {
    json_response(
        status,
        &json!({"code": status, "errno": 999, "error": "stand-in", "message": "refused"}),
    )
}

struct HkdfLen(usize);

impl aws_lc_rs::hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// RFC 8291 decryption with the user agent's keys: the plaintext, or `None`.
fn decrypt(body: &[u8], ua_private: &[u8], ua_public: &[u8], auth: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::{aead, agreement, hkdf};
    let salt = body.get(..16)?;
    let id_len = usize::from(*body.get(20)?);
    let as_public = body.get(21..21 + id_len)?;
    let mut record = body.get(21 + id_len..)?.to_vec();
    let private =
        agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, ua_private).ok()?;
    let expand = |prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]| {
        prk.expand(info, HkdfLen(out.len()))
            .and_then(|okm| okm.fill(out))
    };
    let (cek, nonce) = agreement::agree(
        &private,
        agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, as_public),
        aws_lc_rs::error::Unspecified,
        |secret| {
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, auth).extract(secret);
            let mut ikm = [0u8; 32];
            expand(&prk, &[b"WebPush: info\0", ua_public, as_public], &mut ikm)?;
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&ikm);
            let mut cek = [0u8; 16];
            let mut nonce = [0u8; 12];
            expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek)?;
            expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce)?;
            Ok((cek, nonce))
        },
    )
    .ok()?;
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek).ok()?);
    let plain = key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut record,
        )
        .ok()?;
    // Strip the padding: trailing zeros, then the last-record delimiter 0x02.
    let end = plain.iter().rposition(|b| *b != 0)?;
    (plain[end] == 2).then(|| plain[..end].to_vec())
}

/// Checks a VAPID `Authorization` (RFC 8292) for `origin`: the JWT's `sub` and the key.
fn check_vapid(authorization: &str, origin: &str) -> Option<(String, String)> {
    let rest = authorization.strip_prefix("vapid ")?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    let (token, key) = (token?, key?);
    let (input, signature) = token.rsplit_once('.')?;
    let (header, claims) = input.split_once('.')?;
    let header: Value = serde_json::from_slice(&b64url().decode(header).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "ES256" {
        return None;
    }
    let public = b64url().decode(key).ok()?;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &public,
    )
    .verify(input.as_bytes(), &b64url().decode(signature).ok()?)
    .ok()?;
    let claims: Value = serde_json::from_slice(&b64url().decode(claims).ok()?).ok()?;
    let now = domain::Clock::now(&domain::SystemClock).timestamp();
    let exp = claims.get("exp")?.as_i64()?;
    let sub = claims.get("sub")?.as_str()?;
    let aud_ok = claims.get("aud")?.as_str()? == origin;
    let sub_ok = sub.starts_with("mailto:") || sub.starts_with("https://");
    (aud_ok && sub_ok && exp > now && exp <= now + 24 * 3600)
        .then(|| (sub.to_owned(), key.to_owned()))
}

async fn push_message(
    State(shared): State<Arc<PushShared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let origin = shared.origin.lock().expect("stand-in state").clone();
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (next, keys) = {
        let mut inner = shared.inner.lock().expect("stand-in state");
        inner.requests += 1;
        let Some(sub) = inner.subscriptions.get(&id) else {
            return push_error(404);
        };
        if sub.gone {
            return push_error(410);
        }
        let keys = (sub.private.clone(), sub.public.clone(), sub.auth.clone());
        (inner.script.pop_front(), keys)
    };
    let Some(ttl) = header_str("ttl").and_then(|t| t.parse::<u64>().ok()) else {
        return push_error(400);
    };
    if header_str("content-encoding") != Some("aes128gcm") {
        return push_error(415);
    }
    let urgency = header_str("urgency").map(str::to_owned);
    if urgency
        .as_deref()
        .is_some_and(|u| !matches!(u, "very-low" | "low" | "normal" | "high"))
    {
        return push_error(400);
    }
    let topic = header_str("topic").map(str::to_owned);
    if topic.as_deref().is_some_and(|t| {
        t.len() > 32
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return push_error(400);
    }
    let authorization = header_str("authorization").unwrap_or_default().to_owned();
    let Some((vapid_subject, vapid_key)) = check_vapid(&authorization, &origin) else {
        return push_error(401);
    };
    let Some(plaintext) = decrypt(&body, &keys.0, &keys.1, &keys.2) else {
        return push_error(400);
    };
    let (pad, _malformed) = match scripted(next, push_error).await {
        Scripted::Answer(r) => return r,
        Scripted::Accept { pad, malformed } => (pad, malformed),
    };
    shared
        .inner
        .lock()
        .expect("stand-in state")
        .received
        .push(PushDelivery {
            subscription: id,
            plaintext,
            ciphertext: body.to_vec(),
            ttl,
            urgency,
            topic,
            vapid_subject,
            vapid_key,
            authorization,
        });
    let message_id = uuid::Uuid::new_v4().simple().to_string();
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("{origin}/message/{message_id}"))],
        "x".repeat(pad),
    )
        .into_response()
}

impl PushServiceStandIn {
    /// A push service stand-in.
    pub async fn start() -> Self {
        let shared = Arc::new(PushShared {
            origin: Mutex::new(String::new()),
            inner: Mutex::new(PushInner::default()),
        });
        let router = Router::new()
            .route("/push/{id}", post(push_message))
            .fallback(|| async { push_error(404) })
            .with_state(Arc::clone(&shared));
        let (addr, task) = serve(router).await;
        *shared.origin.lock().expect("stand-in state") = format!("http://{addr}");
        Self { addr, shared, task }
    }

    /// The service's origin.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new subscription (a user agent's key pair and auth secret).
    #[must_use]
    pub fn subscribe(&self) -> StandInSubscription {
        use aws_lc_rs::agreement;
        let private = agreement::PrivateKey::generate(&agreement::ECDH_P256).expect("a P-256 key");
        let public = private
            .compute_public_key()
            .expect("its public key")
            .as_ref()
            .to_vec();
        let private =
            aws_lc_rs::encoding::AsBigEndian::<aws_lc_rs::encoding::EcPrivateKeyBin>::as_be_bytes(
                &private,
            )
            .expect("its private bytes")
            .as_ref()
            .to_vec();
        let mut auth = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut auth).expect("random bytes");
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.shared
            .inner
            .lock()
            .expect("stand-in state")
            .subscriptions
            .insert(
                id.clone(),
                PushSub {
                    private,
                    public: public.clone(),
                    auth: auth.clone(),
                    gone: false,
                },
            );
        StandInSubscription {
            endpoint: format!("{}/push/{id}", self.url()),
            id,
            p256dh: public,
            auth,
        }
    }

    /// Marks a subscription expired: it answers `410 Gone` from now on.
    pub fn expire(&self, id: &str) {
        if let Some(s) = self
            .shared
            .inner
            .lock()
            .expect("stand-in state")
            .subscriptions
            .get_mut(id)
        {
            s.gone = true;
        }
    }

    /// Scripts the next reply (after the request is validated and decrypted).
    pub fn script(&self, reply: MessagingReply) {
        self.shared
            .inner
            .lock()
            .expect("stand-in state")
            .script
            .push_back(reply);
    }

    /// How many requests reached the server.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.shared.inner.lock().expect("stand-in state").requests
    }

    /// The messages it accepted, decrypted.
    #[must_use]
    pub fn received(&self) -> Vec<PushDelivery> {
        self.shared
            .inner
            .lock()
            .expect("stand-in state")
            .received
            .clone()
    }
}
