//! Practice secrets: the per-practice share of every data key that lives outside the database
//! and outside every backup, so crypto-shredding also reaches backups taken earlier.
//!
//! # Why
//!
//! A practice's data keys are stored wrapped by the KEK in the database, and the database is in
//! every backup. Destroying the wrapped keys in the live database therefore does not make an
//! *earlier backup* unreadable: restored next to the same KEK, its wrapped keys would unwrap
//! again. Something each practice's keys depend on must live apart from the data and must be
//! destroyable per practice — that is the practice secret.
//!
//! # Construction
//!
//! Each practice has one 256-bit secret `S` (random, created with its first data key). A data
//! key `K` of version `v` is stored as `wrap_KEK(K ⊕ M)` where the mask
//! `M = HKDF-SHA256(ikm = S, salt = "chartroom/dek-mask/v1", info = practice UUID ‖ v)`.
//! Unwrapping needs both the KEK (at the key provider) and `S` (in the secret store);
//! the wrapped row alone, or a backup of it, is a one-time-pad-masked key without `S`.
//! Shredding deletes `S` together with the wrapped keys; afterwards no copy of the database,
//! live or restored, yields the key.
//!
//! The secret store holds raw secrets (they are useless without the KEK-wrapped rows and the
//! KEK), in a 0700 directory of 0600 files named by practice id: nothing about patients. The
//! directory is part of the key material, not of the data: back it up with the KEK, never in
//! the data backups (`chartroom backup` leaves it out), and a backup of it taken before a
//! shredding defeats the shredding.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::{hkdf, rand};
use domain::PracticeId;

use crate::error::{CryptoError, Result};
use crate::keys::{DEK_LEN, DekMaterial, DekVersion, expand_32};
use crate::secret::Secret;

const MASK_SALT: &[u8] = b"chartroom/dek-mask/v1";

/// Where practice secrets live. Implementations must make [`PracticeSecretStore::destroy`]
/// final (no later `get` returns the old secret) and `get_or_create` race-safe (two callers
/// get the same secret).
#[async_trait]
pub trait PracticeSecretStore: Send + Sync + fmt::Debug {
    /// The practice's secret, or `None` if it has none (never created, or destroyed).
    async fn get(&self, practice: PracticeId) -> Result<Option<Secret<[u8; 32]>>>;
    /// The practice's secret, created if missing.
    async fn get_or_create(&self, practice: PracticeId) -> Result<Secret<[u8; 32]>>;
    /// Deletes the practice's secret for good. Idempotent.
    async fn destroy(&self, practice: PracticeId) -> Result<()>;
}

/// Practice secrets as files in a local directory (`<data dir>/secrets/practice-keys` by
/// default). Several servers sharing one database must share this directory too (a shared
/// filesystem), as they share the KEK.
#[derive(Debug, Clone)]
pub struct DirSecretStore {
    dir: PathBuf,
}

impl DirSecretStore {
    /// Opens (creating with mode 0700 if missing) the directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Self { dir })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, practice: PracticeId) -> PathBuf {
        self.dir
            .join(format!("{}.key", practice.as_uuid().as_simple()))
    }
}

fn read_secret(path: &Path) -> Result<Option<Secret<[u8; 32]>>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Secret::new(bytes);
            let mut out = Secret::new([0u8; 32]);
            if bytes.expose_secret().len() != 32 {
                return Err(CryptoError::Internal("a practice secret file is damaged"));
            }
            out.expose_secret_mut()
                .copy_from_slice(bytes.expose_secret());
            Ok(Some(out))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl PracticeSecretStore for DirSecretStore {
    async fn get(&self, practice: PracticeId) -> Result<Option<Secret<[u8; 32]>>> {
        let path = self.path(practice);
        tokio::task::spawn_blocking(move || read_secret(&path))
            .await
            .map_err(|_| CryptoError::Internal("secret store task failed"))?
    }

    async fn get_or_create(&self, practice: PracticeId) -> Result<Secret<[u8; 32]>> {
        let path = self.path(practice);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(s) = read_secret(&path)? {
                return Ok(s);
            }
            let mut secret = Secret::new([0u8; 32]);
            rand::fill(secret.expose_secret_mut())
                .map_err(|_| CryptoError::Internal("random source failed"))?;
            // Written to a temporary name and linked into place: `hard_link` fails if the
            // name exists, so of two racing creators exactly one wins and the other reads it.
            let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().as_simple()));
            {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(secret.expose_secret())?;
                f.sync_all()?;
            }
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    std::fs::File::open(&dir)?.sync_all()?;
                    Ok(secret)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret(&path)?
                    .ok_or(CryptoError::Internal(
                        "a practice secret vanished while created",
                    )),
                Err(e) => Err(e.into()),
            }
        })
        .await
        .map_err(|_| CryptoError::Internal("secret store task failed"))?
    }

    async fn destroy(&self, practice: PracticeId) -> Result<()> {
        let path = self.path(practice);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            // Overwrite before unlinking (best effort on journaling / copy-on-write
            // filesystems; the unlink is what counts).
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
                let _ = f.write_all(&[0u8; 32]);
                let _ = f.sync_all();
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            std::fs::File::open(&dir)?.sync_all()?;
            Ok(())
        })
        .await
        .map_err(|_| CryptoError::Internal("secret store task failed"))?
    }
}

/// Applies (or removes: XOR is its own inverse) the practice-secret mask of data key version
/// `version` to `material`.
pub(crate) fn apply_mask(
    secret: &Secret<[u8; 32]>,
    practice: PracticeId,
    version: DekVersion,
    material: &DekMaterial,
) -> Result<DekMaterial> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, MASK_SALT).extract(secret.expose_secret());
    let mask = expand_32(
        &prk,
        &[practice.as_uuid().as_bytes(), &version.get().to_be_bytes()],
    )?;
    let mut out = Secret::new([0u8; DEK_LEN]);
    for ((o, m), k) in out
        .expose_secret_mut()
        .iter_mut()
        .zip(mask.expose_secret())
        .zip(material.expose_secret())
    {
        *o = m ^ k;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn practice() -> PracticeId {
        PracticeId::from_uuid(uuid::Uuid::new_v4())
    }

    #[tokio::test]
    async fn create_is_stable_and_destroy_is_final() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirSecretStore::open(dir.path().join("p")).expect("open");
        let p = practice();
        assert!(store.get(p).await.expect("get").is_none());
        let a = store.get_or_create(p).await.expect("create");
        let b = store.get_or_create(p).await.expect("again");
        assert_eq!(a.expose_secret(), b.expose_secret());
        let meta = std::fs::metadata(store.path(p)).expect("file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        store.destroy(p).await.expect("destroy");
        assert!(store.get(p).await.expect("get").is_none());
        store.destroy(p).await.expect("idempotent");
        let c = store.get_or_create(p).await.expect("new one");
        assert_ne!(a.expose_secret(), c.expose_secret());
    }

    #[test]
    fn mask_round_trips_and_depends_on_everything() {
        let s = Secret::new([7u8; 32]);
        let p = practice();
        let k = Secret::new([42u8; 32]);
        let masked = apply_mask(&s, p, DekVersion::FIRST, &k).expect("mask");
        assert_ne!(masked.expose_secret(), k.expose_secret());
        let back = apply_mask(&s, p, DekVersion::FIRST, &masked).expect("unmask");
        assert_eq!(back.expose_secret(), k.expose_secret());
        let v2 = DekVersion::new(2).expect("v2");
        let other_version = apply_mask(&s, p, v2, &k).expect("mask");
        assert_ne!(other_version.expose_secret(), masked.expose_secret());
        let other_practice = apply_mask(&s, practice(), DekVersion::FIRST, &k).expect("mask");
        assert_ne!(other_practice.expose_secret(), masked.expose_secret());
        let other_secret =
            apply_mask(&Secret::new([8u8; 32]), p, DekVersion::FIRST, &k).expect("m");
        assert_ne!(other_secret.expose_secret(), masked.expose_secret());
    }
}
