//! Streaming AEAD for blobs (audio, attachments, backups), modelled on Tink's
//! AES-GCM-HKDF streaming AEAD (<https://developers.google.com/tink/streaming-aead/aes_gcm_hkdf_streaming>).
//!
//! Memory stays flat for any object size (two segments in flight), and any byte range can be
//! decrypted by fetching only the segments that cover it.
//!
//! # Format (version 1)
//!
//! ```text
//! header (48 bytes)
//!   offset len
//!   0      1   format version = 0x01
//!   1      4   DEK version, u32 big-endian
//!   5      4   plaintext segment size S, u32 big-endian (64 KiB when written by this build)
//!   9      7   nonce prefix, random
//!   16     32  salt, random
//! segment 0 … segment n-1
//!   each: AES-256-GCM(object key, nonce_i, plaintext_i) ‖ 16-byte tag
//!   plaintext_i is exactly S bytes, except the last segment: 1..=S bytes
//!   (0 bytes only when the whole object is empty, which is one empty last segment)
//! ```
//!
//! - **Object key** = HKDF-SHA256(ikm = the DEK's blob root key, salt = header salt, info =
//!   `"chartroom/blob/v1"` ‖ header bytes 0..16 ‖ practice UUID ‖ object id). Every object
//!   has its own key; the header (version, DEK version, segment size, nonce prefix) and the
//!   object's identity are bound into it, so a changed header byte or an object presented
//!   under another practice or id fails on its first segment.
//! - **Nonce** of segment *i* = nonce prefix (7) ‖ *i* (u32 big-endian) ‖ last flag (`0x01`
//!   on the final segment, else `0x00`) — Tink's construction. Reordered segments fail (wrong
//!   counter), a dropped tail fails (the new final segment was sealed as "not last"), and
//!   appended data fails (the old final segment was sealed as "last").
//! - Per-object keys and per-segment nonces never repeat, so GCM's nonce limits (NIST SP
//!   800-38D §8) do not bind; an object may have up to 2^32 segments (256 TiB at 64 KiB).
//!
//! A streaming decryptor releases each segment only after its tag verifies, but it can only
//! know the object is *complete* at the end: a consumer that forwards plaintext as it arrives
//! (an HTTP response) must treat a late error as a failed transfer.

use std::ops::Range;

use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
use aws_lc_rs::{hkdf, rand};
use bytes::{Buf, Bytes, BytesMut};
use domain::PracticeId;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{CryptoError, Result};
use crate::ids::BlobId;
use crate::keys::{DataKey, DekVersion, PracticeKeys, aes_key, expand_32};

/// The blob format this build writes and reads.
pub const STREAM_FORMAT_V1: u8 = 1;
/// Plaintext bytes per segment written by this build.
pub const SEGMENT_SIZE: u32 = 64 * 1024;
/// Header length.
pub const STREAM_HEADER_LEN: usize = 48;
/// Tag bytes per segment: 128 bits (NIST SP 800-38D §5.2.1.2).
pub const SEGMENT_TAG_LEN: usize = 16;
const SALT_LEN: usize = 32;
const NONCE_PREFIX_LEN: usize = 7;
/// Segment sizes accepted when reading (tests write small segments; the bound keeps a forged
/// header from making the reader buffer gigabytes).
const MIN_SEGMENT_SIZE: u32 = 16;
const MAX_SEGMENT_SIZE: u32 = 8 * 1024 * 1024;
const HKDF_LABEL: &[u8] = b"chartroom/blob/v1";

const HEADER_LEN_U64: u64 = STREAM_HEADER_LEN as u64;
const TAG_LEN_U64: u64 = SEGMENT_TAG_LEN as u64;

/// Which object a stream belongs to: bound into its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectContext {
    /// The owning practice.
    pub practice: PracticeId,
    /// The object's id.
    pub object: BlobId,
}

/// A parsed blob header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// The DEK version that sealed the object.
    pub dek_version: DekVersion,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    salt: [u8; SALT_LEN],
}

impl StreamHeader {
    fn generate(dek_version: DekVersion, segment_size: u32) -> Result<Self> {
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut nonce_prefix)
            .and_then(|()| rand::fill(&mut salt))
            .map_err(|_| CryptoError::Internal("random source failed"))?;
        Ok(Self {
            dek_version,
            segment_size,
            nonce_prefix,
            salt,
        })
    }

    fn to_bytes(self) -> [u8; STREAM_HEADER_LEN] {
        let mut out = [0u8; STREAM_HEADER_LEN];
        let parts: [&[u8]; 5] = [
            &[STREAM_FORMAT_V1],
            &self.dek_version.get().to_be_bytes(),
            &self.segment_size.to_be_bytes(),
            &self.nonce_prefix,
            &self.salt,
        ];
        for (d, s) in out.iter_mut().zip(parts.iter().flat_map(|p| p.iter())) {
            *d = *s;
        }
        out
    }

    /// Parses the first [`STREAM_HEADER_LEN`] bytes of a stored blob. Authenticates nothing
    /// (the header is authenticated through the object key when segments are opened).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let Some(&version) = bytes.first() else {
            return Err(CryptoError::Truncated {
                len: 0,
                min: HEADER_LEN_U64 + TAG_LEN_U64,
            });
        };
        if version != STREAM_FORMAT_V1 {
            return Err(CryptoError::UnknownFormat {
                what: "blob",
                found: version,
                supported: STREAM_FORMAT_V1,
            });
        }
        let h = bytes
            .get(..STREAM_HEADER_LEN)
            .ok_or(CryptoError::Truncated {
                len: bytes.len() as u64,
                min: HEADER_LEN_U64 + TAG_LEN_U64,
            })?;
        let arr = |r: Range<usize>| h.get(r).ok_or(CryptoError::Internal("header slice"));
        let u32_at = |r: Range<usize>| -> Result<u32> {
            Ok(u32::from_be_bytes(
                arr(r)?
                    .try_into()
                    .map_err(|_| CryptoError::Internal("header slice"))?,
            ))
        };
        let segment_size = u32_at(5..9)?;
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(CryptoError::Decrypt);
        }
        Ok(Self {
            dek_version: DekVersion::new(u32_at(1..5)?).map_err(|_| CryptoError::Decrypt)?,
            segment_size,
            nonce_prefix: arr(9..16)?
                .try_into()
                .map_err(|_| CryptoError::Internal("header slice"))?,
            salt: arr(16..48)?
                .try_into()
                .map_err(|_| CryptoError::Internal("header slice"))?,
        })
    }
}

/// The stored size of a blob with `plaintext_len` bytes written by this build.
#[must_use]
pub const fn stored_len(plaintext_len: u64) -> u64 {
    let s = SEGMENT_SIZE as u64;
    let segments = if plaintext_len == 0 {
        1
    } else {
        plaintext_len.div_ceil(s)
    };
    HEADER_LEN_U64 + plaintext_len + segments * TAG_LEN_U64
}

/// One object's segment sealer/opener.
pub(crate) struct SegmentCipher {
    key: aws_lc_rs::aead::LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    segment_size: usize,
}

impl SegmentCipher {
    pub(crate) fn new(key: &DataKey, ctx: &ObjectContext, header: &StreamHeader) -> Result<Self> {
        if key.practice() != ctx.practice {
            return Err(CryptoError::PracticeMismatch {
                key: key.practice(),
                context: ctx.practice,
            });
        }
        if key.version() != header.dek_version {
            return Err(CryptoError::Internal("segment key of another DEK version"));
        }
        let hb = header.to_bytes();
        let bound = hb.get(..16).ok_or(CryptoError::Internal("header slice"))?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &header.salt)
            .extract(key.blob_root().expose_secret());
        let practice = ctx.practice.as_uuid();
        let object = ctx.object.as_uuid();
        let object_key = expand_32(
            &prk,
            &[HKDF_LABEL, bound, practice.as_bytes(), object.as_bytes()],
        )?;
        Ok(Self {
            key: aes_key(&object_key)?,
            nonce_prefix: header.nonce_prefix,
            segment_size: usize::try_from(header.segment_size)
                .map_err(|_| CryptoError::Internal("segment size"))?,
        })
    }

    fn nonce(&self, index: u32, last: bool) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        let parts: [&[u8]; 3] = [&self.nonce_prefix, &index.to_be_bytes(), &[u8::from(last)]];
        for (d, s) in n.iter_mut().zip(parts.iter().flat_map(|p| p.iter())) {
            *d = *s;
        }
        Nonce::assume_unique_for_key(n)
    }

    /// Seals `buf` (the segment's plaintext) in place and appends the tag.
    pub(crate) fn seal(&self, index: u32, last: bool, buf: &mut Vec<u8>) -> Result<()> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(index, last), Aad::empty(), buf)
            .map_err(|_| CryptoError::Internal("AES-GCM seal failed"))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens one stored segment in place; returns its plaintext.
    pub(crate) fn open<'b>(
        &self,
        index: u32,
        last: bool,
        buf: &'b mut [u8],
    ) -> Result<&'b mut [u8]> {
        let max = self.segment_size + SEGMENT_TAG_LEN;
        let ok_len = if last {
            (SEGMENT_TAG_LEN..=max).contains(&buf.len())
                && (index == 0 || buf.len() > SEGMENT_TAG_LEN)
        } else {
            buf.len() == max
        };
        if !ok_len {
            return Err(CryptoError::Decrypt);
        }
        self.key
            .open_in_place(self.nonce(index, last), Aad::empty(), buf)
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// Where the segments of a stored blob are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) segment_size: u64,
    pub(crate) segments: u64,
    pub(crate) plaintext_len: u64,
    pub(crate) stored_len: u64,
}

impl Layout {
    pub(crate) fn new(stored_len: u64, segment_size: u32) -> Result<Self> {
        let s = u64::from(segment_size);
        let ct_seg = s + TAG_LEN_U64;
        let min = HEADER_LEN_U64 + TAG_LEN_U64;
        let body = stored_len
            .checked_sub(HEADER_LEN_U64)
            .filter(|b| *b >= TAG_LEN_U64)
            .ok_or(CryptoError::Truncated {
                len: stored_len,
                min,
            })?;
        let segments = body.div_ceil(ct_seg);
        let last_ct = body - (segments - 1) * ct_seg;
        if last_ct < TAG_LEN_U64 {
            return Err(CryptoError::Truncated {
                len: stored_len,
                min: stored_len - last_ct + TAG_LEN_U64,
            });
        }
        if segments > u64::from(u32::MAX) + 1 {
            return Err(CryptoError::TooLarge {
                what: "blob",
                len: stored_len,
                max: u64::from(u32::MAX) * ct_seg,
            });
        }
        Ok(Self {
            segment_size: s,
            segments,
            plaintext_len: body - segments * TAG_LEN_U64,
            stored_len,
        })
    }

    /// Stored byte range of segment `i`.
    pub(crate) fn segment_range(&self, i: u64) -> Range<u64> {
        let ct_seg = self.segment_size + TAG_LEN_U64;
        let start = HEADER_LEN_U64 + i * ct_seg;
        start..(start + ct_seg).min(self.stored_len)
    }
}

/// Turns a plaintext reader into ciphertext chunks: the header, then one sealed segment per
/// call. Holds at most two segments.
pub(crate) struct Encryptor<R> {
    reader: R,
    cipher: SegmentCipher,
    header: Option<[u8; STREAM_HEADER_LEN]>,
    pending: Option<Vec<u8>>,
    index: u32,
    done: bool,
    plaintext_len: u64,
}

impl<R: AsyncRead + Unpin> Encryptor<R> {
    pub(crate) fn new(
        key: &DataKey,
        ctx: &ObjectContext,
        reader: R,
        segment_size: u32,
    ) -> Result<Self> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(CryptoError::InvalidInput("segment size out of range"));
        }
        let header = StreamHeader::generate(key.version(), segment_size)?;
        Ok(Self {
            reader,
            cipher: SegmentCipher::new(key, ctx, &header)?,
            header: Some(header.to_bytes()),
            pending: None,
            index: 0,
            done: false,
            plaintext_len: 0,
        })
    }

    /// Plaintext bytes read so far.
    pub(crate) const fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Reads up to one segment of plaintext (less only at the end of the input).
    async fn fill(&mut self) -> Result<Vec<u8>> {
        let s = self.cipher.segment_size;
        let mut buf = Vec::with_capacity(s + SEGMENT_TAG_LEN);
        while buf.len() < s {
            let want = (s - buf.len()) as u64;
            if (&mut self.reader).take(want).read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        self.plaintext_len += buf.len() as u64;
        Ok(buf)
    }

    fn seal(&mut self, mut buf: Vec<u8>, last: bool) -> Result<Bytes> {
        self.cipher.seal(self.index, last, &mut buf)?;
        if last {
            self.done = true;
        } else {
            self.index = self.index.checked_add(1).ok_or(CryptoError::TooLarge {
                what: "blob",
                len: self.plaintext_len,
                max: u64::from(u32::MAX) * self.cipher.segment_size as u64,
            })?;
        }
        Ok(Bytes::from(buf))
    }

    /// The next ciphertext chunk, or `None` after the final segment.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if let Some(h) = self.header.take() {
            return Ok(Some(Bytes::copy_from_slice(&h)));
        }
        if self.done {
            return Ok(None);
        }
        let current = match self.pending.take() {
            Some(c) => c,
            None => self.fill().await?,
        };
        if current.len() < self.cipher.segment_size {
            return self.seal(current, true).map(Some);
        }
        // A full segment: it is the last one only if nothing follows.
        let next = self.fill().await?;
        if next.is_empty() {
            return self.seal(current, true).map(Some);
        }
        self.pending = Some(next);
        self.seal(current, false).map(Some)
    }
}

/// Reads the header from the front of a ciphertext stream.
pub(crate) async fn read_header<S>(source: &mut S, buf: &mut BytesMut) -> Result<StreamHeader>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    while buf.len() < STREAM_HEADER_LEN {
        match source.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => break,
        }
    }
    let header = StreamHeader::parse(buf)?;
    buf.advance(STREAM_HEADER_LEN);
    Ok(header)
}

/// Turns ciphertext chunks (after the header) into authenticated plaintext segments.
pub(crate) struct Decryptor<S> {
    source: S,
    cipher: SegmentCipher,
    buf: BytesMut,
    index: u32,
    eof: bool,
    done: bool,
}

impl<S> Decryptor<S>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    pub(crate) const fn new(cipher: SegmentCipher, source: S, buffered: BytesMut) -> Self {
        Self {
            source,
            cipher,
            buf: buffered,
            index: 0,
            eof: false,
            done: false,
        }
    }

    /// The next plaintext segment, or `None` after the final one verified.
    pub(crate) async fn next_segment(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        let ct_seg = self.cipher.segment_size + SEGMENT_TAG_LEN;
        // One byte beyond a full segment tells whether this segment is the last.
        while !self.eof && self.buf.len() <= ct_seg {
            match self.source.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => self.eof = true,
            }
        }
        let last = self.buf.len() <= ct_seg;
        if last && self.buf.len() < SEGMENT_TAG_LEN {
            return Err(CryptoError::Truncated {
                len: self.buf.len() as u64,
                min: TAG_LEN_U64,
            });
        }
        let take = if last { self.buf.len() } else { ct_seg };
        let mut seg = self.buf.split_to(take);
        let n = self.cipher.open(self.index, last, &mut seg)?.len();
        seg.truncate(n);
        if last {
            self.done = true;
        } else {
            self.index = self.index.checked_add(1).ok_or(CryptoError::Decrypt)?;
        }
        Ok(Some(seg.freeze()))
    }

    pub(crate) fn into_stream(self) -> impl Stream<Item = Result<Bytes>>
    where
        S: Send,
    {
        futures::stream::try_unfold(self, |mut d| async move {
            Ok(d.next_segment().await?.map(|seg| (seg, d)))
        })
    }
}

/// Encrypts everything `reader` yields into `writer` under `key` (normally
/// `keys.active()`), bound to `object`. Memory use is two segments whatever the size.
/// Returns the plaintext length.
pub async fn encrypt_stream<R, W>(
    key: &DataKey,
    object: &ObjectContext,
    reader: R,
    writer: &mut W,
) -> Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    encrypt_stream_with(key, object, reader, writer, SEGMENT_SIZE).await
}

pub(crate) async fn encrypt_stream_with<R, W>(
    key: &DataKey,
    object: &ObjectContext,
    reader: R,
    writer: &mut W,
    segment_size: u32,
) -> Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut enc = Encryptor::new(key, object, reader, segment_size)?;
    while let Some(chunk) = enc.next_chunk().await? {
        writer.write_all(&chunk).await?;
    }
    writer.flush().await?;
    Ok(enc.plaintext_len())
}

/// Decrypts a blob stream from `reader` into `writer`, with the key version its header names.
///
/// Segments are written as they verify; on an error the writer may already hold a verified
/// prefix of the plaintext, which the caller must discard. Returns the plaintext length.
pub async fn decrypt_stream<R, W>(
    keys: &PracticeKeys,
    object: &ObjectContext,
    reader: R,
    writer: &mut W,
) -> Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut source = tokio_util::io::ReaderStream::with_capacity(reader, SEGMENT_SIZE as usize)
        .map_err(CryptoError::from);
    let mut buf = BytesMut::new();
    let header = read_header(&mut source, &mut buf).await?;
    if keys.practice() != object.practice {
        return Err(CryptoError::PracticeMismatch {
            key: keys.practice(),
            context: object.practice,
        });
    }
    let cipher = SegmentCipher::new(keys.get(header.dek_version)?, object, &header)?;
    let mut dec = Decryptor::new(cipher, source, buf);
    let mut total = 0u64;
    while let Some(seg) = dec.next_segment().await? {
        writer.write_all(&seg).await?;
        total += seg.len() as u64;
    }
    writer.flush().await?;
    Ok(total)
}

#[cfg(test)]
#[allow(
    clippy::many_single_char_names,
    clippy::cast_possible_truncation,
    reason = "short names and narrowing casts keep table-like tests readable"
)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::keys::tests::test_keys;

    pub(crate) fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
            .collect()
    }

    fn obj(p: PracticeId) -> ObjectContext {
        ObjectContext {
            practice: p,
            object: BlobId::random(),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    async fn enc(keys: &PracticeKeys, o: &ObjectContext, pt: &[u8], seg: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let n = encrypt_stream_with(keys.active(), o, pt, &mut out, seg)
            .await
            .unwrap();
        assert_eq!(n, pt.len() as u64);
        out
    }

    async fn dec(keys: &PracticeKeys, o: &ObjectContext, ct: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        decrypt_stream(keys, o, ct, &mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn real_segment_size_boundaries() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        let s = SEGMENT_SIZE as usize;
        for len in [0, 1, s - 1, s, s + 1, 2 * s, 3 * s + 7] {
            let o = obj(p);
            let pt = pattern(len);
            let ct = enc(&keys, &o, &pt, SEGMENT_SIZE).await;
            assert_eq!(ct.len() as u64, stored_len(len as u64), "len {len}");
            assert_eq!(
                Layout::new(ct.len() as u64, SEGMENT_SIZE)
                    .unwrap()
                    .plaintext_len,
                len as u64
            );
            assert_eq!(dec(&keys, &o, &ct).await.unwrap(), pt, "len {len}");
        }
    }

    #[tokio::test]
    async fn tampering_fails() {
        let p = PracticeId::new();
        let keys = test_keys(p, 2);
        let o = obj(p);
        let seg = 64u32;
        let s = seg as usize + SEGMENT_TAG_LEN;
        let pt = pattern(4 * seg as usize + 10); // 5 segments, last one short
        let ct = enc(&keys, &o, &pt, seg).await;
        let h = STREAM_HEADER_LEN;
        assert_eq!(ct.len(), h + 4 * s + 10 + SEGMENT_TAG_LEN);

        let fails = |bad: Vec<u8>, what: &'static str| {
            let keys = &keys;
            async move {
                let r = dec(keys, &o, &bad).await;
                assert!(r.is_err(), "{what} was accepted");
                r.unwrap_err()
            }
        };
        // Truncated: last segment dropped; cut inside a segment; header only; nothing.
        fails(ct[..h + 4 * s].to_vec(), "missing last segment").await;
        fails(ct[..h + 2 * s + 20].to_vec(), "cut mid-segment").await;
        fails(ct[..h + 5].to_vec(), "cut mid-tag").await;
        assert!(matches!(
            fails(ct[..h].to_vec(), "header only").await,
            CryptoError::Truncated { .. }
        ));
        assert!(matches!(
            fails(Vec::new(), "empty").await,
            CryptoError::Truncated { .. }
        ));
        // Reordered segments.
        let mut re = ct.clone();
        re[h..h + s].copy_from_slice(&ct[h + s..h + 2 * s]);
        re[h + s..h + 2 * s].copy_from_slice(&ct[h..h + s]);
        fails(re, "swapped segments").await;
        // Appended: a copy of a middle segment, or a fresh segment of another object.
        let mut app = ct.clone();
        app.extend_from_slice(&ct[h + s..h + 2 * s]);
        fails(app, "appended segment").await;
        let mut app = ct.clone();
        app.extend_from_slice(&[0u8; SEGMENT_TAG_LEN]);
        fails(app, "appended empty segment").await;
        // Every single-byte flip (header, segments, tags).
        for i in (0..ct.len()).step_by(3) {
            let mut t = ct.clone();
            t[i] ^= 0x04;
            fails(t, "flipped byte").await;
        }
        // Header fields: DEK version 2 -> 1 (a live key, but not the one bound in).
        let mut t = ct.clone();
        t[4] = 1;
        assert!(matches!(
            fails(t, "dek version").await,
            CryptoError::Decrypt
        ));
        // Another object id or practice.
        let other = ObjectContext {
            object: BlobId::random(),
            ..o
        };
        assert!(matches!(
            dec(&keys, &other, &ct).await,
            Err(CryptoError::Decrypt)
        ));
        let q = PracticeId::new();
        let qkeys = test_keys(q, 2);
        let moved = ObjectContext { practice: q, ..o };
        assert!(matches!(
            dec(&qkeys, &moved, &ct).await,
            Err(CryptoError::Decrypt)
        ));
        // Unknown format version.
        let mut t = ct.clone();
        t[0] = 9;
        assert_eq!(
            fails(t, "format").await.to_string(),
            "CRYPTO-0003: unknown blob format version 9; this build reads version 1"
        );
        // The untouched object still decrypts.
        assert_eq!(dec(&keys, &o, &ct).await.unwrap(), pt);
    }

    #[tokio::test]
    async fn exact_multiple_has_no_empty_trailing_segment() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        let o = obj(p);
        let ct = enc(&keys, &o, &pattern(128), 64).await;
        assert_eq!(ct.len(), STREAM_HEADER_LEN + 2 * (64 + SEGMENT_TAG_LEN));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn roundtrip_any_size(len in 0usize..3000, seg in prop::sample::select(vec![16u32, 17, 64, 100, 1024])) {
            let p = PracticeId::new();
            let keys = test_keys(p, 1);
            let o = obj(p);
            let pt = pattern(len);
            rt().block_on(async {
                let ct = enc(&keys, &o, &pt, seg).await;
                let layout = Layout::new(ct.len() as u64, seg).unwrap();
                prop_assert_eq!(layout.plaintext_len, len as u64);
                prop_assert_eq!(layout.segments, if len == 0 { 1 } else { len.div_ceil(seg as usize) as u64 });
                prop_assert_eq!(dec(&keys, &o, &ct).await.unwrap(), pt);
                Ok(())
            })?;
        }

        #[test]
        fn any_truncation_fails(len in 1usize..600, cut_frac in 0.0f64..1.0) {
            let p = PracticeId::new();
            let keys = test_keys(p, 1);
            let o = obj(p);
            rt().block_on(async {
                let ct = enc(&keys, &o, &pattern(len), 32).await;
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
                let cut = ((ct.len() as f64) * cut_frac) as usize;
                prop_assert!(dec(&keys, &o, &ct[..cut.min(ct.len() - 1)]).await.is_err());
                Ok(())
            })?;
        }
    }
}
