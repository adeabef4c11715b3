//! AWS KMS as the KEK (cargo feature `aws-kms`).
//!
//! Data keys are sent to `Encrypt` with the [`WrapContext`] as the KMS *encryption context*
//! (`chartroom:purpose = dek-wrap/v1`, `chartroom:practice = <uuid>`,
//! `chartroom:dek_version = <n>`), so a wrapped key presented for another practice or version
//! fails `Decrypt` (and the context appears in the `CloudTrail` log, which names ids only). `Decrypt`
//! pins the key id, so a blob wrapped under another KMS key is refused rather than silently
//! accepted.
//!
//! KMS versions its key material internally (automatic or on-demand rotation keeps every old
//! backing key), so [`KekRef::version`] is always 0 here: [`KeyProvider::rotate_kek`] calls
//! `RotateKeyOnDemand`, rewrapping needs [`crate::RewrapScope::All`] (`ReEncrypt`, which never
//! returns the data key), and old versions cannot be retired from this side.
//!
//! Not tested against KMS in this repository (no credentials, no emulator); it is compiled
//! in CI with `--features aws-kms`.

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, SdkError};
use aws_sdk_kms::primitives::Blob;

use super::{KekRef, KeyProvider, WrapContext, Wrapped};
use crate::error::{CryptoError, Result};
use crate::keys::{DEK_LEN, DekMaterial};
use crate::secret::Secret;

const KIND: &str = "aws-kms";

/// AWS KMS as a [`KeyProvider`]. See the module docs.
#[derive(Debug, Clone)]
pub struct AwsKmsProvider {
    client: Client,
    key_id: String,
}

fn provider_err(message: String) -> CryptoError {
    CryptoError::Provider {
        provider: KIND,
        message,
    }
}

fn sdk_err<E, R>(op: &str, e: &SdkError<E, R>) -> CryptoError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provider_err(format!("{op}: {}", DisplayErrorContext(e)))
}

fn context_pairs(ctx: &WrapContext) -> [(&'static str, String); 3] {
    [
        ("chartroom:purpose", "dek-wrap/v1".to_owned()),
        ("chartroom:practice", ctx.practice.to_string()),
        ("chartroom:dek_version", ctx.dek_version.to_string()),
    ]
}

impl AwsKmsProvider {
    /// A provider for the KMS key `key_id` (key id, key ARN or alias ARN) using `client`.
    #[must_use]
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }

    /// A provider using the default AWS configuration chain (environment, profile, instance
    /// role).
    pub async fn from_env(key_id: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), key_id)
    }

    fn kek(&self) -> KekRef {
        KekRef {
            id: format!("{KIND}:{}", self.key_id),
            version: 0,
        }
    }

    fn check_ours(&self, kek: &KekRef) -> Result<()> {
        if *kek == self.kek() {
            Ok(())
        } else {
            Err(CryptoError::UnknownKek { kek: kek.clone() })
        }
    }
}

#[async_trait]
impl KeyProvider for AwsKmsProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn current_kek(&self) -> Result<KekRef> {
        Ok(self.kek())
    }

    async fn wrap(&self, ctx: &WrapContext, dek: &DekMaterial) -> Result<Wrapped> {
        let mut req = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(dek.expose_secret().to_vec()));
        for (k, v) in context_pairs(ctx) {
            req = req.encryption_context(k, v);
        }
        let out = req.send().await.map_err(|e| sdk_err("Encrypt", &e))?;
        let blob = out
            .ciphertext_blob()
            .ok_or_else(|| provider_err("Encrypt returned no ciphertext".into()))?;
        Ok(Wrapped {
            kek: self.kek(),
            bytes: blob.as_ref().to_vec(),
        })
    }

    async fn unwrap(&self, ctx: &WrapContext, kek: &KekRef, wrapped: &[u8]) -> Result<DekMaterial> {
        self.check_ours(kek)?;
        let mut req = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()));
        for (k, v) in context_pairs(ctx) {
            req = req.encryption_context(k, v);
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| {
                    s.is_invalid_ciphertext_exception() || s.is_incorrect_key_exception()
                }) {
                    return Err(CryptoError::KekUnwrap { kek: kek.clone() });
                }
                return Err(sdk_err("Decrypt", &e));
            }
        };
        let plain = out
            .plaintext()
            .ok_or_else(|| provider_err("Decrypt returned no plaintext".into()))?;
        if plain.as_ref().len() != DEK_LEN {
            return Err(CryptoError::KekUnwrap { kek: kek.clone() });
        }
        let mut dek = Secret::new([0u8; DEK_LEN]);
        for (d, s) in dek.expose_secret_mut().iter_mut().zip(plain.as_ref()) {
            *d = *s;
        }
        // The SDK's own buffer cannot be wiped from here; drop it at once.
        drop(out);
        Ok(dek)
    }

    async fn rewrap(&self, ctx: &WrapContext, kek: &KekRef, wrapped: &[u8]) -> Result<Wrapped> {
        self.check_ours(kek)?;
        let mut req = self
            .client
            .re_encrypt()
            .source_key_id(&self.key_id)
            .destination_key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()));
        for (k, v) in context_pairs(ctx) {
            req = req
                .source_encryption_context(k, v.clone())
                .destination_encryption_context(k, v);
        }
        let out = req.send().await.map_err(|e| sdk_err("ReEncrypt", &e))?;
        let blob = out
            .ciphertext_blob()
            .ok_or_else(|| provider_err("ReEncrypt returned no ciphertext".into()))?;
        Ok(Wrapped {
            kek: self.kek(),
            bytes: blob.as_ref().to_vec(),
        })
    }

    async fn rotate_kek(&self) -> Result<KekRef> {
        self.client
            .rotate_key_on_demand()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| sdk_err("RotateKeyOnDemand", &e))?;
        Ok(self.kek())
    }

    async fn retire_kek_versions_below(&self, _min_version: u32) -> Result<()> {
        Err(provider_err(
            "AWS KMS keeps every backing key of a KMS key; old versions cannot be retired from here"
                .into(),
        ))
    }
}
