//! The Vault / OpenBao transit engine as the KEK.
//!
//! The KEK never leaves Vault: data keys are sent to `transit/encrypt/<key>` and come back as
//! `vault:v<N>:<base64>` ciphertexts, which are stored as the wrapped key. Endpoints used
//! (identical in Vault and OpenBao):
//!
//! | operation | endpoint |
//! |---|---|
//! | check the key | `GET  /v1/<mount>/keys/<key>` |
//! | create the key (setup) | `POST /v1/<mount>/keys/<key>` `{"type":"aes256-gcm96","derived":true}` |
//! | wrap | `POST /v1/<mount>/encrypt/<key>` `{"plaintext","context"}` |
//! | unwrap | `POST /v1/<mount>/decrypt/<key>` `{"ciphertext","context"}` |
//! | rewrap to the latest version | `POST /v1/<mount>/rewrap/<key>` `{"ciphertext","context"}` |
//! | rotate | `POST /v1/<mount>/keys/<key>/rotate` |
//! | retire old versions | `POST /v1/<mount>/keys/<key>/config` `{"min_decryption_version"}` |
//!
//! # Binding
//!
//! The transit key must be a **derived** key (`derived=true`): every call passes the
//! [`WrapContext`] bytes as `context`, Vault derives a per-context key from it, and a wrapped
//! key presented for another practice or DEK version fails to decrypt. (Transit's
//! `associated_data` parameter would bind too, but the `rewrap` endpoint does not accept it,
//! while it does accept `context`; with `context` the data key never leaves Vault during a
//! rewrap.) [`VaultTransitProvider::connect`] refuses a key that is not derived.
//!
//! # Tests
//!
//! No Vault or OpenBao binary could be installed on the build machine (not in Debian's
//! archive; the `PyPI` and npm packages that exist only download the vendor's release binaries,
//! which were unreachable; no container runtime), so the integration tests run this provider
//! against a stand-in transit server in `tests/integration/vault_standin.rs` that implements
//! the endpoints above, the `vault:v<N>:` ciphertext format, key versions,
//! `min_decryption_version`, derived-key contexts, token checks and Vault's error bodies and
//! messages. It is a stand-in, not Vault: run the provider against a real dev server
//! (`bao server -dev` / `vault server -dev`) before relying on it.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{KekRef, KeyProvider, WrapContext, Wrapped};
use crate::error::{CryptoError, Result};
use crate::keys::{DEK_LEN, DekMaterial};
use crate::secret::Secret;

const KIND: &str = "vault-transit";

/// Where to find the transit key and how to authenticate.
#[derive(Debug)]
pub struct VaultConfig {
    /// Vault's address, e.g. `https://vault.internal:8200`.
    pub address: Url,
    /// A token whose policy allows the endpoints above on this key.
    pub token: Secret<String>,
    /// The transit engine's mount path (usually `transit`).
    pub mount: String,
    /// The transit key's name.
    pub key_name: String,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// Timeout of each request.
    pub timeout: Duration,
    /// Allow plain `http://` to a non-loopback address. Off: the token and data keys would
    /// cross the network in the clear.
    pub allow_insecure_http: bool,
}

impl VaultConfig {
    /// A configuration with mount `transit`, a 10 s timeout and HTTPS required (except to
    /// loopback addresses).
    #[must_use]
    pub fn new(address: Url, token: Secret<String>, key_name: impl Into<String>) -> Self {
        Self {
            address,
            token,
            mount: "transit".into(),
            key_name: key_name.into(),
            namespace: None,
            timeout: Duration::from_secs(10),
            allow_insecure_http: false,
        }
    }
}

/// Vault / OpenBao transit as a [`KeyProvider`]. See the module docs.
pub struct VaultTransitProvider {
    client: reqwest::Client,
    base: String,
    kek_id: String,
}

impl std::fmt::Debug for VaultTransitProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultTransitProvider")
            .field("base", &self.base)
            .field("kek", &self.kek_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct KeyInfo {
    latest_version: u32,
    #[serde(default)]
    derived: bool,
    #[serde(rename = "type")]
    key_type: String,
}

#[derive(Deserialize)]
struct CiphertextData {
    ciphertext: String,
    #[serde(default)]
    key_version: Option<u32>,
}

#[derive(Deserialize)]
struct PlaintextData<'a> {
    #[serde(borrow)]
    plaintext: &'a str,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Serialize)]
struct EncryptRequest<'a> {
    plaintext: &'a str,
    context: &'a str,
}

#[derive(Serialize)]
struct CiphertextRequest<'a> {
    ciphertext: &'a str,
    context: &'a str,
}

fn provider_err(message: impl Into<String>) -> CryptoError {
    CryptoError::Provider {
        provider: KIND,
        message: message.into(),
    }
}

fn valid_path_segment(s: &str, allow_slash: bool) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("..")
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (allow_slash && c == '/')
        })
}

/// The key version of a `vault:v<N>:<base64>` ciphertext.
fn ciphertext_version(ct: &str) -> Option<u32> {
    let rest = ct.strip_prefix("vault:v")?;
    let (digits, b64) = rest.split_once(':')?;
    if b64.is_empty() {
        return None;
    }
    digits.parse().ok().filter(|v| *v > 0)
}

impl VaultTransitProvider {
    /// Connects and checks that the transit key exists, is `aes256-gcm96` and is derived.
    pub async fn connect(config: VaultConfig) -> Result<Self> {
        let p = Self::new_unchecked(&config)?;
        let info = p.key_info().await?;
        if info.key_type != "aes256-gcm96" {
            return Err(provider_err(format!(
                "transit key {} has type {}; create it with type=aes256-gcm96 derived=true",
                p.kek_id, info.key_type
            )));
        }
        if !info.derived {
            return Err(provider_err(format!(
                "transit key {} is not derived; wrapped keys could not be bound to their \
                 practice. Create a new key with derived=true",
                p.kek_id
            )));
        }
        Ok(p)
    }

    /// Creates the transit key (`aes256-gcm96`, derived) if it does not exist, then connects.
    /// For setup (`chartroom keys init`) and tests; the token needs write access to
    /// `<mount>/keys/<key>`.
    pub async fn create_key_and_connect(config: VaultConfig) -> Result<Self> {
        let p = Self::new_unchecked(&config)?;
        let url = format!("{}/keys/{}", p.base, p.key_name());
        let body = serde_json::json!({"type": "aes256-gcm96", "derived": true});
        let resp = p
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| http_err(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.map_err(|e| http_err(&e))?;
            return Err(map_error(status, &bytes, None));
        }
        drop(resp);
        // Re-check the existing or created key like `connect` does.
        let info = p.key_info().await?;
        if !info.derived || info.key_type != "aes256-gcm96" {
            return Err(provider_err(format!(
                "transit key {} exists but is not an aes256-gcm96 derived key",
                p.kek_id
            )));
        }
        Ok(p)
    }

    fn new_unchecked(config: &VaultConfig) -> Result<Self> {
        if !valid_path_segment(&config.mount, true) {
            return Err(CryptoError::InvalidInput(
                "Vault mount must be letters, digits, '-', '_', '.' and '/'",
            ));
        }
        if !valid_path_segment(&config.key_name, false) {
            return Err(CryptoError::InvalidInput(
                "Vault transit key name must be letters, digits, '-', '_' and '.'",
            ));
        }
        let loopback = match config.address.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match config.address.scheme() {
            "https" => {}
            "http" if loopback || config.allow_insecure_http => {}
            _ => {
                return Err(CryptoError::InvalidInput(
                    "Vault address must be https:// (http:// only to a loopback address)",
                ));
            }
        }
        let mut headers = HeaderMap::new();
        let mut token = HeaderValue::from_str(config.token.expose_secret()).map_err(|_| {
            CryptoError::InvalidInput("Vault token has characters not allowed in a header")
        })?;
        token.set_sensitive(true);
        headers.insert("X-Vault-Token", token);
        if let Some(ns) = &config.namespace {
            headers.insert(
                "X-Vault-Namespace",
                HeaderValue::from_str(ns)
                    .map_err(|_| CryptoError::InvalidInput("invalid Vault namespace"))?,
            );
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|e| provider_err(format!("building the HTTP client: {e}")))?;
        let address = config.address.as_str().trim_end_matches('/');
        Ok(Self {
            client,
            base: format!("{address}/v1/{}", config.mount),
            kek_id: format!("{KIND}:{}/{}", config.mount, config.key_name),
        })
    }

    fn key_name(&self) -> &str {
        self.kek_id.rsplit('/').next().unwrap_or_default()
    }

    async fn key_info(&self) -> Result<KeyInfo> {
        let url = format!("{}/keys/{}", self.base, self.key_name());
        let bytes = self.send(self.client.get(&url), None).await?;
        let env: Envelope<KeyInfo> = serde_json::from_slice(&bytes)
            .map_err(|e| provider_err(format!("unexpected key info response: {e}")))?;
        Ok(env.data)
    }

    async fn post(
        &self,
        path: &str,
        body: &impl Serialize,
        kek: Option<&KekRef>,
    ) -> Result<bytes::Bytes> {
        let url = format!("{}/{path}/{}", self.base, self.key_name());
        self.send(self.client.post(&url).json(body), kek).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        kek: Option<&KekRef>,
    ) -> Result<bytes::Bytes> {
        let resp = req.send().await.map_err(|e| http_err(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| http_err(&e))?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(map_error(status, &bytes, kek))
        }
    }

    fn wrapped_from(&self, data: &CiphertextData) -> Result<Wrapped> {
        let version = ciphertext_version(&data.ciphertext).ok_or_else(|| {
            provider_err("transit returned a ciphertext without a vault:v<N>: prefix")
        })?;
        if data.key_version.is_some_and(|v| v != version) {
            return Err(provider_err("transit returned inconsistent key versions"));
        }
        Ok(Wrapped {
            kek: KekRef {
                id: self.kek_id.clone(),
                version,
            },
            bytes: data.ciphertext.as_bytes().to_vec(),
        })
    }

    fn check_ours<'w>(&self, kek: &KekRef, wrapped: &'w [u8]) -> Result<&'w str> {
        if kek.id != self.kek_id {
            return Err(CryptoError::UnknownKek { kek: kek.clone() });
        }
        let ct = std::str::from_utf8(wrapped)
            .map_err(|_| CryptoError::KekUnwrap { kek: kek.clone() })?;
        if ciphertext_version(ct) != Some(kek.version) {
            return Err(CryptoError::KekUnwrap { kek: kek.clone() });
        }
        Ok(ct)
    }
}

fn http_err(e: &reqwest::Error) -> CryptoError {
    // reqwest's error text names the URL (mount and key name), never the body.
    provider_err(format!("request failed: {e}"))
}

/// Maps a Vault error response. Messages are Vault's own (`{"errors": [...]}`), which name
/// the failure, never key material.
fn map_error(status: StatusCode, body: &[u8], kek: Option<&KekRef>) -> CryptoError {
    let errors = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors.join("; "))
        .unwrap_or_default();
    let lower = errors.to_ascii_lowercase();
    if let Some(kek) = kek
        && status == StatusCode::BAD_REQUEST
    {
        // keysutil: "invalid ciphertext: unable to decrypt" (AEAD open failed) and
        // "cipher: message authentication failed".
        if lower.contains("unable to decrypt") || lower.contains("message authentication failed") {
            return CryptoError::KekUnwrap { kek: kek.clone() };
        }
        // keysutil ErrTooOld, and versions newer than the key's latest.
        if lower.contains("too old")
            || lower.contains("too new")
            || lower.contains("larger than the latest")
        {
            return CryptoError::UnknownKek { kek: kek.clone() };
        }
    }
    let hint = match status {
        StatusCode::FORBIDDEN => {
            " (check the Vault token and that its policy allows this transit path)"
        }
        StatusCode::NOT_FOUND => " (is the transit engine mounted at this path?)",
        StatusCode::SERVICE_UNAVAILABLE => " (Vault is sealed or in standby)",
        _ => "",
    };
    if errors.is_empty() {
        provider_err(format!("HTTP {status}{hint}"))
    } else {
        provider_err(format!("HTTP {status}: {errors}{hint}"))
    }
}

#[async_trait]
impl KeyProvider for VaultTransitProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn current_kek(&self) -> Result<KekRef> {
        Ok(KekRef {
            id: self.kek_id.clone(),
            version: self.key_info().await?.latest_version,
        })
    }

    async fn wrap(&self, ctx: &WrapContext, dek: &DekMaterial) -> Result<Wrapped> {
        let plaintext = Secret::new(STANDARD.encode(dek.expose_secret()));
        let context = STANDARD.encode(ctx.to_bytes());
        let req = EncryptRequest {
            plaintext: plaintext.expose_secret(),
            context: &context,
        };
        let bytes = self.post("encrypt", &req, None).await?;
        let env: Envelope<CiphertextData> = serde_json::from_slice(&bytes)
            .map_err(|e| provider_err(format!("unexpected encrypt response: {e}")))?;
        self.wrapped_from(&env.data)
    }

    async fn unwrap(&self, ctx: &WrapContext, kek: &KekRef, wrapped: &[u8]) -> Result<DekMaterial> {
        let ciphertext = self.check_ours(kek, wrapped)?;
        let context = STANDARD.encode(ctx.to_bytes());
        let req = CiphertextRequest {
            ciphertext,
            context: &context,
        };
        let bytes = self.post("decrypt", &req, Some(kek)).await?;
        let env: Envelope<PlaintextData<'_>> = serde_json::from_slice(&bytes)
            .map_err(|_| provider_err("unexpected decrypt response"))?;
        let mut buf = Secret::new([0u8; 48]);
        let n = STANDARD
            .decode_slice(env.data.plaintext, buf.expose_secret_mut())
            .map_err(|_| CryptoError::KekUnwrap { kek: kek.clone() })?;
        if n != DEK_LEN {
            return Err(CryptoError::KekUnwrap { kek: kek.clone() });
        }
        let mut dek = Secret::new([0u8; DEK_LEN]);
        for (d, s) in dek.expose_secret_mut().iter_mut().zip(buf.expose_secret()) {
            *d = *s;
        }
        Ok(dek)
    }

    async fn rewrap(&self, ctx: &WrapContext, kek: &KekRef, wrapped: &[u8]) -> Result<Wrapped> {
        let ciphertext = self.check_ours(kek, wrapped)?;
        let context = STANDARD.encode(ctx.to_bytes());
        let req = CiphertextRequest {
            ciphertext,
            context: &context,
        };
        let bytes = self.post("rewrap", &req, Some(kek)).await?;
        let env: Envelope<CiphertextData> = serde_json::from_slice(&bytes)
            .map_err(|e| provider_err(format!("unexpected rewrap response: {e}")))?;
        self.wrapped_from(&env.data)
    }

    async fn rotate_kek(&self) -> Result<KekRef> {
        let url = format!("{}/keys/{}/rotate", self.base, self.key_name());
        self.send(self.client.post(&url), None).await?;
        let kek = self.current_kek().await?;
        tracing::info!(kek = %kek, "rotated the Vault transit key");
        Ok(kek)
    }

    async fn retire_kek_versions_below(&self, min_version: u32) -> Result<()> {
        let url = format!("{}/keys/{}/config", self.base, self.key_name());
        let body = serde_json::json!({ "min_decryption_version": min_version });
        self.send(self.client.post(&url).json(&body), None).await?;
        tracing::info!(min_version, kek = %self.kek_id, "retired Vault transit key versions");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ciphertext_versions() {
        assert_eq!(ciphertext_version("vault:v1:abcd"), Some(1));
        assert_eq!(ciphertext_version("vault:v12:abcd"), Some(12));
        for bad in [
            "vault:v0:abcd",
            "vault:v1:",
            "vault:1:abcd",
            "bao:v1:abcd",
            "vault:vx:ab",
        ] {
            assert_eq!(ciphertext_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_plain_http_to_remote_hosts_and_odd_paths() {
        let token = || Secret::new("t".to_owned());
        let remote = VaultConfig::new(
            Url::parse("http://vault.example:8200").unwrap(),
            token(),
            "k",
        );
        assert!(VaultTransitProvider::new_unchecked(&remote).is_err());
        let local = VaultConfig::new(Url::parse("http://127.0.0.1:8200").unwrap(), token(), "k");
        assert!(VaultTransitProvider::new_unchecked(&local).is_ok());
        let mut odd = VaultConfig::new(
            Url::parse("https://vault.example").unwrap(),
            token(),
            "../k",
        );
        assert!(VaultTransitProvider::new_unchecked(&odd).is_err());
        odd = VaultConfig::new(Url::parse("https://vault.example").unwrap(), token(), "k");
        odd.mount = "/etc".into();
        assert!(VaultTransitProvider::new_unchecked(&odd).is_err());
    }

    #[test]
    fn maps_vault_error_messages() {
        let kek = KekRef {
            id: "vault-transit:transit/k".into(),
            version: 1,
        };
        let body = br#"{"errors":["invalid ciphertext: unable to decrypt"]}"#;
        assert!(matches!(
            map_error(StatusCode::BAD_REQUEST, body, Some(&kek)),
            CryptoError::KekUnwrap { .. }
        ));
        let body =
            br#"{"errors":["ciphertext or signature version is disallowed by policy (too old)"]}"#;
        assert!(matches!(
            map_error(StatusCode::BAD_REQUEST, body, Some(&kek)),
            CryptoError::UnknownKek { .. }
        ));
        let e = map_error(
            StatusCode::FORBIDDEN,
            br#"{"errors":["permission denied"]}"#,
            Some(&kek),
        );
        assert_eq!(
            e.to_string(),
            "CRYPTO-0030: key provider vault-transit: HTTP 403 Forbidden: permission denied (check \
             the Vault token and that its policy allows this transit path)"
        );
    }
}
