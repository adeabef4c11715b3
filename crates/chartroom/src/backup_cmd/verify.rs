//! Reading an archive, which checks all of it: every segment's tag and the end marker (the
//! decryption), every entry's hash against the manifest, and the dump's table of contents
//! (`pg_restore --list`). `chartroom backup verify` is this reading alone and touches no
//! database; a restore reads the archive once like this and then again with a [`RestoreTo`],
//! which sends each entry to its place instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use pgcluster::DATABASE;
use store::crypto::{ArchiveKey, CryptoError, KeyProvider};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use super::database::pg_bin;
use super::format::{
    BODY_MAGIC, DUMP_ENTRY, EntrySum, MAX_ENTRIES, MAX_MANIFEST, MAX_NAME, Manifest, TAG_END,
    TAG_ENTRY, TAG_MANIFEST, VERIFIER_ENTRY, chunks, read_header, safe_name,
};
use super::storage::{blob_entry, file_entry};
use crate::services::Services;

/// `chartroom backup verify`: reads the whole archive and prints what it holds.
pub(super) async fn verify(svc: &Services, archive: &Path) -> anyhow::Result<()> {
    let g = svc.global();
    let began = Instant::now();
    let provider = svc.keys().await?.provider.as_ref();
    let bin = pg_bin(g)?;
    let report = read_archive(archive, provider, &bin, None).await?;
    print_report(&report);
    println!(
        "archive OK: {} entries, {} table(s), verified in {:.1} s",
        report.manifest.entries.len(),
        report.manifest.row_counts.len(),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What reading an archive found.
pub(super) struct Report {
    pub(super) manifest: Manifest,
    pub(super) created_at: DateTime<Utc>,
    pub(super) dump_tables: usize,
}

/// Prints what an archive holds: who wrote it when, the dump, the blobs and the row total.
pub(super) fn print_report(r: &Report) {
    println!(
        "archive {} written {} by Chartroom {} (schema {}, {})",
        r.manifest.archive_id,
        r.created_at.to_rfc3339(),
        r.manifest.chartroom_version,
        r.manifest.schema_version,
        r.manifest.pg_dump_version
    );
    let blobs = r
        .manifest
        .entries
        .iter()
        .filter(|e| e.name.starts_with("blobs/"))
        .count();
    println!(
        "database dump: {} table data sections; {} blob objects; {} rows",
        r.dump_tables,
        blobs,
        r.manifest.row_counts.values().sum::<i64>()
    );
}

/// Where a restore puts entries.
pub(super) struct RestoreTo {
    pub(super) env: Vec<(&'static str, String)>,
    pub(super) blobs: store::crypto::BlobStore,
    pub(super) checkpoint_dir: PathBuf,
    pub(super) data_dir: PathBuf,
}

/// Reads (decrypts, parses, hashes) a whole archive. With `restore_to`, also writes the dump
/// into the database and the files into place; without, only checks (the dump goes to
/// `pg_restore --list`).
pub(super) async fn read_archive(
    path: &Path,
    provider: &dyn KeyProvider,
    bin: &Path,
    restore_to: Option<&RestoreTo>,
) -> anyhow::Result<Report> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let header = read_header(&mut file).await?;
    let key = ArchiveKey::open(provider, &header.key)
        .await
        .map_err(|e| match e {
            CryptoError::KekUnwrap { .. } | CryptoError::UnknownKek { .. } => anyhow::anyhow!(
                "this installation's key-encryption key did not write this archive ({e}); \
                 restore needs the original installation's secrets/ directory"
            ),
            e => anyhow::anyhow!("cannot open the archive key: {e}"),
        })?;

    let (mut plain_w, plain_r) = tokio::io::duplex(256 * 1024);
    let decrypt = tokio::spawn(async move {
        let r = key.decrypt(file, &mut plain_w).await;
        drop(plain_w);
        r
    });
    let parsed = parse_body(plain_r, bin, restore_to).await;
    let decrypted = decrypt.await.context("decryption task failed")?;
    // A decryption failure explains a parse failure (the stream stopped early), so it wins.
    decrypted.map_err(|e| {
        anyhow::anyhow!("the archive does not decrypt: it is damaged or was modified ({e})")
    })?;
    let (manifest, dump_tables) = parsed?;
    Ok(Report {
        manifest,
        created_at: header.created_at,
        dump_tables,
    })
}

/// Walks the body's records: each entry to its sink (hashed on the way), then the manifest,
/// which must list exactly the entries seen; returns it and the dump's table data count.
async fn parse_body<R: AsyncRead + Unpin>(
    mut r: R,
    bin: &Path,
    restore_to: Option<&RestoreTo>,
) -> anyhow::Result<(Manifest, usize)> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).await?;
    if &magic != BODY_MAGIC {
        bail!("the archive body is not in a known format");
    }
    let mut seen: Vec<EntrySum> = Vec::new();
    let mut dump_tables = None;
    loop {
        match r.read_u8().await? {
            TAG_ENTRY => {
                if seen.len() >= MAX_ENTRIES {
                    bail!("the archive holds too many entries");
                }
                let nlen = r.read_u16().await?;
                if nlen == 0 || nlen > MAX_NAME {
                    bail!("the archive holds an entry with a bad name");
                }
                let mut name = vec![0u8; usize::from(nlen)];
                r.read_exact(&mut name).await?;
                let name = String::from_utf8(name).context("entry name is not UTF-8")?;
                let dest = safe_name(&name)?;
                let sum = if name == DUMP_ENTRY {
                    let (sum, tables) = dump_entry(&mut r, bin, restore_to).await?;
                    dump_tables = Some(tables);
                    sum
                } else if let (Some(t), Some(rel)) = (restore_to, name.strip_prefix("blobs/")) {
                    blob_entry(&mut r, &t.blobs, rel).await?
                } else {
                    let target = match (restore_to, dest) {
                        (Some(t), Some(rel)) => {
                            let sub: PathBuf = rel.components().skip(1).collect();
                            Some(t.checkpoint_dir.join(sub))
                        }
                        (Some(t), None) => Some(t.data_dir.join(VERIFIER_ENTRY)),
                        (None, _) => None,
                    };
                    file_entry(&mut r, target.as_deref()).await?
                };
                seen.push(EntrySum { name, ..sum });
            }
            TAG_MANIFEST => {
                let len = r.read_u32().await?;
                if len > MAX_MANIFEST {
                    bail!("the archive manifest is too large");
                }
                let mut buf = vec![0u8; usize::try_from(len)?];
                r.read_exact(&mut buf).await?;
                let manifest: Manifest =
                    serde_json::from_slice(&buf).context("the archive manifest is damaged")?;
                if r.read_u8().await? != TAG_END {
                    bail!("the archive has data after its manifest");
                }
                let mut rest = [0u8; 1];
                if r.read(&mut rest).await? != 0 {
                    bail!("the archive has data after its end");
                }
                if manifest.entries != seen {
                    bail!("the archive's entries do not match its manifest");
                }
                let tables = dump_tables.context("the archive holds no database dump")?;
                return Ok((manifest, tables));
            }
            _ => bail!("the archive body is damaged (unknown record)"),
        }
    }
}

/// Streams the dump into `pg_restore --list` (check) or `pg_restore --dbname` (restore);
/// returns its hash and the number of table data sections in its table of contents.
async fn dump_entry<R: AsyncRead + Unpin>(
    r: &mut R,
    bin: &Path,
    restore_to: Option<&RestoreTo>,
) -> anyhow::Result<(EntrySum, usize)> {
    let mut list = tokio::process::Command::new(bin.join("pg_restore"));
    list.arg("--list")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut restore = restore_to.map(|t| {
        let mut c = tokio::process::Command::new(bin.join("pg_restore"));
        c.args([
            "--exit-on-error",
            "--single-transaction",
            "--no-password",
            "--dbname",
        ])
        .arg(
            t.env
                .iter()
                .find(|(k, _)| *k == "PGDATABASE")
                .map_or(DATABASE, |(_, v)| v.as_str()),
        )
        .envs(t.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        c
    });
    let mut child = if let Some(c) = restore.as_mut() {
        c.spawn().context("cannot run pg_restore")?
    } else {
        list.spawn().context("cannot run pg_restore")?
    };
    let stdin = child.stdin.take().context("pg_restore stdin")?;
    let stdin = std::sync::Arc::new(tokio::sync::Mutex::new(Some(stdin)));
    let sum = chunks(r, |buf| {
        let stdin = stdin.clone();
        async move {
            if let Some(s) = stdin.lock().await.as_mut() {
                // pg_restore may stop reading early on an error; its exit status reports it.
                if s.write_all(&buf).await.is_err() {
                    return Ok(());
                }
            }
            Ok(())
        }
    })
    .await;
    drop(stdin.lock().await.take());
    let output = child.wait_with_output().await?;
    let sum = sum?;
    if !output.status.success() {
        bail!(
            "pg_restore rejected the database dump: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let tables = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains(" TABLE DATA "))
        .count();
    Ok((sum, tables))
}
