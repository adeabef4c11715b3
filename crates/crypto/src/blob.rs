//! [`BlobStore`]: encrypted blobs on an object store (local filesystem by default; S3, GCS or
//! Azure behind the `s3`, `gcs` and `azure` features).
//!
//! - Each blob is one object in the streaming format of [`crate::stream`], sealed with the
//!   practice's active data key and bound to (practice, blob id).
//! - Object names are `<prefix>/<32 hex digits>`: a random [`BlobId`], nothing about the
//!   practice, the patient or the content. The database row that references a blob holds the
//!   practice, the id and the lengths ([`StoredBlob`]).
//! - Uploads stream: the plaintext is read one segment at a time and sent as multipart parts of
//!   [`BlobStoreOptions::part_size`] bytes with at most
//!   [`BlobStoreOptions::max_concurrent_parts`] in flight, so memory stays flat for any size
//!   (about `(max_concurrent_parts + 1) × part_size`). Blobs smaller than one part are a single
//!   `PUT` that refuses to overwrite.
//! - Reads decrypt as they stream ([`BlobStore::get_stream`]) or fetch only the segments
//!   covering a range ([`BlobStore::get_range`]); a range read also verifies the final segment,
//!   so a truncated object is detected even when the range does not reach its end.
//!
//! Ownership is the caller's to check: this module does not know which practice owns a blob
//! id, it only fails to decrypt a blob under the wrong practice.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use domain::PracticeId;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use tokio::io::AsyncRead;

use crate::error::{CryptoError, Result};
use crate::ids::BlobId;
use crate::keyring::Keyring;
use crate::keys::DekVersion;
use crate::stream::{
    Decryptor, Encryptor, Layout, ObjectContext, SEGMENT_SIZE, STREAM_HEADER_LEN, SegmentCipher,
    StreamHeader, read_header,
};

/// Amazon S3's smallest multipart part (every part but the last; "Amazon S3 multipart upload
/// limits"). GCS and Azure accept it too.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Tuning of a [`BlobStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobStoreOptions {
    /// Object name prefix (a "directory"); empty for none.
    pub prefix: String,
    /// Bytes per multipart part (at least [`MIN_PART_SIZE`] for S3).
    pub part_size: usize,
    /// Parts uploaded concurrently (at least 1).
    pub max_concurrent_parts: usize,
    /// Largest range [`BlobStore::get_range`] returns in one piece.
    pub max_range_len: u64,
}

impl Default for BlobStoreOptions {
    fn default() -> Self {
        Self {
            prefix: "blobs".into(),
            part_size: MIN_PART_SIZE,
            max_concurrent_parts: 2,
            max_range_len: 64 * 1024 * 1024,
        }
    }
}

/// What [`BlobStore::put_stream`] stored: persist it with the row that owns the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    /// The new blob's id.
    pub id: BlobId,
    /// The owning practice.
    pub practice: PracticeId,
    /// The data key version that sealed it.
    pub dek_version: DekVersion,
    /// Plaintext bytes.
    pub plaintext_len: u64,
    /// Stored (ciphertext) bytes.
    pub stored_len: u64,
}

/// Encrypted blobs on an object store. See the module docs.
#[derive(Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    keyring: Arc<Keyring>,
    opts: BlobStoreOptions,
}

fn map_store_err(id: BlobId) -> impl Fn(object_store::Error) -> CryptoError {
    move |e| match e {
        object_store::Error::NotFound { .. } => CryptoError::BlobNotFound { id },
        e => CryptoError::ObjectStore(e),
    }
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| CryptoError::Internal("size does not fit in memory"))
}

fn to_u32(v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| CryptoError::Internal("segment index"))
}

/// An object store and its name prefix from a URL: `file:///path` (a directory on this
/// machine, created with mode 0700 if missing; no prefix), or with the matching cargo
/// feature `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (the URL path
/// becomes the prefix). `options` are `object_store`'s configuration keys (region, endpoint,
/// credentials …). Used for blobs and for the audit checkpoint mirror.
pub fn object_store_from_url<I, K, V>(
    url: &str,
    options: I,
) -> Result<(Arc<dyn ObjectStore>, String)>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    let url = url::Url::parse(url)
        .map_err(|_| CryptoError::InvalidInput("object store URL does not parse"))?;
    if url.scheme() == "file" {
        use std::os::unix::fs::DirBuilderExt;
        let path = url
            .to_file_path()
            .map_err(|()| CryptoError::InvalidInput("file:// URL is not an absolute path"))?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)?;
        return Ok((
            Arc::new(LocalFileSystem::new_with_prefix(&path)?),
            String::new(),
        ));
    }
    let (store, prefix) = object_store::parse_url_opts(&url, options)?;
    Ok((Arc::from(store), prefix.to_string()))
}

impl BlobStore {
    /// Blobs on any object store.
    #[must_use]
    pub fn new(store: Arc<dyn ObjectStore>, keyring: Arc<Keyring>) -> Self {
        Self {
            store,
            keyring,
            opts: BlobStoreOptions::default(),
        }
    }

    /// Blobs in a directory on this machine (created with mode 0700 if missing).
    pub fn local(root: impl AsRef<FsPath>, keyring: Arc<Keyring>) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let root = root.as_ref();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)?;
        let fs = LocalFileSystem::new_with_prefix(root)?;
        Ok(Self::new(Arc::new(fs), keyring))
    }

    /// The object store and the name prefix (for backups, which copy objects as stored).
    #[must_use]
    pub fn object_store(&self) -> (&Arc<dyn ObjectStore>, &str) {
        (&self.store, &self.opts.prefix)
    }

    /// Blobs at a URL: `file:///var/lib/chartroom/blobs`, or with the matching cargo feature
    /// `s3://bucket/prefix` (`s3`), `gs://bucket/prefix` (`gcs`),
    /// `az://container/prefix` (`azure`). `options` are `object_store`'s configuration keys
    /// (region, endpoint, credentials …); the URL path becomes the name prefix.
    pub fn from_url<I, K, V>(url: &str, options: I, keyring: Arc<Keyring>) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let (store, prefix) = object_store_from_url(url, options)?;
        Ok(Self::new(store, keyring).with_options(BlobStoreOptions {
            prefix,
            ..BlobStoreOptions::default()
        }))
    }

    /// Replaces the options.
    #[must_use]
    pub fn with_options(mut self, opts: BlobStoreOptions) -> Self {
        self.opts = opts;
        self
    }

    fn path(&self, id: BlobId) -> Path {
        let name = id.object_name();
        if self.opts.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(self.opts.prefix.as_str()).join(name.as_str())
        }
    }

    /// The object name of a blob (for operators; it reveals nothing but the id).
    #[must_use]
    pub fn object_path(&self, id: BlobId) -> String {
        self.path(id).to_string()
    }

    /// Encrypts everything `reader` yields into a new blob of `practice`, under its active
    /// data key. Memory stays flat for any size. On any error the partial upload is aborted
    /// and nothing is left behind.
    pub async fn put_stream<R>(&self, practice: PracticeId, reader: R) -> Result<StoredBlob>
    where
        R: AsyncRead + Unpin + Send,
    {
        let keys = self.keyring.keys(practice).await?;
        let key = keys.active();
        let id = BlobId::random();
        let path = self.path(id);
        let ctx = ObjectContext {
            practice,
            object: id,
        };
        let mut enc = Encryptor::new(key, &ctx, reader, SEGMENT_SIZE)?;
        let part_size = self.opts.part_size.max(1);

        // Buffer up to one part: a small blob becomes one create-only PUT.
        let mut first = Vec::new();
        let mut first_len = 0usize;
        let mut stored_len = 0u64;
        while first_len < part_size {
            if let Some(chunk) = enc.next_chunk().await? {
                first_len += chunk.len();
                first.push(chunk);
            } else {
                let payload: PutPayload = first.into_iter().collect();
                self.store
                    .put_opts(&path, payload, PutOptions::from(PutMode::Create))
                    .await?;
                return Ok(StoredBlob {
                    id,
                    practice,
                    dek_version: key.version(),
                    plaintext_len: enc.plaintext_len(),
                    stored_len: first_len as u64,
                });
            }
        }

        let upload = self.store.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        for chunk in first {
            stored_len += chunk.len() as u64;
            writer.put(chunk);
        }
        let max_in_flight = self.opts.max_concurrent_parts.max(1);
        loop {
            let next = match writer.wait_for_capacity(max_in_flight).await {
                Ok(()) => enc.next_chunk().await,
                Err(e) => Err(e.into()),
            };
            match next {
                Ok(Some(chunk)) => {
                    stored_len += chunk.len() as u64;
                    writer.put(chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    if let Err(abort) = writer.abort().await {
                        tracing::warn!(error = %abort, blob = %id, "aborting a failed blob upload failed");
                    }
                    return Err(e);
                }
            }
        }
        writer.finish().await?;
        Ok(StoredBlob {
            id,
            practice,
            dek_version: key.version(),
            plaintext_len: enc.plaintext_len(),
            stored_len,
        })
    }

    /// Streams a blob's plaintext, one verified segment at a time.
    ///
    /// Fails before the first byte if the blob is missing, its header is malformed or its key
    /// version is not live. After that, each item is a verified segment or an error; an error
    /// after some segments means the blob was truncated or altered — discard what was
    /// received.
    pub async fn get_stream(
        &self,
        practice: PracticeId,
        id: BlobId,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let result = self
            .store
            .get(&self.path(id))
            .await
            .map_err(map_store_err(id))?;
        let mut source = result.into_stream().map_err(map_store_err(id)).boxed();
        let mut buf = BytesMut::new();
        let header = read_header(&mut source, &mut buf).await?;
        let keys = self
            .keyring
            .keys_including(practice, header.dek_version)
            .await?;
        let ctx = ObjectContext {
            practice,
            object: id,
        };
        let cipher = SegmentCipher::new(keys.get(header.dek_version)?, &ctx, &header)?;
        Ok(Decryptor::new(cipher, source, buf).into_stream().boxed())
    }

    /// Decrypts the plaintext bytes `range` of a blob, fetching only the segments that cover
    /// it (plus the final segment, to verify the object was not truncated).
    pub async fn get_range(
        &self,
        practice: PracticeId,
        id: BlobId,
        range: Range<u64>,
    ) -> Result<Bytes> {
        if range.start > range.end {
            return Err(CryptoError::InvalidInput("range start is after its end"));
        }
        let want = range.end - range.start;
        if want > self.opts.max_range_len {
            return Err(CryptoError::TooLarge {
                what: "range",
                len: want,
                max: self.opts.max_range_len,
            });
        }
        let path = self.path(id);
        let meta = self.store.head(&path).await.map_err(map_store_err(id))?;
        let head = self
            .store
            .get_range(&path, 0..meta.size.min(STREAM_HEADER_LEN as u64))
            .await
            .map_err(map_store_err(id))?;
        let header = StreamHeader::parse(&head)?;
        let layout = Layout::new(meta.size, header.segment_size)?;
        if range.end > layout.plaintext_len {
            return Err(CryptoError::RangeOutOfBounds {
                start: range.start,
                end: range.end,
                len: layout.plaintext_len,
            });
        }
        let keys = self
            .keyring
            .keys_including(practice, header.dek_version)
            .await?;
        let ctx = ObjectContext {
            practice,
            object: id,
        };
        let cipher = SegmentCipher::new(keys.get(header.dek_version)?, &ctx, &header)?;

        let s = layout.segment_size;
        let last = layout.segments - 1;
        let (first, end_seg) = if range.is_empty() {
            (last, last)
        } else {
            (range.start / s, (range.end - 1) / s)
        };
        let covered = layout.segment_range(first).start..layout.segment_range(end_seg).end;
        let mut ranges = vec![covered.clone()];
        if end_seg != last {
            ranges.push(layout.segment_range(last));
        }
        let parts = self
            .store
            .get_ranges(&path, &ranges)
            .await
            .map_err(map_store_err(id))?;
        let short = || CryptoError::Truncated {
            len: meta.size,
            min: layout.stored_len,
        };
        if let Some(tail) = parts.get(1) {
            let mut t = BytesMut::from(tail.as_ref());
            cipher.open(to_u32(last)?, true, &mut t)?;
        }
        let data = parts.first().ok_or_else(short)?;
        let mut out = BytesMut::with_capacity(to_usize(want)?);
        for i in first..=end_seg {
            let r = layout.segment_range(i);
            let off = to_usize(r.start - covered.start)?;
            let len = to_usize(r.end - r.start)?;
            let mut seg = BytesMut::from(data.get(off..off + len).ok_or_else(short)?);
            let pt = cipher.open(to_u32(i)?, i == last, &mut seg)?;
            if range.is_empty() {
                continue;
            }
            let seg_start = i * s;
            let lo = to_usize(range.start.max(seg_start) - seg_start)?;
            let hi = to_usize(range.end.min(seg_start + pt.len() as u64) - seg_start)?;
            out.extend_from_slice(pt.get(lo..hi).ok_or_else(short)?);
        }
        Ok(out.freeze())
    }

    /// Re-encrypts a blob under the practice's active data key (a data-key rotation): streams
    /// the old object through decryption into a new object with a new id, and returns it. The
    /// caller points its row at the new id, then deletes the old object. Memory stays flat.
    pub async fn reencrypt(&self, practice: PracticeId, id: BlobId) -> Result<StoredBlob> {
        let stream = self
            .get_stream(practice, id)
            .await?
            .map_err(std::io::Error::other);
        self.put_stream(practice, tokio_util::io::StreamReader::new(stream))
            .await
    }

    /// Deletes a blob. Idempotent: deleting a missing blob succeeds (object stores differ on
    /// this, so it is made uniform here). After crypto-shredding this is housekeeping: the
    /// blob is already unreadable.
    pub async fn delete(&self, id: BlobId) -> Result<()> {
        match self.store.delete(&self.path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::many_single_char_names,
    clippy::cast_possible_truncation,
    reason = "short names and narrowing casts keep table-like tests readable"
)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use proptest::prelude::*;

    use super::*;
    use crate::keyring::tests::fixture;
    use crate::stream::tests::pattern;

    async fn collect(s: BoxStream<'static, Result<Bytes>>) -> Result<Vec<u8>> {
        let parts: Vec<Bytes> = s.try_collect().await?;
        Ok(parts.concat())
    }

    fn small_parts() -> BlobStoreOptions {
        BlobStoreOptions {
            part_size: 200 * 1024,
            ..BlobStoreOptions::default()
        }
    }

    #[tokio::test]
    async fn put_get_range_delete_in_memory() {
        let f = fixture().await;
        let p = PracticeId::new();
        f.keyring.ensure_practice_keys(p).await.unwrap();
        let keyring = Arc::new(f.keyring);
        let store = Arc::new(InMemory::new());
        let blobs = BlobStore::new(store.clone(), keyring.clone()).with_options(small_parts());
        let s = SEGMENT_SIZE as usize;
        for len in [0, 1, s - 1, s, s + 1, 7 * s + 3] {
            let pt = pattern(len);
            let b = blobs.put_stream(p, &pt[..]).await.unwrap();
            assert_eq!(b.plaintext_len, len as u64);
            assert_eq!(b.stored_len, crate::stream::stored_len(len as u64));
            let meta = store.head(&blobs.path(b.id)).await.unwrap();
            assert_eq!(meta.size, b.stored_len);
            assert_eq!(
                collect(blobs.get_stream(p, b.id).await.unwrap())
                    .await
                    .unwrap(),
                pt
            );
            if len > 10 {
                let r = 3..(len as u64 - 2);
                assert_eq!(
                    blobs.get_range(p, b.id, r.clone()).await.unwrap(),
                    &pt[3..len - 2]
                );
            }
            blobs.delete(b.id).await.unwrap();
            assert!(matches!(
                blobs.get_stream(p, b.id).await,
                Err(CryptoError::BlobNotFound { .. })
            ));
            blobs.delete(b.id).await.unwrap();
        }
    }

    #[tokio::test]
    async fn range_checks_bounds_and_truncation() {
        let f = fixture().await;
        let p = PracticeId::new();
        f.keyring.ensure_practice_keys(p).await.unwrap();
        let store = Arc::new(InMemory::new());
        let blobs = BlobStore::new(store.clone(), Arc::new(f.keyring));
        let s = SEGMENT_SIZE as usize;
        let pt = pattern(3 * s + 100);
        let b = blobs.put_stream(p, &pt[..]).await.unwrap();
        let err = blobs
            .get_range(p, b.id, 0..(pt.len() as u64 + 1))
            .await
            .unwrap_err();
        assert!(matches!(err, CryptoError::RangeOutOfBounds { .. }), "{err}");
        assert!(blobs.get_range(p, b.id, 0..0).await.unwrap().is_empty());

        // Drop the last segment: a range in the first segment must still fail.
        let path = blobs.path(b.id);
        let full = store.get(&path).await.unwrap().bytes().await.unwrap();
        let cut = full.slice(..STREAM_HEADER_LEN + 3 * (s + 16));
        store.put(&path, cut.into()).await.unwrap();
        assert!(matches!(
            blobs.get_range(p, b.id, 0..10).await,
            Err(CryptoError::Decrypt)
        ));
        assert!(
            collect(blobs.get_stream(p, b.id).await.unwrap())
                .await
                .is_err()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_ranges_equal_the_plaintext_slice(
            len in prop::sample::select(vec![1usize, 65_535, 65_536, 65_537, 200_000, 300_001]),
            a in 0.0f64..1.0, b in 0.0f64..1.0,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let f = fixture().await;
                let p = PracticeId::new();
                f.keyring.ensure_practice_keys(p).await.unwrap();
                let blobs = BlobStore::new(Arc::new(InMemory::new()), Arc::new(f.keyring));
                let pt = pattern(len);
                let blob = blobs.put_stream(p, &pt[..]).await.unwrap();
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
                let (x, y) = (((len as f64) * a) as usize, ((len as f64) * b) as usize);
                let (lo, hi) = (x.min(y), x.max(y).min(len));
                let got = blobs.get_range(p, blob.id, lo as u64..hi as u64).await.unwrap();
                prop_assert_eq!(&got[..], &pt[lo..hi]);
                Ok(())
            })?;
        }
    }
}
