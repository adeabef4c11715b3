//! Encryption at rest from the command line: `chartroom keys …` (KEK rotation, data-key
//! rotation with re-encryption, crypto-shredding, encrypting legacy plaintext and moving
//! installation secrets off the retired `secrets/identity.key`), and the same start-up work
//! for `serve`. The key provider and the keyrings come from [`Services`].
//!
//! Every `keys` command runs as the owner role and is audited on the practice's log
//! (`key.rotate_kek`, `key.rotate_data_key`, `key.reencrypt`, `key.shred`,
//! `key.encrypt_existing`); the log holds ids and counts, never key material.

use anyhow::Context as _;
use clap::Subcommand;
use domain::PracticeId;
use store::OwnerStore;
use store::keys::ResealReport;

use crate::db::Database;
use crate::services::{Access, Services};

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

fn progress(practice: PracticeId, r: ResealReport) {
    eprintln!(
        "practice {practice}: {} patients, {} notes, {} perio exams, {} disclosures, {} grant reasons, {} blobs re-encrypted",
        r.patients, r.notes, r.perio_exams, r.disclosures, r.grant_reasons, r.blobs
    );
}

/// Moves the installation secrets still sealed by the retired identity key under the
/// installation data key ([`OwnerStore::migrate_installation_secrets`]). `false` when it failed
/// (reported; the server still starts, TOTP secrets not yet moved fail to open).
async fn migrate_installation_secrets(svc: &Services, owner: &OwnerStore) -> bool {
    match owner
        .migrate_installation_secrets(&svc.legacy_identity_key())
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
pub(crate) async fn prepare_runtime(svc: &Services, store: &store::Store) {
    if let Err(e) = store
        .prepare_installation_secrets(&svc.legacy_identity_key())
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
    svc: &Services,
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
    if !migrate_installation_secrets(svc, owner).await {
        failed.push(PracticeId::SYSTEM);
    }
    Ok(failed)
}

/// `serve`'s start-up: gives the owner store (when there is one) a keyring, encrypts rows
/// that still hold plaintext and moves installation secrets off the retired identity key.
pub(crate) async fn prepare_owner(
    svc: &Services,
    db: &Database,
    owner: Option<OwnerStore>,
) -> anyhow::Result<Option<OwnerStore>> {
    let Some(owner) = owner else {
        tracing::warn!(
            "no owner role: rows written before encryption at rest, and TOTP secrets sealed by secrets/identity.key, are not migrated at start-up (run `chartroom keys encrypt-existing`)"
        );
        return Ok(None);
    };
    let owner = svc.owner_with_keyring(db, owner).await?;
    // A practice that cannot be processed was reported; the server still starts for the rest.
    encrypt_existing(svc, &owner, DEFAULT_BATCH).await?;
    Ok(Some(owner))
}

/// `chartroom keys …`.
pub(crate) async fn run(svc: &Services, cmd: KeysCommand) -> anyhow::Result<()> {
    if let KeysCommand::Shred { confirm: false, .. } = cmd {
        anyhow::bail!("shredding destroys the practice's keys and cannot be undone: add --confirm");
    }
    // A running server caches unwrapped data keys: key changes wait until it is stopped.
    svc.as_owner(Access::ExclusiveWithKeys, async |owner, _| {
        run_with(svc, owner, cmd).await
    })
    .await
}

async fn run_with(svc: &Services, owner: &OwnerStore, cmd: KeysCommand) -> anyhow::Result<()> {
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
            let blobs = svc.blob_store(owner.keyring()?.clone())?;
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
            let failed = encrypt_existing(svc, owner, batch).await?;
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
