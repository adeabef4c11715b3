//! Web Push ([`WebPush`], a [`PushSender`]): RFC 8030 delivery of the one content-free
//! [`PushPayload`], encrypted per RFC 8291 (`aes128gcm`, RFC 8188) and authorized per
//! RFC 8292 (VAPID, an ES256 JWT).
//!
//! # Guarantees
//! - The plaintext is always [`PushPayload::update`]'s bytes, and it passes the practice's
//!   [`Scanner`] before it is encrypted (req EGR-03); a finding is [`SendError::Refused`] and
//!   no connection is opened.
//! - Each message is encrypted for the subscription with a fresh P-256 key pair and a fresh
//!   16-byte salt ([`encrypt`]); the construction reproduces RFC 8291's worked example byte
//!   for byte (a test proves it). Only the push service's origin sees the ciphertext.
//! - The request carries `TTL`, `Urgency` and a fixed `Topic` (a newer update replaces a
//!   waiting one), `Content-Encoding: aes128gcm`, and `Authorization: vapid t=…, k=…` whose
//!   JWT names the push service's origin (`aud`), expires within 12 hours (`exp`, from the
//!   injected clock) and names the operator (`sub`, `mailto:` or `https:`).
//! - Replies: 2xx → [`Receipt`] (the push message id from `Location`, else the outbox key);
//!   404 and 410 → [`SendError::Rejected`] (the subscription is gone: drop it); 429 and 5xx →
//!   [`SendError::Retry`]; other 4xx → [`SendError::Rejected`]. A subscription whose keys are
//!   not valid is [`SendError::Rejected`] with status `0` (refused here, nothing sent).
//!   Redirects are never followed; replies are capped.
//! - The VAPID private key never prints and is wiped when dropped.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::agreement;
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::{aead, hkdf};
use base64::Engine as _;
use outbound::{PushPayload, Scanner};

use crate::Limits;
use crate::messaging::{self, ConfigError};
use crate::send::{PushRequest, PushSender, PushSubscription, Receipt, SendError};

/// The vendor, as the subprocessor registry names it (`push`/`webpush`).
pub const VENDOR: &str = "webpush";

/// The record size written in the `aes128gcm` header (one record per message).
const RECORD_SIZE: u32 = 4096;
/// The largest plaintext one record holds (RFC 8291 §4: 4096 − 16 tag − 1 delimiter − 86
/// header bytes, as push services count the whole body).
pub const MAX_PLAINTEXT: usize = 3993;
/// How long a VAPID JWT is valid.
const VAPID_VALIDITY_SECS: i64 = 12 * 3600;
/// The `Topic` every Chartroom push carries (RFC 8030 §5.4: URL-safe base64 alphabet, ≤ 32).
pub const TOPIC: &str = "chartroom-update";

/// Why a message could not be encrypted for a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the push subscription's keys are not usable")]
pub struct EncryptError;

impl From<Unspecified> for EncryptError {
    fn from(_: Unspecified) -> Self {
        Self
    }
}

/// The application server's VAPID key pair (P-256). The private key never prints.
#[derive(Clone)]
pub struct VapidKey {
    private: zeroize::Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VapidKey(…)")
    }
}

impl VapidKey {
    /// The key pair of a P-256 private key (32 bytes, big-endian).
    ///
    /// # Errors
    /// [`ConfigError`] when it is not one.
    pub fn from_private_key(private: &[u8]) -> Result<Self, ConfigError> {
        let refused = || ConfigError("the VAPID private key is not a P-256 key");
        let key = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, private)
            .map_err(|_| refused())?;
        let public = key.compute_public_key().map_err(|_| refused())?;
        let this = Self {
            private: zeroize::Zeroizing::new(private.to_vec()),
            public: public.as_ref().to_vec(),
        };
        this.signer().map_err(|_| refused())?;
        Ok(this)
    }

    /// A new random key pair (store its [`Self::private_key`] sealed; publish
    /// [`Self::public_key_base64url`] as the browsers' `applicationServerKey`).
    ///
    /// # Errors
    /// [`ConfigError`] if the system's random source fails.
    pub fn generate() -> Result<Self, ConfigError> {
        let key_pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .map_err(|_| ConfigError("no VAPID key could be generated"))?;
        let private =
            aws_lc_rs::encoding::AsBigEndian::<aws_lc_rs::encoding::EcPrivateKeyBin>::as_be_bytes(
                &key_pair.private_key(),
            )
            .map_err(|_| ConfigError("no VAPID key could be generated"))?;
        Self::from_private_key(private.as_ref())
    }

    /// The private key (32 bytes), to be stored sealed.
    #[must_use]
    pub fn private_key(&self) -> &[u8] {
        &self.private
    }

    /// The public key (65 bytes, uncompressed point).
    #[must_use]
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The public key, URL-safe base64 without padding (the `k=` of the header and the
    /// browsers' `applicationServerKey`).
    #[must_use]
    pub fn public_key_base64url(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.public)
    }

    fn signer(&self) -> Result<aws_lc_rs::signature::EcdsaKeyPair, Unspecified> {
        aws_lc_rs::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.private,
            &self.public,
        )
        .map_err(|_| Unspecified)
    }

    /// The `Authorization` header value for a push service at `endpoint`: `vapid t={JWT},
    /// k={public key}`, the JWT `{"aud": origin, "exp": now + 12 h, "sub": subject}` signed
    /// with ES256.
    fn authorization(
        &self,
        endpoint: &url::Url,
        subject: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, Unspecified> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": endpoint.origin().ascii_serialization(),
            "exp": now.timestamp() + VAPID_VALIDITY_SECS,
            "sub": subject,
        });
        let claims = b64.encode(serde_json::to_vec(&claims).map_err(|_| Unspecified)?);
        let input = format!("{header}.{claims}");
        let signature = self
            .signer()?
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())?;
        Ok(format!(
            "vapid t={input}.{}, k={}",
            b64.encode(signature.as_ref()),
            self.public_key_base64url()
        ))
    }
}

/// An HKDF output length.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), Unspecified> {
    prk.expand(info, Len(out.len()))?.fill(out)
}

/// Encrypts `plaintext` for a user agent (RFC 8291 §3.4, one `aes128gcm` record) with the
/// given application-server private key and salt: the deterministic form, for test vectors.
/// Senders use [`encrypt`], which makes both fresh.
///
/// # Errors
/// [`EncryptError`] when `ua_public` is not an uncompressed P-256 point, `auth_secret` is
/// not 16 bytes, `as_private` is not a P-256 key, or `plaintext` is over [`MAX_PLAINTEXT`].
pub fn encrypt_with(
    plaintext: &[u8],
    ua_public: &[u8],
    auth_secret: &[u8],
    as_private: &[u8],
    salt: [u8; 16],
) -> Result<Vec<u8>, EncryptError> {
    if plaintext.len() > MAX_PLAINTEXT
        || auth_secret.len() != 16
        || ua_public.len() != 65
        || ua_public.first() != Some(&4)
    {
        return Err(EncryptError);
    }
    let private = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, as_private)
        .map_err(|_| EncryptError)?;
    let as_public = private.compute_public_key()?;
    let as_public = as_public.as_ref();
    let (cek, nonce) = agreement::agree(
        &private,
        agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ua_public),
        Unspecified,
        |ecdh_secret| {
            // IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" 0x00 ua_public as_public, 32)
            let prk_key = hkdf::Salt::new(hkdf::HKDF_SHA256, auth_secret).extract(ecdh_secret);
            let mut ikm = zeroize::Zeroizing::new([0u8; 32]);
            expand(
                &prk_key,
                &[b"WebPush: info\0", ua_public, as_public],
                ikm.as_mut_slice(),
            )?;
            // RFC 8188: PRK = HKDF-Extract(salt, IKM); CEK and NONCE from it.
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(ikm.as_slice());
            let mut cek = zeroize::Zeroizing::new([0u8; 16]);
            let mut nonce = [0u8; 12];
            expand(
                &prk,
                &[b"Content-Encoding: aes128gcm\0"],
                cek.as_mut_slice(),
            )?;
            expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce)?;
            Ok((cek, nonce))
        },
    )?;
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, cek.as_slice())?);
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    record.push(2); // the last (and only) record's delimiter, no padding
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::empty(),
        &mut record,
    )?;
    let mut body = Vec::with_capacity(16 + 4 + 1 + as_public.len() + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(u8::try_from(as_public.len()).map_err(|_| EncryptError)?);
    body.extend_from_slice(as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// Encrypts `plaintext` for `subscription` with a fresh application-server key pair and a
/// fresh salt (RFC 8291).
///
/// # Errors
/// [`EncryptError`] as [`encrypt_with`], or if the system's random source fails.
pub fn encrypt(plaintext: &[u8], subscription: &PushSubscription) -> Result<Vec<u8>, EncryptError> {
    let ephemeral = agreement::PrivateKey::generate(&agreement::ECDH_P256)?;
    let private =
        aws_lc_rs::encoding::AsBigEndian::<aws_lc_rs::encoding::EcPrivateKeyBin>::as_be_bytes(
            &ephemeral,
        )?;
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)?;
    encrypt_with(
        plaintext,
        &subscription.p256dh,
        &subscription.auth,
        private.as_ref(),
        salt,
    )
}

/// RFC 8030 §5.3 urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// `very-low`.
    VeryLow,
    /// `low`.
    Low,
    /// `normal`.
    Normal,
    /// `high`.
    High,
}

impl Urgency {
    /// The header value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

/// How to push.
#[derive(Debug, Clone)]
pub struct WebPushConfig {
    /// The VAPID key pair.
    pub vapid: VapidKey,
    /// The operator's contact for push services (`mailto:…` or `https://…`).
    pub subject: String,
    /// How long a push service keeps an undelivered message (`TTL`).
    pub ttl: Duration,
    /// `Urgency`.
    pub urgency: Urgency,
    /// The clock the VAPID `exp` is read from.
    pub clock: Arc<dyn domain::Clock>,
    /// Timeouts and the reply cap ([`crate::messaging_limits`]).
    pub limits: Limits,
}

/// The Web Push sender.
#[derive(Debug, Clone)]
pub struct WebPush {
    config: WebPushConfig,
    client: reqwest::Client,
}

impl WebPush {
    /// A sender for `config`.
    ///
    /// # Errors
    /// [`ConfigError`] when the subject is not a `mailto:` or `https:` URI.
    pub fn new(config: WebPushConfig) -> Result<Self, ConfigError> {
        let subject_ok = (config.subject.starts_with("mailto:")
            || config.subject.starts_with("https://"))
            && config.subject.len() <= 256
            && !config.subject.chars().any(char::is_whitespace);
        if !subject_ok {
            return Err(ConfigError("the VAPID subject"));
        }
        let client = messaging::client(&config.limits)?;
        Ok(Self { config, client })
    }
}

/// Whether a subscription's endpoint may be called: `https` (plain `http` only on loopback),
/// a host, no credentials.
fn endpoint_ok(endpoint: &url::Url) -> bool {
    (endpoint.scheme() == "https"
        || (endpoint.scheme() == "http" && messaging::is_loopback(endpoint)))
        && endpoint.host().is_some()
        && endpoint.username().is_empty()
        && endpoint.password().is_none()
}

#[async_trait::async_trait]
impl PushSender for WebPush {
    async fn send_push(
        &self,
        scanner: &Scanner,
        push: PushRequest<'_>,
    ) -> Result<Receipt, SendError> {
        let PushRequest {
            subscription,
            payload,
            key,
        } = push;
        let plaintext: &[u8] = PushPayload::as_bytes(&payload);
        scanner.scan(plaintext, None).map_err(SendError::Refused)?;
        if !endpoint_ok(&subscription.endpoint) {
            return Err(SendError::Rejected { status: 0 });
        }
        let body =
            encrypt(plaintext, subscription).map_err(|_| SendError::Rejected { status: 0 })?;
        let authorization = self
            .config
            .vapid
            .authorization(
                &subscription.endpoint,
                &self.config.subject,
                self.config.clock.now(),
            )
            .map_err(|_| SendError::Malformed)?;
        let request = self
            .client
            .post(subscription.endpoint.clone())
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header("TTL", self.config.ttl.as_secs().to_string())
            .header("Urgency", self.config.urgency.as_str())
            .header("Topic", TOPIC)
            .body(body);
        let reply = messaging::send(request, &self.config.limits).await?;
        let provider_id = reply
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .filter(|id| messaging::is_opaque_id(id))
            .map_or_else(|| key.0.to_string(), str::to_owned);
        Ok(Receipt { provider_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    }

    /// RFC 8291 Appendix A / §5: the worked example, byte for byte.
    #[test]
    fn the_rfc_8291_example_is_reproduced() {
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let body = encrypt_with(
            b"When I grow up, I want to be a watermelon",
            &b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            &b64("BTBZMqHH6r4Tts7J_aSIgg"),
            &b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"),
            salt,
        )
        .unwrap();
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml\
             mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT\
             pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn the_vapid_key_round_trips_and_never_prints() {
        let key = VapidKey::generate().unwrap();
        let again = VapidKey::from_private_key(key.private_key()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(key.public_key().len(), 65);
        assert_eq!(format!("{key:?}"), "VapidKey(…)");
        assert!(VapidKey::from_private_key(&[0u8; 32]).is_err());
    }

    #[test]
    fn bad_subscription_keys_are_refused() {
        let auth = [7u8; 16];
        assert!(encrypt_with(b"x", &[4u8; 10], &auth, &[1u8; 32], [0; 16]).is_err());
        assert!(encrypt_with(b"x", &[4u8; 65], &auth, &[1u8; 32], [0; 16]).is_err());
    }
}
