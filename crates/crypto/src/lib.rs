//! Chartroom's encryption at rest: envelope encryption with per-practice data keys, field
//! encryption bound to its row, blind indexes for search, streaming encryption for blobs, and
//! the installation's own secrets (TOTP secrets, the lookup-tag key) under the same KEK.
//!
//! # What this crate guarantees
//!
//! - **Every practice has its own data keys.** A data key (DEK, 256 bits from the OS random
//!   source) is generated per practice and version, wrapped by a key-encryption key (KEK) of a
//!   [`KeyProvider`] — a local key file ([`LocalKeyProvider`], the default), Vault/OpenBao
//!   transit ([`VaultTransitProvider`]) or AWS KMS (`AwsKmsProvider`, feature `aws-kms`) — and
//!   stored only wrapped ([`WrappedDataKey`]). A wrapped key is bound to its practice and
//!   version: copied to another practice's row, it does not unwrap.
//! - **A ciphertext decrypts only where it was written.** Field ciphertexts are bound by
//!   AES-256-GCM associated data to (practice, table, column, row); blobs to (practice, blob
//!   id). Decrypting anywhere else, or after any change to any byte, fails with
//!   [`CryptoError::Decrypt`]. A wrong KEK fails with [`CryptoError::KekUnwrap`] or
//!   [`CryptoError::UnknownKek`]. **Nothing in this crate ever returns unauthenticated
//!   plaintext or a wrong key.**
//! - **Every ciphertext says how to read it**: a format version byte and the DEK version
//!   ([`field_dek_version`], [`StreamHeader`]), so keys rotate without a flag day. Unknown
//!   formats fail with [`CryptoError::UnknownFormat`], retired keys with
//!   [`CryptoError::UnknownDataKey`].
//! - **Rotation and shredding are first-class.** [`Keyring::rotate_data_key`] adds a DEK
//!   version (old ones readable until [`Keyring::retire_data_key`]);
//!   [`Keyring::rotate_kek`] + [`Keyring::rewrap_all`] move every wrapped key to a new KEK
//!   version, resumably; [`Keyring::destroy_practice_keys`] makes every ciphertext, blob and
//!   blind index of a practice permanently unreadable ([`CryptoError::KeyDestroyed`]).
//! - **Installation secrets are sealed like practice data.** TOTP secrets and the lookup-tag
//!   key are field ciphertexts under the installation data key — the system practice's data
//!   key, wrapped by the same KEK — so KEK rotation covers them ([`installation`]).
//! - **Blobs stream in flat memory**, whatever their size, and any byte range decrypts by
//!   fetching only the segments covering it; truncation, reordering, appending and bit flips
//!   are all detected ([`stream`], [`BlobStore`]).
//! - **Secrets stay secret in memory and logs.** Key material is held in [`Secret`] (redacted
//!   `Debug`, zeroized on drop) or inside AWS-LC contexts that AWS-LC wipes on free; errors
//!   carry ids, versions and paths, never plaintext or key bytes. Unwrapped keys are cached
//!   per practice for a bounded time ([`keyring::DEFAULT_CACHE_TTL`], injected clock) so the
//!   KEK provider is off the hot path.
//!
//! # What it never does
//!
//! - It never stores or logs a plaintext value, a raw DEK or a KEK; it never writes a
//!   plaintext blob, not even temporarily.
//! - It never reuses a nonce on purpose: field nonces are random (96 bits), blob nonces are a
//!   random prefix plus a segment counter under a fresh per-object key.
//! - It never audits: callers record the audit event for every encryption and decryption they
//!   ask for, in the same transaction as the data.
//! - It never decides who may read what: callers (the store and server crates) check the
//!   practice, role and audit the access before asking for a decryption; a [`Keyring`] will
//!   decrypt any practice's data it is asked to.
//! - It never puts practice or patient data into object names ([`BlobId`] is random).
//! - It does no database IO: the store crate persists [`WrappedDataKey`] rows through the
//!   [`WrappedKeyStore`] trait and stores the ciphertexts and tags this crate returns.
//!
//! # Key hierarchy
//!
//! ```text
//! KEK (provider; versioned)
//!  └─ wraps ─ DEK(practice, version)           stored as WrappedDataKey
//!              ├─ HKDF "field/aes-256-gcm"       → field key   (AES-256-GCM)
//!              ├─ HKDF "blind-index/hmac-sha256" → index key   (HMAC-SHA256)
//!              └─ HKDF "blob/root"               → blob root ─ HKDF(salt, object) → object key
//!  └─ wraps ─ DEK(system practice, 1)          the installation data key
//!              └─ field key → TOTP secrets, the lookup-tag key (HMAC-SHA256)
//! ```
//!
//! # Formats
//!
//! | what | layout | docs |
//! |---|---|---|
//! | field ciphertext | `01 ‖ dek_version u32be ‖ nonce(12) ‖ ciphertext ‖ tag(16)` | [`field`] |
//! | blob | `01 ‖ dek_version u32be ‖ segment_size u32be ‖ nonce_prefix(7) ‖ salt(32)` then segments of `ciphertext ‖ tag(16)` | [`stream`] |
//! | blind index tag | `HMAC-SHA256(index key, kind ‖ token)[..16]` | [`blind_index`] |
//! | wrapped DEK (local) | `nonce(12) ‖ ciphertext(32) ‖ tag(16)` | [`provider`] |
//! | wrapped DEK (Vault) | `vault:v<N>:<base64>` | [`provider`] |
//! | local key file | text: `chartroom-kek 1`, `id <uuid>`, `key <version> <base64>` … | [`provider`] |
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use crypto::{CryptoError, FieldContext, Keyring, LocalKeyProvider, MemoryKeyStore};
//! use domain::{PracticeId, SystemClock};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let provider = LocalKeyProvider::open(dir.path().join("keys")).await?; // 0700 dir, 0600 file
//! let keyring = Keyring::new(
//!     Arc::new(provider),
//!     Arc::new(MemoryKeyStore::new()), // the store crate passes its PostgreSQL table here
//!     Arc::new(SystemClock),
//! );
//!
//! let practice = PracticeId::new();
//! keyring.ensure_practice_keys(practice).await?;
//!
//! // A field, bound to its practice, table, column and row.
//! let patient = [7u8; 16];
//! let ctx = FieldContext::new(practice, "patient", "family_name", &patient);
//! let sealed = keyring.encrypt_field(&ctx, b"Quillfeather").await?;
//! assert_eq!(keyring.decrypt_field(&ctx, &sealed).await?, b"Quillfeather");
//!
//! // Copied to another row: refused, never garbage.
//! let other_row = FieldContext::new(practice, "patient", "family_name", &[8u8; 16]);
//! assert!(matches!(keyring.decrypt_field(&other_row, &sealed).await, Err(CryptoError::Decrypt)));
//!
//! // Search by name prefix without storing the name.
//! let keys = keyring.keys(practice).await?;
//! let stored_tags = keys.active().name_index_tags("Ada Quillfeather");
//! let query = keys.name_query_tags("quill"); // per word: match any of these tags
//! assert!(query.iter().all(|any_of| any_of.iter().any(|t| stored_tags.contains(t))));
//!
//! // Crypto-shredding.
//! keyring.destroy_practice_keys(practice).await?;
//! assert!(matches!(
//!     keyring.decrypt_field(&ctx, &sealed).await,
//!     Err(CryptoError::KeyDestroyed { .. })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Blobs:
//!
//! ```
//! # use std::sync::Arc;
//! # use crypto::{BlobStore, Keyring, LocalKeyProvider, MemoryKeyStore};
//! # use domain::{PracticeId, SystemClock};
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! # let dir = tempfile::tempdir()?;
//! # let provider = LocalKeyProvider::open(dir.path().join("keys")).await?;
//! # let keyring = Arc::new(Keyring::new(Arc::new(provider), Arc::new(MemoryKeyStore::new()), Arc::new(SystemClock)));
//! # let practice = PracticeId::new();
//! # keyring.ensure_practice_keys(practice).await?;
//! let blobs = BlobStore::local(dir.path().join("blobs"), keyring.clone())?;
//! let audio: &[u8] = b"synthetic audio bytes";
//! let stored = blobs.put_stream(practice, audio).await?; // persist `stored` with its row
//! assert_eq!(&blobs.get_range(practice, stored.id, 10..15).await?[..], b"audio");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Cargo features
//!
//! - `aws-kms`: the AWS KMS key provider (pulls in the AWS SDK).
//! - `s3`, `gcs`, `azure`: the matching `object_store` backends for [`BlobStore::from_url`].
//!   The local filesystem store is always available.

pub mod archive;
pub mod blind_index;
pub mod blob;
mod error;
pub mod field;
mod ids;
pub mod installation;
pub mod keyring;
pub mod keys;
pub mod practice_secret;
pub mod provider;
mod secret;
pub mod stream;

pub use archive::{ArchiveKey, ArchiveKeyHeader};
pub use blind_index::{BlindTag, IndexKind};
pub use blob::{BlobStore, BlobStoreOptions, StoredBlob};
pub use error::{CryptoError, Result};
pub use field::{FieldContext, decrypt_field, encrypt_field, field_dek_version};
pub use ids::BlobId;
pub use installation::{
    INSTALLATION, InstallationSecret, LegacyIdentityKey, LookupKey, LookupKind,
};
pub use keyring::{
    DEFAULT_RECHECK, KeyGeneration, KeyRecords, KeyStoreError, Keyring, MemoryKeyStore,
    RewrapReport, RewrapScope, WrappedDataKey, WrappedKeyStore,
};
pub use keys::{DataKey, DekMaterial, DekVersion, PracticeKeys};
/// The `object_store` crate this one stores blobs with.
pub use object_store;
pub use practice_secret::{DirSecretStore, PracticeSecretStore};
pub use provider::{
    KekRef, KeyProvider, LocalKeyProvider, VaultConfig, VaultTransitProvider, WrapContext, Wrapped,
};
pub use secret::Secret;
pub use stream::{ObjectContext, StreamHeader, decrypt_stream, encrypt_stream};

#[cfg(feature = "aws-kms")]
pub use provider::AwsKmsProvider;
