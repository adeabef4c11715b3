//! Emergency mode (req CP-03): read-only operation while dependencies fail or an incident is
//! being contained. The operator switches the whole installation (the owner role:
//! [`crate::OwnerStore::set_installation_emergency`], audited on the installation's log); a
//! practice's owner switches their own practice ([`set_practice`]; the caller audits). The
//! server reads [`state`] before any change a request makes and refuses it while either is on;
//! reads go on and are audited as always (migration 0031).

use chrono::{DateTime, Utc};
use domain::{AuditAction, PracticeId};
use serde::Serialize;

use crate::{OwnerStore, StoreError, TenantTx};

/// Whether emergency mode is on, and since when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmergencyState {
    /// Installation-wide (the operator's switch), since.
    pub installation: Option<DateTime<Utc>>,
    /// This practice (its owner's switch), since.
    pub practice: Option<DateTime<Utc>>,
}

impl EmergencyState {
    /// Whether changes are refused.
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.installation.is_some() || self.practice.is_some()
    }
}

/// The emergency state seen from the transaction's practice (one round trip).
pub async fn state(tx: &mut TenantTx) -> Result<EmergencyState, StoreError> {
    let practice = tx.practice();
    let (installation, practice): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
        "select (select since from installation_emergency),
                    (select since from practice_emergency where practice_id = $1)",
    )
    .bind(practice)
    .fetch_one(tx.conn())
    .await?;
    Ok(EmergencyState {
        installation,
        practice,
    })
}

/// Switches the practice's emergency mode on or off (owners only, enforced by RLS); returns
/// whether it changed. The caller audits.
pub async fn set_practice(tx: &mut TenantTx, on: bool) -> Result<bool, StoreError> {
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    let done = if on {
        sqlx::query(
            "insert into practice_emergency (practice_id, since, switched_by) values ($1, $2, $3)
             on conflict (practice_id) do nothing",
        )
        .bind(practice)
        .bind(now)
        .bind(actor)
        .execute(tx.conn())
        .await?
    } else {
        sqlx::query("delete from practice_emergency where practice_id = $1")
            .bind(practice)
            .execute(tx.conn())
            .await?
    };
    Ok(done.rows_affected() > 0)
}

impl OwnerStore {
    /// Switches installation-wide emergency mode on or off at `now` (the operator's command),
    /// audited `emergency.switch` on the installation's own log with the new state; returns
    /// whether it changed.
    pub async fn set_installation_emergency(
        &self,
        on: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_at(PracticeId::SYSTEM, now).await?;
        let done = if on {
            sqlx::query(
                "insert into installation_emergency (singleton, since) values (true, $1)
                 on conflict (singleton) do nothing",
            )
            .bind(now)
            .execute(tx.conn())
            .await?
        } else {
            sqlx::query("delete from installation_emergency")
                .execute(tx.conn())
                .await?
        };
        let changed = done.rows_affected() > 0;
        tx.audit(
            AuditAction::EmergencySwitch,
            None,
            None,
            Some(serde_json::json!({"scope": "installation", "on": on, "changed": changed, "via": "cli"})),
        )
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Since when installation-wide emergency mode is on, if it is.
    pub async fn installation_emergency(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar("select since from installation_emergency")
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
