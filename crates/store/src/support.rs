//! Vendor support access (`migrations/0010_support_access.sql`): support principals live
//! outside every practice and see a practice only through a grant one of its owners approved
//! (scope, reason, at most 72 hours), which the practice's owners and admins can list and revoke
//! at once. The database derives the support principal's roles from the grant; the server keeps
//! such sessions read-only and flags their audit events; each patient they touch gets a
//! `support_access` disclosure. The reason is free text, stored encrypted.

use chrono::{DateTime, Duration, Utc};
use crypto::Keyring;
use domain::UserId;
use serde::Serialize;

use crate::sealed_columns::{SUPPORT_GRANT, seal_field};
use crate::{OwnerStore, StoreError, TenantTx};

/// A support grant.
#[derive(Debug, Clone, Serialize)]
pub struct SupportGrant {
    /// Id.
    pub grant_id: uuid::Uuid,
    /// The support principal.
    pub support_user_id: UserId,
    /// `scheduling` or `clinical`.
    pub scope: String,
    /// Why (decrypted).
    pub reason: String,
    /// The owner who approved it.
    pub approved_by: UserId,
    /// When.
    pub approved_at: DateTime<Utc>,
    /// Until.
    pub expires_at: DateTime<Utc>,
    /// Revoked by.
    pub revoked_by: Option<UserId>,
    /// Revoked at.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Why a grant was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantRefusal {
    /// No support principal with that email.
    UnknownSupportUser,
}

/// Approves a grant for the support principal with `email` (the caller checked the owner
/// role and step-up; RLS checks them again).
pub async fn approve(
    tx: &mut TenantTx,
    keyring: &Keyring,
    email: &str,
    scope: &str,
    reason: &str,
    hours: i64,
) -> Result<Result<SupportGrant, GrantRefusal>, StoreError> {
    let user: Option<(UserId,)> = sqlx::query_as("select app.support_user_by_email($1)")
        .bind(email)
        .fetch_optional(tx.conn())
        .await?
        .and_then(|r: (Option<UserId>,)| r.0.map(|u| (u,)));
    let Some((user,)) = user else {
        return Ok(Err(GrantRefusal::UnknownSupportUser));
    };
    let practice = tx.practice();
    let id = uuid::Uuid::new_v4();
    let reason_enc = seal_field(
        keyring,
        &SUPPORT_GRANT.context(practice, "reason", id.as_bytes()),
        reason.as_bytes(),
    )
    .await?;
    let now = tx.now();
    let expires = now + Duration::hours(hours.clamp(1, 72));
    sqlx::query(
        "insert into support_grant (practice_id, grant_id, support_user_id, scope, reason_enc, approved_by, approved_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(practice)
    .bind(id)
    .bind(user)
    .bind(scope)
    .bind(&reason_enc)
    .bind(tx.actor())
    .bind(now)
    .bind(expires)
    .execute(tx.conn())
    .await?;
    Ok(Ok(SupportGrant {
        grant_id: id,
        support_user_id: user,
        scope: scope.to_owned(),
        reason: reason.to_owned(),
        approved_by: tx.actor(),
        approved_at: now,
        expires_at: expires,
        revoked_by: None,
        revoked_at: None,
    }))
}

type Row = (
    uuid::Uuid,
    UserId,
    String,
    Vec<u8>,
    UserId,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<UserId>,
    Option<DateTime<Utc>>,
);

/// The practice's support grants, newest first (at most 200).
pub async fn list(tx: &mut TenantTx, keyring: &Keyring) -> Result<Vec<SupportGrant>, StoreError> {
    let practice = tx.practice();
    let rows: Vec<Row> = sqlx::query_as(
        "select grant_id, support_user_id, scope, reason_enc, approved_by, approved_at, expires_at, revoked_by, revoked_at
           from support_grant where practice_id = $1 order by approved_at desc limit 200",
    )
    .bind(practice)
    .fetch_all(tx.conn())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let opener = tx.opener(keyring);
    for r in rows {
        let reason = opener
            .open_text(
                &SUPPORT_GRANT.context(practice, "reason", r.0.as_bytes()),
                &r.3,
            )
            .await?;
        out.push(SupportGrant {
            grant_id: r.0,
            support_user_id: r.1,
            scope: r.2,
            reason,
            approved_by: r.4,
            approved_at: r.5,
            expires_at: r.6,
            revoked_by: r.7,
            revoked_at: r.8,
        });
    }
    Ok(out)
}

/// Revokes a grant at once. `false` if there is no such live grant here.
pub async fn revoke(tx: &mut TenantTx, grant: uuid::Uuid) -> Result<bool, StoreError> {
    let now = tx.now();
    let n = sqlx::query(
        "update support_grant set revoked_by = $3, revoked_at = $4
          where practice_id = $1 and grant_id = $2 and revoked_at is null",
    )
    .bind(tx.practice())
    .bind(grant)
    .bind(tx.actor())
    .bind(now)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(n == 1)
}

impl OwnerStore {
    /// Approves a support grant as the owner role (fixtures): `approver` must be an owner of
    /// the practice.
    pub async fn seed_support_grant(
        &self,
        practice: domain::PracticeId,
        support_user: UserId,
        approver: UserId,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<uuid::Uuid, StoreError> {
        let id = uuid::Uuid::new_v4();
        let reason_enc = seal_field(
            self.keyring()?,
            &SUPPORT_GRANT.context(practice, "reason", id.as_bytes()),
            b"Fixture support request",
        )
        .await?;
        let mut tx = self.begin_in(practice).await?;
        sqlx::query(
            "insert into support_grant (practice_id, grant_id, support_user_id, scope, reason_enc, approved_by, approved_at, expires_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(practice)
        .bind(id)
        .bind(support_user)
        .bind(scope)
        .bind(&reason_enc)
        .bind(approver)
        .bind(now)
        .bind(now + Duration::hours(4))
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Creates a vendor support account: a principal outside every practice (it can never be
    /// added to one). It sees a practice only through a grant an owner approves.
    pub async fn create_support_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UserId, StoreError> {
        let id = self
            .create_user(email, display_name, password_hash, now)
            .await?;
        sqlx::query("update app_user set kind = 'support' where user_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(id)
    }
}
