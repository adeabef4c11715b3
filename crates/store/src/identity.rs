//! Second factors and identity events: TOTP records, recovery codes, passkeys, WebAuthn
//! ceremony state, and the security events of the installation's log.
//!
//! Everything here is per user. Within a session ([`UserTx`]) row-level security limits every
//! statement to the acting user's rows; before a session exists (sign-in), a row is reached
//! only through a transaction-local lookup setting (an email, a credential id, a challenge id).
//! Secrets are never stored in the clear: TOTP secrets are sealed here under the installation
//! data key ([`crate::installation`]), recovery codes stored as SHA-256 hashes.

use chrono::{DateTime, Utc};
use domain::{AuditAction, Outcome, PracticeId, RequestId, UserId};

use crate::append::{NewEvent, append};
use crate::entry::set_practice;
use crate::tenant::UserTx;
use crate::{Store, StoreError};

/// A user's TOTP record.
#[derive(Debug)]
pub struct TotpRecord {
    /// The secret, opened (`Debug` prints nothing of it; wiped on drop).
    pub secret: crypto::Secret<Vec<u8>>,
    /// When enrollment was confirmed with a first code; `None` while pending.
    pub confirmed: bool,
    /// The last accepted time step (RFC 6238 §5.2: a code is accepted once).
    pub last_step: i64,
}

/// Which second factors a user has.
#[derive(Debug, Default, Clone, Copy)]
pub struct Factors {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// Registered passkeys.
    pub passkeys: i64,
    /// Unused recovery codes.
    pub recovery_codes: i64,
}

impl Factors {
    /// Whether the user can complete sign-in with a second factor.
    #[must_use]
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

/// A registered passkey as listed to its owner.
#[derive(Debug)]
pub struct PasskeyRecord {
    /// The credential id (public).
    pub credential_id: Vec<u8>,
    /// The user's name for it.
    pub name: String,
    /// The serialized `webauthn_rs::prelude::Passkey`.
    pub passkey: serde_json::Value,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A security event for the audit trail (req AUD-07). `details` carries the client address,
/// user agent and reason: ids and facts, never a password, token, code or email.
#[derive(Debug)]
pub struct SecurityEvent {
    /// What happened.
    pub action: AuditAction,
    /// Success, or denied.
    pub outcome: Outcome,
    /// The user it concerns, when known (never for an unknown email).
    pub actor: Option<UserId>,
    /// The request.
    pub request: RequestId,
    /// When.
    pub at: DateTime<Utc>,
    /// Facts: `ip`, `user_agent`, `method`, `reason`, …
    pub details: serde_json::Value,
}

type PasskeyRow = (
    Vec<u8>,
    String,
    serde_json::Value,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

impl Store {
    /// Records a security event on the installation's log and, with `fan_out` and a known
    /// user, on the log of every practice they belong to, in one transaction of its own
    /// (sign-in has no session transaction to join). Failed sign-ins use `fan_out = false`, so
    /// the work is the same whether or not the email exists (req AU-04).
    pub async fn audit_security(&self, e: &SecurityEvent, fan_out: bool) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let practices: Vec<PracticeId> = match e.actor.filter(|_| fan_out) {
            Some(user) => {
                sqlx::query("select set_config('chartroom.actor_id', $1, true)")
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query_scalar(
                    "select practice_id from membership where user_id = $1 order by practice_id",
                )
                .bind(user)
                .fetch_all(&mut *tx)
                .await?
            }
            None => Vec::new(),
        };
        let mut event = NewEvent::new(e.at, e.action);
        event.outcome = e.outcome;
        event.actor = e.actor;
        event.request = Some(e.request);
        event.details = Some(e.details.clone());
        let event = [event];
        for practice in std::iter::once(PracticeId::SYSTEM).chain(practices) {
            set_practice(&mut tx, Some(practice)).await?;
            append(&mut tx, practice, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Finds the active user owning a passkey credential (passwordless sign-in), with the
    /// stored passkey. `None` for an unknown credential or a deactivated user.
    pub async fn passkey_owner(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<(UserId, serde_json::Value)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.lookup_credential', $1, true)")
            .bind(hex::encode(credential_id))
            .execute(&mut *tx)
            .await?;
        let row: Option<(UserId, serde_json::Value)> = sqlx::query_as(
            "select p.user_id, p.passkey from user_passkey p
               join app_user u on u.user_id = p.user_id and u.status = 'active'
              where p.credential_id = $1",
        )
        .bind(credential_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Stores WebAuthn ceremony state under a fresh id, for `user` when the ceremony belongs
    /// to a signed-in user. Single use: [`Store::challenge_take`] removes it.
    pub async fn challenge_put(
        &self,
        user: Option<UserId>,
        kind: &'static str,
        state: &serde_json::Value,
        expires_at: DateTime<Utc>,
    ) -> Result<uuid::Uuid, StoreError> {
        let id = uuid::Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "select set_config('chartroom.challenge_id', $1, true),
                    set_config('chartroom.actor_id', $2, true)",
        )
        .bind(id.to_string())
        .bind(user.map(|u| u.to_string()).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into auth_challenge (challenge_id, user_id, kind, state, expires_at)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(user)
        .bind(kind)
        .bind(state)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Removes ceremony state that expired before `now` (housekeeping; unauthenticated passkey
    /// sign-in can create state, so it must not accumulate). Returns how many rows went.
    pub async fn purge_expired_challenges(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.purge_before', $1, true)")
            .bind(now.to_rfc3339())
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("delete from auth_challenge where expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Takes (removes and returns) unexpired ceremony state of `kind`: the user it belongs to
    /// and the state. `None` when unknown, expired, already used or of another kind.
    pub async fn challenge_take(
        &self,
        id: uuid::Uuid,
        kind: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Option<UserId>, serde_json::Value)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.challenge_id', $1, true)")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let row: Option<(Option<UserId>, serde_json::Value, String, DateTime<Utc>)> =
            sqlx::query_as(
                "delete from auth_challenge where challenge_id = $1
                 returning user_id, state, kind, expires_at",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row
            .filter(|r| r.2 == kind && r.3 > now)
            .map(|(user, state, _, _)| (user, state)))
    }
}

impl UserTx {
    /// Records a security event about the acting user in this transaction (atomic with the
    /// change it records) on the installation's log and on each of the user's practices' logs.
    pub async fn audit_security(
        &mut self,
        action: AuditAction,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let user = self.user();
        let practices: Vec<PracticeId> = sqlx::query_scalar(
            "select practice_id from membership where user_id = $1 order by practice_id",
        )
        .bind(user)
        .fetch_all(self.conn())
        .await?;
        let practices: Vec<PracticeId> = std::iter::once(PracticeId::SYSTEM)
            .chain(practices)
            .collect();
        let mut event = self.event(action);
        event.details = Some(details);
        self.append_in(&practices, &[event]).await
    }

    /// The acting user's second factors.
    pub async fn factors(&mut self) -> Result<Factors, StoreError> {
        let (totp, passkeys, recovery_codes): (bool, i64, i64) = sqlx::query_as(
            "select exists (select 1 from user_totp where user_id = app.actor() and confirmed_at is not null),
                    (select count(*) from user_passkey where user_id = app.actor()),
                    (select count(*) from user_recovery_code where user_id = app.actor() and used_at is null)",
        )
        .fetch_one(self.conn())
        .await?;
        Ok(Factors {
            totp,
            passkeys,
            recovery_codes,
        })
    }

    /// The acting user's TOTP record, if any, with its secret opened with `keyring` (the
    /// installation data key). Audits nothing: the caller records the sign-in step.
    pub async fn totp(
        &mut self,
        keyring: &crypto::Keyring,
    ) -> Result<Option<TotpRecord>, StoreError> {
        let row: Option<(Option<Vec<u8>>, bool, i64)> = sqlx::query_as(
            "select secret_enc, confirmed_at is not null, last_step
               from user_totp where user_id = app.actor()",
        )
        .fetch_optional(self.conn())
        .await?;
        let Some((secret_enc, confirmed, last_step)) = row else {
            return Ok(None);
        };
        let secret =
            crate::installation::open_totp(keyring, self.user(), secret_enc.as_deref()).await?;
        Ok(Some(TotpRecord {
            secret,
            confirmed,
            last_step,
        }))
    }

    /// Starts (or restarts) TOTP enrollment with a new secret, sealed here with `keyring` (the
    /// installation data key, bound to the user). Refused with [`StoreError::Conflict`] when a
    /// confirmed authenticator exists (remove it first).
    pub async fn totp_begin(
        &mut self,
        keyring: &crypto::Keyring,
        secret: &[u8],
    ) -> Result<(), StoreError> {
        let (user, now) = (self.user(), self.now());
        let sealed = crate::installation::seal_totp(keyring, user, secret).await?;
        let n = sqlx::query(
            "insert into user_totp (user_id, secret_enc, created_at) values ($1, $2, $3)
             on conflict (user_id) do update
                set secret_enc = excluded.secret_enc, secret_sealed = null,
                    created_at = excluded.created_at, last_step = 0
              where user_totp.confirmed_at is null",
        )
        .bind(user)
        .bind(&sealed)
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict("totp_enrolled".into()));
        }
        Ok(())
    }

    /// Accepts the TOTP time step `step` once: `true` when it is later than the last accepted
    /// step (and, with `confirm`, confirms a pending enrollment). Replays of a step, or of an
    /// earlier one, are refused (req AU-02).
    pub async fn totp_accept_step(&mut self, step: i64, confirm: bool) -> Result<bool, StoreError> {
        let now = self.now();
        let n = sqlx::query(
            "update user_totp set last_step = $1,
                    confirmed_at = case when $2 then coalesce(confirmed_at, $3) else confirmed_at end
              where user_id = app.actor() and last_step < $1
                and (confirmed_at is not null) <> $2",
        )
        .bind(step)
        .bind(confirm)
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Removes the acting user's TOTP authenticator. `false` when there was none.
    pub async fn totp_remove(&mut self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("delete from user_totp where user_id = app.actor()")
                .execute(self.conn())
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Replaces the acting user's recovery codes by these hashes.
    pub async fn recovery_replace(&mut self, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        let (user, now) = (self.user(), self.now());
        sqlx::query("delete from user_recovery_code where user_id = app.actor()")
            .execute(self.conn())
            .await?;
        let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
        sqlx::query(
            "insert into user_recovery_code (user_id, code_hash, created_at)
             select $1, h, $3 from unnest($2::bytea[]) h",
        )
        .bind(user)
        .bind(&hashes)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Uses a recovery code (by hash) once: `true` if it was unused.
    pub async fn recovery_consume(&mut self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let now = self.now();
        let n = sqlx::query(
            "update user_recovery_code set used_at = $2
              where user_id = app.actor() and code_hash = $1 and used_at is null",
        )
        .bind(hash.as_slice())
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Removes every recovery code of the acting user (when the last second factor goes).
    pub async fn recovery_clear(&mut self) -> Result<(), StoreError> {
        sqlx::query("delete from user_recovery_code where user_id = app.actor()")
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The acting user's passkeys.
    pub async fn passkeys(&mut self) -> Result<Vec<PasskeyRecord>, StoreError> {
        let rows: Vec<PasskeyRow> = sqlx::query_as(
            "select credential_id, name, passkey, created_at, last_used_at
                   from user_passkey where user_id = app.actor()
                  order by created_at, credential_id",
        )
        .fetch_all(self.conn())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(credential_id, name, passkey, created_at, last_used_at)| PasskeyRecord {
                    credential_id,
                    name,
                    passkey,
                    created_at,
                    last_used_at,
                },
            )
            .collect())
    }

    /// Registers a passkey for the acting user. [`StoreError::Conflict`] when the credential
    /// is already registered.
    pub async fn passkey_add(
        &mut self,
        credential_id: &[u8],
        name: &str,
        passkey: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let (user, now) = (self.user(), self.now());
        let n = sqlx::query(
            "insert into user_passkey (credential_id, user_id, name, passkey, created_at)
             values ($1, $2, $3, $4, $5) on conflict do nothing",
        )
        .bind(credential_id)
        .bind(user)
        .bind(name)
        .bind(passkey)
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict("passkey_registered".into()));
        }
        Ok(())
    }

    /// Records a use of one of the acting user's passkeys (updated counter / state).
    pub async fn passkey_used(
        &mut self,
        credential_id: &[u8],
        passkey: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let now = self.now();
        sqlx::query(
            "update user_passkey set passkey = $2, last_used_at = $3
              where user_id = app.actor() and credential_id = $1",
        )
        .bind(credential_id)
        .bind(passkey)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Removes one of the acting user's passkeys. `false` when there was none.
    pub async fn passkey_remove(&mut self, credential_id: &[u8]) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "delete from user_passkey where user_id = app.actor() and credential_id = $1",
        )
        .bind(credential_id)
        .execute(self.conn())
        .await?
        .rows_affected()
            > 0)
    }

    /// Replaces the acting user's password hash (argon2id PHC string, computed by the caller
    /// after checking the policy and the current password).
    pub async fn set_own_password(&mut self, hash: &str) -> Result<(), StoreError> {
        let now = self.now();
        let n = sqlx::query(
            "update user_password set hash = $1, updated_at = $2 where user_id = app.actor()",
        )
        .bind(hash)
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Forbidden);
        }
        Ok(())
    }

    /// The acting user's stored password hash.
    pub async fn own_password_hash(&mut self) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("select hash from user_password where user_id = app.actor()")
                .fetch_optional(self.conn())
                .await?,
        )
    }
}
