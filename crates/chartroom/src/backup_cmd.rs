//! `chartroom backup create | verify | restore`: one encrypted archive holding the database, the
//! blobs and the audit checkpoints, with a manifest of hashes and row counts (req CP-01, CP-02).
//!
//! Entries: `database.pgdump` (`pg_dump --format=custom` of a consistent snapshot),
//! `blobs/…` (the encrypted blob objects, copied as stored), `checkpoints/…` (the signed audit
//! checkpoints) and `audit-verifier.key`. Nothing is written to disk in the clear: the dump
//! streams from `pg_dump` through the encryption into the archive file. The byte layout is
//! described in the `format` module.
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
//!
//! # Modules
//!
//! This module is the command line; the work is split by job:
//! - `format`: the archive format (header, body records, manifest) and its size limits;
//! - `create` writes an archive, `verify` reads and checks one, `restore` puts one back;
//! - `database`: the database and PostgreSQL's tools, row counts, the audit-log connection;
//! - `storage`: the blob objects and the data directory's files.

mod create;
mod database;
mod format;
mod restore;
mod storage;
mod verify;

use std::path::PathBuf;

use clap::Subcommand;

use crate::services::Services;

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

/// `chartroom backup …`.
pub(crate) async fn run(svc: &Services, cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Create {
            out,
            dump_database_url,
        } => create::create(svc, out, dump_database_url).await,
        BackupCommand::Verify { archive } => verify::verify(svc, &archive).await,
        BackupCommand::Restore {
            archive,
            restore_database_url,
        } => restore::restore(svc, &archive, restore_database_url).await,
    }
}
