//! Payments through Stripe, which never sees PHI (req EGR-02): Checkout Sessions for a
//! deposit or prepayment (`mode=payment`) and for a card on file (`mode=setup`), an
//! off-session `PaymentIntent` to charge a saved card (late-cancellation and no-show fees), a
//! refund, and the `Stripe-Signature` webhooks.
//!
//! # Guarantees
//! - Every field of every request comes from a typed value: [`outbound::payment::Amount`]
//!   (minor units and currency), [`outbound::payment::Description`] (fixed generic words),
//!   [`OpaqueRef`] (a UUID, sent as `metadata[ref]` and `client_reference_id`), Stripe's own
//!   ids ([`StripeId`], checked against their documented prefixes), a Checkout Session's
//!   `expires_at` (a time) and the success/cancel URL, which is an [`OpaqueLink`] (origin,
//!   purpose, token, nothing else). No method takes a string (a compile-fail test proves a
//!   `String` cannot be a description).
//! - The form body is built here (`application/x-www-form-urlencoded`, Stripe's bracket
//!   notation) and the scanner reads those exact bytes before any connection
//!   ([`SendError::Refused`], nothing sent) — all of them but a Checkout Session's trailing
//!   `&expires_at=…`, a typed time appended after the scan (its ten digits are what the
//!   long-digit-run rule refuses).
//! - Every call carries an `Idempotency-Key` derived from the operation and the reference
//!   (`checkout-{ref}`, `charge-{ref}`, `refund-{ref}`): a retry after a crash returns the
//!   first result and creates nothing new.
//! - Replies are capped, must have the documented shape; 402/400/401/403/404 are
//!   [`SendError::Rejected`], 409 (the same key in flight), 429 and 5xx are retried.
//! - Webhooks: `Stripe-Signature: t=…,v1=…[,v1=…]` is checked (HMAC-SHA256 of
//!   `"{t}.{body}"` under the endpoint secret, constant-time, any `v1` may match) and the
//!   timestamp must be within the tolerance (300 s by default) before the body is parsed into
//!   a [`StripeEvent`]; the caller refuses replays on its event id.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use outbound::payment::{Amount, Currency, Description, OpaqueRef};
use outbound::{OpaqueLink, Scanner};

use crate::http::ApiKey;
use crate::send::{SendError, WebhookError, WebhookRequest};
use crate::vendor_http::{self, BaseUrlError};

/// Stripe's API base.
pub const STRIPE_API: &str = "https://api.stripe.com";
/// The default webhook timestamp tolerance, seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
/// The soonest a Checkout Session may expire, seconds after its creation (Stripe's rule).
pub const CHECKOUT_MIN_EXPIRY_SECS: i64 = 30 * 60;
/// The latest a Checkout Session may expire, seconds after its creation (Stripe's rule).
pub const CHECKOUT_MAX_EXPIRY_SECS: i64 = 24 * 60 * 60;

/// One of Stripe's own object ids (`cus_…`, `pm_…`, `pi_…`, `seti_…`, `cs_…`, `re_…`,
/// `evt_…`): a known prefix then letters and digits, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripeId(String);

/// A string that is not a Stripe id of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a Stripe id of the expected kind")]
pub struct StripeIdError;

impl StripeId {
    /// Parses an id that must start with `prefix` (e.g. `"cus_"`).
    ///
    /// # Errors
    /// [`StripeIdError`].
    pub fn parse(id: &str, prefix: &str) -> Result<Self, StripeIdError> {
        let rest = id.strip_prefix(prefix).ok_or(StripeIdError)?;
        if prefix.ends_with('_')
            && !rest.is_empty()
            && id.len() <= 255
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            Ok(Self(id.to_owned()))
        } else {
            Err(StripeIdError)
        }
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a Checkout Session is for.
///
/// A `String` is not a description: this does not compile.
///
/// ```compile_fail,E0308
/// use egress::stripe::CheckoutPurpose;
/// use egress::outbound::payment::{Amount, Currency};
/// let _ = CheckoutPurpose::Payment {
///     amount: Amount::new(5000, Currency::Usd).unwrap(),
///     description: String::from("Root canal, tooth 36"),
/// };
/// ```
///
/// while the typed description does:
///
/// ```
/// use egress::stripe::CheckoutPurpose;
/// use egress::outbound::payment::{Amount, Currency, Description};
/// let _ = CheckoutPurpose::Payment {
///     amount: Amount::new(5000, Currency::Usd).unwrap(),
///     description: Description::Deposit,
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutPurpose {
    /// Take a payment now (a deposit or a prepayment).
    Payment {
        /// How much.
        amount: Amount,
        /// What for: [`Description::Deposit`] or [`Description::Prepayment`] normally.
        description: Description,
    },
    /// Save a card for later charges (`mode=setup`; [`Description::CardOnFile`]).
    Setup {
        /// The currency later charges will be in.
        currency: Currency,
    },
}

/// A Checkout Session to create.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    /// Payment or setup.
    pub purpose: CheckoutPurpose,
    /// Chartroom's reference (the booking's payment record).
    pub reference: OpaqueRef,
    /// Where the client returns, success or cancel: the booking's pay link.
    pub return_link: &'a OpaqueLink,
    /// When the session stops taking payment (`expires_at`, whole seconds): the end of the
    /// booking's hold, so the page cannot take money for a slot already released. Stripe
    /// accepts [`CHECKOUT_MIN_EXPIRY_SECS`] to [`CHECKOUT_MAX_EXPIRY_SECS`] after the
    /// session's creation and refuses the request otherwise.
    pub expires_at: DateTime<Utc>,
}

/// A created Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_…`.
    pub id: StripeId,
    /// The hosted page the client is sent to.
    pub url: url::Url,
}

/// A charge of a saved card, off session.
#[derive(Debug, Clone)]
pub struct SavedCardCharge {
    /// How much.
    pub amount: Amount,
    /// What for: [`Description::LateCancellationFee`] or [`Description::NoShowFee`] normally.
    pub description: Description,
    /// Chartroom's reference.
    pub reference: OpaqueRef,
    /// The Stripe customer (`cus_…`) from the setup.
    pub customer: StripeId,
    /// The saved payment method (`pm_…`).
    pub payment_method: StripeId,
}

/// A `PaymentIntent`'s state after creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    /// `pi_…`.
    pub id: StripeId,
    /// Stripe's status (`succeeded`, `processing`, `requires_action`, …).
    pub status: String,
}

/// A refund of a payment, whole or part.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The `PaymentIntent` refunded (`pi_…`).
    pub payment_intent: StripeId,
    /// How much (`None`: all of it).
    pub amount: Option<Amount>,
    /// Chartroom's reference for the refund.
    pub reference: OpaqueRef,
}

/// A created refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// `re_…`.
    pub id: StripeId,
    /// `succeeded`, `pending`, `failed`, …
    pub status: String,
    /// Minor units refunded by this refund, as Stripe reports them (`amount`); `None` when
    /// the reply did not say (the caller then does not count it as done).
    pub amount: Option<u64>,
    /// Its currency (ISO 4217, lower case), when the reply said.
    pub currency: Option<String>,
}

/// The Stripe client.
pub struct Stripe {
    base: String,
    key: ApiKey,
    client: reqwest::Client,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A form being built (Stripe's bracket notation).
struct Form(url::form_urlencoded::Serializer<'static, String>);

impl Form {
    fn new() -> Self {
        Self(url::form_urlencoded::Serializer::new(String::new()))
    }
    fn add(mut self, k: &str, v: &str) -> Self {
        self.0.append_pair(k, v);
        self
    }
    fn bytes(mut self) -> Vec<u8> {
        self.0.finish().into_bytes()
    }
}

#[derive(serde::Deserialize)]
struct IdStatus {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    amount: Option<u64>,
    #[serde(default)]
    currency: Option<String>,
}

/// A card error's reply (`402`): its code and the `PaymentIntent` it left.
#[derive(serde::Deserialize)]
struct CardErrorReply {
    error: CardError,
}

#[derive(serde::Deserialize)]
struct CardError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    payment_intent: Option<IdStatus>,
}

/// The status of an off-session charge the bank wants the client to authenticate.
pub const CHARGE_REQUIRES_ACTION: &str = "requires_action";
/// The status of an off-session charge the card refused.
pub const CHARGE_DECLINED: &str = "declined";

/// A three-letter lower-case currency code, as Stripe writes them.
fn currency_code(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase())
}

fn status_text(s: Option<String>) -> Result<String, SendError> {
    let s = s.ok_or(SendError::Malformed)?;
    if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(SendError::Malformed);
    }
    Ok(s)
}

impl Stripe {
    /// A client calling `base` (normally [`STRIPE_API`]) with the secret key.
    ///
    /// # Errors
    /// [`BaseUrlError`] for a base that is not `https` (or `http` on loopback).
    pub fn new(base: &str, key: ApiKey, timeout: Duration) -> Result<Self, BaseUrlError> {
        Ok(Self {
            base: vendor_http::base_url(base)?,
            key,
            client: vendor_http::client(timeout).map_err(|_| BaseUrlError)?,
        })
    }

    /// The form body of a Checkout Session request: [`Self::checkout_form_scanned`], then
    /// `&expires_at=` and the session's end in epoch seconds.
    #[must_use]
    pub fn checkout_form(request: &CheckoutRequest<'_>) -> Vec<u8> {
        let mut form = Self::checkout_form_scanned(request);
        form.extend_from_slice(
            format!("&expires_at={}", request.expires_at.timestamp()).as_bytes(),
        );
        form
    }

    /// Every byte of a Checkout Session request but its `expires_at`: what the scanner reads.
    /// The expiry is appended after the scan because it is a typed time whose ten digits the
    /// scanner's long-digit-run rule refuses by design; nothing else is.
    #[must_use]
    pub fn checkout_form_scanned(request: &CheckoutRequest<'_>) -> Vec<u8> {
        let reference = request.reference.to_text();
        let link = request.return_link.as_str();
        let form = Form::new();
        let form = match &request.purpose {
            CheckoutPurpose::Payment {
                amount,
                description,
            } => form
                .add("mode", "payment")
                .add(
                    "line_items[0][price_data][currency]",
                    amount.currency().code(),
                )
                .add(
                    "line_items[0][price_data][unit_amount]",
                    &amount.minor().to_string(),
                )
                .add(
                    "line_items[0][price_data][product_data][name]",
                    description.text(),
                )
                .add("line_items[0][quantity]", "1")
                .add("payment_intent_data[description]", description.text())
                .add("payment_intent_data[metadata][ref]", &reference),
            CheckoutPurpose::Setup { currency } => form
                .add("mode", "setup")
                .add("currency", currency.code())
                .add(
                    "setup_intent_data[description]",
                    Description::CardOnFile.text(),
                )
                .add("setup_intent_data[metadata][ref]", &reference)
                .add("customer_creation", "always"),
        };
        form.add("client_reference_id", &reference)
            .add("metadata[ref]", &reference)
            .add("success_url", link)
            .add("cancel_url", link)
            .bytes()
    }

    /// The form body of an off-session `PaymentIntent`.
    #[must_use]
    pub fn charge_form(charge: &SavedCardCharge) -> Vec<u8> {
        Form::new()
            .add("amount", &charge.amount.minor().to_string())
            .add("currency", charge.amount.currency().code())
            .add("description", charge.description.text())
            .add("customer", charge.customer.as_str())
            .add("payment_method", charge.payment_method.as_str())
            .add("off_session", "true")
            .add("confirm", "true")
            .add("metadata[ref]", &charge.reference.to_text())
            .bytes()
    }

    /// The form body of a refund.
    #[must_use]
    pub fn refund_form(refund: &RefundRequest) -> Vec<u8> {
        let mut form = Form::new().add("payment_intent", refund.payment_intent.as_str());
        if let Some(a) = refund.amount {
            form = form.add("amount", &a.minor().to_string());
        }
        form.add("metadata[ref]", &refund.reference.to_text())
            .bytes()
    }

    /// Scans `form`, then POSTs it to `path`; the status and body of a 2xx reply or of one
    /// whose status is in `keep`.
    async fn call_reply(
        &self,
        scanner: &Scanner,
        path: &str,
        idempotency_key: &str,
        form: Vec<u8>,
        keep: &[u16],
    ) -> Result<(u16, bytes::Bytes), SendError> {
        scanner.scan(&form, None).map_err(SendError::Refused)?;
        self.send(path, idempotency_key, form, keep).await
    }

    /// POSTs `form` to `path` (the caller has scanned it).
    async fn send(
        &self,
        path: &str,
        idempotency_key: &str,
        form: Vec<u8>,
        keep: &[u16],
    ) -> Result<(u16, bytes::Bytes), SendError> {
        vendor_http::post_reply(
            &self.client,
            &format!("{}{path}", self.base),
            &self.key,
            idempotency_key,
            "application/x-www-form-urlencoded",
            form,
            &[],
            keep,
        )
        .await
    }

    async fn call(
        &self,
        scanner: &Scanner,
        path: &str,
        idempotency_key: &str,
        form: Vec<u8>,
    ) -> Result<IdStatus, SendError> {
        let (_, reply) = self
            .call_reply(scanner, path, idempotency_key, form, &[])
            .await?;
        serde_json::from_slice(&reply).map_err(|_| SendError::Malformed)
    }

    /// Creates a Checkout Session (`POST /v1/checkout/sessions`).
    ///
    /// # Errors
    /// [`SendError`].
    pub async fn create_checkout(
        &self,
        scanner: &Scanner,
        request: &CheckoutRequest<'_>,
    ) -> Result<CheckoutSession, SendError> {
        scanner
            .scan(&Self::checkout_form_scanned(request), None)
            .map_err(SendError::Refused)?;
        let (_, reply) = self
            .send(
                "/v1/checkout/sessions",
                &format!("checkout-{}", request.reference.to_text()),
                Self::checkout_form(request),
                &[],
            )
            .await?;
        let reply: IdStatus = serde_json::from_slice(&reply).map_err(|_| SendError::Malformed)?;
        let id = StripeId::parse(&reply.id, "cs_").map_err(|_| SendError::Malformed)?;
        let url = reply
            .url
            .filter(|u| u.len() <= 2048)
            .and_then(|u| url::Url::parse(&u).ok())
            .filter(|u| u.scheme() == "https" || vendor_http::base_url(u.as_str()).is_ok())
            .ok_or(SendError::Malformed)?;
        Ok(CheckoutSession { id, url })
    }

    /// Charges a saved card off session (`POST /v1/payment_intents`, `confirm=true`). A card
    /// error (`402`) that names its `PaymentIntent` is an answer, not an error: status
    /// [`CHARGE_REQUIRES_ACTION`] when the bank wants the client to authenticate
    /// (`authentication_required`), [`CHARGE_DECLINED`] otherwise.
    ///
    /// # Errors
    /// [`SendError`]; a `402` without a `PaymentIntent` is [`SendError::Rejected`].
    pub async fn charge_saved_card(
        &self,
        scanner: &Scanner,
        charge: &SavedCardCharge,
    ) -> Result<PaymentIntent, SendError> {
        let (status, reply) = self
            .call_reply(
                scanner,
                "/v1/payment_intents",
                &format!("charge-{}", charge.reference.to_text()),
                Self::charge_form(charge),
                &[402],
            )
            .await?;
        if status == 402 {
            let card: CardErrorReply =
                serde_json::from_slice(&reply).map_err(|_| SendError::Rejected { status })?;
            let pi = card
                .error
                .payment_intent
                .ok_or(SendError::Rejected { status })?;
            return Ok(PaymentIntent {
                id: StripeId::parse(&pi.id, "pi_").map_err(|_| SendError::Malformed)?,
                status: if card.error.code.as_deref() == Some("authentication_required") {
                    CHARGE_REQUIRES_ACTION
                } else {
                    CHARGE_DECLINED
                }
                .to_owned(),
            });
        }
        let reply: IdStatus = serde_json::from_slice(&reply).map_err(|_| SendError::Malformed)?;
        Ok(PaymentIntent {
            id: StripeId::parse(&reply.id, "pi_").map_err(|_| SendError::Malformed)?,
            status: status_text(reply.status)?,
        })
    }

    /// Refunds a payment (`POST /v1/refunds`), e.g. a deposit for a cancellation inside the
    /// window.
    ///
    /// # Errors
    /// [`SendError`].
    pub async fn refund(
        &self,
        scanner: &Scanner,
        refund: &RefundRequest,
    ) -> Result<Refund, SendError> {
        let reply = self
            .call(
                scanner,
                "/v1/refunds",
                &format!("refund-{}", refund.reference.to_text()),
                Self::refund_form(refund),
            )
            .await?;
        Ok(Refund {
            id: StripeId::parse(&reply.id, "re_").map_err(|_| SendError::Malformed)?,
            status: status_text(reply.status)?,
            amount: reply.amount,
            currency: reply.currency.filter(|c| currency_code(c)),
        })
    }
}

/// A webhook endpoint's signing secret (`whsec_…`, used as is). Never printed.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct StripeWebhookSecret(String);

impl fmt::Debug for StripeWebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StripeWebhookSecret(…)")
    }
}

impl StripeWebhookSecret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The `Stripe-Signature` header value for a body at `t` (for stand-ins and tests).
    #[must_use]
    pub fn sign(&self, t: i64, body: &[u8]) -> String {
        let mac =
            vendor_http::hmac_sha256(self.0.as_bytes(), &[t.to_string().as_bytes(), b".", body])
                .unwrap_or_default();
        format!("t={t},v1={}", vendor_http::to_hex(&mac))
    }
}

/// A verified Stripe event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeEvent {
    /// `checkout.session.completed`.
    CheckoutCompleted {
        /// `evt_…` (replays are refused on it).
        event_id: String,
        /// The session, `cs_…`.
        session: StripeId,
        /// Our reference (`client_reference_id` / `metadata[ref]`).
        reference: Option<OpaqueRef>,
        /// `payment` or `setup`.
        setup: bool,
        /// The amount paid (payment mode).
        amount_total: Option<u64>,
        /// `paid`, `unpaid`, `no_payment_required`.
        payment_status: String,
        /// The customer, when one was created.
        customer: Option<StripeId>,
        /// The `PaymentIntent` (payment mode).
        payment_intent: Option<StripeId>,
        /// The `SetupIntent` (setup mode).
        setup_intent: Option<StripeId>,
    },
    /// `checkout.session.expired`: the client never paid; the session is closed.
    CheckoutExpired {
        /// `evt_…`.
        event_id: String,
        /// The session, `cs_…`.
        session: StripeId,
        /// Our reference.
        reference: Option<OpaqueRef>,
    },
    /// `payment_intent.succeeded`.
    PaymentSucceeded {
        /// `evt_…`.
        event_id: String,
        /// `pi_…`.
        payment_intent: StripeId,
        /// Our reference (`metadata[ref]`).
        reference: Option<OpaqueRef>,
        /// The amount received, minor units.
        amount: u64,
        /// The currency code.
        currency: String,
    },
    /// `payment_intent.payment_failed`.
    PaymentFailed {
        /// `evt_…`.
        event_id: String,
        /// `pi_…`.
        payment_intent: StripeId,
        /// Our reference.
        reference: Option<OpaqueRef>,
    },
    /// `setup_intent.succeeded`.
    SetupSucceeded {
        /// `evt_…`.
        event_id: String,
        /// `seti_…`.
        setup_intent: StripeId,
        /// Our reference.
        reference: Option<OpaqueRef>,
        /// The customer.
        customer: Option<StripeId>,
        /// The saved payment method.
        payment_method: Option<StripeId>,
    },
    /// `charge.refunded`: a charge was refunded (whole or in part).
    ChargeRefunded {
        /// `evt_…`.
        event_id: String,
        /// The refunded charge's `PaymentIntent` (`pi_…`).
        payment_intent: StripeId,
        /// Minor units refunded so far, all refunds of the charge together.
        amount_refunded: u64,
        /// The charge's currency (ISO 4217, lower case), when the event said.
        currency: Option<String>,
    },
    /// A verified event we do not act on.
    Ignored {
        /// `evt_…`.
        event_id: String,
    },
}

impl StripeEvent {
    /// The event id (for replay refusal).
    #[must_use]
    pub fn event_id(&self) -> &str {
        match self {
            Self::CheckoutCompleted { event_id, .. }
            | Self::CheckoutExpired { event_id, .. }
            | Self::PaymentSucceeded { event_id, .. }
            | Self::PaymentFailed { event_id, .. }
            | Self::SetupSucceeded { event_id, .. }
            | Self::ChargeRefunded { event_id, .. }
            | Self::Ignored { event_id } => event_id,
        }
    }
}

/// Verifies Stripe's webhooks.
#[derive(Debug)]
pub struct StripeWebhook {
    secret: StripeWebhookSecret,
    tolerance_secs: i64,
}

#[derive(serde::Deserialize)]
struct EventJson {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(serde::Deserialize)]
struct EventData {
    object: serde_json::Map<String, serde_json::Value>,
}

fn str_field<'a>(o: &'a serde_json::Map<String, serde_json::Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(serde_json::Value::as_str)
}

/// An id field that may be absent, a string id, or an expanded object with an `id`.
fn id_field(
    o: &serde_json::Map<String, serde_json::Value>,
    k: &str,
    prefix: &str,
) -> Result<Option<StripeId>, WebhookError> {
    let id = match o.get(k) {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(serde_json::Value::Object(inner)) => {
            str_field(inner, "id").ok_or(WebhookError::Malformed)?
        }
        Some(_) => return Err(WebhookError::Malformed),
    };
    StripeId::parse(id, prefix)
        .map(Some)
        .map_err(|_| WebhookError::Malformed)
}

fn reference_of(o: &serde_json::Map<String, serde_json::Value>) -> Option<OpaqueRef> {
    o.get("metadata")
        .and_then(|m| m.get("ref"))
        .and_then(serde_json::Value::as_str)
        .or_else(|| str_field(o, "client_reference_id"))
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .map(OpaqueRef::new)
}

fn required_id(
    o: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
) -> Result<StripeId, WebhookError> {
    id_field(o, "id", prefix)?.ok_or(WebhookError::Malformed)
}

impl StripeWebhook {
    /// A verifier with the default tolerance ([`DEFAULT_TOLERANCE_SECS`]).
    #[must_use]
    pub fn new(secret: StripeWebhookSecret) -> Self {
        Self::with_tolerance(secret, DEFAULT_TOLERANCE_SECS)
    }

    /// A verifier with a tolerance in seconds.
    #[must_use]
    pub fn with_tolerance(secret: StripeWebhookSecret, tolerance_secs: i64) -> Self {
        Self {
            secret,
            tolerance_secs,
        }
    }

    /// Checks `Stripe-Signature` and the timestamp, then reads the event.
    ///
    /// # Errors
    /// [`WebhookError`]; nothing in the body is read unless the signature holds.
    pub fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<StripeEvent, WebhookError> {
        if request.body.len() > vendor_http::MAX_WEBHOOK_BYTES {
            return Err(WebhookError::Malformed);
        }
        let header = vendor_http::header(request.headers, "stripe-signature")
            .ok_or(WebhookError::BadSignature)?;
        let mut t: Option<&str> = None;
        let mut v1: Vec<&str> = Vec::new();
        for item in header.split(',') {
            match item.trim().split_once('=') {
                Some(("t", v)) if t.is_none() => t = Some(v),
                Some(("v1", v)) => v1.push(v),
                _ => {}
            }
        }
        let t_text = t.ok_or(WebhookError::BadSignature)?;
        let t: i64 = t_text.parse().map_err(|_| WebhookError::BadSignature)?;
        let expected = vendor_http::hmac_sha256(
            self.secret.0.as_bytes(),
            &[t_text.as_bytes(), b".", request.body],
        )
        .ok_or(WebhookError::BadSignature)?;
        let good = v1
            .iter()
            .any(|hex| decode_hex(hex).is_some_and(|sig| vendor_http::ct_eq(&sig, &expected)));
        if !good {
            return Err(WebhookError::BadSignature);
        }
        if (now.timestamp() - t).abs() > self.tolerance_secs {
            return Err(WebhookError::Stale);
        }
        let event: EventJson =
            serde_json::from_slice(request.body).map_err(|_| WebhookError::Malformed)?;
        StripeId::parse(&event.id, "evt_").map_err(|_| WebhookError::Malformed)?;
        let o = &event.data.object;
        let event_id = event.id;
        Ok(match event.kind.as_str() {
            "checkout.session.completed" => StripeEvent::CheckoutCompleted {
                event_id,
                session: required_id(o, "cs_")?,
                reference: reference_of(o),
                setup: str_field(o, "mode") == Some("setup"),
                amount_total: o.get("amount_total").and_then(serde_json::Value::as_u64),
                payment_status: str_field(o, "payment_status")
                    .filter(|s| s.len() <= 40)
                    .unwrap_or_default()
                    .to_owned(),
                customer: id_field(o, "customer", "cus_")?,
                payment_intent: id_field(o, "payment_intent", "pi_")?,
                setup_intent: id_field(o, "setup_intent", "seti_")?,
            },
            "checkout.session.expired" => StripeEvent::CheckoutExpired {
                event_id,
                session: required_id(o, "cs_")?,
                reference: reference_of(o),
            },
            "payment_intent.succeeded" => StripeEvent::PaymentSucceeded {
                event_id,
                payment_intent: required_id(o, "pi_")?,
                reference: reference_of(o),
                amount: o
                    .get("amount_received")
                    .or_else(|| o.get("amount"))
                    .and_then(serde_json::Value::as_u64)
                    .ok_or(WebhookError::Malformed)?,
                currency: str_field(o, "currency")
                    .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase()))
                    .ok_or(WebhookError::Malformed)?
                    .to_owned(),
            },
            "payment_intent.payment_failed" => StripeEvent::PaymentFailed {
                event_id,
                payment_intent: required_id(o, "pi_")?,
                reference: reference_of(o),
            },
            "setup_intent.succeeded" => StripeEvent::SetupSucceeded {
                event_id,
                setup_intent: required_id(o, "seti_")?,
                reference: reference_of(o),
                customer: id_field(o, "customer", "cus_")?,
                payment_method: id_field(o, "payment_method", "pm_")?,
            },
            "charge.refunded" => StripeEvent::ChargeRefunded {
                event_id,
                payment_intent: id_field(o, "payment_intent", "pi_")?
                    .ok_or(WebhookError::Malformed)?,
                amount_refunded: o
                    .get("amount_refunded")
                    .and_then(serde_json::Value::as_u64)
                    .ok_or(WebhookError::Malformed)?,
                currency: match o.get("currency") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(c)) if currency_code(c) => Some(c.clone()),
                    Some(_) => return Err(WebhookError::Malformed),
                },
            },
            _ => StripeEvent::Ignored { event_id },
        })
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}
