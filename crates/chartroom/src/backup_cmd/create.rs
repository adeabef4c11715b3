//! `chartroom backup create`: one consistent snapshot of the database (row counts and
//! `pg_dump` read the same exported snapshot), the blobs, the audit checkpoints and the
//! verifier key, streamed through the encryption into `<out>.partial` and renamed into place
//! once complete and synced. Nothing is written to disk in the clear. An archive whose
//! creation could not be recorded on the audit log is deleted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use store::crypto::ArchiveKey;

use super::database::{
    Target, audit, audit_owner, pg_bin, row_counts, schema_version, tool_version,
};
use super::format::{
    BodyWriter, DUMP_ENTRY, FORMAT, Header, Manifest, VERIFIER_ENTRY, create_with_header,
};
use super::storage::{blob_entries, checkpoint_entries};
use crate::services::{Keys, Services};

/// `chartroom backup create`: writes the archive to `out` (default under `<data dir>/backups`)
/// and records it on the audit log.
pub(super) async fn create(
    svc: &Services,
    out: Option<PathBuf>,
    dump_url: Option<String>,
) -> anyhow::Result<()> {
    let g = svc.global();
    let began = Instant::now();
    let created_at = domain::Clock::now(&domain::SystemClock);
    let out = if let Some(p) = out {
        p
    } else {
        let dir = g.data_dir.join("backups");
        std::fs::create_dir_all(&dir)?;
        dir.join(format!(
            "chartroom-{}.crbk",
            created_at.format("%Y%m%dT%H%M%SZ")
        ))
    };
    if out.exists() {
        bail!("{} exists: choose another --out", out.display());
    }
    let keys = svc.keys().await?;
    let bin = pg_bin(g)?;
    let pg_dump_version = tool_version(&bin, "pg_dump").await?;
    let target = Target::open(g, dump_url, "backup create", false).await?;
    let owner = match audit_owner(g, &target).await {
        Ok(o) => o,
        Err(e) => {
            target.close().await?;
            return Err(e);
        }
    };
    let result = write_archive(svc, &target, keys, &bin, &out, created_at, pg_dump_version).await;
    if result.is_err() {
        let _ = std::fs::remove_file(out.with_extension("crbk.partial"));
    }
    let audited = match &result {
        Ok(m) => {
            audit(
                owner,
                domain::AuditAction::BackupCreate,
                serde_json::json!({
                    "archive_id": m.archive_id,
                    "entries": m.entries.len(),
                    "rows": m.row_counts.values().sum::<i64>(),
                }),
            )
            .await
        }
        Err(_) => Ok(()),
    };
    target.close().await?;
    let manifest = result?;
    if audited.is_err() {
        // Not on the audit log: the archive does not stay.
        let _ = std::fs::remove_file(&out);
    }
    audited?;
    let size = std::fs::metadata(&out)?.len();
    let rows: i64 = manifest.row_counts.values().sum();
    println!(
        "backup written: {} ({} bytes, {} entries, {} rows in {} tables) in {:.1} s",
        out.display(),
        size,
        manifest.entries.len(),
        rows,
        manifest.row_counts.len(),
        began.elapsed().as_secs_f64()
    );
    println!("archive id {}", manifest.archive_id);
    Ok(())
}

/// Writes the archive to `<out>.partial`, then renames it to `out`; returns its manifest.
async fn write_archive(
    svc: &Services,
    target: &Target,
    keys: &Keys,
    bin: &Path,
    out: &Path,
    created_at: DateTime<Utc>,
    pg_dump_version: String,
) -> anyhow::Result<Manifest> {
    // One snapshot for the counts and the dump.
    let mut conn = target.connect().await?;
    sqlx::query("begin isolation level repeatable read, read only")
        .execute(&mut conn)
        .await?;
    let (snapshot,): (String,) = sqlx::query_as("select pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await?;
    let schema_version = schema_version(&mut conn).await?;
    let counts = row_counts(&mut conn).await?;

    let (key_header, key) = ArchiveKey::generate(keys.provider.as_ref())
        .await
        .context("cannot create the archive key with the KEK")?;
    let header = Header {
        format: FORMAT,
        created_at,
        key: key_header,
    };
    let partial = out.with_extension("crbk.partial");
    let mut file = create_with_header(&partial, &header).await?;

    let (plain_w, plain_r) = tokio::io::duplex(256 * 1024);
    let encrypt = tokio::spawn(async move {
        let r = key.encrypt(plain_r, &mut file).await;
        (r, file)
    });
    let body = async {
        let mut body = BodyWriter::new(plain_w).await?;
        let mut child = tokio::process::Command::new(bin.join("pg_dump"))
            .args(["--format=custom", "--no-password", "--snapshot"])
            .arg(&snapshot)
            .envs(target.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run pg_dump")?;
        let stdout = child.stdout.take().context("pg_dump stdout")?;
        body.entry(DUMP_ENTRY, stdout).await?;
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            bail!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        blob_entries(&mut body, svc).await?;
        checkpoint_entries(&mut body, svc).await?;
        let vkey = svc.global().data_dir.join(VERIFIER_ENTRY);
        if vkey.exists() {
            body.entry(VERIFIER_ENTRY, tokio::fs::File::open(&vkey).await?)
                .await?;
        }
        body.finish(Manifest {
            format: FORMAT,
            archive_id: header.key.archive_id.to_string(),
            created_at,
            chartroom_version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version,
            pg_dump_version,
            entries: Vec::new(),
            row_counts: counts,
        })
        .await
    };
    let manifest = body.await;
    let (encrypted, file) = encrypt.await.context("encryption task failed")?;
    let manifest = manifest?;
    encrypted.context("encrypting the archive failed")?;
    file.sync_all().await?;
    drop(file);
    sqlx::query("commit").execute(&mut conn).await?;
    conn.close().await?;
    tokio::fs::rename(&partial, &out).await?;
    if let Some(dir) = out.parent() {
        std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })?
        .sync_all()?;
    }
    anyhow::Ok(manifest)
}
