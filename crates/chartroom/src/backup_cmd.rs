//! `chartroom backup create | verify | restore`: one encrypted archive holding the database, the
//! blobs and the audit checkpoints, with a manifest of hashes and row counts (req CP-01, CP-02).
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
//! checkpoints) and `audit-verifier.key`. Nothing is written to disk in the clear: the dump
//! streams from `pg_dump` through the encryption into the archive file.
//!
//! # What is not in an archive
//!
//! The key material under `<data dir>/secrets/` — the KEK, the practice secrets, the identity
//! and signing keys, the database role passwords. Back that directory up apart from the
//! archives; a restore needs it. Because the practice secrets are not in archives, a practice
//! shredded after an archive was written stays unreadable when the archive is restored.
//!
//! # Safety
//!
//! `verify` decrypts and checks everything (every segment's tag, the end marker, every entry's
//! hash against the manifest, the dump's table of contents through `pg_restore --list`)
//! without touching a database. `restore` runs the same verification first and refuses a
//! target database that already holds tables, so a damaged archive or a wrong target changes
//! nothing.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use pgcluster::{Cluster, DATABASE, DbRole};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::{Connection as _, PgConnection};
use store::crypto::{ArchiveKey, ArchiveKeyHeader, CryptoError, KeyProvider};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::Global;
use crate::services::{Keys, Services};

const MAGIC: &[u8; 8] = b"CRBACKUP";
const FORMAT: u8 = 1;
const BODY_MAGIC: &[u8; 8] = b"CRBODY1\n";
const TAG_END: u8 = 0;
const TAG_ENTRY: u8 = 1;
const TAG_MANIFEST: u8 = 2;
const MAX_HEADER: u32 = 64 * 1024;
const MAX_MANIFEST: u32 = 16 * 1024 * 1024;
const MAX_CHUNK: u32 = 1024 * 1024;
const MAX_NAME: u16 = 1024;
const MAX_ENTRIES: usize = 10_000_000;
const DUMP_ENTRY: &str = "database.pgdump";
const VERIFIER_ENTRY: &str = "audit-verifier.key";

/// `chartroom backup …`.
#[derive(Subcommand, Debug)]
pub(crate) enum BackupCommand {
    /// Write one encrypted archive of the database, the blobs and the audit checkpoints.
    Create {
        /// The archive file to write (refused if it exists); default
        /// `<data dir>/backups/chartroom-<time>.crbk`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// With an external PostgreSQL: a URL for a role that can read every row (a superuser
        /// or a `BYPASSRLS` role) to run `pg_dump` with. The embedded cluster needs none.
        #[arg(long, env = "CHARTROOM_DUMP_DATABASE_URL", hide_env_values = true)]
        dump_database_url: Option<String>,
    },
    /// Check an archive without restoring it: decrypt everything, compare every hash with the
    /// manifest and read the dump's table of contents.
    Verify {
        /// The archive file.
        archive: PathBuf,
    },
    /// Restore an archive into an empty database and data directory (verifying it first).
    /// Copy the original installation's `secrets/` directory into the data directory before:
    /// the archive's key and the records' keys are not in the archive.
    Restore {
        /// The archive file.
        archive: PathBuf,
        /// With an external PostgreSQL: a superuser URL of the empty target database (its
        /// Chartroom roles must exist). The embedded cluster needs none.
        #[arg(long, env = "CHARTROOM_RESTORE_DATABASE_URL", hide_env_values = true)]
        restore_database_url: Option<String>,
    },
}

/// The archive's clear header.
#[derive(Serialize, Deserialize, Debug)]
struct Header {
    format: u8,
    created_at: DateTime<Utc>,
    key: ArchiveKeyHeader,
}

/// The manifest, the body's last record.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Manifest {
    format: u8,
    archive_id: String,
    created_at: DateTime<Utc>,
    chartroom_version: String,
    schema_version: i64,
    pg_dump_version: String,
    entries: Vec<EntrySum>,
    row_counts: BTreeMap<String, i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct EntrySum {
    name: String,
    bytes: u64,
    sha256: String,
}

/// `chartroom backup …`.
pub(crate) async fn run(svc: &Services, cmd: BackupCommand) -> anyhow::Result<()> {
    let g = svc.global();
    match cmd {
        BackupCommand::Create {
            out,
            dump_database_url,
        } => create(svc, out, dump_database_url).await,
        BackupCommand::Verify { archive } => {
            let began = Instant::now();
            let provider = svc.keys().await?.provider.as_ref();
            let bin = pg_bin(g)?;
            let report = read_archive(&archive, provider, &bin, None).await?;
            print_report(&report);
            println!(
                "archive OK: {} entries, {} table(s), verified in {:.1} s",
                report.manifest.entries.len(),
                report.manifest.row_counts.len(),
                began.elapsed().as_secs_f64()
            );
            Ok(())
        }
        BackupCommand::Restore {
            archive,
            restore_database_url,
        } => restore(svc, &archive, restore_database_url).await,
    }
}

fn pg_bin(g: &Global) -> anyhow::Result<PathBuf> {
    pgcluster::find_pg_bin_dir(g.pg_bin_dir.as_deref())
        .map_err(|e| anyhow::anyhow!("PostgreSQL client tools: {e}"))
}

/// libpq environment from a PostgreSQL URL (the password stays out of the command line).
fn libpq_env_from_url(url: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let u = url::Url::parse(url).context("not a valid PostgreSQL URL")?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        bail!("not a PostgreSQL URL (postgres:// or postgresql://)");
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut env = Vec::new();
    if let Some(h) = u.host_str() {
        env.push(("PGHOST", h.to_owned()));
    }
    if let Some(p) = u.port() {
        env.push(("PGPORT", p.to_string()));
    }
    if !u.username().is_empty() {
        env.push(("PGUSER", decode(u.username())));
    }
    if let Some(p) = u.password() {
        env.push(("PGPASSWORD", decode(p)));
    }
    let db = u.path().trim_start_matches('/');
    if !db.is_empty() {
        env.push(("PGDATABASE", decode(db)));
    }
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "sslmode" => env.push(("PGSSLMODE", v.into_owned())),
            "host" => env.push(("PGHOST", v.into_owned())),
            "sslrootcert" => env.push(("PGSSLROOTCERT", v.into_owned())),
            _ => {}
        }
    }
    Ok(env)
}

fn options_from_env(env: &[(&'static str, String)]) -> sqlx::postgres::PgConnectOptions {
    let mut o = sqlx::postgres::PgConnectOptions::new_without_pgpass();
    for (k, v) in env {
        o = match *k {
            "PGHOST" => o.host(v),
            "PGPORT" => v.parse().map_or(o.clone(), |p| o.clone().port(p)),
            "PGUSER" => o.username(v),
            "PGPASSWORD" => o.password(v),
            "PGDATABASE" => o.database(v),
            "PGSSLMODE" => v.parse().map_or(o.clone(), |m| o.clone().ssl_mode(m)),
            _ => o,
        };
    }
    o
}

/// A database to dump from or restore into, as libpq environment (for the tools) and sqlx
/// options (for the counts); with the embedded cluster this process started.
struct Target {
    env: Vec<(&'static str, String)>,
    cluster: Option<Cluster>,
}

impl Target {
    async fn open(
        g: &Global,
        url: Option<String>,
        what: &str,
        exclusive: bool,
    ) -> anyhow::Result<Self> {
        if let Some(url) = url {
            return Ok(Self {
                env: libpq_env_from_url(&url)?,
                cluster: None,
            });
        }
        if g.database_url.is_some() {
            bail!(
                "with an external PostgreSQL, {what} needs a superuser (or BYPASSRLS) URL: see --help"
            );
        }
        let cfg = crate::db::cluster_config(g);
        // A backup is taken next to a running server; a restore needs the cluster to itself.
        let cluster = if exclusive {
            Cluster::start(cfg).await
        } else {
            Cluster::start_or_attach(cfg).await
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            env: cluster.libpq_env(DbRole::Superuser, DATABASE),
            cluster: Some(cluster),
        })
    }

    async fn connect(&self) -> anyhow::Result<PgConnection> {
        PgConnection::connect_with(&options_from_env(&self.env))
            .await
            .context("cannot connect to the database")
    }

    async fn close(self) -> anyhow::Result<()> {
        if let Some(c) = self.cluster {
            c.stop().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    }
}

/// The owner role that records a backup or restore on the installation's audit log (the
/// embedded cluster's, or `--owner-database-url`), connected before any work: without it the
/// command refuses to run, so no backup or restore is left off the log.
async fn audit_owner(g: &Global, target: &Target) -> anyhow::Result<store::OwnerStore> {
    let owner = match (&target.cluster, &g.owner_database_url) {
        (Some(c), _) => c.connect_options(DbRole::Owner, DATABASE),
        (None, Some(url)) => url
            .parse()
            .context("--owner-database-url is not a valid PostgreSQL URL")?,
        (None, None) => bail!(
            "backups and restores are recorded on the audit log as the owner role: give --owner-database-url (or CHARTROOM_OWNER_DATABASE_URL)"
        ),
    };
    store::OwnerStore::connect(owner)
        .await
        .context("cannot connect as the owner role to audit the backup")
}

/// Records `action` on the installation's audit log as `owner`.
async fn audit(
    owner: store::OwnerStore,
    action: domain::AuditAction,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let r = owner.audit_system_event(action, details).await;
    owner.close().await;
    r.context("cannot record the backup on the audit log")
}

/// Row counts of every table in the `public` schema, seen by `conn`'s transaction.
async fn row_counts(conn: &mut PgConnection) -> anyhow::Result<BTreeMap<String, i64>> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = BTreeMap::new();
    for (t,) in tables {
        let q = format!("select count(*) from public.{}", quote_ident(&t));
        let (n,): (i64,) = sqlx::query_as(&q).fetch_one(&mut *conn).await?;
        out.insert(t, n);
    }
    Ok(out)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn schema_version(conn: &mut PgConnection) -> anyhow::Result<i64> {
    let v: Option<(Option<i64>,)> =
        sqlx::query_as("select max(version) from public._sqlx_migrations where success")
            .fetch_optional(&mut *conn)
            .await
            .context("the database has no migration history: not a Chartroom database")?;
    Ok(v.and_then(|r| r.0).unwrap_or(0))
}

async fn tool_version(bin: &Path, tool: &str) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(bin.join(tool))
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("cannot run {tool}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Writes body records, hashing each entry.
struct BodyWriter<W> {
    w: W,
    entries: Vec<EntrySum>,
}

impl<W: AsyncWrite + Unpin> BodyWriter<W> {
    async fn new(mut w: W) -> anyhow::Result<Self> {
        w.write_all(BODY_MAGIC).await?;
        Ok(Self {
            w,
            entries: Vec::new(),
        })
    }

    async fn entry<R: AsyncRead + Unpin>(&mut self, name: &str, mut r: R) -> anyhow::Result<()> {
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

    async fn finish(mut self, mut manifest: Manifest) -> anyhow::Result<Manifest> {
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

/// Every regular file under `root`, as paths relative to it, sorted.
fn files_under(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
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
async fn blob_entries<W: AsyncWrite + Unpin>(
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
async fn blob_objects(
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

async fn create(
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

/// Creates `path` (0600, refusing to overwrite) and writes the archive's clear header.
async fn create_with_header(path: &Path, header: &Header) -> anyhow::Result<tokio::fs::File> {
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
        let cps = svc.checkpoint_dir();
        for rel in files_under(&cps)? {
            let f = tokio::fs::File::open(cps.join(&rel)).await?;
            body.entry(&format!("checkpoints/{}", rel.display()), f)
                .await?;
        }
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

/// What reading an archive found.
struct Report {
    manifest: Manifest,
    created_at: DateTime<Utc>,
    dump_tables: usize,
}

fn print_report(r: &Report) {
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
struct RestoreTo {
    env: Vec<(&'static str, String)>,
    blobs: store::crypto::BlobStore,
    checkpoint_dir: PathBuf,
    data_dir: PathBuf,
}

/// An entry name is safe to restore: relative, no `..`, printable, under a known prefix.
fn safe_name(name: &str) -> anyhow::Result<Option<PathBuf>> {
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

/// Reads (decrypts, parses, hashes) a whole archive. With `restore_to`, also writes the dump
/// into the database and the files into place; without, only checks (the dump goes to
/// `pg_restore --list`).
async fn read_archive(
    path: &Path,
    provider: &dyn KeyProvider,
    bin: &Path,
    restore_to: Option<&RestoreTo>,
) -> anyhow::Result<Report> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
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
    let header: Header = serde_json::from_slice(&hbuf).context("the archive header is damaged")?;
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

/// Reads one entry's chunks, passing each to `sink`.
async fn chunks<R, F, Fut>(r: &mut R, mut sink: F) -> anyhow::Result<EntrySum>
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

async fn file_entry<R: AsyncRead + Unpin>(
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
async fn blob_entry<R: AsyncRead + Unpin>(
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

async fn restore(svc: &Services, archive: &Path, url: Option<String>) -> anyhow::Result<()> {
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

    #[test]
    fn url_to_env_keeps_password_out_of_arguments() {
        let env =
            libpq_env_from_url("postgres://admin:p%40ss@db.example:6543/chartroom?sslmode=require")
                .expect("url");
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("PGHOST").as_deref(), Some("db.example"));
        assert_eq!(get("PGPORT").as_deref(), Some("6543"));
        assert_eq!(get("PGUSER").as_deref(), Some("admin"));
        assert_eq!(get("PGPASSWORD").as_deref(), Some("p@ss"));
        assert_eq!(get("PGDATABASE").as_deref(), Some("chartroom"));
        assert_eq!(get("PGSSLMODE").as_deref(), Some("require"));
        assert!(libpq_env_from_url("mysql://x@y/z").is_err());
    }
}
