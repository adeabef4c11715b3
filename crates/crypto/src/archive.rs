//! Archive keys: the key of one backup archive, wrapped by the KEK.
//!
//! Each backup archive is encrypted with its own random 256-bit key in the streaming format of
//! [`crate::stream`] (segments, counters, last-segment flag: a truncated, reordered or
//! modified archive fails to decrypt). The key is wrapped by the installation's KEK through the
//! [`KeyProvider`] (bound to the nil "system" practice) and the wrapping travels in the
//! archive's header ([`ArchiveKeyHeader`]); the stream is bound to the archive id, so a header
//! moved to another archive does not open it.
//!
//! Opening an archive needs the KEK. Reading the *records* inside it needs more: patient and
//! note fields inside the database dump stay encrypted under the practices' data keys, which
//! need their practice secrets ([`crate::practice_secret`]) — kept out of every archive, so a
//! practice shredded after the archive was written stays unreadable when it is restored.

use domain::PracticeId;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Result;
use crate::ids::BlobId;
use crate::keys::{DataKey, DekVersion, PracticeKeys, generate_material};
use crate::provider::{KekRef, KeyProvider, WrapContext};
use crate::stream::{ObjectContext, decrypt_stream, encrypt_stream};

/// What an archive's header says about its key (stored in the clear, authenticated by use).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveKeyHeader {
    /// The archive's id (bound into its stream key).
    pub archive_id: BlobId,
    /// The KEK version that wrapped the archive key.
    pub kek: KekRef,
    /// The wrapped archive key (provider ciphertext).
    #[serde(with = "b64")]
    pub wrapped: Vec<u8>,
}

/// The unwrapped key of one archive. Zeroized on drop.
#[derive(Debug)]
pub struct ArchiveKey {
    id: BlobId,
    keys: PracticeKeys,
}

fn wrap_context() -> WrapContext {
    WrapContext {
        practice: PracticeId::SYSTEM,
        dek_version: DekVersion::FIRST,
    }
}

impl ArchiveKey {
    /// A new archive key under a new archive id, wrapped by the provider's current KEK.
    pub async fn generate(provider: &dyn KeyProvider) -> Result<(ArchiveKeyHeader, Self)> {
        let id = BlobId::random();
        let material = generate_material()?;
        let wrapped = provider.wrap(&wrap_context(), &material).await?;
        let key = DataKey::derive(PracticeId::SYSTEM, DekVersion::FIRST, &material)?;
        let header = ArchiveKeyHeader {
            archive_id: id,
            kek: wrapped.kek,
            wrapped: wrapped.bytes,
        };
        Ok((header, Self::from_key(id, key)?))
    }

    /// Unwraps the key named by an archive header. Fails with
    /// [`crate::CryptoError::KekUnwrap`] / [`crate::CryptoError::UnknownKek`] when this
    /// installation's KEK is not the one the archive was written with.
    pub async fn open(provider: &dyn KeyProvider, header: &ArchiveKeyHeader) -> Result<Self> {
        let material = provider
            .unwrap(&wrap_context(), &header.kek, &header.wrapped)
            .await?;
        let key = DataKey::derive(PracticeId::SYSTEM, DekVersion::FIRST, &material)?;
        Self::from_key(header.archive_id, key)
    }

    fn from_key(id: BlobId, key: DataKey) -> Result<Self> {
        let mut map = std::collections::BTreeMap::new();
        map.insert(DekVersion::FIRST, key);
        Ok(Self {
            id,
            keys: PracticeKeys::from_keys(PracticeId::SYSTEM, map)?,
        })
    }

    fn context(&self) -> ObjectContext {
        ObjectContext {
            practice: PracticeId::SYSTEM,
            object: self.id,
        }
    }

    /// Encrypts `reader` into `writer` (streaming, flat memory); returns the plaintext length.
    pub async fn encrypt<R, W>(&self, reader: R, writer: &mut W) -> Result<u64>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        encrypt_stream(self.keys.active(), &self.context(), reader, writer).await
    }

    /// Decrypts an archive body from `reader` into `writer`, verifying every segment and the
    /// end. On error the writer may hold a verified prefix, which the caller must discard.
    pub async fn decrypt<R, W>(&self, reader: R, writer: &mut W) -> Result<u64>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        decrypt_stream(&self.keys, &self.context(), reader, writer).await
    }
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CryptoError;
    use crate::provider::LocalKeyProvider;

    #[tokio::test]
    async fn round_trip_and_wrong_kek() {
        let dir = tempfile::tempdir().expect("tempdir");
        let provider = LocalKeyProvider::open(dir.path().join("a"))
            .await
            .expect("kek");
        let (header, key) = ArchiveKey::generate(&provider).await.expect("generate");
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = Vec::new();
        key.encrypt(&plain[..], &mut sealed).await.expect("encrypt");
        assert!(!sealed.windows(64).any(|w| w == &plain[1000..1064]));

        let json = serde_json::to_string(&header).expect("json");
        let header: ArchiveKeyHeader = serde_json::from_str(&json).expect("parse");
        let again = ArchiveKey::open(&provider, &header).await.expect("open");
        let mut out = Vec::new();
        again.decrypt(&sealed[..], &mut out).await.expect("decrypt");
        assert_eq!(out, plain);

        // Another installation's KEK: a clear error, never garbage.
        let other = LocalKeyProvider::open(dir.path().join("b"))
            .await
            .expect("kek");
        assert!(matches!(
            ArchiveKey::open(&other, &header).await,
            Err(CryptoError::KekUnwrap { .. } | CryptoError::UnknownKek { .. })
        ));

        // One flipped byte, or a header moved to another archive id, fails.
        let mut bad = sealed.clone();
        bad[sealed.len() / 2] ^= 1;
        assert!(again.decrypt(&bad[..], &mut Vec::new()).await.is_err());
        let moved = ArchiveKeyHeader {
            archive_id: BlobId::random(),
            ..header
        };
        let moved = ArchiveKey::open(&provider, &moved).await.expect("unwraps");
        assert!(moved.decrypt(&sealed[..], &mut Vec::new()).await.is_err());
        // A truncated archive fails.
        assert!(
            again
                .decrypt(&sealed[..sealed.len() - 100], &mut Vec::new())
                .await
                .is_err()
        );
    }
}
