//! [`PgKeyStore`]: the wrapped data keys of every practice (`practice_data_key`) and the
//! crypto-shredding tombstones (`practice_key_destroyed`) as a [`WrappedKeyStore`].
//!
//! # Guarantees
//! - Every statement runs in its own short transaction with the practice set
//!   transaction-locally; only [`WrappedKeyStore::list_after`] (the KEK rewrap scan, owner
//!   role) lists rows across practices, and it reads ids and opaque wrapped bytes only.
//! - Inserting a key and destroying a practice's keys take the same per-practice advisory
//!   lock, so no key can be added once the tombstone is there.
//! - A rewrap replaces a row only if it still holds the wrapping it was read with.

use async_trait::async_trait;
use crypto::{
    DekVersion, KekRef, KeyGeneration, KeyRecords, KeyStoreError, WrappedDataKey, WrappedKeyStore,
};
use domain::PracticeId;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::StoreError;

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
    /// One statement over ids and versions only (no wrapped bytes), run every
    /// [`crypto::DEFAULT_RECHECK`] per cached practice by each replica's keyring.
    async fn generation(&self, practice: PracticeId) -> Result<KeyGeneration, KeyStoreError> {
        let mut tx = self.begin_in(practice).await.map_err(backend)?;
        let (destroyed, newest, versions): (bool, i32, i64) = sqlx::query_as(
            "select exists (select 1 from practice_key_destroyed where practice_id = $1),
                    coalesce(max(dek_version), 0), count(*)
               from practice_data_key where practice_id = $1",
        )
        .bind(practice)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(KeyGeneration {
            destroyed,
            newest: u32::try_from(newest).unwrap_or(0),
            versions: u32::try_from(versions).unwrap_or(u32::MAX),
        })
    }

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
