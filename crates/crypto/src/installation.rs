//! Installation secrets: the secrets that belong to the installation rather than to one
//! practice — users' TOTP secrets and the lookup-tag key (keyed hashes of invited email
//! addresses) — sealed under the **installation data key**, under the same key provider as
//! every practice's data keys.
//!
//! # Construction
//!
//! The installation data key is the data key of the system practice ([`INSTALLATION`], the
//! nil id that also keeps the installation's security log): a DEK like any practice's,
//! wrapped by the KEK, masked with its practice secret and stored in the wrapped-key table.
//! So `keys rotate-kek` rewraps it with the others ([`Keyring::rewrap_all`]) and `keys
//! retire-kek` refuses while it is still on an old KEK version. Each secret is a field
//! ciphertext ([`crate::field`]: `01 ‖ dek_version u32be ‖ nonce ‖ ciphertext ‖ tag`), so it
//! names the key version that sealed it, bound by its associated data to (installation,
//! purpose, row): a user's TOTP secret to `user_totp.secret_enc` and the user's id, the
//! lookup-tag key to `installation_secret.secret_enc` and its name. A secret copied to another
//! user's row, or read as another purpose, does not open.
//!
//! The installation data key is never rotated, retired or destroyed per practice (those
//! operations refuse it with [`CryptoError::InstallationKey`]): the lookup-tag key it seals
//! must stay stable for as long as invitations keyed by it are pending, and shredding it would
//! silently take every user's authenticator. Rotating the KEK is how it is rotated.
//!
//! # Before this module
//!
//! Versions before it sealed TOTP secrets with a second key file, `secrets/identity.key`
//! (`01 ‖ nonce ‖ AES-256-GCM(key, aad = "user_totp.secret_sealed:" ‖ user id)`), and derived
//! the lookup-tag key from it (HKDF-SHA256, info [`LEGACY_LOOKUP_TAG_INFO`]).
//! [`LegacyIdentityKey`] reads that file for the one-time migration only: it opens, never
//! seals, and the migration imports the derived lookup-tag key unchanged (so invitations sent
//! before it are still found) and re-seals every TOTP secret.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use crypto::{InstallationSecret, Keyring, LocalKeyProvider, MemoryKeyStore};
//! use domain::{SystemClock, UserId};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let provider = LocalKeyProvider::open(dir.path().join("keys")).await?;
//! let keyring = Keyring::new(Arc::new(provider), Arc::new(MemoryKeyStore::new()), Arc::new(SystemClock));
//! let user = UserId::new();
//! let sealed = keyring.seal_installation_secret(InstallationSecret::Totp(user), b"20 bytes of secret..").await?;
//! assert_eq!(crypto::field_dek_version(&sealed)?.get(), 1);
//! let opened = keyring.open_installation_secret(InstallationSecret::Totp(user), &sealed).await?;
//! assert_eq!(opened.expose_secret().as_slice(), b"20 bytes of secret..");
//! // Another user's row does not open it.
//! assert!(keyring.open_installation_secret(InstallationSecret::Totp(UserId::new()), &sealed).await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use aws_lc_rs::{hkdf, hmac, rand};
use domain::{PracticeId, UserId};

use crate::error::{CryptoError, Result};
use crate::field::{FieldContext, decrypt_field, encrypt_field};
use crate::keyring::Keyring;
use crate::keys::{DekVersion, aes_key, expand_32};
use crate::secret::Secret;

/// The practice whose data key is the installation data key: the system practice.
pub const INSTALLATION: PracticeId = PracticeId::SYSTEM;

/// Length of the lookup-tag key and of a lookup tag (HMAC-SHA256).
pub const LOOKUP_KEY_LEN: usize = 32;

/// An installation secret: what it is for and the row it belongs to, bound into its
/// associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallationSecret {
    /// A user's TOTP secret (RFC 6238), stored in `user_totp.secret_enc` of that user.
    Totp(UserId),
    /// The lookup-tag key ([`LookupKey`]), stored in `installation_secret.secret_enc` under
    /// [`InstallationSecret::LOOKUP_KEY_NAME`].
    LookupKey,
    /// The VAPID private key (RFC 8292, a P-256 scalar) the outbox signs Web Push requests
    /// with, stored in `installation_secret.secret_enc` under
    /// [`InstallationSecret::VAPID_KEY_NAME`].
    VapidKey,
}

impl InstallationSecret {
    /// The `installation_secret.name` of the lookup-tag key.
    pub const LOOKUP_KEY_NAME: &'static str = "lookup_tag_key";

    /// The `installation_secret.name` of the VAPID private key.
    pub const VAPID_KEY_NAME: &'static str = "vapid_private_key";

    /// (table, column, row) of the secret's field context.
    fn place(self) -> (&'static str, &'static str, Vec<u8>) {
        match self {
            Self::Totp(user) => (
                "user_totp",
                "secret_enc",
                user.as_uuid().as_bytes().to_vec(),
            ),
            Self::LookupKey => (
                "installation_secret",
                "secret_enc",
                Self::LOOKUP_KEY_NAME.as_bytes().to_vec(),
            ),
            Self::VapidKey => (
                "installation_secret",
                "secret_enc",
                Self::VAPID_KEY_NAME.as_bytes().to_vec(),
            ),
        }
    }
}

impl Keyring {
    /// Creates the installation data key if there is none yet; returns its active version.
    /// Idempotent and race-safe, like [`Keyring::ensure_practice_keys`].
    pub async fn ensure_installation_key(&self) -> Result<DekVersion> {
        self.ensure_practice_keys(INSTALLATION).await
    }

    /// Seals an installation secret with the installation data key (created on first use),
    /// bound to `what`. Decrypts nothing; audits nothing.
    pub async fn seal_installation_secret(
        &self,
        what: InstallationSecret,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let keys = match self.keys(INSTALLATION).await {
            Err(CryptoError::NoDataKey { .. }) => {
                self.ensure_installation_key().await?;
                self.keys(INSTALLATION).await?
            }
            other => other?,
        };
        let (table, column, row) = what.place();
        encrypt_field(
            keys.active(),
            &FieldContext::new(INSTALLATION, table, column, &row),
            plaintext,
        )
    }

    /// Opens an installation secret sealed for `what` by [`Keyring::seal_installation_secret`]
    /// (any live version of the installation data key). [`CryptoError::Decrypt`] when it was
    /// sealed for another purpose or row, or altered.
    pub async fn open_installation_secret(
        &self,
        what: InstallationSecret,
        ciphertext: &[u8],
    ) -> Result<Secret<Vec<u8>>> {
        let version = crate::field::field_dek_version(ciphertext)?;
        let keys = self.keys_including(INSTALLATION, version).await?;
        let (table, column, row) = what.place();
        decrypt_field(
            &keys,
            &FieldContext::new(INSTALLATION, table, column, &row),
            ciphertext,
        )
        .map(Secret::new)
    }
}

/// What a lookup tag is of. The label is part of the HMAC input, so a tag of one kind never
/// equals a tag of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    /// The normalized email address an invitation is addressed to.
    InvitationEmail,
}

impl LookupKind {
    const fn label(self) -> &'static [u8] {
        match self {
            LookupKind::InvitationEmail => b"invitation-email\0",
        }
    }
}

/// The lookup-tag key: keyed hashes that let the database find rows by a value it never
/// stores (an invited email address), installation-wide. A tag reveals only that two rows
/// name the same value. The key itself is an installation secret
/// ([`InstallationSecret::LookupKey`]); `Debug` prints nothing of it.
pub struct LookupKey {
    key: hmac::Key,
}

impl std::fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupKey(***)")
    }
}

impl LookupKey {
    /// The key from its [`LOOKUP_KEY_LEN`] bytes (an opened installation secret).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != LOOKUP_KEY_LEN {
            return Err(CryptoError::InvalidInput("a lookup-tag key is 32 bytes"));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// Fresh key bytes from the OS random source, to seal and store (a new installation).
    pub fn generate_material() -> Result<Secret<[u8; LOOKUP_KEY_LEN]>> {
        let mut m = Secret::new([0u8; LOOKUP_KEY_LEN]);
        rand::fill(m.expose_secret_mut())
            .map_err(|_| CryptoError::Internal("random source failed"))?;
        Ok(m)
    }

    /// The lookup tag of `value` (already normalized by the caller):
    /// `HMAC-SHA256(lookup key, kind label ‖ value)`. Deterministic for one installation.
    #[must_use]
    pub fn tag(&self, kind: LookupKind, value: &str) -> [u8; LOOKUP_KEY_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(kind.label());
        ctx.update(value.as_bytes());
        let mut out = [0_u8; LOOKUP_KEY_LEN];
        for (o, b) in out.iter_mut().zip(ctx.sign().as_ref()) {
            *o = *b;
        }
        out
    }
}

/// HKDF info under which versions before the installation data key derived the lookup-tag key
/// from `secrets/identity.key`.
pub const LEGACY_LOOKUP_TAG_INFO: &[u8] = b"chartroom identity lookup-tag/hmac-sha256 v1";

/// The format byte of a secret sealed by `secrets/identity.key`.
const LEGACY_FORMAT: u8 = 1;
/// The AES-GCM tag length.
const TAG_LEN: usize = 16;

/// The retired identity key (`secrets/identity.key`, 32 bytes), read only to migrate what it
/// sealed (see the module docs). It opens; it never seals. `Debug` prints nothing of it.
pub struct LegacyIdentityKey {
    key: LessSafeKey,
    lookup: Secret<[u8; LOOKUP_KEY_LEN]>,
}

impl std::fmt::Debug for LegacyIdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LegacyIdentityKey(***)")
    }
}

impl LegacyIdentityKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key = Secret::new(*bytes);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(key.expose_secret());
        Ok(Self {
            key: aes_key(&key)?,
            lookup: expand_32(&prk, &[LEGACY_LOOKUP_TAG_INFO])?,
        })
    }

    /// Reads the key file at `path`; `None` when there is none (a new installation, or the
    /// migration is done and removed it).
    pub fn read(path: &Path) -> Result<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => Secret::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CryptoError::KeyFileIo {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let key: &[u8; 32] = bytes.expose_secret().as_slice().try_into().map_err(|_| {
            CryptoError::KeyFileFormat {
                path: path.to_owned(),
                reason: "expected 32 bytes",
            }
        })?;
        Self::from_bytes(key).map(Some)
    }

    /// Deletes the key file at `path` (once nothing sealed by it is left). Idempotent.
    pub fn remove(path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CryptoError::KeyFileIo {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Opens a TOTP secret it sealed for `user`. [`CryptoError::Decrypt`] when it was sealed
    /// for another user, by another key, or altered.
    pub fn open_totp(&self, user: UserId, sealed: &[u8]) -> Result<Secret<Vec<u8>>> {
        let (&format, rest) = sealed.split_first().ok_or(CryptoError::Truncated {
            len: 0,
            min: (1 + NONCE_LEN + TAG_LEN) as u64,
        })?;
        if format != LEGACY_FORMAT {
            return Err(CryptoError::UnknownFormat {
                what: "identity-key",
                found: format,
                supported: LEGACY_FORMAT,
            });
        }
        let (nonce, body) = rest
            .split_at_checked(NONCE_LEN)
            .filter(|(_, body)| body.len() >= TAG_LEN)
            .ok_or(CryptoError::Truncated {
                len: sealed.len() as u64,
                min: (1 + NONCE_LEN + TAG_LEN) as u64,
            })?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;
        let mut aad = b"user_totp.secret_sealed:".to_vec();
        aad.extend_from_slice(user.as_uuid().as_bytes());
        let mut buf = Secret::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), buf.expose_secret_mut())
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        buf.expose_secret_mut().truncate(len);
        Ok(buf)
    }

    /// The lookup-tag key it derived, to import as the installation's
    /// ([`InstallationSecret::LookupKey`]) so tags made before the migration still match.
    #[must_use]
    pub fn lookup_key_material(&self) -> &[u8; LOOKUP_KEY_LEN] {
        self.lookup.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::tests::fixture;

    // issue 15.5
    #[tokio::test]
    async fn installation_secrets_are_bound_to_purpose_and_row() {
        let f = fixture().await;
        let (ada, bea) = (UserId::new(), UserId::new());
        let sealed = f
            .keyring
            .seal_installation_secret(InstallationSecret::Totp(ada), b"JBSWY3DPEHPK3PXP")
            .await
            .unwrap();
        assert_eq!(
            crate::field_dek_version(&sealed).unwrap(),
            DekVersion::FIRST
        );
        let opened = f
            .keyring
            .open_installation_secret(InstallationSecret::Totp(ada), &sealed)
            .await
            .unwrap();
        assert_eq!(opened.expose_secret().as_slice(), b"JBSWY3DPEHPK3PXP");
        for other in [InstallationSecret::Totp(bea), InstallationSecret::LookupKey] {
            assert!(matches!(
                f.keyring.open_installation_secret(other, &sealed).await,
                Err(CryptoError::Decrypt)
            ));
        }
        // A practice field context with the same bytes does not open it either.
        let p = PracticeId::new();
        f.keyring.ensure_practice_keys(p).await.unwrap();
        let row = ada.as_uuid().as_bytes().to_vec();
        assert!(
            f.keyring
                .decrypt_field(
                    &FieldContext::new(p, "user_totp", "secret_enc", &row),
                    &sealed
                )
                .await
                .is_err()
        );
    }

    // issue 15.5
    #[tokio::test]
    async fn the_installation_key_is_rewrapped_with_the_kek_and_never_rotated_alone() {
        let f = fixture().await;
        let user = UserId::new();
        let sealed = f
            .keyring
            .seal_installation_secret(InstallationSecret::Totp(user), b"secret")
            .await
            .unwrap();
        let k2 = f.keyring.rotate_kek().await.unwrap();
        let report = f
            .keyring
            .rewrap_all(crate::RewrapScope::Stale)
            .await
            .unwrap();
        assert_eq!(report.rewrapped, 1, "the installation key is a wrapped key");
        f.keyring
            .retire_kek_versions_below(k2.version)
            .await
            .unwrap();
        f.keyring.clear_cache();
        let opened = f
            .keyring
            .open_installation_secret(InstallationSecret::Totp(user), &sealed)
            .await
            .unwrap();
        assert_eq!(opened.expose_secret().as_slice(), b"secret");

        for refused in [
            f.keyring.rotate_data_key(INSTALLATION).await.map(|_| ()),
            f.keyring
                .retire_data_key(INSTALLATION, DekVersion::FIRST)
                .await,
            f.keyring.destroy_practice_keys(INSTALLATION).await,
        ] {
            let err = refused.unwrap_err();
            assert!(matches!(err, CryptoError::InstallationKey { .. }), "{err}");
            assert_eq!(err.code(), "CRYPTO-0009");
        }
        assert!(
            f.keyring
                .open_installation_secret(InstallationSecret::Totp(user), &sealed)
                .await
                .is_ok()
        );
    }

    #[test]
    fn lookup_tags_are_keyed_deterministic_and_separated_by_kind() {
        let a = LookupKey::generate_material().unwrap();
        let k = LookupKey::from_bytes(a.expose_secret()).unwrap();
        let again = LookupKey::from_bytes(a.expose_secret()).unwrap();
        let t = k.tag(LookupKind::InvitationEmail, "ada@example.com");
        assert_eq!(t, again.tag(LookupKind::InvitationEmail, "ada@example.com"));
        assert_ne!(t, k.tag(LookupKind::InvitationEmail, "bea@example.com"));
        let b = LookupKey::generate_material().unwrap();
        assert_ne!(
            t,
            LookupKey::from_bytes(b.expose_secret())
                .unwrap()
                .tag(LookupKind::InvitationEmail, "ada@example.com")
        );
        assert!(LookupKey::from_bytes(&[0u8; 31]).is_err());
    }

    #[test]
    fn the_legacy_key_file_is_read_once_present_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        assert!(LegacyIdentityKey::read(&path).unwrap().is_none());
        std::fs::write(&path, [3u8; 31]).unwrap();
        assert!(matches!(
            LegacyIdentityKey::read(&path),
            Err(CryptoError::KeyFileFormat { .. })
        ));
        std::fs::write(&path, [3u8; 32]).unwrap();
        assert!(LegacyIdentityKey::read(&path).unwrap().is_some());
        LegacyIdentityKey::remove(&path).unwrap();
        LegacyIdentityKey::remove(&path).unwrap();
        assert!(!path.exists());
    }
}
