//! Encryption at rest from the command line: `chartroom keys …` (KEK rotation, data-key
//! rotation with re-encryption, crypto-shredding, encrypting legacy plaintext and moving
//! installation secrets off the retired `secrets/identity.key`). The key provider and the
//! keyrings come from [`Services`]; the start-up work `serve` shares with `keys
//! encrypt-existing` is in [`crate::startup`].
//!
//! Every `keys` command runs as the owner role and is audited on the practice's log
//! (`key.rotate_kek`, `key.rotate_data_key`, `key.reencrypt`, `key.shred`,
//! `key.encrypt_existing`); the log holds ids and counts, never key material.

use anyhow::Context as _;
use clap::Subcommand;
use domain::PracticeId;
use store::OwnerStore;

use crate::services::{Access, Services};
use crate::startup::{DEFAULT_BATCH, encrypt_existing, progress};

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
