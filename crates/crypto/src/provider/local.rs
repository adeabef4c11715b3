//! The local key provider: KEK versions in a key file on this machine.
//!
//! # Key file
//!
//! `<dir>/kek.key`, mode 0600, in a directory of mode 0700, both owned by the user the server
//! runs as. Created on first use; a file or directory that others can read or write, that
//! another user owns, or that is a symlink is refused (like OpenSSH refuses a private key with
//! loose permissions). The format is text, one item per line:
//!
//! ```text
//! chartroom-kek 1
//! id 0b9c6c1e-3a7f-4f43-9d0e-2f1d7c1b5a10
//! key 1 <32 bytes, standard base64>
//! key 2 <32 bytes, standard base64>
//! ```
//!
//! The highest version wraps new data keys; every listed version unwraps. Rotation appends a
//! version, retirement deletes the lower ones. Updates are written to `kek.key.tmp`
//! (created exclusively, so it doubles as a lock between processes), synced, and renamed over
//! the key file.
//!
//! # Wrapped key format
//!
//! `nonce (12) ‖ AES-256-GCM(KEK version, data key) (32) ‖ tag (16)` with associated data
//! `WrapContext::to_bytes() ‖ KEK id (UUID, 16) ‖ KEK version (u32 big-endian)`.
//!
//! Back the key file up separately from the database: without it, nothing can be decrypted.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
use aws_lc_rs::rand;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;

use super::{KekRef, KeyProvider, WrapContext, Wrapped};
use crate::error::{CryptoError, Result};
use crate::keys::{DEK_LEN, DekMaterial, aes_key, generate_material};
use crate::secret::Secret;

/// The key file's name inside the key directory.
pub const KEY_FILE_NAME: &str = "kek.key";
const TMP_FILE_NAME: &str = "kek.key.tmp";
const MAGIC: &str = "chartroom-kek 1";
/// A key file larger than this is refused unread (thousands of versions fit).
const MAX_FILE_LEN: u64 = 256 * 1024;
const TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = NONCE_LEN + DEK_LEN + TAG_LEN;
/// Permission bits for group and others; none may be set (POSIX `S_IRWXG | S_IRWXO`).
const GROUP_OTHER_BITS: u32 = 0o077;

struct KekFile {
    id: Uuid,
    versions: BTreeMap<u32, Secret<[u8; 32]>>,
}

impl KekFile {
    fn generate() -> Result<Self> {
        let mut versions = BTreeMap::new();
        versions.insert(1, generate_material()?);
        Ok(Self {
            id: Uuid::new_v4(),
            versions,
        })
    }

    fn latest(&self) -> Result<(u32, &Secret<[u8; 32]>)> {
        self.versions
            .last_key_value()
            .map(|(v, k)| (*v, k))
            .ok_or(CryptoError::Internal("key file without versions"))
    }

    fn kek_id(&self) -> String {
        format!("local:{}", self.id)
    }

    fn serialize(&self) -> Secret<String> {
        // Reserve enough up front so the buffer never reallocates (which would leave an
        // unwiped copy of the keys behind).
        let mut s = String::with_capacity(64 + self.versions.len() * 80);
        s.push_str(MAGIC);
        s.push_str("\nid ");
        s.push_str(&self.id.to_string());
        s.push('\n');
        for (v, k) in &self.versions {
            s.push_str("key ");
            s.push_str(&v.to_string());
            s.push(' ');
            STANDARD.encode_string(k.expose_secret(), &mut s);
            s.push('\n');
        }
        Secret::new(s)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |reason| CryptoError::KeyFileFormat {
            path: path.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text"))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        if lines.next().map(str::trim) != Some(MAGIC) {
            return Err(bad("the first line must be `chartroom-kek 1`"));
        }
        let id = lines
            .next()
            .and_then(|l| l.trim().strip_prefix("id "))
            .and_then(|s| Uuid::parse_str(s.trim()).ok())
            .ok_or_else(|| bad("the second line must be `id <uuid>`"))?;
        let mut versions = BTreeMap::new();
        for line in lines {
            let mut parts = line.split_whitespace();
            let (Some("key"), Some(v), Some(b64), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("key lines must read `key <version> <base64>`"));
            };
            let v: u32 = v
                .parse()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| bad("key versions must be whole numbers from 1"))?;
            let mut buf = Secret::new([0u8; 48]);
            let n = STANDARD
                .decode_slice(b64, buf.expose_secret_mut())
                .map_err(|_| bad("a key is not valid base64"))?;
            if n != 32 {
                return Err(bad("a key is not 32 bytes long"));
            }
            let mut key = Secret::new([0u8; 32]);
            for (d, s) in key.expose_secret_mut().iter_mut().zip(buf.expose_secret()) {
                *d = *s;
            }
            if versions.insert(v, key).is_some() {
                return Err(bad("a key version is listed twice"));
            }
        }
        if versions.is_empty() {
            return Err(bad("the file holds no key"));
        }
        Ok(Self { id, versions })
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CryptoError + '_ {
    move |source| CryptoError::KeyFileIo {
        path: path.to_owned(),
        source,
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn check_owner_and_mode(path: &Path, md: &fs::Metadata) -> Result<()> {
    let mode = md.mode() & 0o7777;
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(CryptoError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let me = euid();
    if md.uid() != me {
        return Err(CryptoError::KeyFileUnsafe {
            path: path.to_owned(),
            reason: format!(
                "owned by uid {}, but this process runs as uid {me}",
                md.uid()
            ),
        });
    }
    Ok(())
}

/// Creates the key directory (0700) if needed and checks it.
fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?,
        Err(e) => return Err(io_err(dir)(e)),
        Ok(_) => {}
    }
    let md = fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if !md.is_dir() {
        return Err(CryptoError::KeyFileUnsafe {
            path: dir.to_owned(),
            reason: "is not a directory (symlinks are refused)".into(),
        });
    }
    check_owner_and_mode(dir, &md)
}

fn nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// Reads and checks the key file; `None` if it does not exist.
fn read_key_file(path: &Path) -> Result<Option<KekFile>> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(nofollow())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return Err(CryptoError::KeyFileUnsafe {
                path: path.to_owned(),
                reason: "is a symlink; point the key directory at the real file".into(),
            });
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    // Check the opened file itself (fstat), not the path, so nothing can be swapped in
    // between the check and the read.
    let md = file.metadata().map_err(io_err(path))?;
    if !md.is_file() {
        return Err(CryptoError::KeyFileUnsafe {
            path: path.to_owned(),
            reason: "is not a regular file".into(),
        });
    }
    check_owner_and_mode(path, &md)?;
    if md.len() > MAX_FILE_LEN {
        return Err(CryptoError::KeyFileFormat {
            path: path.to_owned(),
            reason: "larger than 256 KiB",
        });
    }
    let cap = usize::try_from(md.len()).unwrap_or(0).saturating_add(1);
    let mut buf = Secret::new(Vec::with_capacity(cap));
    (&mut file)
        .take(MAX_FILE_LEN)
        .read_to_end(buf.expose_secret_mut())
        .map_err(io_err(path))?;
    KekFile::parse(path, buf.expose_secret()).map(Some)
}

/// `kek.key.tmp`, created exclusively: holds the lock until committed or dropped.
struct UpdateLock {
    dir: PathBuf,
    tmp: PathBuf,
    file: File,
    committed: bool,
}

impl UpdateLock {
    fn acquire(dir: &Path) -> Result<Self> {
        let tmp = dir.join(TMP_FILE_NAME);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nofollow())
            .open(&tmp)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    CryptoError::KeyFileBusy { path: tmp.clone() }
                } else {
                    io_err(&tmp)(e)
                }
            })?;
        Ok(Self {
            dir: dir.to_owned(),
            tmp,
            file,
            committed: false,
        })
    }

    /// Writes `content`, syncs it and renames it over `target`.
    fn commit(mut self, content: &KekFile, target: &Path) -> Result<()> {
        let text = content.serialize();
        self.file
            .write_all(text.expose_secret().as_bytes())
            .and_then(|()| self.file.sync_all())
            .map_err(io_err(&self.tmp))?;
        fs::rename(&self.tmp, target).map_err(io_err(target))?;
        self.committed = true;
        // Make the rename durable (POSIX: a directory entry is durable once its directory is
        // synced).
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }
}

impl Drop for UpdateLock {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn load_or_create(dir: &Path) -> Result<KekFile> {
    ensure_dir(dir)?;
    let path = dir.join(KEY_FILE_NAME);
    if let Some(existing) = read_key_file(&path)? {
        return Ok(existing);
    }
    let lock = UpdateLock::acquire(dir)?;
    // Someone may have created it between our read and the lock.
    if let Some(existing) = read_key_file(&path)? {
        return Ok(existing);
    }
    let fresh = KekFile::generate()?;
    lock.commit(&fresh, &path)?;
    tracing::info!(kek = %fresh.kek_id(), "created a new local key-encryption key file");
    Ok(fresh)
}

fn update(dir: &Path, change: impl FnOnce(&mut KekFile) -> Result<()>) -> Result<KekFile> {
    ensure_dir(dir)?;
    let path = dir.join(KEY_FILE_NAME);
    let lock = UpdateLock::acquire(dir)?;
    let mut file = read_key_file(&path)?.ok_or_else(|| CryptoError::KeyFileFormat {
        path: path.clone(),
        reason: "the key file disappeared",
    })?;
    change(&mut file)?;
    lock.commit(&file, &path)?;
    Ok(file)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| CryptoError::Internal("key file task failed"))?
}

/// KEK versions in a key file on this machine. See the module docs for the file format.
pub struct LocalKeyProvider {
    dir: PathBuf,
    state: RwLock<Arc<KekFile>>,
}

impl std::fmt::Debug for LocalKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.snapshot();
        f.debug_struct("LocalKeyProvider")
            .field("dir", &self.dir)
            .field("kek", &state.kek_id())
            .field("versions", &state.versions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalKeyProvider {
    /// Opens the key file in `dir`, creating the directory (0700) and a first KEK version
    /// (0600) if there is none. Refuses a file or directory with looser permissions, another
    /// owner, or a symlink.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let d = dir.clone();
        let file = blocking(move || load_or_create(&d)).await?;
        Ok(Self {
            dir,
            state: RwLock::new(Arc::new(file)),
        })
    }

    /// The key file's path.
    #[must_use]
    pub fn key_file(&self) -> PathBuf {
        self.dir.join(KEY_FILE_NAME)
    }

    /// This installation's KEK id (`local:<uuid>`).
    #[must_use]
    pub fn kek_id(&self) -> String {
        self.snapshot().kek_id()
    }

    fn snapshot(&self) -> Arc<KekFile> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, file: KekFile) -> Arc<KekFile> {
        let file = Arc::new(file);
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = file.clone();
        file
    }

    /// Re-reads the key file (another process may have rotated or retired a version).
    async fn reload(&self) -> Result<Arc<KekFile>> {
        let d = self.dir.clone();
        let file = blocking(move || {
            ensure_dir(&d)?;
            let path = d.join(KEY_FILE_NAME);
            read_key_file(&path)?.ok_or(CryptoError::KeyFileFormat {
                path,
                reason: "the key file disappeared",
            })
        })
        .await?;
        Ok(self.replace(file))
    }
}

fn aad(ctx: &WrapContext, id: &Uuid, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(super::WRAP_CONTEXT_LEN + 20);
    aad.extend_from_slice(&ctx.to_bytes());
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn open_with(
    file: &KekFile,
    ctx: &WrapContext,
    kek: &KekRef,
    wrapped: &[u8],
) -> Result<Option<DekMaterial>> {
    let Some(key) = file.versions.get(&kek.version) else {
        return Ok(None);
    };
    let unwrap_err = || CryptoError::KekUnwrap { kek: kek.clone() };
    if wrapped.len() != WRAPPED_LEN {
        return Err(unwrap_err());
    }
    let (nonce, body) = wrapped.split_at_checked(NONCE_LEN).ok_or_else(unwrap_err)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unwrap_err())?;
    let mut buf = Secret::new(body.to_vec());
    let aes = aes_key(key)?;
    let plain = aes
        .open_in_place(
            nonce,
            Aad::from(aad(ctx, &file.id, kek.version)),
            buf.expose_secret_mut(),
        )
        .map_err(|_| unwrap_err())?;
    let mut dek = Secret::new([0u8; DEK_LEN]);
    if plain.len() != DEK_LEN {
        return Err(unwrap_err());
    }
    for (d, s) in dek.expose_secret_mut().iter_mut().zip(plain.iter()) {
        *d = *s;
    }
    Ok(Some(dek))
}

#[async_trait]
impl KeyProvider for LocalKeyProvider {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn current_kek(&self) -> Result<KekRef> {
        // Read from disk: another process (`keys rotate-kek`) may have added a version since
        // this one loaded the file. Rare (key creation, rotation), never on the read path.
        let file = self.reload().await?;
        Ok(KekRef {
            id: file.kek_id(),
            version: file.latest()?.0,
        })
    }

    async fn wrap(&self, ctx: &WrapContext, dek: &DekMaterial) -> Result<Wrapped> {
        // New wraps use the newest version on disk (see `current_kek`).
        let file = self.reload().await?;
        let (version, key) = file.latest()?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| CryptoError::Internal("random source failed"))?;
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(dek.expose_secret());
        let body = out
            .get_mut(NONCE_LEN..)
            .ok_or(CryptoError::Internal("wrap buffer"))?;
        let tag = aes_key(key)?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(ctx, &file.id, version)),
                body,
            )
            .map_err(|_| CryptoError::Internal("AES-GCM seal failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(Wrapped {
            kek: KekRef {
                id: file.kek_id(),
                version,
            },
            bytes: out,
        })
    }

    async fn unwrap(&self, ctx: &WrapContext, kek: &KekRef, wrapped: &[u8]) -> Result<DekMaterial> {
        let file = self.snapshot();
        if kek.id != file.kek_id() {
            return Err(CryptoError::UnknownKek { kek: kek.clone() });
        }
        if let Some(dek) = open_with(&file, ctx, kek, wrapped)? {
            return Ok(dek);
        }
        // Not in memory: another process may have rotated since we loaded the file.
        let file = self.reload().await?;
        open_with(&file, ctx, kek, wrapped)?
            .ok_or_else(|| CryptoError::UnknownKek { kek: kek.clone() })
    }

    async fn rotate_kek(&self) -> Result<KekRef> {
        let d = self.dir.clone();
        let file = blocking(move || {
            update(&d, |f| {
                let next = f
                    .latest()?
                    .0
                    .checked_add(1)
                    .ok_or(CryptoError::InvalidInput("KEK version space exhausted"))?;
                f.versions.insert(next, generate_material()?);
                Ok(())
            })
        })
        .await?;
        let file = self.replace(file);
        let kek = KekRef {
            id: file.kek_id(),
            version: file.latest()?.0,
        };
        tracing::info!(kek = %kek, "rotated the local key-encryption key");
        Ok(kek)
    }

    async fn retire_kek_versions_below(&self, min_version: u32) -> Result<()> {
        let d = self.dir.clone();
        let file = blocking(move || {
            update(&d, |f| {
                if f.latest()?.0 < min_version {
                    return Err(CryptoError::InvalidInput(
                        "cannot retire the current KEK version; rotate first",
                    ));
                }
                f.versions.retain(|v, _| *v >= min_version);
                Ok(())
            })
        })
        .await?;
        self.replace(file);
        tracing::info!(min_version, "retired local key-encryption key versions");
        Ok(())
    }
}

#[cfg(test)]
#[allow(
    clippy::many_single_char_names,
    clippy::cast_possible_truncation,
    reason = "short names and narrowing casts keep table-like tests readable"
)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use domain::PracticeId;

    use super::*;
    use crate::keys::DekVersion;

    fn ctx() -> WrapContext {
        WrapContext {
            practice: PracticeId::new(),
            dek_version: DekVersion::FIRST,
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn creates_file_0600_in_dir_0700_and_roundtrips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let p = LocalKeyProvider::open(&dir).await.unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&p.key_file()), 0o600);
        let text = fs::read_to_string(p.key_file()).unwrap();
        assert!(text.starts_with("chartroom-kek 1\nid "));
        assert!(
            !format!("{p:?}").contains(text.lines().nth(2).unwrap().split(' ').nth(2).unwrap())
        );

        let c = ctx();
        let dek = generate_material().unwrap();
        let w = p.wrap(&c, &dek).await.unwrap();
        assert_eq!(w.kek.version, 1);
        assert_eq!(w.bytes.len(), WRAPPED_LEN);
        let back = p.unwrap(&c, &w.kek, &w.bytes).await.unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());

        // Reopening reads the same key.
        let again = LocalKeyProvider::open(&dir).await.unwrap();
        assert_eq!(again.kek_id(), p.kek_id());
        assert!(again.unwrap(&c, &w.kek, &w.bytes).await.is_ok());
    }

    #[tokio::test]
    async fn refuses_loose_permissions() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let p = LocalKeyProvider::open(&dir).await.unwrap();
        let file = p.key_file();

        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = LocalKeyProvider::open(&dir).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::KeyFilePermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("permissions 644 are too open"));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = LocalKeyProvider::open(&dir).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::KeyFilePermissions { mode: 0o755, .. }),
            "{err}"
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();

        LocalKeyProvider::open(&dir).await.unwrap();
    }

    #[tokio::test]
    async fn refuses_symlinked_key_file() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        let p = LocalKeyProvider::open(&real).await.unwrap();
        let linked = tmp.path().join("linked");
        DirBuilder::new().mode(0o700).create(&linked).unwrap();
        std::os::unix::fs::symlink(p.key_file(), linked.join(KEY_FILE_NAME)).unwrap();
        let err = LocalKeyProvider::open(&linked).await.unwrap_err();
        assert!(matches!(err, CryptoError::KeyFileUnsafe { .. }), "{err}");
    }

    #[tokio::test]
    async fn malformed_file_is_named_without_content() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let p = LocalKeyProvider::open(&dir).await.unwrap();
        fs::write(p.key_file(), "chartroom-kek 1\nid nope\n").unwrap();
        let err = LocalKeyProvider::open(&dir).await.unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is malformed: the second line must be `id <uuid>`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rotation_keeps_old_versions_until_retired() {
        let tmp = tempfile::tempdir().unwrap();
        let p = LocalKeyProvider::open(tmp.path().join("k")).await.unwrap();
        let c = ctx();
        let dek = generate_material().unwrap();
        let w1 = p.wrap(&c, &dek).await.unwrap();
        let k2 = p.rotate_kek().await.unwrap();
        assert_eq!(k2.version, 2);
        assert_eq!(p.current_kek().await.unwrap(), k2);
        assert!(p.unwrap(&c, &w1.kek, &w1.bytes).await.is_ok());

        let w2 = p.rewrap(&c, &w1.kek, &w1.bytes).await.unwrap();
        assert_eq!(w2.kek.version, 2);

        assert!(p.retire_kek_versions_below(3).await.is_err());
        p.retire_kek_versions_below(2).await.unwrap();
        let err = p.unwrap(&c, &w1.kek, &w1.bytes).await.unwrap_err();
        assert!(matches!(err, CryptoError::UnknownKek { .. }), "{err}");
        let back = p.unwrap(&c, &w2.kek, &w2.bytes).await.unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());
        assert_eq!(mode(&p.key_file()), 0o600);
    }

    #[tokio::test]
    async fn sees_versions_rotated_by_another_process() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let a = LocalKeyProvider::open(&dir).await.unwrap();
        let b = LocalKeyProvider::open(&dir).await.unwrap();
        b.rotate_kek().await.unwrap();
        let c = ctx();
        let w = b.wrap(&c, &generate_material().unwrap()).await.unwrap();
        assert_eq!(w.kek.version, 2);
        // `a` loaded the file before the rotation; it re-reads on an unknown version.
        assert!(a.unwrap(&c, &w.kek, &w.bytes).await.is_ok());
        // ...and wraps new keys under the newest version, so a later retirement of the older
        // versions cannot strand a key it wrapped.
        assert_eq!(a.current_kek().await.unwrap().version, 2);
        let w = a.wrap(&c, &generate_material().unwrap()).await.unwrap();
        assert_eq!(w.kek.version, 2);
    }

    #[tokio::test]
    async fn stale_lock_file_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let p = LocalKeyProvider::open(&dir).await.unwrap();
        fs::write(dir.join(TMP_FILE_NAME), "").unwrap();
        let err = p.rotate_kek().await.unwrap_err();
        assert!(matches!(err, CryptoError::KeyFileBusy { .. }), "{err}");
        assert_eq!(p.current_kek().await.unwrap().version, 1);
    }

    #[tokio::test]
    async fn wrong_kek_or_wrong_binding_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let a = LocalKeyProvider::open(tmp.path().join("a")).await.unwrap();
        let b = LocalKeyProvider::open(tmp.path().join("b")).await.unwrap();
        let c = ctx();
        let w = a.wrap(&c, &generate_material().unwrap()).await.unwrap();

        // Another installation's KEK.
        let err = b.unwrap(&c, &w.kek, &w.bytes).await.unwrap_err();
        assert!(matches!(err, CryptoError::UnknownKek { .. }), "{err}");

        // Same KEK id, different key material (a restored or edited key file).
        let fake = KekRef {
            id: b.kek_id(),
            version: 1,
        };
        let err = b.unwrap(&c, &fake, &w.bytes).await.unwrap_err();
        assert!(matches!(err, CryptoError::KekUnwrap { .. }), "{err}");

        // Right KEK, but the wrapped key is presented for another practice or DEK version.
        let other_practice = WrapContext {
            practice: PracticeId::new(),
            ..c
        };
        let other_version = WrapContext {
            dek_version: DekVersion::new(2).unwrap(),
            ..c
        };
        for bad in [other_practice, other_version] {
            let err = a.unwrap(&bad, &w.kek, &w.bytes).await.unwrap_err();
            assert!(matches!(err, CryptoError::KekUnwrap { .. }), "{err}");
        }

        // Any flipped byte.
        for i in 0..w.bytes.len() {
            let mut t = w.bytes.clone();
            t[i] ^= 1;
            assert!(a.unwrap(&c, &w.kek, &t).await.is_err());
        }
    }
}
