//! The `chartroom` binary: the server daemon and the operator's command line.
//!
//! With no database URL, Chartroom runs a private PostgreSQL cluster under its data directory
//! (socket only, no TCP port, scram-sha-256, run as an unprivileged user) and migrates it on
//! start, so `chartroom demo` is all a newcomer needs. `--database-url` points it at an
//! external PostgreSQL instead.

mod admin;
mod audit_cmd;
mod backup_cmd;
mod db;
mod db_cmd;
mod demo;
mod emergency_cmd;
mod inventory_cmd;
mod keys_cmd;
mod notes_cmd;
mod outbox_wiring;
mod payments_wiring;
mod perio_cmd;
mod perio_voice;
mod retention_cmd;
mod scribe_cmd;
mod serve;
mod services;
mod startup;
mod subprocessors;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Chartroom: clinical records for small practices, with isolation, audit and encryption as
/// mechanisms you can test.
///
/// Quick start: `chartroom demo` runs the server on its embedded PostgreSQL with two
/// synthetic practices and prints how to sign in.
#[derive(Parser)]
#[command(
    name = "chartroom",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command shares.
#[derive(Args, Debug, Clone)]
pub(crate) struct Global {
    /// Data directory: the embedded PostgreSQL cluster, its secrets and the demo credentials
    /// live here.
    #[arg(
        long,
        global = true,
        env = "CHARTROOM_DATA_DIR",
        default_value = "./chartroom-data"
    )]
    pub data_dir: PathBuf,

    /// Use an external PostgreSQL instead of the embedded one: the server's runtime role
    /// (least privilege; not superuser, NOBYPASSRLS, owns nothing).
    #[arg(
        long,
        global = true,
        env = "CHARTROOM_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// With an external PostgreSQL: a URL for the owner role, needed by `migrate`, the admin
    /// commands and `serve` (which migrates on start when it is given).
    #[arg(
        long,
        global = true,
        env = "CHARTROOM_OWNER_DATABASE_URL",
        hide_env_values = true
    )]
    pub owner_database_url: Option<String>,

    /// With an external PostgreSQL: the CA certificate (PEM) its server certificate must chain
    /// to. A database that is not on this machine is reached with `sslmode=verify-full` only
    /// (a URL without an `sslmode` gets it when this is given); `disable`, `prefer` and the
    /// other modes are refused for it.
    #[arg(long, global = true, env = "CHARTROOM_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,

    /// Directory holding the PostgreSQL server binaries (initdb, postgres) for the embedded
    /// cluster; default: PATH, then /usr/lib/postgresql/*/bin.
    #[arg(long, global = true, env = "CHARTROOM_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// Directory of the signed audit checkpoints (kept outside PostgreSQL); default
    /// `<data dir>/checkpoints`.
    #[arg(long, global = true, env = "CHARTROOM_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    /// The checkpoint store as an object store instead of the checkpoint directory: several
    /// `serve` replicas on one database give the same URL, so whichever holds the sequencer
    /// signs into one shared place and every replica's proof routes read it. `file:///path`
    /// (a shared file system), or with the `s3` cargo feature `s3://bucket/prefix` (AWS or any
    /// S3-compatible service: `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, credentials and region from
    /// the usual `AWS_*` variables), `gs://…`, `az://…`. Objects are created once, never
    /// overwritten.
    #[arg(
        long,
        global = true,
        env = "CHARTROOM_CHECKPOINT_STORE_URL",
        conflicts_with = "checkpoint_dir"
    )]
    pub checkpoint_store_url: Option<String>,

    /// A second, write-once place for the signed audit checkpoints: a directory on another
    /// volume (files are created once and never replaced). `audit verify` checks the logs
    /// against this place and the checkpoint directory together.
    #[arg(long, global = true, env = "CHARTROOM_CHECKPOINT_MIRROR_DIR")]
    pub checkpoint_mirror_dir: Option<PathBuf>,

    /// A write-once object store for the signed audit checkpoints (objects are created once,
    /// never overwritten): `file:///path`, or with the matching cargo feature
    /// `s3://bucket/prefix`, `gs://…`, `az://…` (credentials from the usual `AWS_*`,
    /// `GOOGLE_*`, `AZURE_*` variables). Checked by `audit verify` like the mirror directory.
    #[arg(long, global = true, env = "CHARTROOM_CHECKPOINT_MIRROR_URL")]
    pub checkpoint_mirror_url: Option<String>,

    /// Origin prefix of the audit checkpoints (each practice's origin is
    /// `<prefix>/<practice id>`); name this installation, e.g. `clinic.example/chartroom`.
    #[arg(
        long,
        global = true,
        env = "CHARTROOM_AUDIT_ORIGIN",
        default_value = "chartroom/audit"
    )]
    pub audit_origin: String,

    /// Where the key-encryption key lives (encryption at rest): a local key file in
    /// `<data dir>/secrets/`, or Vault/OpenBao transit (settings from `CHARTROOM_VAULT_*`).
    #[arg(
        long,
        global = true,
        env = "CHARTROOM_KEY_PROVIDER",
        value_enum,
        default_value_t = services::KeyProviderKind::Local
    )]
    pub key_provider: services::KeyProviderKind,

    /// Where encrypted blobs (audio, attachments) are stored: default `<data dir>/blobs`;
    /// `file:///path`, or with the matching cargo feature `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix` (credentials and region from the usual
    /// `AWS_*`, `GOOGLE_*`, `AZURE_*` environment variables).
    #[arg(long, global = true, env = "CHARTROOM_BLOB_STORE_URL")]
    pub blob_store_url: Option<String>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Run the server with two synthetic demo practices (seeded on first run) and print how
    /// to sign in. Same as `serve --demo`.
    Demo(serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// An external PostgreSQL: create the roles, database and privileges Chartroom needs.
    #[command(subcommand)]
    Db(db_cmd::DbCommand),
    /// Print the installation's inventory from its configuration (the same options as
    /// `serve`): data stores, keys (ids only), listeners, subprocessors, where PHI lives and
    /// how it flows.
    Inventory(inventory_cmd::InventoryArgs),
    /// Manage practices.
    #[command(subcommand)]
    Practice(admin::PracticeCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage memberships (who belongs to which practice, with which roles).
    #[command(subcommand)]
    Member(admin::MemberCommand),
    /// The audit log: reports, FHIR export, verification, proofs.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Encryption keys: rotate the KEK or a practice's data key, crypto-shred a practice.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Clinical notes: verify every version's hash (integrity).
    #[command(subcommand)]
    Notes(notes_cmd::NotesCommand),
    /// Encrypted backups: create, verify and restore one archive of everything.
    #[command(subcommand)]
    Backup(backup_cmd::BackupCommand),
    /// Retention: purge what is past the practice's retention windows (never under legal
    /// hold); show or change the windows.
    #[command(subcommand)]
    Retention(retention_cmd::RetentionCommand),
    /// Emergency mode: make the whole installation read-only (reads keep working and stay
    /// audited), end it, or show it.
    #[command(subcommand)]
    Emergency(emergency_cmd::EmergencyCommand),
    /// Periodontal dictation engine: parse, evaluate fixtures, export the vocabulary.
    #[command(subcommand)]
    Perio(perio_cmd::PerioCommand),
    /// The AI scribe's local transcription default: real-time factor, evaluation on
    /// synthetic visits.
    #[command(subcommand)]
    Scribe(scribe_cmd::ScribeCommand),
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let Cli { global, command } = Cli::parse();
    if let Command::Perio(cmd) = command {
        return match perio_cmd::run(cmd) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    init_tracing(global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The services every command shares, built once for this run (each on first use).
    let svc = services::Services::new(global);
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve::run(&svc, args, false).await,
            Command::Demo(args) => serve::run(&svc, args, true).await,
            Command::Migrate => db::migrate_only(svc.global()).await,
            Command::Db(cmd) => db_cmd::run(&svc, cmd).await,
            Command::Inventory(args) => inventory_cmd::run(&svc, args).await,
            Command::Practice(cmd) => admin::practice(&svc, cmd).await,
            Command::User(cmd) => admin::user(&svc, cmd).await,
            Command::Member(cmd) => admin::member(&svc, cmd).await,
            Command::Audit(cmd) => audit_cmd::run(&svc, cmd).await,
            Command::Keys(cmd) => keys_cmd::run(&svc, cmd).await,
            Command::Backup(cmd) => backup_cmd::run(&svc, cmd).await,
            Command::Notes(cmd) => notes_cmd::run(&svc, cmd).await,
            Command::Retention(cmd) => retention_cmd::run(&svc, cmd).await,
            Command::Emergency(cmd) => emergency_cmd::run(&svc, cmd).await,
            Command::Scribe(cmd) => scribe_cmd::run(cmd).await,
            Command::Perio(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
