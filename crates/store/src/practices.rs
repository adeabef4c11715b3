//! Practices: the ones a user belongs to, and the current practice's settings.

use chrono::{DateTime, Utc};
use domain::PracticeId;
use domain::practice::PracticeSettings;
use serde::Serialize;

use crate::{StoreError, TenantTx, UserTx};

/// A practice as its members see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Practice {
    /// Id.
    pub practice_id: PracticeId,
    /// Name.
    pub name: String,
    /// Settings (the closed set; the schema refuses any other shape).
    #[sqlx(json)]
    pub settings: PracticeSettings,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A practice the user belongs to, with their roles there.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MyPractice {
    /// Id.
    pub practice_id: PracticeId,
    /// Name.
    pub name: String,
    /// The user's roles there.
    pub roles: Vec<String>,
}

impl UserTx {
    /// The practices the user is a member of, by name.
    pub async fn my_practices(&mut self) -> Result<Vec<MyPractice>, StoreError> {
        let user = self.user();
        Ok(sqlx::query_as(
            "select p.practice_id, p.name, m.roles from membership m
               join practice p on p.practice_id = m.practice_id
              where m.user_id = $1 order by p.name, p.practice_id",
        )
        .bind(user)
        .fetch_all(self.conn())
        .await?)
    }

    /// The user's own profile: email and display name.
    pub async fn profile(&mut self) -> Result<(String, String), StoreError> {
        let user = self.user();
        Ok(
            sqlx::query_as("select email, display_name from app_user where user_id = $1")
                .bind(user)
                .fetch_one(self.conn())
                .await?,
        )
    }
}

/// Reads the current practice.
pub async fn get(tx: &mut TenantTx) -> Result<Practice, StoreError> {
    Ok(sqlx::query_as(
        "select practice_id, name, settings, created_at from practice where practice_id = $1",
    )
    .bind(tx.practice())
    .fetch_one(tx.conn())
    .await?)
}

/// Changes the current practice's name and/or settings (owner or admin; enforced by RLS:
/// a member without those roles updates nothing and gets [`StoreError::Forbidden`]).
pub async fn update(
    tx: &mut TenantTx,
    name: Option<&str>,
    settings: Option<&PracticeSettings>,
) -> Result<Practice, StoreError> {
    let row: Option<Practice> = sqlx::query_as(
        "update practice set name = coalesce($2, name), settings = coalesce($3, settings)
          where practice_id = $1 returning practice_id, name, settings, created_at",
    )
    .bind(tx.practice())
    .bind(name)
    .bind(settings.map(PracticeSettings::to_json))
    .fetch_optional(tx.conn())
    .await?;
    row.ok_or(StoreError::Forbidden)
}

/// A practice's security settings: its own session lifetimes (within the bounds the schema
/// enforces: idle 2–60 minutes, absolute 1–24 hours; `None` = the server's default) and
/// whether owners and admins must sign in with a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct SecuritySettings {
    /// Idle timeout in seconds.
    pub session_idle_seconds: Option<i32>,
    /// Absolute lifetime in seconds.
    pub session_absolute_seconds: Option<i32>,
    /// Passkeys required for owners and admins.
    pub require_passkey_for_managers: bool,
}

/// Reads the practice's security settings (owner or admin, by row-level security).
pub async fn security(tx: &mut TenantTx) -> Result<SecuritySettings, StoreError> {
    let row: Option<SecuritySettings> = sqlx::query_as(
        "select session_idle_seconds, session_absolute_seconds, require_passkey_for_managers
           from practice where practice_id = $1",
    )
    .bind(tx.practice())
    .fetch_optional(tx.conn())
    .await?;
    row.ok_or(StoreError::Forbidden)
}

/// Replaces the practice's security settings (owner or admin, by row-level security). Values
/// out of bounds are refused by the schema ([`StoreError::Invalid`]).
pub async fn set_security(
    tx: &mut TenantTx,
    s: &SecuritySettings,
) -> Result<SecuritySettings, StoreError> {
    let row: Option<SecuritySettings> = sqlx::query_as(
        "update practice set session_idle_seconds = $2, session_absolute_seconds = $3,
                require_passkey_for_managers = $4
          where practice_id = $1 and (select app.actor_roles()) && array['owner', 'admin']
         returning session_idle_seconds, session_absolute_seconds, require_passkey_for_managers",
    )
    .bind(tx.practice())
    .bind(s.session_idle_seconds)
    .bind(s.session_absolute_seconds)
    .bind(s.require_passkey_for_managers)
    .fetch_optional(tx.conn())
    .await?;
    row.ok_or(StoreError::Forbidden)
}

/// The practices the acting user is a member of (their own memberships, which the runtime
/// policy lets them read from any practice), by name, read in the practice's transaction
/// for the header's practice switcher. Decrypts nothing; audits nothing.
pub async fn actor_practices(tx: &mut TenantTx) -> Result<Vec<MyPractice>, StoreError> {
    Ok(sqlx::query_as(
        "select p.practice_id, p.name, m.roles from membership m
           join practice p on p.practice_id = m.practice_id
          where m.user_id = $1 order by p.name, p.practice_id",
    )
    .bind(tx.actor())
    .fetch_all(tx.conn())
    .await?)
}

/// The acting user's display name, read in the practice's transaction (shown on the pages as
/// who is signed in). Decrypts nothing; audits nothing (it is the actor's own profile).
pub async fn actor_display_name(tx: &mut TenantTx) -> Result<String, StoreError> {
    Ok(
        sqlx::query_scalar("select display_name from app_user where user_id = $1")
            .bind(tx.actor())
            .fetch_one(tx.conn())
            .await?,
    )
}
