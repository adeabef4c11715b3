//! Encryption at rest from the command line: choosing the key provider (`--key-provider`),
//! building keyrings for the server and the owner role, and `chartroom keys …` (KEK rotation,
//! data-key rotation with re-encryption, crypto-shredding, encrypting legacy plaintext and
//! moving installation secrets off the retired `secrets/identity.key`).
//!
//! Every `keys` command runs as the owner role and is audited on the practice's log
//! (`key.rotate_kek`, `key.rotate_data_key`, `key.reencrypt`, `key.shred`,
//! `key.encrypt_existing`); the log holds ids and counts, never key material.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use domain::{PracticeId, SystemClock};
use sqlx::postgres::PgConnectOptions;
use store::OwnerStore;
use store::crypto::{
    DirSecretStore, KeyProvider, Keyring, LocalKeyProvider, PracticeSecretStore, Secret,
    VaultConfig, VaultTransitProvider,
};
use store::keys::{PgKeyStore, ResealReport};

use crate::Global;
use crate::db::Database;

/// Where the key-encryption key (KEK) lives.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyProviderKind {
    /// A key file in `<data dir>/secrets/` (0600, created on first start). Back it up apart
    /// from the database: without it, nothing encrypted can be read.
    Local,
    /// Vault / OpenBao transit. Settings from the environment: `CHARTROOM_VAULT_ADDR`,
    /// `CHARTROOM_VAULT_TOKEN`, `CHARTROOM_VAULT_KEY` (default `chartroom`),
    /// `CHARTROOM_VAULT_MOUNT` (default `transit`), `CHARTROOM_VAULT_NAMESPACE`.
    Vault,
}

/// Default rows per re-encryption transaction.
const DEFAULT_BATCH: i64 = 500;

/// `chartroom keys …`.
#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Rotate the key-encryption key: a new KEK version at the provider, then every data key
    /// rewrapped under it — the practices' and the installation's, which seals TOTP secrets
    /// (data is not re-encrypted). Audited per practice. Rerun to finish an interrupted rewrap.
    RotateKek {
        /// Only rewrap keys still on an older KEK version (finish an interrupted run) instead
        /// of creating a new version first.
        #[arg(long)]
        resume: bool,
    },
    /// Rotate one practice's data key: a new version, then every encrypted row of the
    /// practice re-encrypted under it in batched transactions (progress on stderr). Audited.
    RotateDataKey {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
        /// Continue an interrupted re-encryption (no new version).
        #[arg(long)]
        resume: bool,
        /// Rows per transaction.
        #[arg(long, default_value_t = DEFAULT_BATCH)]
        batch: i64,
    },
    /// Retire a practice's older data key versions once nothing is sealed with them any more
    /// (after `rotate-data-key` finished). Refused while a row still needs one. Audited.
    RetireDataKey {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
    },
    /// Retire KEK versions below the current one once every data key was rewrapped (after
    /// `rotate-kek` finished): they stop unwrapping for good. Refused while a data key still
    /// needs one.
    RetireKek,
    /// Crypto-shredding: destroy every data key of a practice. Its encrypted records become
    /// permanently unreadable; its audit log (no PHI) survives and records the shredding.
    Shred {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
        /// Required: this cannot be undone.
        #[arg(long)]
        confirm: bool,
    },
    /// Encrypt rows still holding plaintext (written before encryption at rest) and empty
    /// the plaintext columns; move TOTP secrets sealed by the retired
    /// `secrets/identity.key` under the installation data key (then that file is removed).
    /// `serve` does this at start-up too.
    EncryptExisting {
        /// Rows per transaction.
        #[arg(long, default_value_t = DEFAULT_BATCH)]
        batch: i64,
    },
}

/// The key material a keyring needs: the KEK provider and the practice secrets.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    /// The KEK provider chosen by `--key-provider`.
    pub(crate) provider: Arc<dyn KeyProvider>,
    /// The practice secrets, in `<data dir>/secrets/practice-keys` (never in a backup).
    pub(crate) secrets: Arc<dyn PracticeSecretStore>,
}

/// The directory of the practice secrets.
pub(crate) fn practice_secrets_dir(g: &Global) -> std::path::PathBuf {
    g.data_dir.join("secrets").join("practice-keys")
}

/// The KEK provider and the practice secret store.
pub(crate) async fn keys(g: &Global) -> anyhow::Result<Keys> {
    let provider = provider(g).await?;
    let dir = practice_secrets_dir(g);
    let secrets = DirSecretStore::open(&dir)
        .with_context(|| format!("cannot open the practice secrets in {}", dir.display()))?;
    Ok(Keys {
        provider,
        secrets: Arc::new(secrets),
    })
}

/// The key provider chosen by `--key-provider`.
async fn provider(g: &Global) -> anyhow::Result<Arc<dyn KeyProvider>> {
    match g.key_provider {
        KeyProviderKind::Local => {
            let dir = g.data_dir.join("secrets");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
            let p = LocalKeyProvider::open(&dir)
                .await
                .context("cannot open the local key-encryption key")?;
            Ok(Arc::new(p))
        }
        KeyProviderKind::Vault => {
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let addr = var("CHARTROOM_VAULT_ADDR")
                .context("--key-provider vault needs CHARTROOM_VAULT_ADDR")?;
            let token = var("CHARTROOM_VAULT_TOKEN")
                .context("--key-provider vault needs CHARTROOM_VAULT_TOKEN")?;
            let mut cfg = VaultConfig::new(
                addr.parse()
                    .context("CHARTROOM_VAULT_ADDR is not a valid URL")?,
                Secret::new(token),
                var("CHARTROOM_VAULT_KEY").unwrap_or_else(|| "chartroom".into()),
            );
            if let Some(m) = var("CHARTROOM_VAULT_MOUNT") {
                cfg.mount = m;
            }
            cfg.namespace = var("CHARTROOM_VAULT_NAMESPACE");
            let p = VaultTransitProvider::connect(cfg)
                .await
                .context("cannot use the Vault transit key")?;
            Ok(Arc::new(p))
        }
    }
}

/// A keyring on the wrapped-key table, connecting with `options` (runtime or owner role).
pub(crate) async fn keyring(keys: Keys, options: PgConnectOptions) -> anyhow::Result<Arc<Keyring>> {
    let store = PgKeyStore::connect(options)
        .await
        .context("cannot connect the wrapped-key store")?;
    Ok(Arc::new(
        Keyring::new(keys.provider, Arc::new(store), Arc::new(SystemClock))
            .with_practice_secrets(keys.secrets),
    ))
}

/// The owner store with a keyring, for seeding and the `keys` commands.
pub(crate) async fn owner_with_keys(
    db: &Database,
    owner: OwnerStore,
    keys: Keys,
) -> anyhow::Result<OwnerStore> {
    let opts = db
        .owner
        .clone()
        .context("encryption needs the owner role: pass --owner-database-url")?;
    Ok(owner.with_keyring(keyring(keys, opts).await?))
}

fn progress(practice: PracticeId, r: ResealReport) {
    eprintln!(
        "practice {practice}: {} patients, {} notes, {} perio exams, {} disclosures, {} grant reasons, {} blobs re-encrypted",
        r.patients, r.notes, r.perio_exams, r.disclosures, r.grant_reasons, r.blobs
    );
}

/// The key file that sealed TOTP secrets before the installation data key (retired: read only
/// to migrate, then removed).
pub(crate) fn legacy_identity_key(g: &Global) -> std::path::PathBuf {
    g.data_dir.join("secrets").join("identity.key")
}

/// Moves the installation secrets still sealed by the retired identity key under the
/// installation data key ([`OwnerStore::migrate_installation_secrets`]). `false` when it failed
/// (reported; the server still starts, TOTP secrets not yet moved fail to open).
async fn migrate_installation_secrets(g: &Global, owner: &OwnerStore) -> bool {
    match owner
        .migrate_installation_secrets(&legacy_identity_key(g))
        .await
    {
        Ok(r) => {
            if r.totp_resealed + r.totp_left > 0 {
                eprintln!(
                    "installation: {} TOTP secrets moved under the installation data key, {} left under the retired identity key{}",
                    r.totp_resealed,
                    r.totp_left,
                    if r.legacy_key_removed {
                        "; secrets/identity.key removed"
                    } else {
                        ""
                    }
                );
            }
            r.totp_left == 0
        }
        Err(e) => {
            eprintln!(
                "installation: secrets could not be moved under the installation data key ({e})"
            );
            false
        }
    }
}

/// `serve`'s start-up as the runtime role: the lookup-tag key exists (imported from the
/// retired identity key when there was no owner role to migrate it). A failure is logged;
/// invitations then fail until it is fixed, nothing else does.
pub(crate) async fn prepare_runtime(g: &Global, store: &store::Store) {
    if let Err(e) = store
        .prepare_installation_secrets(&legacy_identity_key(g))
        .await
    {
        tracing::error!(error = %e, "the installation's lookup-tag key is not available");
    }
}

/// Encrypts legacy plaintext rows and moves installation secrets off the retired identity key
/// (the start-up job of `serve`, and `keys encrypt-existing`). A practice whose rows cannot be
/// encrypted is reported and skipped; the others are done. Returns the practices that failed
/// (the system practice when installation secrets are left).
pub(crate) async fn encrypt_existing(
    g: &Global,
    owner: &OwnerStore,
    batch: i64,
) -> anyhow::Result<Vec<PracticeId>> {
    let r = owner
        .encrypt_existing(batch, &mut progress)
        .await
        .context("encrypting existing plaintext rows failed")?;
    let total = ResealReport::total(r.done.iter().map(|(_, x)| x));
    if total.patients + total.notes + total.disclosures > 0 {
        tracing::info!(
            patients = total.patients,
            notes = total.notes,
            disclosures = total.disclosures,
            "encrypted rows that still held plaintext"
        );
    }
    for (practice, e) in &r.failed {
        eprintln!("practice {practice}: plaintext rows could not be encrypted ({e}); skipped");
    }
    let mut failed: Vec<PracticeId> = r.failed.into_iter().map(|(p, _)| p).collect();
    if !migrate_installation_secrets(g, owner).await {
        failed.push(PracticeId::SYSTEM);
    }
    Ok(failed)
}

/// `serve`'s start-up: gives the owner store (when there is one) a keyring, encrypts rows
/// that still hold plaintext and moves installation secrets off the retired identity key.
pub(crate) async fn prepare_owner(
    g: &Global,
    db: &Database,
    owner: Option<OwnerStore>,
    keys: Keys,
) -> anyhow::Result<Option<OwnerStore>> {
    let Some(owner) = owner else {
        tracing::warn!(
            "no owner role: rows written before encryption at rest, and TOTP secrets sealed by secrets/identity.key, are not migrated at start-up (run `chartroom keys encrypt-existing`)"
        );
        return Ok(None);
    };
    let owner = owner_with_keys(db, owner, keys).await?;
    // A practice that cannot be processed was reported; the server still starts for the rest.
    encrypt_existing(g, &owner, DEFAULT_BATCH).await?;
    Ok(Some(owner))
}

/// `chartroom keys …`.
pub(crate) async fn run(g: &Global, cmd: KeysCommand) -> anyhow::Result<()> {
    if let KeysCommand::Shred { confirm: false, .. } = cmd {
        anyhow::bail!("shredding destroys the practice's keys and cannot be undone: add --confirm");
    }
    // A running server caches unwrapped data keys: key changes wait until it is stopped.
    let db = Database::for_admin_exclusive(g).await?;
    let owner = db
        .migrate()
        .await?
        .context("this command needs the owner role")?;
    let keys = keys(g).await?;
    let owner = owner_with_keys(&db, owner, keys).await?;
    let result = run_with(g, &owner, cmd).await;
    owner.close().await;
    db.shutdown().await?;
    result
}

async fn run_with(g: &Global, owner: &OwnerStore, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::RotateKek { resume } => {
            let keyring = owner.keyring()?;
            let (kek, report) = if resume {
                let kek = keyring.provider().current_kek().await?;
                let report = owner.rewrap_audited(&kek).await?;
                (kek, report)
            } else {
                owner.rotate_kek_audited().await?
            };
            println!(
                "KEK {kek}: {} data keys examined, {} rewrapped, {} changed concurrently (rerun with --resume)",
                report.examined, report.rewrapped, report.raced
            );
        }
        KeysCommand::RotateDataKey {
            practice,
            resume,
            batch,
        } => {
            let blobs = crate::backup_cmd::blob_store(g, owner.keyring()?.clone())?;
            let (version, r) = owner
                .rotate_data_key_audited(practice, resume, batch, Some(&blobs), &mut progress)
                .await?;
            println!(
                "practice {practice}: data key version {} active; {} patients, {} notes, {} perio exams, {} disclosures, {} grant reasons and {} blobs re-encrypted",
                version.get(),
                r.patients,
                r.notes,
                r.perio_exams,
                r.disclosures,
                r.grant_reasons,
                r.blobs
            );
        }
        KeysCommand::RetireDataKey { practice } => {
            let retired = owner.retire_data_keys_audited(practice).await?;
            if retired.is_empty() {
                println!("practice {practice}: no older data key versions");
            } else {
                let list: Vec<String> = retired.iter().map(|v| v.get().to_string()).collect();
                println!(
                    "practice {practice}: retired data key versions {}",
                    list.join(", ")
                );
            }
        }
        KeysCommand::RetireKek => {
            let keyring = owner.keyring()?;
            let current = keyring.provider().current_kek().await?;
            keyring
                .retire_kek_versions_below(current.version)
                .await
                .context(
                    "cannot retire older KEK versions (finish `keys rotate-kek --resume` first)",
                )?;
            println!(
                "KEK versions below {} retired; {current} unwraps every data key",
                current.version
            );
        }
        KeysCommand::Shred { practice, .. } => {
            owner.shred_practice_audited(practice).await?;
            println!(
                "practice {practice}: every data key destroyed; its encrypted records can no longer be read"
            );
        }
        KeysCommand::EncryptExisting { batch } => {
            let failed = encrypt_existing(g, owner, batch).await?;
            if !failed.is_empty() {
                anyhow::bail!(
                    "{} practice(s) still hold plaintext rows or secrets under the retired identity key (see above); the others are done",
                    failed.len()
                );
            }
            println!(
                "every patient and note row is encrypted, and every installation secret is under the installation data key"
            );
        }
    }
    Ok(())
}
