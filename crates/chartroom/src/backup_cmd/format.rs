//! The archive format: the clear header, the body's records, the manifest and the size limits
//! that keep a damaged or hostile archive from exhausting memory. The header is written
//! ([`create_with_header`]) and read ([`read_header`]) here; so are the body's records
//! ([`BodyWriter`], and [`chunks`] for one entry), whose sequence `verify` walks.
//!
//! # Archive format (version 1)
//!
//! ```text
//! "CRBACKUP" (8) ‖ format = 0x01 (1) ‖ header length N (u32 BE) ‖ header (N bytes of JSON:
//!   {"format":1, "created_at":…, "key":{"archive_id", "kek", "wrapped"}})
//! ‖ body, encrypted with the archive key in the streaming AEAD format (crypto::archive)
//! ```
//!
//! The plaintext body is a sequence of records:
//!
//! ```text
//! "CRBODY1\n"
//! 0x01 ‖ name length (u16 BE) ‖ name ‖ { chunk length (u32 BE, 1..=1 MiB) ‖ chunk }* ‖ 0u32
//!                                          one entry: a file, streamed
//! 0x02 ‖ length (u32 BE) ‖ manifest JSON   the manifest: every entry's size and SHA-256, the
//!                                          row count of every table, versions
//! 0x00                                     the end
//! ```
//!
//! Entries: `database.pgdump` (`pg_dump --format=custom` of a consistent snapshot),
//! `blobs/…` (the encrypted blob objects, copied as stored), `checkpoints/…` (the signed audit
//! checkpoints) and `audit-verifier.key`. [`safe_name`] checks every entry name before
//! anything is written under it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use store::crypto::ArchiveKeyHeader;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

const MAGIC: &[u8; 8] = b"CRBACKUP";
pub(super) const FORMAT: u8 = 1;
pub(super) const BODY_MAGIC: &[u8; 8] = b"CRBODY1\n";
pub(super) const TAG_END: u8 = 0;
pub(super) const TAG_ENTRY: u8 = 1;
pub(super) const TAG_MANIFEST: u8 = 2;
const MAX_HEADER: u32 = 64 * 1024;
pub(super) const MAX_MANIFEST: u32 = 16 * 1024 * 1024;
const MAX_CHUNK: u32 = 1024 * 1024;
pub(super) const MAX_NAME: u16 = 1024;
pub(super) const MAX_ENTRIES: usize = 10_000_000;
pub(super) const DUMP_ENTRY: &str = "database.pgdump";
pub(super) const VERIFIER_ENTRY: &str = "audit-verifier.key";

/// The archive's clear header.
#[derive(Serialize, Deserialize, Debug)]
pub(super) struct Header {
    pub(super) format: u8,
    pub(super) created_at: DateTime<Utc>,
    pub(super) key: ArchiveKeyHeader,
}

/// The manifest, the body's last record.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(super) struct Manifest {
    pub(super) format: u8,
    pub(super) archive_id: String,
    pub(super) created_at: DateTime<Utc>,
    pub(super) chartroom_version: String,
    pub(super) schema_version: i64,
    pub(super) pg_dump_version: String,
    pub(super) entries: Vec<EntrySum>,
    pub(super) row_counts: BTreeMap<String, i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(super) struct EntrySum {
    pub(super) name: String,
    pub(super) bytes: u64,
    pub(super) sha256: String,
}

/// Writes body records, hashing each entry.
pub(super) struct BodyWriter<W> {
    w: W,
    entries: Vec<EntrySum>,
}

impl<W: AsyncWrite + Unpin> BodyWriter<W> {
    pub(super) async fn new(mut w: W) -> anyhow::Result<Self> {
        w.write_all(BODY_MAGIC).await?;
        Ok(Self {
            w,
            entries: Vec::new(),
        })
    }

    pub(super) async fn entry<R: AsyncRead + Unpin>(
        &mut self,
        name: &str,
        mut r: R,
    ) -> anyhow::Result<()> {
        let len = u16::try_from(name.len())
            .ok()
            .filter(|l| *l <= MAX_NAME)
            .context("entry name too long")?;
        self.w.write_u8(TAG_ENTRY).await?;
        self.w.write_u16(len).await?;
        self.w.write_all(name.as_bytes()).await?;
        let mut h = Sha256::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let chunk = buf.get(..n).context("read past buffer")?;
            h.update(chunk);
            total += n as u64;
            self.w.write_u32(u32::try_from(n)?).await?;
            self.w.write_all(chunk).await?;
        }
        self.w.write_u32(0).await?;
        self.entries.push(EntrySum {
            name: name.to_owned(),
            bytes: total,
            sha256: hex::encode(h.finalize()),
        });
        Ok(())
    }

    pub(super) async fn finish(mut self, mut manifest: Manifest) -> anyhow::Result<Manifest> {
        manifest.entries = std::mem::take(&mut self.entries);
        let json = serde_json::to_vec(&manifest)?;
        self.w.write_u8(TAG_MANIFEST).await?;
        self.w.write_u32(u32::try_from(json.len())?).await?;
        self.w.write_all(&json).await?;
        self.w.write_u8(TAG_END).await?;
        self.w.shutdown().await?;
        Ok(manifest)
    }
}

/// Creates `path` (0600, refusing to overwrite) and writes the archive's clear header.
pub(super) async fn create_with_header(
    path: &Path,
    header: &Header,
) -> anyhow::Result<tokio::fs::File> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    let header_json = serde_json::to_vec(header)?;
    file.write_all(MAGIC).await?;
    file.write_u8(FORMAT).await?;
    file.write_u32(u32::try_from(header_json.len())?).await?;
    file.write_all(&header_json).await?;
    Ok(file)
}

/// Reads the archive's clear header from the start of `file`, leaving `file` at the body.
pub(super) async fn read_header(file: &mut tokio::fs::File) -> anyhow::Result<Header> {
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic)
        .await
        .context("not a Chartroom backup archive (too short)")?;
    if &magic != MAGIC {
        bail!("not a Chartroom backup archive");
    }
    let format = file.read_u8().await?;
    if format != FORMAT {
        bail!("archive format {format} is not supported by this version");
    }
    let hlen = file.read_u32().await?;
    if hlen > MAX_HEADER {
        bail!("the archive header is damaged (length)");
    }
    let mut hbuf = vec![0u8; usize::try_from(hlen)?];
    file.read_exact(&mut hbuf)
        .await
        .context("the archive header is truncated")?;
    serde_json::from_slice(&hbuf).context("the archive header is damaged")
}

/// Reads one entry's chunks, passing each to `sink`.
pub(super) async fn chunks<R, F, Fut>(r: &mut R, mut sink: F) -> anyhow::Result<EntrySum>
where
    R: AsyncRead + Unpin,
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut h = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = r.read_u32().await?;
        if n == 0 {
            break;
        }
        if n > MAX_CHUNK {
            bail!("the archive body is damaged (chunk length)");
        }
        let mut buf = vec![0u8; usize::try_from(n)?];
        r.read_exact(&mut buf).await?;
        h.update(&buf);
        total += u64::from(n);
        sink(buf).await?;
    }
    Ok(EntrySum {
        name: String::new(),
        bytes: total,
        sha256: hex::encode(h.finalize()),
    })
}

/// An entry name is safe to restore: relative, no `..`, printable, under a known prefix.
pub(super) fn safe_name(name: &str) -> anyhow::Result<Option<PathBuf>> {
    if name == DUMP_ENTRY || name == VERIFIER_ENTRY {
        return Ok(None);
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    let p = Path::new(name);
    let normal = p.components().all(|c| matches!(c, Component::Normal(_)))
        && !name.split('/').any(str::is_empty);
    if !ok_chars || !normal || !(name.starts_with("blobs/") || name.starts_with("checkpoints/")) {
        bail!("the archive holds an entry with an unsafe name");
    }
    Ok(Some(p.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_cannot_escape() {
        assert!(safe_name("blobs/ab/cd").expect("ok").is_some());
        assert!(safe_name("checkpoints/x.note").expect("ok").is_some());
        assert!(safe_name(DUMP_ENTRY).expect("ok").is_none());
        for bad in [
            "blobs/../secrets/kek.key",
            "/etc/passwd",
            "secrets/kek.key",
            "blobs//x",
            "blobs/a b",
            "checkpoints/..",
        ] {
            assert!(safe_name(bad).is_err(), "{bad}");
        }
    }
}
