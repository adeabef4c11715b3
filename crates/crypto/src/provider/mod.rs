//! Key providers: where the key-encryption key (KEK) lives and how data keys are wrapped.
//!
//! A provider never sees field values or blobs; it only wraps and unwraps 32-byte data keys,
//! each bound to its practice and DEK version ([`WrapContext`]), so a wrapped key copied to
//! another practice's row does not unwrap there.
//!
//! | provider | KEK lives in | binding | feature |
//! |---|---|---|---|
//! | [`LocalKeyProvider`] (default) | a 0600 key file in a 0700 directory | AES-256-GCM AAD | — |
//! | [`VaultTransitProvider`] | Vault / OpenBao transit engine | derived-key `context` | — |
//! | `AwsKmsProvider` | AWS KMS | encryption context | `aws-kms` |
//!
//! Every provider keeps KEK *versions*: rotation adds a version used for new wraps, older
//! versions still unwrap until retired, and [`KeyProvider::rewrap`] moves a wrapped key to the
//! current version.

mod local;
mod vault;

#[cfg(feature = "aws-kms")]
mod aws_kms;

use std::fmt;

use async_trait::async_trait;
use domain::PracticeId;
use serde::{Deserialize, Serialize};

pub use local::{KEY_FILE_NAME, LocalKeyProvider};
pub use vault::{VaultConfig, VaultTransitProvider};

#[cfg(feature = "aws-kms")]
pub use aws_kms::AwsKmsProvider;

use crate::error::Result;
use crate::keys::{DekMaterial, DekVersion};

/// Names one version of one KEK: which key wrapped a data key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KekRef {
    /// Provider-qualified KEK id, e.g. `local:6f1c…`, `vault-transit:transit/chartroom`,
    /// `aws-kms:arn:aws:kms:…`.
    pub id: String,
    /// The KEK version (0 where the provider versions keys internally, as AWS KMS does).
    pub version: u32,
}

impl fmt::Display for KekRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#v{}", self.id, self.version)
    }
}

/// What a wrapped data key is bound to: its practice and DEK version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrapContext {
    /// The practice that owns the data key.
    pub practice: PracticeId,
    /// The data key's version.
    pub dek_version: DekVersion,
}

/// Length of [`WrapContext::to_bytes`].
pub const WRAP_CONTEXT_LEN: usize = WRAP_LABEL.len() + 16 + 4;
const WRAP_LABEL: &[u8] = b"chartroom/dek-wrap/v1";

impl WrapContext {
    /// The binding as bytes: `"chartroom/dek-wrap/v1" ‖ practice UUID (16) ‖ DEK version
    /// (u32 big-endian)`. Used as AEAD associated data (local), derivation context (Vault
    /// transit) and, in readable form, as the KMS encryption context.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; WRAP_CONTEXT_LEN] {
        let mut out = [0u8; WRAP_CONTEXT_LEN];
        let practice = self.practice.as_uuid();
        let parts: [&[u8]; 3] = [
            WRAP_LABEL,
            practice.as_bytes(),
            &self.dek_version.get().to_be_bytes(),
        ];
        for (dst, src) in out.iter_mut().zip(parts.iter().flat_map(|p| p.iter())) {
            *dst = *src;
        }
        out
    }
}

/// A wrapped data key as a provider returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrapped {
    /// The KEK version that wrapped it.
    pub kek: KekRef,
    /// The provider's ciphertext (opaque to everyone else).
    pub bytes: Vec<u8>,
}

/// A source of key-encryption keys.
///
/// Implementations must fail with [`crate::CryptoError::KekUnwrap`] — never return a wrong
/// key — when a wrapped key does not authenticate under its KEK and context, and with
/// [`crate::CryptoError::UnknownKek`] when they do not hold the KEK version it names.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// A short name for logs and errors (`local`, `vault-transit`, `aws-kms`).
    fn kind(&self) -> &'static str;

    /// The KEK version new wraps use.
    async fn current_kek(&self) -> Result<KekRef>;

    /// Wraps a data key under the current KEK version, bound to `ctx`.
    async fn wrap(&self, ctx: &WrapContext, dek: &DekMaterial) -> Result<Wrapped>;

    /// Unwraps a data key wrapped by `kek`, checking it is bound to `ctx`.
    async fn unwrap(&self, ctx: &WrapContext, kek: &KekRef, wrapped: &[u8]) -> Result<DekMaterial>;

    /// Re-wraps a wrapped data key under the current KEK version. The default unwraps and
    /// wraps again in this process; remote providers override it to keep the data key inside
    /// the provider where its API allows.
    async fn rewrap(&self, ctx: &WrapContext, kek: &KekRef, wrapped: &[u8]) -> Result<Wrapped> {
        let dek = self.unwrap(ctx, kek, wrapped).await?;
        self.wrap(ctx, &dek).await
    }

    /// Adds a new KEK version and makes it current. Older versions still unwrap.
    async fn rotate_kek(&self) -> Result<KekRef>;

    /// Stops older KEK versions from unwrapping: versions below `min_version` are deleted
    /// (local) or refused by policy (Vault `min_decryption_version`). Call only after every
    /// wrapped key was rewrapped ([`crate::Keyring::retire_kek_versions_below`] checks this).
    async fn retire_kek_versions_below(&self, min_version: u32) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_context_bytes() {
        let p = PracticeId::from_uuid(uuid::Uuid::from_bytes([0xAB; 16]));
        let b = WrapContext {
            practice: p,
            dek_version: DekVersion::new(258).unwrap(),
        }
        .to_bytes();
        assert!(b.starts_with(b"chartroom/dek-wrap/v1"));
        assert_eq!(&b[21..37], &[0xAB; 16]);
        assert_eq!(&b[37..], &[0, 0, 1, 2]);
    }
}
