//! Wrapped data keys on PostgreSQL ([`PgKeyStore`], the [`crypto::WrappedKeyStore`] of a
//! [`crypto::Keyring`]), and the audited key-management writes of the `chartroom keys`
//! commands. The re-encryption passes walk the sealed-table registry
//! ([`crate::sealed_columns`], which also holds the field contexts and the crypto error
//! mapping); this module names no sealed table itself.
//!
//! # Tables (`migrations/0004_encryption.sql`)
//! - `practice_data_key (practice_id, dek_version, kek_id, kek_version, wrapped, masked)`: one
//!   row per version of a practice's data key, wrapped by a KEK (and masked with the practice
//!   secret when `masked`, `migrations/0006_backup.sql`). The runtime role may read and insert
//!   its practice's rows; rewrapping, retiring and destroying are owner-role operations.
//! - `practice_key_destroyed (practice_id, destroyed_at)`: the crypto-shredding tombstone.
//!   Inserting a key and destroying a practice's keys take the same per-practice advisory
//!   lock, so no key can be added once the tombstone is there.
//!
//! Every statement on these tables runs in its own short transaction with the practice set
//! transaction-locally, like every other tenant access; only the KEK rewrap scan lists rows
//! across practices (owner role, ids and opaque wrapped bytes only).

use std::fmt::Write as _;

use async_trait::async_trait;
use crypto::{
    CryptoError, DekVersion, KekRef, KeyRecords, KeyStoreError, WrappedDataKey, WrappedKeyStore,
};
use domain::{AuditAction, AuditObject, PracticeId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::StoreError;
use crate::sealed_columns::{
    self, Plain, Reencrypt, SealedTable, TABLES, crypto_error, write_keys,
};

/// Advisory lock class of key-table writes (the second key is derived from the practice).
const KEY_LOCK_CLASS: i32 = 0x4b45_5953; // "KEYS"

/// The wrapped-key table as a [`WrappedKeyStore`].
#[derive(Clone, Debug)]
pub struct PgKeyStore {
    pool: PgPool,
}

impl PgKeyStore {
    /// A key store on its own small pool (two connections), so that loading keys never waits
    /// for a connection held by the request that needs them.
    pub async fn connect(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// A key store on an existing pool.
    #[must_use]
    pub fn with_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_in(
        &self,
        practice: PracticeId,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        crate::entry::begin_in(&self.pool, practice).await
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> KeyStoreError {
    KeyStoreError::Backend(Box::new(e))
}

async fn lock_practice(
    tx: &mut Transaction<'static, Postgres>,
    practice: PracticeId,
) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
        .bind(KEY_LOCK_CLASS)
        .bind(practice.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

type KeyRow = (PracticeId, i32, String, i64, Vec<u8>, bool);

fn record(row: KeyRow) -> Result<WrappedDataKey, KeyStoreError> {
    let (practice, version, kek_id, kek_version, wrapped, masked) = row;
    let version = u32::try_from(version)
        .ok()
        .and_then(|v| DekVersion::new(v).ok())
        .ok_or_else(|| backend(StoreError::Corrupt("data key version out of range")))?;
    let kek_version = u32::try_from(kek_version)
        .map_err(|_| backend(StoreError::Corrupt("KEK version out of range")))?;
    Ok(WrappedDataKey {
        practice,
        version,
        kek: KekRef {
            id: kek_id,
            version: kek_version,
        },
        wrapped,
        masked,
    })
}

fn version_i32(v: DekVersion) -> Result<i32, KeyStoreError> {
    i32::try_from(v.get()).map_err(|_| backend(StoreError::Corrupt("data key version too large")))
}

#[async_trait]
impl WrappedKeyStore for PgKeyStore {
    async fn load(&self, practice: PracticeId) -> Result<KeyRecords, KeyStoreError> {
        let mut tx = self.begin_in(practice).await.map_err(backend)?;
        let destroyed: Option<(PracticeId,)> =
            sqlx::query_as("select practice_id from practice_key_destroyed where practice_id = $1")
                .bind(practice)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if destroyed.is_some() {
            return Ok(KeyRecords::Destroyed);
        }
        let rows: Vec<KeyRow> = sqlx::query_as(
            "select practice_id, dek_version, kek_id, kek_version, wrapped, masked from practice_data_key
              where practice_id = $1 order by dek_version",
        )
        .bind(practice)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(KeyRecords::Live(
            rows.into_iter().map(record).collect::<Result<_, _>>()?,
        ))
    }

    async fn insert(&self, key: &WrappedDataKey) -> Result<(), KeyStoreError> {
        let mut tx = self.begin_in(key.practice).await.map_err(backend)?;
        lock_practice(&mut tx, key.practice)
            .await
            .map_err(backend)?;
        let destroyed: Option<(PracticeId,)> =
            sqlx::query_as("select practice_id from practice_key_destroyed where practice_id = $1")
                .bind(key.practice)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if destroyed.is_some() {
            return Err(KeyStoreError::Destroyed {
                practice: key.practice,
            });
        }
        let done = sqlx::query(
            "insert into practice_data_key (practice_id, dek_version, kek_id, kek_version, wrapped, masked)
             values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
        )
        .bind(key.practice)
        .bind(version_i32(key.version)?)
        .bind(&key.kek.id)
        .bind(i64::from(key.kek.version))
        .bind(&key.wrapped)
        .bind(key.masked)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() != 1 {
            return Err(KeyStoreError::Conflict {
                practice: key.practice,
                version: key.version,
            });
        }
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn replace_wrapping(
        &self,
        previous: &WrappedDataKey,
        next: &WrappedDataKey,
    ) -> Result<bool, KeyStoreError> {
        if previous.practice != next.practice || previous.version != next.version {
            return Err(backend(StoreError::Corrupt(
                "a rewrap must keep the practice and version",
            )));
        }
        let mut tx = self.begin_in(previous.practice).await.map_err(backend)?;
        let done = sqlx::query(
            "update practice_data_key set kek_id = $5, kek_version = $6, wrapped = $7
              where practice_id = $1 and dek_version = $2
                and kek_id = $3 and kek_version = $4 and wrapped = $8",
        )
        .bind(previous.practice)
        .bind(version_i32(previous.version)?)
        .bind(&previous.kek.id)
        .bind(i64::from(previous.kek.version))
        .bind(&next.kek.id)
        .bind(i64::from(next.kek.version))
        .bind(&next.wrapped)
        .bind(&previous.wrapped)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_after(
        &self,
        after: Option<(PracticeId, DekVersion)>,
        limit: usize,
    ) -> Result<Vec<WrappedDataKey>, KeyStoreError> {
        let (p, v) = match after {
            Some((p, v)) => (Some(p), version_i32(v)?),
            None => (None, 0),
        };
        let rows: Vec<KeyRow> = sqlx::query_as(
            "select practice_id, dek_version, kek_id, kek_version, wrapped, masked from practice_data_key
              where $1::uuid is null or (practice_id, dek_version) > ($1, $2)
              order by practice_id, dek_version limit $3",
        )
        .bind(p)
        .bind(v)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter().map(record).collect()
    }

    async fn delete_version(
        &self,
        practice: PracticeId,
        version: DekVersion,
    ) -> Result<(), KeyStoreError> {
        let mut tx = self.begin_in(practice).await.map_err(backend)?;
        sqlx::query("delete from practice_data_key where practice_id = $1 and dek_version = $2")
            .bind(practice)
            .bind(version_i32(version)?)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn destroy(&self, practice: PracticeId) -> Result<(), KeyStoreError> {
        let mut tx = self.begin_in(practice).await.map_err(backend)?;
        lock_practice(&mut tx, practice).await.map_err(backend)?;
        sqlx::query(
            "insert into practice_key_destroyed (practice_id, destroyed_at) values ($1, now())
             on conflict do nothing",
        )
        .bind(practice)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("delete from practice_data_key where practice_id = $1")
            .bind(practice)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }
}

/// What a re-encryption pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Patient rows sealed (or re-sealed) with the active key.
    pub patients: u64,
    /// Note rows sealed (or re-sealed) with the active key.
    pub notes: u64,
    /// Blobs re-encrypted under the active key (into new objects).
    pub blobs: u64,
    /// Perio exam sessions re-sealed with the active key.
    pub perio_exams: u64,
    /// Disclosures sealed (or re-sealed) with the active key.
    pub disclosures: u64,
    /// Break-glass and support-grant reasons re-sealed with the active key.
    pub grant_reasons: u64,
}

impl ResealReport {
    /// The sum of the reports of several practices.
    pub fn total<'a>(reports: impl IntoIterator<Item = &'a ResealReport>) -> Self {
        reports.into_iter().fold(Self::default(), |t, r| Self {
            patients: t.patients + r.patients,
            notes: t.notes + r.notes,
            blobs: t.blobs + r.blobs,
            perio_exams: t.perio_exams + r.perio_exams,
            disclosures: t.disclosures + r.disclosures,
            grant_reasons: t.grant_reasons + r.grant_reasons,
        })
    }

    /// The counter of the rows of the registered table `t` (every table a rotation re-encrypts
    /// has one: this module's tests check it).
    fn counter(&mut self, t: &SealedTable) -> Option<&mut u64> {
        let name = t.table;
        if name == sealed_columns::PATIENT.table {
            Some(&mut self.patients)
        } else if name == sealed_columns::CLINICAL_NOTE.table
            || name == sealed_columns::CLINICAL_NOTE_VERSION.table
        {
            Some(&mut self.notes)
        } else if name == sealed_columns::PERIO_EXAM.table {
            Some(&mut self.perio_exams)
        } else if name == sealed_columns::DISCLOSURE.table {
            Some(&mut self.disclosures)
        } else if name == sealed_columns::BREAK_GLASS.table
            || name == sealed_columns::SUPPORT_GRANT.table
        {
            Some(&mut self.grant_reasons)
        } else if name == sealed_columns::BLOB_OBJECT.table {
            Some(&mut self.blobs)
        } else {
            None
        }
    }
}

/// Which rows a re-encryption pass takes.
#[derive(Clone, Copy, Debug)]
enum Reseal {
    /// Rows that still hold plaintext.
    Plaintext,
    /// Rows with plaintext or with a ciphertext sealed by a version other than this one.
    NotVersion(DekVersion),
}

impl Reseal {
    /// For a rotation, the 4 header bytes naming the target version (`$2` of [`todo`]);
    /// `None` for the plaintext pass.
    fn header_bytes(self) -> Option<Vec<u8>> {
        match self {
            Self::Plaintext => None,
            Self::NotVersion(v) => Some(v.get().to_be_bytes().to_vec()),
        }
    }

    /// Whether the pass walks table `t`: a rotation every table re-encrypted row by row, the
    /// plaintext pass those with legacy plaintext columns.
    fn walks(self, t: &SealedTable) -> bool {
        t.resealed_by_row() && (matches!(self, Self::NotVersion(_)) || t.has_legacy())
    }
}

/// The condition selecting rows of `t` that need work: a legacy plaintext column set, or (for
/// a rotation, `$2` = the version's 4 header bytes) a ciphertext whose header names another
/// data-key version (`format ‖ version u32be ‖ …`).
fn todo(t: &SealedTable) -> String {
    let mut parts = Vec::new();
    for c in t.columns {
        if c.legacy.is_some() {
            parts.push(format!("{} is not null", c.name));
        }
        parts.push(format!(
            "($2::bytea is not null and substring({} from 2 for 4) <> $2)",
            c.enc
        ));
    }
    format!("({})", parts.join(" or "))
}

/// ` <head> from <table> where practice_id = $1 and <todo>)` for each of `tables`: the terms
/// of a whole-practice check.
fn terms<'a>(tables: impl Iterator<Item = &'a SealedTable>, head: &str) -> String {
    tables.fold(String::new(), |mut out, t| {
        let _ = write!(
            out,
            " {head} from {} where practice_id = $1 and {})",
            t.table,
            todo(t)
        );
        out
    })
}

/// The key of one row of a registered table (see [`sealed_columns::RowId`]).
enum RowKey {
    Id(uuid::Uuid),
    IdVersion(uuid::Uuid, i32),
}

impl RowKey {
    /// The row id bound into the row's ciphertexts.
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Id(id) => id.as_bytes().to_vec(),
            Self::IdVersion(id, v) => sealed_columns::version_row_id(*id, *v).to_vec(),
        }
    }
}

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

    /// One batch of patient records of `practice` sealed with the active key, search tokens
    /// rewritten; returns how many.
    async fn reseal_patients(
        &self,
        practice: PracticeId,
        which: Reseal,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let keyring = self.keyring()?;
        let version = which.header_bytes();
        let mut tx = self.begin_in(practice).await?;
        let opener = tx.opener_unaudited_for_reseal(keyring);
        let n = crate::patients::reseal_batch(
            tx.conn(),
            keyring,
            &opener,
            practice,
            &todo(&sealed_columns::PATIENT),
            version.as_deref(),
            batch,
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn reseal_practice(
        &self,
        practice: PracticeId,
        which: Reseal,
        batch: i64,
        progress: &mut (dyn FnMut(PracticeId, ResealReport) + Send),
    ) -> Result<ResealReport, StoreError> {
        let mut report = ResealReport::default();
        let full = u64::try_from(batch).unwrap_or(0);
        for t in TABLES.iter().filter(|t| which.walks(t)) {
            loop {
                let n = match t.reencrypt {
                    Reencrypt::PatientRecord => {
                        self.reseal_patients(practice, which, batch).await?
                    }
                    Reencrypt::Fields => self.reseal_rows(practice, t, which, batch).await?,
                    Reencrypt::NewObjects | Reencrypt::Nothing => 0,
                };
                if let Some(c) = report.counter(t) {
                    *c += n;
                }
                if n > 0 {
                    progress(practice, report);
                }
                if n < full {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// One batch of rows of the registered table `t` of `practice` sealed with the active key
    /// (legacy plaintext sealed and emptied, other ciphertexts re-encrypted with the same
    /// context); returns how many. For note versions the plaintext and hash are unchanged,
    /// which the version trigger allows only the owner role to do.
    async fn reseal_rows(
        &self,
        practice: PracticeId,
        t: &SealedTable,
        which: Reseal,
        batch: i64,
    ) -> Result<u64, StoreError> {
        use sqlx::Row as _;
        let keyring = self.keyring()?;
        let keys = write_keys(keyring, practice).await?;
        let version = which.header_bytes();
        let table = t.table;
        let (key, key_where, keyed) = match t.row.version {
            Some(v) => (
                format!("{}, {v}", t.row.id),
                format!("{} = $2 and {v} = $3", t.row.id),
                2,
            ),
            None => (t.row.id.to_owned(), format!("{} = $2", t.row.id), 1),
        };
        // The update binds the practice, the key, then the new ciphertexts.
        let first = keyed + 2;
        let mut select = Vec::new();
        let mut set = Vec::new();
        for (i, c) in t.columns.iter().enumerate() {
            select.push(c.enc.to_owned());
            select.push(match c.legacy {
                Some(Plain::Text) => c.name.to_owned(),
                Some(Plain::Date) => format!("to_char({}, 'YYYY-MM-DD')", c.name),
                None => "null::text".to_owned(),
            });
            set.push(format!("{} = ${}", c.enc, first + i));
            if c.legacy.is_some() {
                set.push(format!("{} = null", c.name));
            }
        }
        let (select, set) = (select.join(", "), set.join(", "));
        let mut tx = self.begin_in(practice).await?;
        let opener = tx.opener_unaudited_for_reseal(keyring);
        let rows = sqlx::query(&format!(
            "select {key}, {select} from {table} where practice_id = $1 and {}
              order by {key} limit $3 for update",
            todo(t)
        ))
        .bind(practice)
        .bind(&version)
        .bind(batch)
        .fetch_all(tx.conn())
        .await?;
        let n = rows.len() as u64;
        let update = format!("update {table} set {set} where practice_id = $1 and {key_where}");
        for row in rows {
            let id: uuid::Uuid = row.try_get(0)?;
            let key = match t.row.version {
                Some(_) => RowKey::IdVersion(id, row.try_get(1)?),
                None => RowKey::Id(id),
            };
            let row_id = key.bytes();
            let mut fresh: Vec<Option<Vec<u8>>> = Vec::with_capacity(t.columns.len());
            for (i, c) in t.columns.iter().enumerate() {
                let enc: Option<Vec<u8>> = row.try_get(keyed + 2 * i)?;
                let plain: Option<String> = row.try_get(keyed + 1 + 2 * i)?;
                let ctx = t.context(practice, c.name, &row_id);
                fresh.push(match (enc, plain) {
                    (Some(ct), _) => Some(opener.reseal(&keys, &ctx, &ct).await?),
                    (None, Some(p)) => Some(
                        crypto::encrypt_field(keys.active(), &ctx, p.as_bytes())
                            .map_err(|e| crypto_error(&e))?,
                    ),
                    (None, None) => None,
                });
            }
            let mut q = sqlx::query(&update).bind(practice);
            q = match key {
                RowKey::Id(id) => q.bind(id),
                RowKey::IdVersion(id, v) => q.bind(id).bind(v),
            };
            for v in &fresh {
                q = q.bind(v);
            }
            q.execute(tx.conn()).await?;
        }
        tx.commit().await?;
        Ok(n)
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
            serde_json::json!({"dek_version": version.get(), "patients": report.patients, "notes": report.notes, "blobs": report.blobs, "perio_exams": report.perio_exams, "disclosures": report.disclosures, "grant_reasons": report.grant_reasons}),
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

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15.3 — every table a rotation re-encrypts is counted in the report, under its own
    // heading, and the plaintext pass walks exactly the tables with legacy columns.
    #[test]
    fn every_reencrypted_table_is_counted() {
        for t in TABLES {
            let mut r = ResealReport::default();
            let counted = r.counter(t).is_some();
            assert_eq!(
                counted,
                t.reencrypt != Reencrypt::Nothing,
                "{}: a re-encrypted table needs a counter",
                t.table
            );
        }
        let legacy: Vec<&str> = TABLES
            .iter()
            .filter(|t| Reseal::Plaintext.walks(t))
            .map(|t| t.table)
            .collect();
        assert_eq!(legacy, ["clinical_note", "disclosure", "patient"]);
    }

    #[test]
    fn the_condition_covers_legacy_plaintext_and_other_versions() {
        assert_eq!(
            todo(&sealed_columns::CLINICAL_NOTE),
            "(body is not null or ($2::bytea is not null and substring(body_enc from 2 for 4) <> $2))"
        );
        assert_eq!(
            todo(&sealed_columns::PERIO_EXAM),
            "(($2::bytea is not null and substring(session_enc from 2 for 4) <> $2))"
        );
    }
}
