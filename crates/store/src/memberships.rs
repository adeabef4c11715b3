//! Memberships: who belongs to a practice, with which roles (owner or admin manage them;
//! enforced by RLS). The caller audits.

use chrono::{DateTime, Utc};
use domain::{RoleSet, UserId};
use serde::Serialize;

use crate::{StoreError, TenantTx};

/// A member of the practice.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their sign-in email.
    pub email: String,
    /// Their display name.
    pub display_name: String,
    /// Their roles here.
    pub roles: Vec<String>,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

type MemberRow = (UserId, String, String, Vec<String>, DateTime<Utc>);

fn member(row: MemberRow) -> Member {
    Member {
        user_id: row.0,
        email: row.1,
        display_name: row.2,
        roles: row.3,
        created_at: row.4,
    }
}

/// Lists the practice's members by display name.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Member>, StoreError> {
    let rows: Vec<MemberRow> = sqlx::query_as(
        "select m.user_id, u.email, u.display_name, m.roles, m.created_at
           from membership m join app_user u on u.user_id = m.user_id
          where m.practice_id = $1 order by u.display_name, m.user_id limit 500",
    )
    .bind(tx.practice())
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(member).collect())
}

/// Reads one member.
pub async fn get(tx: &mut TenantTx, user: UserId) -> Result<Option<Member>, StoreError> {
    let row: Option<MemberRow> = sqlx::query_as(
        "select m.user_id, u.email, u.display_name, m.roles, m.created_at
           from membership m join app_user u on u.user_id = m.user_id
          where m.practice_id = $1 and m.user_id = $2",
    )
    .bind(tx.practice())
    .bind(user)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(member))
}

async fn owner_count_without(tx: &mut TenantTx, user: UserId) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "select count(*) from membership where practice_id = $1 and user_id <> $2 and 'owner' = any(roles)",
    )
    .bind(tx.practice())
    .bind(user)
    .fetch_one(tx.conn())
    .await?;
    Ok(n)
}

/// Replaces a member's roles. A practice keeps at least one owner: taking `owner` from the
/// last owner is a conflict (`last_owner`).
pub async fn set_roles(
    tx: &mut TenantTx,
    user: UserId,
    roles: RoleSet,
) -> Result<Option<Member>, StoreError> {
    if !roles.contains(domain::Role::Owner)
        && owner_count_without(tx, user).await? == 0
        && is_owner(tx, user).await?
    {
        return Err(StoreError::Conflict("last_owner".into()));
    }
    let done =
        sqlx::query("update membership set roles = $3 where practice_id = $1 and user_id = $2")
            .bind(tx.practice())
            .bind(user)
            .bind(roles.names())
            .execute(tx.conn())
            .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    get(tx, user).await
}

async fn is_owner(tx: &mut TenantTx, user: UserId) -> Result<bool, StoreError> {
    let row: Option<(bool,)> = sqlx::query_as(
        "select 'owner' = any(roles) from membership where practice_id = $1 and user_id = $2",
    )
    .bind(tx.practice())
    .bind(user)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.is_some_and(|r| r.0))
}

/// Removes a member. The last owner cannot be removed (`last_owner`); a member who is the
/// clinician of appointments is a conflict on `appointment_clinician_fkey` until those are
/// reassigned.
pub async fn remove(tx: &mut TenantTx, user: UserId) -> Result<bool, StoreError> {
    if is_owner(tx, user).await? && owner_count_without(tx, user).await? == 0 {
        return Err(StoreError::Conflict("last_owner".into()));
    }
    let done = sqlx::query("delete from membership where practice_id = $1 and user_id = $2")
        .bind(tx.practice())
        .bind(user)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}
