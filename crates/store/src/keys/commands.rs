//! The audited key-management operations of the `chartroom keys` commands and the start-up
//! encryption job, on [`crate::OwnerStore`]: encrypt existing plaintext, rotate the KEK,
//! rotate a practice's data key (and re-encrypt under it), retire older data keys, shred a
//! practice's keys; and the operator events of the installation's own audit log.
//!
//! # Guarantees
//! - Each key operation appends its audit event (`key.*`) about the practice it changed, in
//!   its own transaction stamped by the store's clock: ids, versions and counts only.
//! - Retiring data keys is refused while any row of a registered table or any blob is still
//!   sealed with an older version.
//! - A practice whose keys were destroyed is skipped by the encryption of existing rows.

use crypto::{CryptoError, DekVersion, KekRef};
use domain::{AuditAction, AuditObject, PracticeId};

use super::reseal::{Reseal, ResealReport, terms};
use crate::StoreError;
use crate::sealed_columns::{TABLES, crypto_error};

impl crate::OwnerStore {
    /// Appends a key-management event about `practice` (its own transaction, stamped by this
    /// store's clock): ids, versions and counts only.
    async fn audit_key_event(
        &self,
        practice: PracticeId,
        action: AuditAction,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_in(practice).await?;
        tx.audit(
            action,
            Some(AuditObject::practice(practice)),
            None,
            Some(details),
        )
        .await?;
        tx.commit().await
    }

    /// Appends an operator event (`backup.create`, `backup.restore`, installation secrets
    /// moved) to the installation's own audit log (the system practice): ids, counts and
    /// times only, stamped by this store's clock.
    pub async fn audit_system_event(
        &self,
        action: AuditAction,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.audit_key_event(PracticeId::SYSTEM, action, details)
            .await
    }

    /// Encrypts every row that still holds plaintext in a legacy column of a registered table
    /// (rows written before their columns were sealed: patients, note bodies, disclosures;
    /// [`crate::sealed_columns::TABLES`]), `batch` rows per transaction, and empties the
    /// plaintext columns. Idempotent and resumable (a rerun continues where an
    /// interrupted one stopped). Practices whose keys were destroyed are skipped. Each
    /// practice with work gets one `key.encrypt_existing` audit event naming the counts; when
    /// anything was sealed the tables' statistics are refreshed (`ANALYZE`), so the planner's
    /// samples of the emptied columns go too. A practice whose rows cannot be encrypted is
    /// reported and skipped ([`crate::each_practice`]); the others go on.
    pub async fn encrypt_existing(
        &self,
        batch: i64,
        progress: &mut (dyn FnMut(PracticeId, ResealReport) + Send),
    ) -> Result<crate::PerPractice<ResealReport, StoreError>, StoreError> {
        let batch = batch.clamp(1, 10_000);
        let practices = self.list_practices().await?.into_iter().map(|p| p.0);
        // One practice at a time; the lock only lends `progress` to the practice in hand.
        let progress = tokio::sync::Mutex::new(progress);
        let progress = &progress;
        let pass = crate::each_practice("encrypt_existing", practices, |practice| async move {
            let mut progress = progress.lock().await;
            self.encrypt_existing_in(practice, batch, &mut **progress)
                .await
        })
        .await;
        let total = ResealReport::total(pass.done.iter().map(|(_, r)| r));
        if total != ResealReport::default() {
            // The planner's samples (`pg_statistic`) of the emptied plaintext columns would
            // keep showing their most common values until the next automatic ANALYZE.
            let legacy: Vec<&str> = TABLES
                .iter()
                .filter(|t| Reseal::Plaintext.walks(t))
                .map(|t| t.table)
                .collect();
            sqlx::query(&format!("analyze {}", legacy.join(", ")))
                .execute(&self.pool)
                .await?;
        }
        Ok(pass)
    }

    async fn encrypt_existing_in(
        &self,
        practice: PracticeId,
        batch: i64,
        progress: &mut (dyn FnMut(PracticeId, ResealReport) + Send),
    ) -> Result<ResealReport, StoreError> {
        let has_work: (bool,) = {
            let mut tx = self.begin_in(practice).await?;
            let rows = terms(
                TABLES.iter().filter(|t| Reseal::Plaintext.walks(t)),
                "or exists (select 1",
            );
            let r = sqlx::query_as(&format!("select false{rows}"))
                .bind(practice)
                .bind(None::<Vec<u8>>)
                .fetch_one(tx.conn())
                .await?;
            tx.commit().await?;
            r
        };
        if !has_work.0 {
            return Ok(ResealReport::default());
        }
        if let Err(CryptoError::KeyDestroyed { .. }) = self.keyring()?.keys(practice).await {
            return Ok(ResealReport::default());
        }
        let r = self
            .reseal_practice(practice, Reseal::Plaintext, batch, progress)
            .await?;
        self.audit_key_event(
            practice,
            AuditAction::KeyEncryptExisting,
            serde_json::json!({"patients": r.patients, "notes": r.notes, "disclosures": r.disclosures}),
        )
        .await?;
        Ok(r)
    }

    /// `chartroom keys rotate-kek`: a new KEK version at the provider, then every wrapped data
    /// key rewrapped under it (resumable; data is not re-encrypted). Each practice whose keys
    /// were rewrapped gets a `key.rotate_kek` audit event naming the new KEK.
    pub async fn rotate_kek_audited(&self) -> Result<(KekRef, crypto::RewrapReport), StoreError> {
        let keyring = self.keyring()?;
        let kek = keyring.rotate_kek().await.map_err(|e| crypto_error(&e))?;
        let report = self.rewrap_audited(&kek).await?;
        Ok((kek, report))
    }

    /// Rewraps every data key not yet under the provider's current KEK (the resumable second
    /// step of [`crate::OwnerStore::rotate_kek_audited`]), audited per practice.
    pub async fn rewrap_audited(&self, kek: &KekRef) -> Result<crypto::RewrapReport, StoreError> {
        let keyring = self.keyring()?;
        let report = keyring
            .rewrap_all(crypto::RewrapScope::Stale)
            .await
            .map_err(|e| crypto_error(&e))?;
        let practices: Vec<(PracticeId,)> =
            sqlx::query_as("select distinct practice_id from practice_data_key")
                .fetch_all(&self.pool)
                .await?;
        for (practice,) in practices {
            self.audit_key_event(
                practice,
                AuditAction::KeyRotateKek,
                serde_json::json!({
                    "kek_id": audit::event::detail_value_lossy(&kek.id),
                    "kek_version": kek.version,
                }),
            )
            .await?;
        }
        keyring.clear_cache();
        Ok(report)
    }

    /// `chartroom keys rotate-data-key`: unless `resume`, adds a new data key version for
    /// `practice`; then re-encrypts every sealed row of the practice not yet under the active
    /// version, table by table from the registry ([`crate::sealed_columns::TABLES`]: patients
    /// with their search tokens, notes and their versions, perio exams, disclosures,
    /// break-glass and support-grant reasons), `batch` rows per transaction, and (given the
    /// blob store) every registered blob into a new object (resumable: rerun with `resume`).
    /// Audited as `key.rotate_data_key` (the new version) and `key.reencrypt` (the counts).
    pub async fn rotate_data_key_audited(
        &self,
        practice: PracticeId,
        resume: bool,
        batch: i64,
        blobs: Option<&crypto::BlobStore>,
        progress: &mut (dyn FnMut(PracticeId, ResealReport) + Send),
    ) -> Result<(DekVersion, ResealReport), StoreError> {
        let keyring = self.keyring()?;
        let version = if resume {
            keyring
                .keys(practice)
                .await
                .map_err(|e| crypto_error(&e))?
                .active()
                .version()
        } else {
            let v = keyring
                .rotate_data_key(practice)
                .await
                .map_err(|e| crypto_error(&e))?;
            self.audit_key_event(
                practice,
                AuditAction::KeyRotateDataKey,
                serde_json::json!({"dek_version": v.get()}),
            )
            .await?;
            v
        };
        let mut report = self
            .reseal_practice(
                practice,
                Reseal::NotVersion(version),
                batch.clamp(1, 10_000),
                progress,
            )
            .await?;
        if let Some(blobs) = blobs {
            loop {
                let n = self
                    .reencrypt_blobs(practice, version, blobs, batch.clamp(1, 10_000))
                    .await?;
                report.blobs += n;
                if n > 0 {
                    progress(practice, report);
                }
                if n == 0 {
                    break;
                }
            }
        }
        self.audit_key_event(
            practice,
            AuditAction::KeyReencrypt,
            serde_json::json!({"dek_version": version.get(), "patients": report.patients, "notes": report.notes, "blobs": report.blobs, "perio_exams": report.perio_exams, "disclosures": report.disclosures, "grant_reasons": report.grant_reasons, "scribe": report.scribe}),
        )
        .await?;
        Ok((version, report))
    }

    /// `chartroom keys shred`: crypto-shredding. Destroys every data key of `practice` and
    /// leaves the tombstone; its encrypted fields (and blind-index tags) can never be read
    /// again. The audit log, which holds no PHI, survives and records `key.shred`.
    pub async fn shred_practice_audited(&self, practice: PracticeId) -> Result<(), StoreError> {
        let keyring = self.keyring()?;
        keyring
            .destroy_practice_keys(practice)
            .await
            .map_err(|e| crypto_error(&e))?;
        self.audit_key_event(practice, AuditAction::KeyShred, serde_json::json!({}))
            .await?;
        Ok(())
    }

    /// `chartroom keys retire-data-key`: deletes every version of `practice`'s data key older
    /// than the active one, after checking that no encrypted row of a registered table and no
    /// blob is still sealed with one (refused otherwise, naming the count: finish
    /// `rotate-data-key --resume` first).
    /// Returns the retired versions. Audited as `key.retire_data_key`.
    pub async fn retire_data_keys_audited(
        &self,
        practice: PracticeId,
    ) -> Result<Vec<DekVersion>, StoreError> {
        let keyring = self.keyring()?;
        let keys = keyring.keys(practice).await.map_err(|e| crypto_error(&e))?;
        let active = keys.active().version();
        let older: Vec<DekVersion> = keys
            .all()
            .map(crypto::DataKey::version)
            .filter(|v| *v != active)
            .collect();
        if older.is_empty() {
            return Ok(older);
        }
        let v = active.get().to_be_bytes().to_vec();
        let mut tx = self.begin_in(practice).await?;
        let rows = terms(
            TABLES
                .iter()
                .filter(|t| Reseal::NotVersion(active).walks(t)),
            "+ (select count(*)",
        );
        let (left,): (i64,) = sqlx::query_as(&format!("select 0::int8{rows}"))
            .bind(practice)
            .bind(&v)
            .fetch_one(tx.conn())
            .await?;
        tx.commit().await?;
        let left = left + self.blobs_not_under(practice, active).await?;
        if left > 0 {
            return Err(StoreError::Invalid(format!(
                "{left} rows or blobs are still sealed with an older data key version: run `keys rotate-data-key --resume` first"
            )));
        }
        for version in &older {
            keyring
                .retire_data_key(practice, *version)
                .await
                .map_err(|e| crypto_error(&e))?;
        }
        self.audit_key_event(
            practice,
            AuditAction::KeyRetireDataKey,
            serde_json::json!({
                "retired": older.iter().map(|v| v.get().to_string()).collect::<Vec<_>>().join(":"),
                "active": active.get(),
            }),
        )
        .await?;
        Ok(older)
    }
}
