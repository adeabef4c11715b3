//! What the public trust page reads from the database: when this installation last wrote a
//! backup archive and was last restored from one, from its own audit log (`backup.create`,
//! `backup.restore`, successful ones). Times only: nothing about what an archive holds.

use chrono::{DateTime, Utc};
use domain::{AuditAction, PracticeId};

use crate::entry::begin_in;
use crate::{Store, StoreError};

/// The newest backup events on the installation's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupRecency {
    /// The newest `backup.create`.
    pub last_backup_at: Option<DateTime<Utc>>,
    /// The newest `backup.restore` (this installation restored from an archive).
    pub last_restore_at: Option<DateTime<Utc>>,
}

impl Store {
    /// When the installation last wrote a backup archive and was last restored from one.
    pub async fn backup_recency(&self) -> Result<BackupRecency, StoreError> {
        let mut tx = begin_in(&self.pool, PracticeId::SYSTEM).await?;
        let newest = "select max(occurred_at) from audit_event
                      where practice_id = $1 and action = $2 and outcome = 'success'";
        let mut at = [None, None];
        for (slot, action) in at
            .iter_mut()
            .zip([AuditAction::BackupCreate, AuditAction::BackupRestore])
        {
            *slot = sqlx::query_scalar(newest)
                .bind(PracticeId::SYSTEM)
                .bind(action.as_str())
                .fetch_one(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let [last_backup_at, last_restore_at] = at;
        Ok(BackupRecency {
            last_backup_at,
            last_restore_at,
        })
    }
}
