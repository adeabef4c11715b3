//! The crate's error type. Messages name ids, versions and paths, never plaintext or key
//! material; each variant has a stable code (`CRYPTO-00xx`) for logs and runbooks.

use std::io;
use std::path::PathBuf;

use domain::PracticeId;

use crate::ids::BlobId;
use crate::keys::DekVersion;
use crate::provider::KekRef;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: the ciphertext was altered, or it is being read with the wrong
    /// key or under the wrong context (another practice, table, column, row or object). No
    /// plaintext is ever returned in this case.
    #[error(
        "CRYPTO-0001: decryption failed: the ciphertext was altered, or it belongs to another \
         practice, table, column, row or object"
    )]
    Decrypt,

    /// The ciphertext is shorter than its format allows (cut off in storage or transit).
    #[error("CRYPTO-0002: ciphertext is truncated: {len} bytes where at least {min} are needed")]
    Truncated {
        /// Bytes present.
        len: u64,
        /// Bytes the format needs at least.
        min: u64,
    },

    /// The ciphertext starts with a format version this build cannot read.
    #[error(
        "CRYPTO-0003: unknown {what} format version {found}; this build reads version {supported}"
    )]
    UnknownFormat {
        /// Which format (`field` or `blob`).
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The version this build writes and reads.
        supported: u8,
    },

    /// The data key version named by a ciphertext is not available: it was retired, or it
    /// never existed.
    #[error(
        "CRYPTO-0004: data key version {version} of practice {practice} is not available \
         (retired or never created)"
    )]
    UnknownDataKey {
        /// The practice.
        practice: PracticeId,
        /// The version the ciphertext names.
        version: DekVersion,
    },

    /// The practice's keys were destroyed (crypto-shredding). Its encrypted data can never be
    /// read again; this is the intended outcome of a practice deletion.
    #[error(
        "CRYPTO-0005: the keys of practice {practice} were destroyed; its encrypted data can no \
         longer be read"
    )]
    KeyDestroyed {
        /// The practice.
        practice: PracticeId,
    },

    /// The practice has no data key yet: call `Keyring::ensure_practice_keys` first.
    #[error("CRYPTO-0006: practice {practice} has no data key yet; provision its keys first")]
    NoDataKey {
        /// The practice.
        practice: PracticeId,
    },

    /// Refused to retire the practice's active data key version.
    #[error(
        "CRYPTO-0007: refusing to retire data key version {version} of practice {practice}: \
         it is the active version; rotate the data key first"
    )]
    ActiveDataKey {
        /// The practice.
        practice: PracticeId,
        /// The active version.
        version: DekVersion,
    },

    /// A key and a context (or a key set and a context) belong to different practices. This is
    /// a programming error in the caller.
    #[error("CRYPTO-0008: the key belongs to practice {key}, the context to practice {context}")]
    PracticeMismatch {
        /// The key's practice.
        key: PracticeId,
        /// The context's practice.
        context: PracticeId,
    },

    /// Refused a per-practice key operation on the installation data key (the system
    /// practice's), which seals the installation's secrets ([`crate::installation`]): it is
    /// rotated with the KEK only, and never destroyed.
    #[error(
        "CRYPTO-0009: the installation data key cannot be {operation}: it seals the \
         installation's secrets (TOTP secrets, the lookup-tag key); rotate the KEK instead"
    )]
    InstallationKey {
        /// What was refused (`rotated`, `retired`, `destroyed`).
        operation: &'static str,
    },

    /// The key-encryption key could not unwrap a data key: it is the wrong KEK, or the wrapped
    /// key (or its practice/version binding) was altered. Never yields a garbage key.
    #[error(
        "CRYPTO-0010: key-encryption key {kek} could not unwrap this data key: wrong KEK, or \
         the wrapped key or its practice/version binding was altered"
    )]
    KekUnwrap {
        /// The KEK named by the wrapped key.
        kek: KekRef,
    },

    /// The KEK version a wrapped key names is not held by this provider (retired, or a key of
    /// another provider or installation).
    #[error(
        "CRYPTO-0011: key-encryption key {kek} is not available to this key provider (retired, \
         or it belongs to another provider or installation)"
    )]
    UnknownKek {
        /// The KEK named by the wrapped key.
        kek: KekRef,
    },

    /// Refused to retire KEK versions that still wrap data keys.
    #[error(
        "CRYPTO-0012: {count} wrapped data keys still use a KEK version below {min_version}; \
         run the rewrap first"
    )]
    KekInUse {
        /// Wrapped keys still on an old version.
        count: u64,
        /// The requested minimum version.
        min_version: u32,
    },

    /// A key file or its directory is readable or writable by others.
    #[error(
        "CRYPTO-0020: {path}: permissions {mode:o} are too open; only the owner may have access \
         (chmod 600 for the key file, 700 for its directory)"
    )]
    KeyFilePermissions {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A key file or its directory is owned by another user, or is not a regular file /
    /// directory (a symlink, a device).
    #[error("CRYPTO-0021: {path}: {reason}")]
    KeyFileUnsafe {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A key file could not be parsed.
    #[error("CRYPTO-0022: key file {path} is malformed: {reason}")]
    KeyFileFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        reason: &'static str,
    },

    /// Another key-file update is running, or a previous one crashed and left its temporary
    /// file behind.
    #[error(
        "CRYPTO-0023: {path} exists: another key-file update is running, or one was \
         interrupted; if none is running, delete that file and retry"
    )]
    KeyFileBusy {
        /// The temporary file.
        path: PathBuf,
    },

    /// Reading or writing a key file failed.
    #[error("CRYPTO-0024: key file {path}: {source}")]
    KeyFileIo {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: io::Error,
    },

    /// A remote key provider (Vault/OpenBao, KMS) failed or refused the request.
    #[error("CRYPTO-0030: key provider {provider}: {message}")]
    Provider {
        /// The provider kind.
        provider: &'static str,
        /// What went wrong (the provider's own error text; never key material).
        message: String,
    },

    /// The wrapped-key store failed.
    #[error("CRYPTO-0040: wrapped-key store: {0}")]
    KeyStore(#[from] crate::keyring::KeyStoreError),

    /// The blob does not exist.
    #[error("CRYPTO-0050: blob {id} does not exist")]
    BlobNotFound {
        /// The blob.
        id: BlobId,
    },

    /// The object store failed.
    #[error("CRYPTO-0051: object store: {0}")]
    ObjectStore(#[from] object_store::Error),

    /// A requested byte range is outside the blob.
    #[error("CRYPTO-0052: range {start}..{end} is outside the blob's {len} bytes")]
    RangeOutOfBounds {
        /// Range start.
        start: u64,
        /// Range end (exclusive).
        end: u64,
        /// The blob's plaintext length.
        len: u64,
    },

    /// An input is larger than this crate accepts.
    #[error("CRYPTO-0053: {what} is too large: {len} bytes, at most {max} allowed")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },

    /// Reading the plaintext source or writing the destination failed.
    #[error("CRYPTO-0054: stream IO: {0}")]
    Io(#[from] io::Error),

    /// An argument was refused (the message says which rule it broke).
    #[error("CRYPTO-0060: invalid input: {0}")]
    InvalidInput(&'static str),

    /// The cryptographic library or the OS random source failed where it should not.
    #[error("CRYPTO-0099: internal error: {0}")]
    Internal(&'static str),
}

impl CryptoError {
    /// The stable code of this error (`CRYPTO-00xx`), for logs and runbooks.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Decrypt => "CRYPTO-0001",
            Self::Truncated { .. } => "CRYPTO-0002",
            Self::UnknownFormat { .. } => "CRYPTO-0003",
            Self::UnknownDataKey { .. } => "CRYPTO-0004",
            Self::KeyDestroyed { .. } => "CRYPTO-0005",
            Self::NoDataKey { .. } => "CRYPTO-0006",
            Self::ActiveDataKey { .. } => "CRYPTO-0007",
            Self::PracticeMismatch { .. } => "CRYPTO-0008",
            Self::InstallationKey { .. } => "CRYPTO-0009",
            Self::KekUnwrap { .. } => "CRYPTO-0010",
            Self::UnknownKek { .. } => "CRYPTO-0011",
            Self::KekInUse { .. } => "CRYPTO-0012",
            Self::KeyFilePermissions { .. } => "CRYPTO-0020",
            Self::KeyFileUnsafe { .. } => "CRYPTO-0021",
            Self::KeyFileFormat { .. } => "CRYPTO-0022",
            Self::KeyFileBusy { .. } => "CRYPTO-0023",
            Self::KeyFileIo { .. } => "CRYPTO-0024",
            Self::Provider { .. } => "CRYPTO-0030",
            Self::KeyStore(_) => "CRYPTO-0040",
            Self::BlobNotFound { .. } => "CRYPTO-0050",
            Self::ObjectStore(_) => "CRYPTO-0051",
            Self::RangeOutOfBounds { .. } => "CRYPTO-0052",
            Self::TooLarge { .. } => "CRYPTO-0053",
            Self::Io(_) => "CRYPTO-0054",
            Self::InvalidInput(_) => "CRYPTO-0060",
            Self::Internal(_) => "CRYPTO-0099",
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
