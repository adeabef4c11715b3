//! The files side of an archive: the blob objects (copied as stored, still encrypted under
//! their practice's key) and the data directory's files (audit checkpoints, the audit verifier
//! key), read into a backup and written back by a restore. A restore creates each file of the
//! data directory anew (0600) and never overwrites one; the blob store it writes into is
//! checked empty first.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

use super::format::{BodyWriter, EntrySum, chunks};
use crate::services::Services;

/// Every regular file under `root`, as paths relative to it, sorted.
pub(super) fn files_under(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let name = e.file_name();
                // Temporary files of unfinished writes are not data.
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                out.push(e.path().strip_prefix(root)?.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies every blob object, as stored (already encrypted under its practice's key), into
/// the archive body.
/// Writes every signed audit checkpoint as `checkpoints/<practice>/<size>.checkpoint`: the
/// files of the checkpoint directory, or the notes of the object store replicas share
/// (`--checkpoint-store-url`, the same layout).
pub(super) async fn checkpoint_entries<W: AsyncWrite + Unpin>(
    body: &mut BodyWriter<W>,
    svc: &Services,
) -> anyhow::Result<()> {
    match svc.checkpoint_place()? {
        server::checkpoint::Place::Dir(_) => {
            let cps = svc.checkpoint_dir();
            for rel in files_under(&cps)? {
                let f = tokio::fs::File::open(cps.join(&rel)).await?;
                body.entry(&format!("checkpoints/{}", rel.display()), f)
                    .await?;
            }
        }
        place @ server::checkpoint::Place::Object(_) => {
            for practice in place.practices().await? {
                for (size, note) in place.notes(practice).await? {
                    let name = format!(
                        "checkpoints/{}/{}",
                        practice.hyphenated(),
                        audit::store::file_name(size)
                    );
                    body.entry(&name, note.as_bytes()).await?;
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn blob_entries<W: AsyncWrite + Unpin>(
    body: &mut BodyWriter<W>,
    svc: &Services,
) -> anyhow::Result<()> {
    use futures::TryStreamExt as _;
    use store::crypto::object_store::ObjectStoreExt as _;
    let blobs = svc.raw_blob_store().await?;
    for (rel, location) in blob_objects(&blobs).await? {
        let stream = blobs
            .object_store()
            .0
            .get(&location)
            .await
            .context("cannot read a blob object")?
            .into_stream()
            .map_err(std::io::Error::other);
        body.entry(
            &format!("blobs/{rel}"),
            tokio_util::io::StreamReader::new(stream),
        )
        .await?;
    }
    Ok(())
}

/// Every object under the blob store's prefix: (name relative to the prefix, location).
pub(super) async fn blob_objects(
    blobs: &store::crypto::BlobStore,
) -> anyhow::Result<Vec<(String, store::crypto::object_store::path::Path)>> {
    use futures::TryStreamExt as _;
    let (os, prefix) = blobs.object_store();
    let prefix_path =
        (!prefix.is_empty()).then(|| store::crypto::object_store::path::Path::from(prefix));
    let mut out: Vec<(String, store::crypto::object_store::path::Path)> = os
        .list(prefix_path.as_ref())
        .map_ok(|m| {
            let name = m.location.to_string();
            let rel = name
                .strip_prefix(prefix)
                .map_or(name.as_str(), |r| r.trim_start_matches('/'))
                .to_owned();
            (rel, m.location)
        })
        .try_collect()
        .await
        .context("cannot list the blob store")?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads one file entry: only hashes it without a `target`, else writes it there (0600,
/// refusing to overwrite) and syncs it.
pub(super) async fn file_entry<R: AsyncRead + Unpin>(
    r: &mut R,
    target: Option<&Path>,
) -> anyhow::Result<EntrySum> {
    let Some(target) = target else {
        return chunks(r, |_| async { Ok(()) }).await;
    };
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .await
        .with_context(|| {
            format!(
                "cannot create {} (the target must be empty)",
                target.display()
            )
        })?;
    let f = std::sync::Arc::new(tokio::sync::Mutex::new(f));
    let sum = chunks(r, |buf| {
        let f = f.clone();
        async move {
            f.lock().await.write_all(&buf).await?;
            Ok(())
        }
    })
    .await?;
    f.lock().await.sync_all().await?;
    Ok(sum)
}

/// Writes one blob object, as stored, into the blob store (multipart: memory stays flat).
pub(super) async fn blob_entry<R: AsyncRead + Unpin>(
    r: &mut R,
    blobs: &store::crypto::BlobStore,
    rel: &str,
) -> anyhow::Result<EntrySum> {
    use store::crypto::object_store::{ObjectStoreExt as _, WriteMultipart, path::Path as OPath};
    let (os, prefix) = blobs.object_store();
    let location = if prefix.is_empty() {
        OPath::from(rel)
    } else {
        OPath::from(format!("{prefix}/{rel}"))
    };
    let upload = os
        .put_multipart(&location)
        .await
        .context("cannot write a blob object")?;
    let writer = std::sync::Arc::new(tokio::sync::Mutex::new(
        WriteMultipart::new_with_chunk_size(upload, store::crypto::blob::MIN_PART_SIZE),
    ));
    let sum = chunks(r, |buf| {
        let writer = writer.clone();
        async move {
            let mut w = writer.lock().await;
            w.wait_for_capacity(2).await?;
            w.write(&buf);
            Ok(())
        }
    })
    .await?;
    let writer = std::sync::Arc::try_unwrap(writer)
        .map_err(|_| anyhow::anyhow!("blob writer still shared"))?
        .into_inner();
    writer
        .finish()
        .await
        .context("cannot finish a blob object")?;
    Ok(sum)
}
