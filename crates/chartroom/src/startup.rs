//! `serve`'s start-up work on the stores, shared with `chartroom keys encrypt-existing`:
//! encrypting rows written before encryption at rest, moving installation secrets off the
//! retired `secrets/identity.key`, and making sure the installation's lookup-tag key exists.

use anyhow::Context as _;
use domain::PracticeId;
use store::OwnerStore;
use store::keys::ResealReport;

use crate::db::Database;
use crate::services::Services;

/// Default rows per re-encryption transaction.
pub(crate) const DEFAULT_BATCH: i64 = 500;

/// Prints one practice's re-encryption progress (ids and counts) on standard error.
pub(crate) fn progress(practice: PracticeId, r: ResealReport) {
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
