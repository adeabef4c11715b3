//! Mail over SMTP submission to the operator's relay, DKIM-signed: the self-hosted default
//! [`Mailer`].
//!
//! # Guarantees
//! - One `text/plain` message per send, built only from the rendered [`outbound::EmailBody`]:
//!   `From` is the practice's configured sender address, `To` the client, the subject and the
//!   body the template's; `Message-ID` is `<{key}@{sender domain}>`, derived from the
//!   outbox row's [`IdempotencyKey`], so a repeat after a crash carries the same id and
//!   receivers may deduplicate on it ([`Idempotency::None`]: SMTP has no key of its own).
//! - The body is `7bit` when it is ASCII with short lines, `base64` otherwise (never
//!   quoted-printable, whose soft line breaks would cut links in the bytes the scanner reads).
//! - The message is DKIM-signed (RSA or Ed25519, `rsa-sha256` / `ed25519-sha256`) when a key
//!   is configured, and the scanner reads the **signed** message exactly as it will be sent;
//!   only the two values this adapter generates itself from non-client data — the
//!   `Message-ID` (a UUID at the sender domain, which would otherwise read as an address) and
//!   the DKIM `t=` timestamp (which would read as a long digit run) — are blanked in the view
//!   the scanner gets. A finding is [`SendError::Refused`] and no connection is opened.
//! - Transport security: STARTTLS required, or implicit TLS; a plaintext connection only to a
//!   loopback relay (refused at construction otherwise). AUTH credentials are sent only over
//!   those. Certificates are checked against the web PKI roots plus any roots the operator
//!   adds.
//! - Replies: SMTP 4xx is [`SendError::Retry`], 5xx [`SendError::Rejected`] with the reply
//!   code; no connection, a failed TLS negotiation or a relay without STARTTLS is
//!   [`SendError::Unreachable`] (nothing was handed over); a timeout after the transaction
//!   began is [`SendError::Retry`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use outbound::Scanner;

use crate::http::ApiKey;
use crate::send::{
    EmailAddress, EmailRequest, Idempotency, IdempotencyKey, Mailer, Receipt, SendError,
};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with `STARTTLS`; a relay that does not offer it is refused
    /// (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    ImplicitTls,
    /// No TLS: only to a relay on a loopback address (a local MTA).
    PlainLoopbackOnly,
}

/// A DKIM signing key.
pub struct DkimKey {
    algorithm: DkimSigningAlgorithm,
    /// The key in the form lettre takes (PKCS#1 PEM for RSA, base64 seed for Ed25519).
    material: zeroize::Zeroizing<String>,
}

impl fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DkimKey({:?}, …)", self.algorithm)
    }
}

/// The DER of a PKCS#8 Ed25519 private key (RFC 8410) after its outer SEQUENCE header and
/// version: the algorithm (1.3.101.112) and the wrapped 32-byte seed. A version-2 key
/// (`OneAsymmetricKey`) carries the public key after the seed.
const ED25519_PKCS8_ALGORITHM: [u8; 11] = [
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The 32-byte seed of a PKCS#8 (v1 or v2) Ed25519 private key, if `der` is one.
fn ed25519_seed(der: &[u8]) -> Option<&[u8]> {
    match der {
        [0x30, len, 0x02, 0x01, 0x00 | 0x01, rest @ ..]
            if usize::from(*len) == der.len() - 2 && rest.starts_with(&ED25519_PKCS8_ALGORITHM) =>
        {
            rest.get(11..43)
        }
        _ => None,
    }
}

/// Largest key file read.
const MAX_KEY_PEM_BYTES: usize = 16 * 1024;

impl DkimKey {
    /// Reads a PEM private key: RSA as PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
    /// (`BEGIN PRIVATE KEY`, e.g. `openssl genrsa`), Ed25519 as PKCS#8
    /// (`openssl genpkey -algorithm ed25519`).
    ///
    /// # Errors
    /// [`SmtpConfigError::DkimKey`] for anything else (the error never carries key material).
    pub fn from_pem(pem: &str) -> Result<Self, SmtpConfigError> {
        use base64::Engine as _;
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        if pem.len() > MAX_KEY_PEM_BYTES {
            return Err(SmtpConfigError::DkimKey);
        }
        let pem = pem.trim();
        if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            DkimSigningKey::new(pem, DkimSigningAlgorithm::Rsa)
                .map_err(|_| SmtpConfigError::DkimKey)?;
            return Ok(Self {
                algorithm: DkimSigningAlgorithm::Rsa,
                material: zeroize::Zeroizing::new(pem.to_owned()),
            });
        }
        let body = pem
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|rest| rest.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
            .ok_or(SmtpConfigError::DkimKey)?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| SmtpConfigError::DkimKey)?,
        );
        if let Some(seed) = ed25519_seed(&der) {
            let material =
                zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(seed));
            DkimSigningKey::new(&material, DkimSigningAlgorithm::Ed25519)
                .map_err(|_| SmtpConfigError::DkimKey)?;
            return Ok(Self {
                algorithm: DkimSigningAlgorithm::Ed25519,
                material,
            });
        }
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&der).map_err(|_| SmtpConfigError::DkimKey)?;
        let pkcs1 = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|_| SmtpConfigError::DkimKey)?;
        Ok(Self {
            algorithm: DkimSigningAlgorithm::Rsa,
            material: zeroize::Zeroizing::new(pkcs1.as_str().to_owned()),
        })
    }

    /// Whether this is an Ed25519 key (else RSA).
    #[must_use]
    pub fn is_ed25519(&self) -> bool {
        matches!(self.algorithm, DkimSigningAlgorithm::Ed25519)
    }

    fn signing_key(&self) -> Result<DkimSigningKey, SmtpConfigError> {
        DkimSigningKey::new(&self.material, self.algorithm).map_err(|_| SmtpConfigError::DkimKey)
    }
}

/// DKIM settings: the selector and domain published in DNS (`{selector}._domainkey.{domain}`)
/// and the private key.
#[derive(Debug)]
pub struct Dkim {
    /// The selector (`s=`).
    pub selector: String,
    /// The signing domain (`d=`); the sender address's domain or a parent of it.
    pub domain: String,
    /// The key.
    pub key: DkimKey,
}

/// The relay and the practice's sender identity.
#[derive(Debug)]
pub struct SmtpConfig {
    /// The relay's host name or address.
    pub host: String,
    /// Its submission port.
    pub port: u16,
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// AUTH user name and password, when the relay wants them.
    pub credentials: Option<(String, ApiKey)>,
    /// The practice's sender address (`From`; its domain names the `Message-ID`).
    pub sender: EmailAddress,
    /// DKIM signing, when configured.
    pub dkim: Option<Dkim>,
    /// Extra trusted root certificates (PEM), e.g. the operator's own CA.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Connection and command timeout.
    pub timeout: Duration,
}

/// Why an SMTP mailer could not be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SmtpConfigError {
    /// Plain SMTP to a relay that is not on a loopback address.
    #[error("plain SMTP is allowed only to a loopback relay; use STARTTLS or implicit TLS")]
    PlainNotLoopback,
    /// The host name is empty or not usable.
    #[error("the relay host is not usable")]
    BadHost,
    /// The DKIM key could not be read (RSA PKCS#1/PKCS#8 or Ed25519 PKCS#8 PEM expected).
    #[error("the DKIM key is not an RSA or Ed25519 private key in PEM")]
    DkimKey,
    /// The DKIM selector or domain is not a DNS label sequence.
    #[error("the DKIM selector or domain is not valid")]
    DkimName,
    /// A root certificate or the TLS settings could not be used.
    #[error("the TLS settings could not be used")]
    Tls,
}

/// The SMTP mailer.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Mailbox,
    sender_domain: String,
    dkim: Option<DkimConfig>,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("sender_domain", &self.sender_domain)
            .field("dkim", &self.dkim.is_some())
            .finish_non_exhaustive()
    }
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        ip.is_loopback()
    } else {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        h == "localhost" || h.ends_with(".localhost")
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl SmtpMailer {
    /// A mailer for `config`.
    ///
    /// # Errors
    /// [`SmtpConfigError`].
    pub fn new(config: &SmtpConfig) -> Result<Self, SmtpConfigError> {
        let host = config.host.trim().to_owned();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(SmtpConfigError::BadHost);
        }
        let tls_parameters = || -> Result<TlsParameters, SmtpConfigError> {
            let mut b = TlsParameters::builder(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            );
            for pem in &config.extra_roots_pem {
                b = b.add_root_certificate(
                    Certificate::from_pem(pem).map_err(|_| SmtpConfigError::Tls)?,
                );
            }
            b.build_rustls().map_err(|_| SmtpConfigError::Tls)
        };
        let tls = match config.security {
            SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters()?),
            SmtpSecurity::PlainLoopbackOnly => {
                if !is_loopback_host(&host) {
                    return Err(SmtpConfigError::PlainNotLoopback);
                }
                Tls::None
            }
        };
        let (_, sender_domain) = config
            .sender
            .as_str()
            .rsplit_once('@')
            .ok_or(SmtpConfigError::BadHost)?;
        let sender_domain = sender_domain.to_ascii_lowercase();
        let sender: Mailbox = config
            .sender
            .as_str()
            .parse()
            .map_err(|_| SmtpConfigError::BadHost)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout))
            .hello_name(ClientId::Domain(sender_domain.clone()));
        if let Some((user, password)) = &config.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let dkim = match &config.dkim {
            None => None,
            Some(d) => {
                if !is_dns_name(&d.selector) || !is_dns_name(&d.domain) {
                    return Err(SmtpConfigError::DkimName);
                }
                Some(DkimConfig::new(
                    d.selector.clone(),
                    d.domain.to_ascii_lowercase(),
                    d.key.signing_key()?,
                    [
                        "From",
                        "To",
                        "Subject",
                        "Date",
                        "Message-ID",
                        "MIME-Version",
                    ]
                    .into_iter()
                    .map(HeaderName::new_from_ascii_str)
                    .collect(),
                    DkimCanonicalization {
                        header: DkimCanonicalizationType::Relaxed,
                        body: DkimCanonicalizationType::Relaxed,
                    },
                ))
            }
        };
        Ok(Self {
            transport: builder.build(),
            sender,
            sender_domain,
            dkim,
        })
    }

    /// The `Message-ID` value for a key: `<{uuid}@{sender domain}>`.
    #[must_use]
    pub fn message_id(&self, key: IdempotencyKey) -> String {
        format!("<{}@{}>", key.0.as_hyphenated(), self.sender_domain)
    }

    /// The final message bytes for `email` (signed when DKIM is configured) and its envelope,
    /// exactly as [`Mailer::send_email`] would send them after the scan.
    ///
    /// # Errors
    /// [`SendError::Malformed`] when the message cannot be built (an address lettre refuses).
    pub fn build(
        &self,
        email: &EmailRequest<'_>,
    ) -> Result<(Vec<u8>, lettre::address::Envelope), SendError> {
        let to: Mailbox = email
            .to
            .as_str()
            .parse()
            .map_err(|_| SendError::Rejected { status: 0 })?;
        let text = email.body.text().to_owned();
        let body = match Body::new_with_encoding(text.clone(), ContentTransferEncoding::SevenBit) {
            Ok(b) => b,
            Err(_) => Body::new_with_encoding(text, ContentTransferEncoding::Base64)
                .map_err(|_| SendError::Malformed)?,
        };
        let mut message = lettre::Message::builder()
            .from(self.sender.clone())
            .to(to)
            .subject(email.body.subject())
            .message_id(Some(self.message_id(email.key)))
            .date_now()
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|_| SendError::Malformed)?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        Ok((message.formatted(), message.envelope().clone()))
    }
}

/// The view of the final message the scanner reads: the message as sent, with the adapter's
/// own `Message-ID` value and the DKIM `t=` timestamp blanked (see the module docs).
fn scan_view(message: &[u8], message_id: &str) -> Vec<u8> {
    let mut out = message.to_vec();
    let header_end = find(&out, b"\r\n\r\n").unwrap_or(out.len());
    if let Some(at) = find(
        out.get(..header_end).unwrap_or_default(),
        message_id.as_bytes(),
    ) {
        for b in out.iter_mut().skip(at).take(message_id.len()) {
            *b = b' ';
        }
    }
    if let Some(sig) = find(
        out.get(..header_end).unwrap_or_default(),
        b"DKIM-Signature:",
    ) && let Some(rel) = find(out.get(sig..header_end).unwrap_or_default(), b" t=")
    {
        let start = sig + rel + 3;
        for b in out.iter_mut().skip(start) {
            if !b.is_ascii_digit() {
                break;
            }
            *b = b' ';
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a failed SMTP exchange means for the outbox.
fn map_error(e: &lettre::transport::smtp::Error) -> SendError {
    if let Some(code) = e.status() {
        let status = u16::from(code);
        return if (400..500).contains(&status) {
            SendError::Retry {
                retry_after_secs: None,
            }
        } else {
            SendError::Rejected { status }
        };
    }
    if e.is_transient() {
        return SendError::Retry {
            retry_after_secs: None,
        };
    }
    if e.is_timeout() {
        // It may have arrived: retry (receivers deduplicate on the Message-ID).
        return SendError::Retry {
            retry_after_secs: None,
        };
    }
    SendError::Unreachable
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    fn vendor(&self) -> &'static str {
        "smtp"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    async fn send_email(
        &self,
        scanner: &Scanner,
        email: EmailRequest<'_>,
    ) -> Result<Receipt, SendError> {
        let (bytes, envelope) = self.build(&email)?;
        let message_id = self.message_id(email.key);
        scanner
            .scan(&scan_view(&bytes, &message_id), Some(email.to.as_str()))
            .map_err(SendError::Refused)?;
        match self.transport.send_raw(&envelope, &bytes).await {
            // The receipt carries the Message-ID's unique part (the idempotency key): the
            // outbox stores provider ids as `[A-Za-z0-9_:.-]`, without `<`, `@` and `>`.
            Ok(_) => Ok(Receipt {
                provider_id: email.key.0.as_hyphenated().to_string(),
            }),
            Err(e) => {
                let mapped = map_error(&e);
                tracing::warn!(vendor = "smtp", error = %mapped, "mail not accepted by the relay");
                Err(mapped)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_only_to_loopback() {
        for (host, ok) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("[::1]", true),
            ("localhost", true),
            ("mail.localhost", true),
            ("10.0.0.2", false),
            ("smtp.example.test", false),
        ] {
            assert_eq!(is_loopback_host(host), ok, "{host}");
        }
    }

    #[test]
    fn the_scan_view_blanks_only_the_generated_values() {
        let msg = b"Message-ID: <0f0e@x.test>\r\nDKIM-Signature: v=1; a=ed25519-sha256; d=x.test; s=s1; c=relaxed/relaxed; q=dns/txt; t=1765099200; h=from; bh=AA; b=BB\r\n\r\nbody t=1234567890\r\n";
        let view = String::from_utf8(scan_view(msg, "<0f0e@x.test>")).unwrap();
        assert!(!view.contains("0f0e@"));
        assert!(!view.contains("1765099200"));
        assert!(view.contains("body t=1234567890"));
    }
}
