//! Data keys (DEKs) and the sub-keys derived from them.
//!
//! A practice's data key is 32 random bytes. It is never used directly: on unwrap, HKDF-SHA256
//! (RFC 5869) derives three independent sub-keys from it, each bound to the practice id and the
//! DEK version:
//!
//! | sub-key | HKDF info label | used for |
//! |---|---|---|
//! | field key | `field/aes-256-gcm` | AES-256-GCM for [`crate::field`] ciphertexts |
//! | index key | `blind-index/hmac-sha256` | HMAC-SHA256 blind index tags ([`crate::blind_index`]) |
//! | blob root | `blob/root` | input key for each blob's own key ([`crate::stream`]) |
//!
//! Extract salt: `chartroom/dek-subkeys/v1`; info: label ‖ practice UUID (16 bytes) ‖ DEK
//! version (u32, big-endian).
//!
//! The AES and HMAC keys live inside AWS-LC contexts, which AWS-LC wipes when they are freed
//! (`OPENSSL_free` and `HMAC_CTX_cleanup` call `OPENSSL_cleanse`); the blob root and the raw
//! DEK live in [`Secret`]s, which zeroize on drop.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::{aead, hkdf, hmac, rand};
use domain::PracticeId;
use serde::{Deserialize, Serialize};

use crate::error::{CryptoError, Result};
use crate::secret::Secret;

/// Length of a data key: 256 bits, for AES-256 (FIPS 197 §5) and as HKDF input keying material.
pub const DEK_LEN: usize = 32;

/// Raw data-key material, as the key providers wrap and unwrap it.
pub type DekMaterial = Secret<[u8; DEK_LEN]>;

/// Salt of the HKDF-Extract step that turns a DEK into sub-keys (RFC 5869 §2.2).
const SUBKEY_SALT: &[u8] = b"chartroom/dek-subkeys/v1";
const LABEL_FIELD: &[u8] = b"field/aes-256-gcm";
const LABEL_INDEX: &[u8] = b"blind-index/hmac-sha256";
const LABEL_BLOB: &[u8] = b"blob/root";

/// The version of one of a practice's data keys. Versions start at 1 and only grow; each
/// ciphertext names the version that sealed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct DekVersion(u32);

impl DekVersion {
    /// The first version of every practice's key.
    pub const FIRST: Self = Self(1);

    /// A version number read back from storage. Zero is not a version.
    pub const fn new(version: u32) -> Result<Self> {
        if version == 0 {
            Err(CryptoError::InvalidInput("data key versions start at 1"))
        } else {
            Ok(Self(version))
        }
    }

    /// The version number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The version after this one.
    pub(crate) fn next(self) -> Result<Self> {
        self.0
            .checked_add(1)
            .map(Self)
            .ok_or(CryptoError::InvalidInput(
                "data key version space exhausted",
            ))
    }
}

impl TryFrom<u32> for DekVersion {
    type Error = CryptoError;
    fn try_from(v: u32) -> Result<Self> {
        Self::new(v)
    }
}

impl From<DekVersion> for u32 {
    fn from(v: DekVersion) -> Self {
        v.0
    }
}

impl fmt::Display for DekVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Fresh key material from the OS random source (via AWS-LC).
pub(crate) fn generate_material() -> Result<DekMaterial> {
    let mut m = Secret::new([0u8; DEK_LEN]);
    rand::fill(m.expose_secret_mut()).map_err(|_| CryptoError::Internal("random source failed"))?;
    Ok(m)
}

/// An HKDF output length (RFC 5869 §2.3 `L`).
pub(crate) struct OkmLen(pub(crate) usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand into a 32-byte secret.
pub(crate) fn expand_32(prk: &hkdf::Prk, info: &[&[u8]]) -> Result<Secret<[u8; 32]>> {
    let mut out = Secret::new([0u8; 32]);
    prk.expand(info, OkmLen(32))
        .and_then(|okm| okm.fill(out.expose_secret_mut()))
        .map_err(|_| CryptoError::Internal("HKDF expand failed"))?;
    Ok(out)
}

/// An AES-256-GCM key from 32 secret bytes.
pub(crate) fn aes_key(bytes: &Secret<[u8; 32]>) -> Result<aead::LessSafeKey> {
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, bytes.expose_secret())
        .map_err(|_| CryptoError::Internal("AES-256-GCM key setup failed"))?;
    Ok(aead::LessSafeKey::new(unbound))
}

/// One unwrapped version of a practice's data key, with its derived sub-keys.
///
/// Obtained from a [`crate::Keyring`]; dropping it wipes the key material.
pub struct DataKey {
    practice: PracticeId,
    version: DekVersion,
    field: aead::LessSafeKey,
    index: hmac::Key,
    blob_root: Secret<[u8; 32]>,
}

impl DataKey {
    /// Derives the sub-keys of `material` for `practice`, version `version`.
    pub(crate) fn derive(
        practice: PracticeId,
        version: DekVersion,
        material: &DekMaterial,
    ) -> Result<Self> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SUBKEY_SALT).extract(material.expose_secret());
        let pid = practice.as_uuid();
        let v = version.get().to_be_bytes();
        let field = expand_32(&prk, &[LABEL_FIELD, pid.as_bytes(), &v])?;
        let index = expand_32(&prk, &[LABEL_INDEX, pid.as_bytes(), &v])?;
        let blob_root = expand_32(&prk, &[LABEL_BLOB, pid.as_bytes(), &v])?;
        Ok(Self {
            practice,
            version,
            field: aes_key(&field)?,
            index: hmac::Key::new(hmac::HMAC_SHA256, index.expose_secret()),
            blob_root,
        })
    }

    /// The practice this key belongs to.
    #[must_use]
    pub const fn practice(&self) -> PracticeId {
        self.practice
    }

    /// Its version.
    #[must_use]
    pub const fn version(&self) -> DekVersion {
        self.version
    }

    pub(crate) const fn field_key(&self) -> &aead::LessSafeKey {
        &self.field
    }

    pub(crate) const fn index_key(&self) -> &hmac::Key {
        &self.index
    }

    pub(crate) const fn blob_root(&self) -> &Secret<[u8; 32]> {
        &self.blob_root
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("practice", &self.practice)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// All live versions of one practice's data key: the active one (used for new ciphertexts)
/// and older ones (still readable until retired).
pub struct PracticeKeys {
    practice: PracticeId,
    active: DataKey,
    older: BTreeMap<DekVersion, DataKey>,
}

impl PracticeKeys {
    /// Builds the set from unwrapped keys; the highest version becomes the active one.
    pub(crate) fn from_keys(
        practice: PracticeId,
        mut keys: BTreeMap<DekVersion, DataKey>,
    ) -> Result<Self> {
        let Some((_, active)) = keys.pop_last() else {
            return Err(CryptoError::NoDataKey { practice });
        };
        if active.practice != practice || keys.values().any(|k| k.practice != practice) {
            return Err(CryptoError::Internal("key set mixes practices"));
        }
        Ok(Self {
            practice,
            active,
            older: keys,
        })
    }

    /// The practice.
    #[must_use]
    pub const fn practice(&self) -> PracticeId {
        self.practice
    }

    /// The active key: every new ciphertext and blind index tag uses it.
    #[must_use]
    pub const fn active(&self) -> &DataKey {
        &self.active
    }

    /// The key of `version`, if it is live.
    pub fn get(&self, version: DekVersion) -> Result<&DataKey> {
        if version == self.active.version {
            return Ok(&self.active);
        }
        self.older.get(&version).ok_or(CryptoError::UnknownDataKey {
            practice: self.practice,
            version,
        })
    }

    /// Whether `version` is live in this set.
    #[must_use]
    pub fn contains(&self, version: DekVersion) -> bool {
        version == self.active.version || self.older.contains_key(&version)
    }

    /// Every live key, oldest first (the active key last).
    pub fn all(&self) -> impl Iterator<Item = &DataKey> {
        self.older.values().chain(std::iter::once(&self.active))
    }
}

impl fmt::Debug for PracticeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PracticeKeys")
            .field("practice", &self.practice)
            .field("active", &self.active.version)
            .field("older", &self.older.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A practice key set with versions `1..=versions`, from fresh random material.
    pub(crate) fn test_keys(practice: PracticeId, versions: u32) -> PracticeKeys {
        let mut map = BTreeMap::new();
        for v in 1..=versions {
            let v = DekVersion::new(v).unwrap();
            let m = generate_material().unwrap();
            map.insert(v, DataKey::derive(practice, v, &m).unwrap());
        }
        PracticeKeys::from_keys(practice, map).unwrap()
    }

    #[test]
    fn version_zero_is_refused() {
        assert!(DekVersion::new(0).is_err());
        assert_eq!(DekVersion::new(3).unwrap().get(), 3);
        assert!(serde_json::from_str::<DekVersion>("0").is_err());
        assert_eq!(serde_json::to_string(&DekVersion::FIRST).unwrap(), "1");
    }

    #[test]
    fn active_is_highest_and_older_stay_readable() {
        let p = PracticeId::new();
        let keys = test_keys(p, 3);
        assert_eq!(keys.active().version().get(), 3);
        assert!(keys.get(DekVersion::FIRST).is_ok());
        assert!(matches!(
            keys.get(DekVersion::new(4).unwrap()),
            Err(CryptoError::UnknownDataKey { .. })
        ));
        assert_eq!(keys.all().count(), 3);
        assert!(!format!("{keys:?}").contains("Secret"));
    }
}
