//! The blob registry (`blob_object`, `migrations/0006_backup.sql`): which practice owns each
//! encrypted blob, the data-key version that sealed it and its current object in the object
//! store. The blobs themselves live in a [`crypto::BlobStore`]; rows hold ids, versions and
//! sizes only.
//!
//! A blob's `blob_id` is stable (other rows refer to it); its `object_id` changes when a
//! data-key rotation re-encrypts it into a new object ([`crate::OwnerStore::reencrypt_blobs`]).

use crypto::{BlobId, BlobStore, DekVersion, StoredBlob};
use domain::PracticeId;

use crate::sealed_columns::crypto_error;
use crate::{OwnerStore, StoreError, TenantTx};

/// A registered blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRow {
    /// The stable id.
    pub blob_id: BlobId,
    /// The object currently holding it.
    pub object_id: BlobId,
    /// The data-key version that sealed the object.
    pub dek_version: DekVersion,
    /// Plaintext bytes.
    pub plaintext_len: u64,
}

type Row = (uuid::Uuid, uuid::Uuid, i32, i64);

fn row(r: Row) -> Result<BlobRow, StoreError> {
    let version = u32::try_from(r.2)
        .ok()
        .and_then(|v| DekVersion::new(v).ok())
        .ok_or(StoreError::Corrupt("blob_object.dek_version"))?;
    Ok(BlobRow {
        blob_id: BlobId::from_uuid(r.0),
        object_id: BlobId::from_uuid(r.1),
        dek_version: version,
        plaintext_len: u64::try_from(r.3)
            .map_err(|_| StoreError::Corrupt("blob_object.plaintext_len"))?,
    })
}

fn len_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt("blob length out of range"))
}

impl TenantTx {
    /// Registers a blob just written to the object store for this transaction's practice.
    pub async fn register_blob(&mut self, blob: &StoredBlob) -> Result<BlobId, StoreError> {
        if blob.practice != self.practice() {
            return Err(StoreError::Corrupt("a blob of another practice"));
        }
        let now = self.now();
        sqlx::query(
            "insert into blob_object (practice_id, blob_id, object_id, dek_version, plaintext_len, stored_len, created_at)
             values ($1, $2, $2, $3, $4, $5, $6)",
        )
        .bind(self.practice())
        .bind(blob.id.as_uuid())
        .bind(i32::try_from(blob.dek_version.get()).map_err(|_| StoreError::Corrupt("dek version"))?)
        .bind(len_i64(blob.plaintext_len)?)
        .bind(len_i64(blob.stored_len)?)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(blob.id)
    }

    /// A registered blob of this practice.
    pub async fn blob(&mut self, blob: BlobId) -> Result<Option<BlobRow>, StoreError> {
        let r: Option<Row> = sqlx::query_as(
            "select blob_id, object_id, dek_version, plaintext_len from blob_object
              where practice_id = $1 and blob_id = $2",
        )
        .bind(self.practice())
        .bind(blob.as_uuid())
        .fetch_optional(self.conn())
        .await?;
        r.map(row).transpose()
    }
}

impl OwnerStore {
    /// Re-encrypts up to `batch` blobs of `practice` not sealed with `version` (the active
    /// one): each into a new object, the row repointed in its own transaction (compare-and-swap
    /// on the old object), then the old object deleted. Returns how many; a crash between the
    /// steps leaves at worst an orphaned object, never a row pointing at nothing.
    pub async fn reencrypt_blobs(
        &self,
        practice: PracticeId,
        version: DekVersion,
        blobs: &BlobStore,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let v = i32::try_from(version.get()).map_err(|_| StoreError::Corrupt("dek version"))?;
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let todo: Vec<Row> = sqlx::query_as(
            "select blob_id, object_id, dek_version, plaintext_len from blob_object
              where practice_id = $1 and dek_version <> $2 order by blob_id limit $3",
        )
        .bind(practice)
        .bind(v)
        .bind(batch.clamp(1, 10_000))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut n = 0;
        for r in todo {
            let r = row(r)?;
            let fresh = blobs
                .reencrypt(practice, r.object_id)
                .await
                .map_err(|e| crypto_error(&e))?;
            let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
            let done = sqlx::query(
                "update blob_object set object_id = $3, dek_version = $4, stored_len = $5
                  where practice_id = $1 and blob_id = $2 and object_id = $6",
            )
            .bind(practice)
            .bind(r.blob_id.as_uuid())
            .bind(fresh.id.as_uuid())
            .bind(
                i32::try_from(fresh.dek_version.get())
                    .map_err(|_| StoreError::Corrupt("dek version"))?,
            )
            .bind(len_i64(fresh.stored_len)?)
            .bind(r.object_id.as_uuid())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            // Lost a race (or the row is gone): the new object is the orphan.
            let orphan = if done == 1 { r.object_id } else { fresh.id };
            blobs.delete(orphan).await.map_err(|e| crypto_error(&e))?;
            n += done;
        }
        Ok(n)
    }

    /// How many blobs of `practice` are sealed with a version other than `version`.
    pub(crate) async fn blobs_not_under(
        &self,
        practice: PracticeId,
        version: DekVersion,
    ) -> Result<i64, StoreError> {
        let v = i32::try_from(version.get()).map_err(|_| StoreError::Corrupt("dek version"))?;
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let (n,): (i64,) = sqlx::query_as(
            "select count(*) from blob_object where practice_id = $1 and dek_version <> $2",
        )
        .bind(practice)
        .bind(v)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }
}
