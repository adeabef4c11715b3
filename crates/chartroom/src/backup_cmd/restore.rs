//! `chartroom backup restore`: verifies the whole archive first, refuses a blob store,
//! checkpoint directory or database that is not empty, then reads the archive again into
//! place (the dump through `pg_restore --single-transaction`), requires the same manifest both
//! times and the restored row counts to match it, and records the restore on the audit log.
//! The installation's `secrets/` directory must already be in place: it is not in the archive.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use sqlx::Connection as _;

use super::database::{Target, audit, audit_owner, pg_bin, row_counts};
use super::storage::{blob_objects, files_under};
use super::verify::{RestoreTo, print_report, read_archive};
use crate::services::Services;

/// `chartroom backup restore`: verifies `archive`, then restores it into the empty target
/// (`url`, or the embedded cluster) and records the restore on the audit log.
pub(super) async fn restore(
    svc: &Services,
    archive: &Path,
    url: Option<String>,
) -> anyhow::Result<()> {
    let g = svc.global();
    let began = Instant::now();
    let provider = svc.keys().await?.provider.as_ref();
    let bin = pg_bin(g)?;
    // First pass: check everything, change nothing.
    let checked = read_archive(archive, provider, &bin, None).await?;
    print_report(&checked);
    let blobs = svc.raw_blob_store().await?;
    if !blob_objects(&blobs).await?.is_empty() {
        bail!("the blob store is not empty: restore into a new data directory and blob store");
    }
    let checkpoint_dir = svc.checkpoint_dir();
    if !files_under(&checkpoint_dir)?.is_empty() {
        bail!(
            "{} is not empty: restore into a new data directory",
            checkpoint_dir.display()
        );
    }
    let target = Target::open(g, url, "backup restore", true).await?;
    let owner = match audit_owner(g, &target).await {
        Ok(o) => o,
        Err(e) => {
            target.close().await?;
            return Err(e);
        }
    };
    let result = async {
        let mut conn = target.connect().await?;
        let (tables,): (i64,) = sqlx::query_as(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
                and c.relkind in ('r', 'p')",
        )
        .fetch_one(&mut conn)
        .await?;
        if tables > 0 {
            bail!("the target database is not empty ({tables} tables): restore into an empty one");
        }
        let to = RestoreTo {
            env: target.env.clone(),
            blobs,
            checkpoint_dir: checkpoint_dir.clone(),
            data_dir: g.data_dir.clone(),
        };
        let report = read_archive(archive, provider, &bin, Some(&to)).await?;
        if report.manifest != checked.manifest {
            bail!("the archive changed between verification and restore");
        }
        let counts = row_counts(&mut conn).await?;
        conn.close().await?;
        let mut mismatches = Vec::new();
        for (t, n) in &report.manifest.row_counts {
            let got = counts.get(t).copied().unwrap_or(-1);
            if got != *n {
                mismatches.push(format!("{t}: archive {n}, restored {got}"));
            }
        }
        if !mismatches.is_empty() {
            bail!("row counts differ after restore: {}", mismatches.join("; "));
        }
        anyhow::Ok(report)
    }
    .await;
    let audited = match &result {
        Ok(r) => {
            audit(
                owner,
                domain::AuditAction::BackupRestore,
                serde_json::json!({
                    "archive_id": r.manifest.archive_id,
                    "archive_created_at": r.manifest.created_at,
                    "rows": r.manifest.row_counts.values().sum::<i64>(),
                }),
            )
            .await
        }
        Err(_) => Ok(()),
    };
    target.close().await?;
    let report = result?;
    audited?;
    println!(
        "restored {} tables ({} rows, counts match the archive) and {} files in {:.1} s",
        report.manifest.row_counts.len(),
        report.manifest.row_counts.values().sum::<i64>(),
        report.manifest.entries.len().saturating_sub(1),
        began.elapsed().as_secs_f64()
    );
    println!("next: chartroom audit verify, then chartroom serve");
    Ok(())
}
