//! Stand-ins for the mail, payment and geocoding providers, and a real SMTP server, for
//! tests only.
//!
//! - [`ResendStandIn`]: Resend's `POST /emails` (bearer key, JSON `{from, to, subject, text}`,
//!   `Idempotency-Key`: the same key and body answer the first result and send nothing new,
//!   the same key with another body is `409`), and Svix-signed webhooks
//!   ([`ResendStandIn::webhook`]).
//! - [`StripeStandIn`]: Stripe's `POST /v1/checkout/sessions`, `/v1/payment_intents` and
//!   `/v1/refunds` (bearer `sk_test_…`, form-encoded with bracket notation; unknown
//!   parameters are refused with `400` as Stripe does; `Idempotency-Key`: the same key and
//!   parameters replay the first response with `Idempotent-Replayed: true` and create nothing,
//!   other parameters are a `400 idempotency_error`; an off-session `PaymentIntent` needs
//!   `confirm=true`, a customer and a payment method, and Stripe's test cards
//!   `pm_card_chargeDeclined` and `pm_card_authenticationRequired` answer the `402` card
//!   errors Stripe does, with the `PaymentIntent` in the error; a Checkout Session's `expires_at` must
//!   fall 30 minutes to 24 hours after its creation on the stand-in's clock, else `400`
//!   `parameter_invalid_integer`), and `Stripe-Signature` webhooks
//!   ([`StripeStandIn::signed_event`], [`StripeStandIn::send_event`]).
//! - [`NominatimStandIn`]: `GET /search?format=jsonv2&…` answering `jsonv2` places.
//! - [`SmtpServer`]: a real SMTP server process (Debian's `python3-aiosmtpd`) on a free
//!   loopback port, writing every message it accepts to a directory; [`dkim_verify`] checks
//!   a received message's DKIM signature with Debian's `python3-dkim`, offline.
//!
//! The HTTP stand-ins listen on `127.0.0.1:0`, record every request that reaches them
//! ([`HttpRecord`]), valid or not, and take scripted failures ([`Failure`], first in first
//! out) so a test can drive retries and rejections and prove a refused call never connected.
//! Their signing code is written here independently of the adapters they test.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use domain::Clock as _;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// One request as it reached a stand-in.
#[derive(Debug, Clone)]
pub struct HttpRecord {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query string (without `?`), if any.
    pub query: Option<String>,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl HttpRecord {
    /// A header's value (case-insensitive name).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    #[must_use]
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as form pairs, in order.
    #[must_use]
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The query as pairs, in order.
    #[must_use]
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// A scripted failure for the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// This status with the provider's error body.
    Status(u16),
    /// `429` with `Retry-After`.
    RateLimited {
        /// Seconds.
        retry_after_secs: u64,
    },
    /// `200` with a body that is not the documented shape.
    Malformed,
    /// `200` with a body of this many bytes.
    Oversized(usize),
}

fn failure_response(f: &Failure, error_body: Value) -> Response {
    match f {
        Failure::Status(code) => (
            StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(error_body),
        )
            .into_response(),
        Failure::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            axum::Json(json!({"error": {"type": "rate_limit_error"}})),
        )
            .into_response(),
        Failure::Malformed => (StatusCode::OK, "{\"unexpected\": true").into_response(),
        Failure::Oversized(n) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"id\":\"{}\"}}", "x".repeat(*n)),
        )
            .into_response(),
    }
}

fn record(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> HttpRecord {
    HttpRecord {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
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

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------
// Resend
// ---------------------------------------------------------------------------------------

/// An email the Resend stand-in accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendEmail {
    /// The id it answered.
    pub id: String,
    /// `from`.
    pub from: String,
    /// `to`.
    pub to: Vec<String>,
    /// `subject`.
    pub subject: String,
    /// `text`.
    pub text: String,
}

#[derive(Default)]
struct ResendState {
    script: VecDeque<Failure>,
    recorded: Vec<HttpRecord>,
    emails: Vec<ResendEmail>,
    /// Idempotency key → (body hash, id).
    keys: HashMap<String, (String, String)>,
}

/// The Resend stand-in.
pub struct ResendStandIn {
    addr: SocketAddr,
    api_key: String,
    state: Arc<Mutex<ResendState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ResendStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ResendShared = (Arc<Mutex<ResendState>>, String);

async fn resend_emails(
    State((state, api_key)): State<ResendShared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = record(&method, &uri, &headers, &body);
    let mut s = state.lock().expect("stand-in state");
    s.recorded.push(rec);
    if let Some(f) = s.script.pop_front() {
        return failure_response(
            &f,
            json!({"statusCode": 500, "name": "application_error", "message": "scripted"}),
        );
    }
    if bearer(&headers).as_deref() != Some(api_key.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"statusCode": 401, "name": "missing_api_key", "message": "Missing API key"}),
            ),
        )
            .into_response();
    }
    let validation = |m: &str| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"statusCode": 422, "name": "validation_error", "message": m})),
        )
            .into_response()
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return validation("body is not JSON");
    };
    let Some(obj) = v.as_object() else {
        return validation("body is not an object");
    };
    let str_of = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let to: Vec<String> = match obj.get("to") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let (Some(from), Some(subject)) = (str_of("from"), str_of("subject")) else {
        return validation("from and subject are required");
    };
    if to.is_empty() || to.len() > 50 {
        return validation("to is required (at most 50)");
    }
    let Some(text) = str_of("text").or_else(|| str_of("html")) else {
        return validation("text or html is required");
    };
    let hash = sha256_hex(&body);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &key {
        if k.is_empty() || k.len() > 256 {
            return validation("idempotency key must be 1-256 characters");
        }
        if let Some((h, id)) = s.keys.get(k) {
            if *h == hash {
                return (StatusCode::OK, axum::Json(json!({"id": id}))).into_response();
            }
            return (
                StatusCode::CONFLICT,
                axum::Json(
                    json!({"statusCode": 409, "name": "invalid_idempotent_request",
                    "message": "Same idempotency key used with a different request payload."}),
                ),
            )
                .into_response();
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    s.emails.push(ResendEmail {
        id: id.clone(),
        from,
        to,
        subject,
        text,
    });
    if let Some(k) = key {
        s.keys.insert(k, (hash, id.clone()));
    }
    (StatusCode::OK, axum::Json(json!({"id": id}))).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let _ = (method, uri);
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not found"})),
    )
        .into_response()
}

impl ResendStandIn {
    /// Starts the stand-in; requests must carry `Authorization: Bearer {api_key}`.
    pub async fn start(api_key: &str) -> Self {
        let state = Arc::new(Mutex::new(ResendState::default()));
        let router = Router::new()
            .route("/emails", post(resend_emails))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(1024 * 1024))
            .with_state((Arc::clone(&state), api_key.to_owned()));
        let (addr, task) = serve(router).await;
        Self {
            addr,
            api_key: api_key.to_owned(),
            state,
            task,
        }
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API key it expects.
    #[must_use]
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Scripts a failure for the next request.
    pub fn script(&self, f: Failure) {
        self.state
            .lock()
            .expect("stand-in state")
            .script
            .push_back(f);
    }

    /// Requests that reached it.
    #[must_use]
    pub fn recorded(&self) -> Vec<HttpRecord> {
        self.state.lock().expect("stand-in state").recorded.clone()
    }

    /// Emails it accepted (each once, whatever the repeats).
    #[must_use]
    pub fn emails(&self) -> Vec<ResendEmail> {
        self.state.lock().expect("stand-in state").emails.clone()
    }

    /// A Svix-signed webhook as Resend sends it: the headers (`svix-id`, `svix-timestamp`,
    /// `svix-signature`) and the JSON body for an event of `kind` (`email.delivered`, …)
    /// about `email_id`, signed with `secret` (`whsec_…`) at `timestamp`.
    #[must_use]
    pub fn webhook(
        secret: &str,
        kind: &str,
        email_id: &str,
        timestamp: i64,
    ) -> (Vec<(String, String)>, Vec<u8>) {
        let body = serde_json::to_vec(&json!({
            "type": kind,
            "created_at": "2026-12-07T10:00:00.000Z",
            "data": {
                "created_at": "2026-12-07T09:59:58.000Z",
                "email_id": email_id,
                "from": "Harbour Dental <appointments@harbour-dental.test>",
                "to": ["client@example.test"],
                "subject": "Your appointment is booked"
            }
        }))
        .expect("serialize");
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let headers = Self::sign(secret, &id, timestamp, &body);
        (headers, body)
    }

    /// The Svix headers for `body`.
    #[must_use]
    pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .expect("a whsec_ secret");
        let mac = hmac_sha256(
            &key,
            &[
                id.as_bytes(),
                b".",
                timestamp.to_string().as_bytes(),
                b".",
                body,
            ],
        );
        vec![
            ("svix-id".into(), id.to_owned()),
            ("svix-timestamp".into(), timestamp.to_string()),
            (
                "svix-signature".into(),
                format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(mac)
                ),
            ),
        ]
    }
}

// ---------------------------------------------------------------------------------------
// Stripe
// ---------------------------------------------------------------------------------------

/// An object the Stripe stand-in created.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeObject {
    /// `cs_test_…`, `pi_test_…`, `re_test_…`.
    pub id: String,
    /// The endpoint path that created it.
    pub path: String,
    /// The form it was created from.
    pub form: Vec<(String, String)>,
    /// The JSON answered.
    pub json: Value,
}

#[derive(Default)]
struct StripeState {
    /// Its clock (the system's unless a test gives it its own).
    clock: Option<Arc<dyn domain::Clock>>,
    script: VecDeque<Failure>,
    recorded: Vec<HttpRecord>,
    objects: Vec<StripeObject>,
    /// Idempotency key → (path + body hash, status, response).
    keys: HashMap<String, (String, u16, Value)>,
    serial: u32,
    /// Fields the next refunds answer with instead of Stripe's usual ones (first in first
    /// out): a `pending` refund, or one for less than was asked.
    refund_replies: VecDeque<Value>,
}

/// The Stripe stand-in.
pub struct StripeStandIn {
    addr: SocketAddr,
    state: Arc<Mutex<StripeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StripeStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The parameters each endpoint accepts (Stripe refuses others: "Received unknown
/// parameter").
fn stripe_allowed(path: &str, name: &str) -> bool {
    let checkout = [
        "mode",
        "currency",
        "customer_creation",
        "client_reference_id",
        "success_url",
        "cancel_url",
        "line_items[0][price_data][currency]",
        "line_items[0][price_data][unit_amount]",
        "line_items[0][price_data][product_data][name]",
        "line_items[0][quantity]",
        "payment_intent_data[description]",
        "payment_intent_data[metadata][ref]",
        "setup_intent_data[description]",
        "setup_intent_data[metadata][ref]",
        "metadata[ref]",
        "expires_at",
    ];
    let intents = [
        "amount",
        "currency",
        "description",
        "customer",
        "payment_method",
        "off_session",
        "confirm",
        "metadata[ref]",
    ];
    let refunds = ["payment_intent", "amount", "metadata[ref]"];
    match path {
        "/v1/checkout/sessions" => checkout.contains(&name),
        "/v1/payment_intents" => intents.contains(&name),
        "/v1/refunds" => refunds.contains(&name),
        _ => false,
    }
}

fn stripe_error(status: StatusCode, kind: &str, code: &str, message: &str) -> (u16, Value) {
    (
        status.as_u16(),
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per endpoint: the stand-in's objects read as one table"
)]
fn stripe_create(
    s: &mut StripeState,
    base: &str,
    path: &str,
    form: &[(String, String)],
) -> (u16, Value) {
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some((bad, _)) = form.iter().find(|(n, _)| !stripe_allowed(path, n)) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_unknown",
            &format!("Received unknown parameter: {bad}"),
        );
    }
    let metadata_ref = field("metadata[ref]").map(str::to_owned);
    s.serial += 1;
    let n = s.serial;
    let (id, body) = match path {
        "/v1/checkout/sessions" => {
            let mode = field("mode").unwrap_or_default();
            if !matches!(mode, "payment" | "setup")
                || field("success_url").is_none()
                || (mode == "payment"
                    && (field("line_items[0][price_data][unit_amount]").is_none()
                        || field("line_items[0][price_data][currency]").is_none()))
                || (mode == "setup" && field("currency").is_none())
            {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "parameter_missing",
                    "Missing required param.",
                );
            }
            let created = s
                .clock
                .as_ref()
                .map_or_else(|| domain::SystemClock.now(), |c| c.now())
                .timestamp();
            let expires_at = match field("expires_at").map(str::parse::<i64>) {
                None => created + 24 * 3600,
                Some(Ok(t)) if (created + 30 * 60..=created + 24 * 3600).contains(&t) => t,
                Some(_) => {
                    return stripe_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "parameter_invalid_integer",
                        "The `expires_at` timestamp must be between 30 minutes and 24 hours after Checkout Session creation.",
                    );
                }
            };
            let id = format!("cs_test_{n:06}");
            let amount: Option<u64> =
                field("line_items[0][price_data][unit_amount]").and_then(|a| a.parse().ok());
            let body = json!({
                "id": id,
                "object": "checkout.session",
                "mode": mode,
                "status": "open",
                "url": format!("{base}/c/pay/{id}"),
                "client_reference_id": field("client_reference_id"),
                "metadata": {"ref": metadata_ref},
                "amount_total": amount,
                "currency": field("line_items[0][price_data][currency]").or(field("currency")),
                "success_url": field("success_url"),
                "cancel_url": field("cancel_url"),
                "created": created,
                "expires_at": expires_at,
            });
            (id, body)
        }
        "/v1/payment_intents" => {
            let amount: Option<u64> = field("amount").and_then(|a| a.parse().ok());
            let (Some(amount), Some(currency)) = (amount, field("currency")) else {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "parameter_missing",
                    "Missing required param: amount.",
                );
            };
            let off_session = field("off_session") == Some("true");
            if off_session
                && (field("confirm") != Some("true")
                    || field("customer").is_none()
                    || field("payment_method").is_none())
            {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "parameter_missing",
                    "An off-session payment needs confirm=true, a customer and a payment method.",
                );
            }
            let id = format!("pi_test_{n:06}");
            // Stripe's test cards: a decline, and a card whose bank wants the client there
            // (off session that is a card error, the PaymentIntent left for the client).
            let card_error = match field("payment_method") {
                Some("pm_card_chargeDeclined") => {
                    Some(("card_declined", "Your card was declined."))
                }
                Some("pm_card_authenticationRequired") if off_session => Some((
                    "authentication_required",
                    "This payment requires authentication.",
                )),
                _ => None,
            };
            let body = json!({
                "id": id,
                "object": "payment_intent",
                "amount": amount,
                "amount_received": if card_error.is_some() { 0 } else { amount },
                "currency": currency,
                "description": field("description"),
                "customer": field("customer"),
                "payment_method": field("payment_method"),
                "status": if card_error.is_some() { "requires_payment_method" } else { "succeeded" },
                "metadata": {"ref": metadata_ref},
            });
            if let Some((code, message)) = card_error {
                s.objects.push(StripeObject {
                    id,
                    path: path.to_owned(),
                    form: form.to_vec(),
                    json: body.clone(),
                });
                return (
                    402,
                    json!({"error": {"type": "card_error", "code": code, "message": message,
                                      "decline_code": (code == "card_declined").then_some("generic_decline"),
                                      "payment_intent": body}}),
                );
            }
            (id, body)
        }
        "/v1/refunds" => {
            let Some(pi) = field("payment_intent") else {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "parameter_missing",
                    "Missing required param: payment_intent.",
                );
            };
            let id = format!("re_test_{n:06}");
            // Stripe answers with the refund's amount and currency (the charge's, in the
            // stand-in's one currency when the PaymentIntent is not one it made).
            let currency = s
                .objects
                .iter()
                .find(|o| o.id == pi)
                .and_then(|o| o.json["currency"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "usd".to_owned());
            let mut body = json!({
                "id": id,
                "object": "refund",
                "payment_intent": pi,
                "amount": field("amount").and_then(|a| a.parse::<u64>().ok()),
                "currency": currency,
                "status": "succeeded",
                "metadata": {"ref": metadata_ref},
            });
            if let (Some(Value::Object(over)), Some(b)) =
                (s.refund_replies.pop_front(), body.as_object_mut())
            {
                b.extend(over);
            }
            (id, body)
        }
        _ => {
            return stripe_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "Unrecognized request URL.",
            );
        }
    };
    s.objects.push(StripeObject {
        id,
        path: path.to_owned(),
        form: form.to_vec(),
        json: body.clone(),
    });
    (200, body)
}

async fn stripe_endpoint(
    State((state, base)): State<(Arc<Mutex<StripeState>>, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = record(&method, &uri, &headers, &body);
    let form = rec.form();
    let mut s = state.lock().expect("stand-in state");
    s.recorded.push(rec);
    if let Some(f) = s.script.pop_front() {
        let error = if f == Failure::Status(402) {
            json!({"error": {"type": "card_error", "code": "card_declined",
                "decline_code": "generic_decline", "message": "Your card was declined."}})
        } else {
            json!({"error": {"type": "api_error", "message": "scripted"}})
        };
        return failure_response(&f, error);
    }
    let reply = |(status, v): (u16, Value), replayed: bool| {
        let mut r = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(v),
        )
            .into_response();
        if replayed {
            r.headers_mut().insert(
                "idempotent-replayed",
                header::HeaderValue::from_static("true"),
            );
        }
        r
    };
    if !bearer(&headers).is_some_and(|k| k.starts_with("sk_test_")) {
        return reply(
            stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "api_key_invalid",
                "Invalid API Key provided.",
            ),
            false,
        );
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return reply(
            stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_content_type",
                "Requests must be form-encoded.",
            ),
            false,
        );
    }
    let fingerprint = format!("{} {}", uri.path(), sha256_hex(&body));
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &key {
        if k.is_empty() || k.len() > 255 {
            return reply(
                stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "idempotency_key_invalid",
                    "Idempotency keys are 1-255 characters.",
                ),
                false,
            );
        }
        if let Some((fp, status, v)) = s.keys.get(k) {
            if *fp == fingerprint {
                return reply((*status, v.clone()), true);
            }
            return reply(
                stripe_error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    "idempotency_key_in_use",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                ),
                false,
            );
        }
    }
    let (status, v) = stripe_create(&mut s, &base, uri.path(), &form);
    if let Some(k) = key {
        // Stripe saves the result of any request that began executing, errors included.
        s.keys.insert(k, (fingerprint, status, v.clone()));
    }
    reply((status, v), false)
}

impl StripeStandIn {
    /// Starts the stand-in (any `sk_test_…` bearer key is accepted).
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(StripeState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the stand-in");
        let addr = listener.local_addr().expect("the stand-in's address");
        let router = Router::new()
            .route("/v1/checkout/sessions", post(stripe_endpoint))
            .route("/v1/payment_intents", post(stripe_endpoint))
            .route("/v1/refunds", post(stripe_endpoint))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(1024 * 1024))
            .with_state((Arc::clone(&state), format!("http://{addr}")));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, state, task }
    }

    /// The base URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Reads the time from `clock` (a test's manual clock) instead of the system's: a
    /// Checkout Session's `created`, and the bounds of its `expires_at`.
    pub fn use_clock(&self, clock: Arc<dyn domain::Clock>) {
        self.state.lock().expect("stand-in state").clock = Some(clock);
    }

    /// Scripts a failure for the next request (`Status(402)` answers a card decline).
    pub fn script(&self, f: Failure) {
        self.state
            .lock()
            .expect("stand-in state")
            .script
            .push_back(f);
    }

    /// Requests that reached it.
    #[must_use]
    pub fn recorded(&self) -> Vec<HttpRecord> {
        self.state.lock().expect("stand-in state").recorded.clone()
    }

    /// The next refund it creates answers with `fields` over Stripe's usual ones (e.g.
    /// `{"status": "pending"}`, or `{"amount": 1000}` for a refund of less than was asked).
    pub fn script_refund(&self, fields: Value) {
        self.state
            .lock()
            .expect("stand-in state")
            .refund_replies
            .push_back(fields);
    }

    /// The `charge` object of Stripe's `charge.refunded` event: the charge of
    /// `payment_intent` for `amount`, of which `amount_refunded` has been refunded so far (all
    /// its refunds together), in `usd`.
    #[must_use]
    pub fn refunded_charge(payment_intent: &str, amount: u64, amount_refunded: u64) -> Value {
        json!({
            "id": format!("ch_test_{}", uuid::Uuid::new_v4().simple()),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": amount_refunded,
            "captured": true,
            "currency": "usd",
            "paid": true,
            "payment_intent": payment_intent,
            "refunded": amount_refunded >= amount,
            "status": "succeeded",
            "livemode": false,
        })
    }

    /// Objects it created (a replayed request creates none).
    #[must_use]
    pub fn objects(&self) -> Vec<StripeObject> {
        self.state.lock().expect("stand-in state").objects.clone()
    }

    /// A signed event as Stripe sends it: the `Stripe-Signature` header value and the body,
    /// for an event of `kind` whose `data.object` is `object`, signed with `secret` at `t`.
    #[must_use]
    pub fn signed_event(secret: &str, kind: &str, object: &Value, t: i64) -> (String, Vec<u8>) {
        let body = serde_json::to_vec(&json!({
            "id": format!("evt_test_{}", uuid::Uuid::new_v4().simple()),
            "object": "event",
            "api_version": "2024-06-20",
            "created": t,
            "livemode": false,
            "type": kind,
            "data": {"object": object},
        }))
        .expect("serialize");
        (Self::signature(secret, t, &body), body)
    }

    /// The `Stripe-Signature` value for `body` at `t`.
    #[must_use]
    pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
        let mac = hmac_sha256(secret.as_bytes(), &[t.to_string().as_bytes(), b".", body]);
        format!("t={t},v1={}", hex::encode(mac))
    }

    /// The `checkout.session.completed` object for a session it created (paid, or set up).
    #[must_use]
    pub fn completed_session(&self, session_id: &str) -> Option<Value> {
        let s = self.state.lock().expect("stand-in state");
        let o = s.objects.iter().find(|o| o.id == session_id)?;
        let mut v = o.json.clone();
        let setup = v["mode"] == "setup";
        v["status"] = json!("complete");
        v["payment_status"] = json!(if setup { "no_payment_required" } else { "paid" });
        v["customer"] = json!("cus_test_000001");
        if setup {
            v["setup_intent"] = json!("seti_test_000001");
        } else {
            v["payment_intent"] = json!("pi_test_900001");
        }
        Some(v)
    }

    /// POSTs a signed event to `url` as Stripe's webhook delivery does; the HTTP status.
    pub async fn send_event(url: &str, secret: &str, kind: &str, object: &Value, t: i64) -> u16 {
        let (sig, body) = Self::signed_event(secret, kind, object, t);
        reqwest::Client::new()
            .post(url)
            .header("Stripe-Signature", sig)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }
}

// ---------------------------------------------------------------------------------------
// Nominatim
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct NominatimState {
    script: VecDeque<Failure>,
    recorded: Vec<HttpRecord>,
    places: Option<Value>,
}

/// The Nominatim stand-in.
pub struct NominatimStandIn {
    addr: SocketAddr,
    state: Arc<Mutex<NominatimState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NominatimStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn nominatim_search(
    State(state): State<Arc<Mutex<NominatimState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let rec = record(&method, &uri, &headers, &[]);
    let pairs = rec.query_pairs();
    let mut s = state.lock().expect("stand-in state");
    s.recorded.push(rec);
    if let Some(f) = s.script.pop_front() {
        return failure_response(&f, json!({"error": {"code": 500, "message": "scripted"}}));
    }
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("format") != Some("jsonv2") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": {"code": 400, "message": "Parameter 'format': only jsonv2 here"}}),
            ),
        )
            .into_response();
    }
    let structured = ["street", "city", "county", "state", "country", "postalcode"]
        .iter()
        .any(|k| get(k).is_some());
    if structured == get("q").is_some() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"code": 400,
                "message": "Structured query parameters (street, city, …) cannot be used together with 'q'."}})),
        )
            .into_response();
    }
    let places = s.places.clone().unwrap_or_else(|| {
        json!([{
            "place_id": 123_456,
            "licence": "Data © OpenStreetMap contributors, ODbL 1.0.",
            "osm_type": "way",
            "osm_id": 98765,
            "lat": "44.6488",
            "lon": "-63.5752",
            "category": "building",
            "type": "yes",
            "place_rank": 30,
            "importance": 0.1,
            "addresstype": "building",
            "name": "",
            "display_name": "1 Harbour View, Halifax, Nova Scotia, Canada",
            "boundingbox": ["44.6487", "44.6489", "-63.5753", "-63.5751"]
        }])
    });
    (StatusCode::OK, axum::Json(places)).into_response()
}

impl NominatimStandIn {
    /// Starts the stand-in.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(NominatimState::default()));
        let router = Router::new()
            .route("/search", get(nominatim_search))
            .fallback(not_found)
            .with_state(Arc::clone(&state));
        let (addr, task) = serve(router).await;
        Self { addr, state, task }
    }

    /// The base URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts a failure for the next request.
    pub fn script(&self, f: Failure) {
        self.state
            .lock()
            .expect("stand-in state")
            .script
            .push_back(f);
    }

    /// Sets the places answered (a `jsonv2` array).
    pub fn answer(&self, places: Value) {
        self.state.lock().expect("stand-in state").places = Some(places);
    }

    /// Requests that reached it.
    #[must_use]
    pub fn recorded(&self) -> Vec<HttpRecord> {
        self.state.lock().expect("stand-in state").recorded.clone()
    }
}

// ---------------------------------------------------------------------------------------
// A real SMTP server
// ---------------------------------------------------------------------------------------

static SMTP_SERIAL: AtomicU32 = AtomicU32::new(0);

/// The Python that runs the SMTP server and the DKIM check: `CHARTROOM_TEST_PYTHON`, else
/// Debian's `/usr/bin/python3` (where `python3-aiosmtpd` and `python3-dkim` are installed),
/// else `python3`.
#[must_use]
pub fn system_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CHARTROOM_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/bin/python3");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("python3")
    }
}

fn resources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("resources")
}

/// A real SMTP server (`python3 -m aiosmtpd`) on a free loopback port, killed on drop.
pub struct SmtpServer {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A message the SMTP server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// `MAIL FROM`.
    pub mail_from: String,
    /// `RCPT TO`s.
    pub rcpt_to: Vec<String>,
    /// The message bytes as received.
    pub data: Vec<u8>,
    /// Where they are stored (for [`dkim_verify`]).
    pub path: PathBuf,
}

impl SmtpServer {
    /// Starts the server, plain SMTP (no TLS offered), and waits until it answers its
    /// `220` greeting.
    pub async fn start() -> Self {
        Self::start_with_args(&[]).await
    }

    /// Starts the server offering `STARTTLS` with this certificate and key (PEM).
    pub async fn start_with_starttls(cert_pem: &str, key_pem: &str) -> Self {
        let dir = Self::new_dir();
        let cert = dir.join("tls-cert.pem");
        let key = dir.join("tls-key.pem");
        std::fs::write(&cert, cert_pem).expect("write the test certificate");
        std::fs::write(&key, key_pem).expect("write the test key");
        let args = [
            "--tlscert".to_owned(),
            cert.display().to_string(),
            "--tlskey".to_owned(),
            key.display().to_string(),
            "--no-requiretls".to_owned(),
        ];
        Self::start_in(dir, &args).await
    }

    fn new_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chartroom-smtp-{}-{}",
            std::process::id(),
            SMTP_SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("messages")).expect("create the SMTP server's directory");
        dir
    }

    async fn start_with_args(args: &[String]) -> Self {
        Self::start_in(Self::new_dir(), args).await
    }

    async fn start_in(dir: PathBuf, args: &[String]) -> Self {
        for _attempt in 0..5 {
            // A free port: bind, read, release (the process binds it right after).
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let mut child = std::process::Command::new(system_python())
                .arg("-m")
                .arg("aiosmtpd")
                .arg("-n")
                .arg("-l")
                .arg(format!("127.0.0.1:{port}"))
                .args(args)
                .arg("-c")
                .arg("chartroom_smtp_sink.Sink")
                .arg(&dir)
                .env("PYTHONPATH", resources())
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(
                    std::fs::File::create(dir.join("stderr.log"))
                        .expect("create the SMTP server's log"),
                )
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start python3 -m aiosmtpd ({e}); install Debian's python3-aiosmtpd"
                    )
                });
            if wait_for_greeting(&mut child, port).await {
                return Self { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            assert!(
                stderr.contains("Address already in use") || stderr.is_empty(),
                "the SMTP server did not start: {stderr}"
            );
        }
        panic!("the SMTP server did not start on any of five free ports");
    }

    /// Its port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Scripts the reply to the next `DATA` (e.g. `"451 4.3.0 Try again later"`); the
    /// message is then not stored.
    pub fn script(&self, reply: &str) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("script"))
            .expect("open the SMTP script");
        writeln!(f, "{reply}").expect("write the SMTP script");
    }

    /// How many SMTP sessions said `EHLO`/`HELO` (the readiness probe does not).
    #[must_use]
    pub fn sessions(&self) -> usize {
        std::fs::read_to_string(self.dir.join("connections")).map_or(0, |s| s.lines().count())
    }

    /// Messages accepted so far, in order.
    #[must_use]
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.join("messages"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|path| {
                let data = std::fs::read(&path).expect("read a received message");
                let env = std::fs::read_to_string(path.with_extension("env")).unwrap_or_default();
                let mut lines = env.lines().map(str::to_owned);
                ReceivedMail {
                    mail_from: lines.next().unwrap_or_default(),
                    rcpt_to: lines.collect(),
                    data,
                    path,
                }
            })
            .collect()
    }
}

/// Connects until the server sends its `220` greeting (or the process exits, or 30 s pass).
async fn wait_for_greeting(child: &mut std::process::Child, port: u16) -> bool {
    use tokio::io::AsyncReadExt as _;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(20));
    while tokio::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let mut buf = [0u8; 3];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut buf))
                    .await;
            if matches!(read, Ok(Ok(_))) && &buf == b"220" {
                return true;
            }
        }
        interval.tick().await;
    }
    false
}

/// Verifies the DKIM signature of a received message offline with Debian's `python3-dkim`,
/// answering the key lookup with `txt_record` (`v=DKIM1; k=ed25519; p=…`). Returns whether
/// it verified and the DNS names the verifier asked for.
#[must_use]
pub fn dkim_verify(message_path: &Path, txt_record: &str) -> (bool, String) {
    let out = std::process::Command::new(system_python())
        .arg(resources().join("chartroom_dkim_verify.py"))
        .arg(message_path)
        .arg(txt_record)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the DKIM verifier ({e}); install python3-dkim"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
