//! Installation secrets at rest (issue 15.5): users' TOTP secrets and the lookup-tag key,
//! sealed through [`crypto::installation`] under the installation data key — the system
//! practice's data key, wrapped by the same KEK as every practice's, so `keys rotate-kek`
//! rewraps it and `keys retire-kek` waits for it.
//!
//! # Tables (`migrations/0020_installation_secrets.sql`)
//! - `user_totp.secret_enc`: a user's TOTP secret ([`crypto::InstallationSecret::Totp`]).
//!   `user_totp.secret_sealed` holds secrets sealed by the retired `secrets/identity.key`
//!   until [`OwnerStore::migrate_installation_secrets`] re-seals them; nothing writes it.
//! - `installation_secret (name, secret_enc)`: the lookup-tag key
//!   ([`crypto::InstallationSecret::LookupKey`]). The runtime role reads it and creates it when
//!   missing (first use); nobody changes it, so tags of pending invitations keep matching.
//!
//! Nothing here audits: opening a TOTP secret is part of a sign-in step, which the caller
//! records on the installation's log; the migration records `key.encrypt_existing` there.

use std::path::Path;

use crypto::{InstallationSecret, Keyring, LegacyIdentityKey, LookupKey, LookupKind};
use domain::UserId;
use sqlx::PgConnection;

use crate::sealed_columns::crypto_error;
use crate::tenant::{TenantTx, UserTx};
use crate::{OwnerStore, Store, StoreError};

/// A keyed lookup tag ([`LookupKey::tag`]).
pub type LookupTag = [u8; crypto::installation::LOOKUP_KEY_LEN];

/// The installation's lookup-tag key, created when missing: imported from `legacy` when given
/// (so tags made before the migration still match), else fresh random bytes. Race-safe (the
/// loser of a concurrent creation reads the winner's key).
async fn lookup_key(
    conn: &mut PgConnection,
    keyring: &Keyring,
    legacy: Option<&LegacyIdentityKey>,
) -> Result<LookupKey, StoreError> {
    let select = "select secret_enc from installation_secret where name = $1";
    let found: Option<Vec<u8>> = sqlx::query_scalar(select)
        .bind(InstallationSecret::LOOKUP_KEY_NAME)
        .fetch_optional(&mut *conn)
        .await?;
    let sealed = if let Some(sealed) = found {
        sealed
    } else {
        create_lookup_key(conn, keyring, legacy).await?;
        sqlx::query_scalar(select)
            .bind(InstallationSecret::LOOKUP_KEY_NAME)
            .fetch_one(&mut *conn)
            .await?
    };
    let material = keyring
        .open_installation_secret(InstallationSecret::LookupKey, &sealed)
        .await
        .map_err(|e| crypto_error(&e))?;
    LookupKey::from_bytes(material.expose_secret()).map_err(|e| crypto_error(&e))
}

/// Stores a lookup-tag key (`legacy`'s, or fresh) unless one exists.
async fn create_lookup_key(
    conn: &mut PgConnection,
    keyring: &Keyring,
    legacy: Option<&LegacyIdentityKey>,
) -> Result<(), StoreError> {
    let fresh = LookupKey::generate_material().map_err(|e| crypto_error(&e))?;
    let material = legacy.map_or(
        fresh.expose_secret(),
        LegacyIdentityKey::lookup_key_material,
    );
    let sealed = keyring
        .seal_installation_secret(InstallationSecret::LookupKey, material)
        .await
        .map_err(|e| crypto_error(&e))?;
    sqlx::query(
        "insert into installation_secret (name, secret_enc) values ($1, $2)
         on conflict (name) do nothing",
    )
    .bind(InstallationSecret::LOOKUP_KEY_NAME)
    .bind(&sealed)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Seals a user's TOTP secret for `user_totp.secret_enc`.
pub(crate) async fn seal_totp(
    keyring: &Keyring,
    user: UserId,
    secret: &[u8],
) -> Result<Vec<u8>, StoreError> {
    keyring
        .seal_installation_secret(InstallationSecret::Totp(user), secret)
        .await
        .map_err(|e| crypto_error(&e))
}

/// Opens a user's TOTP secret from `user_totp` (`secret_enc`, or a `secret_sealed` left by
/// the retired identity key, which cannot be opened until the migration ran).
pub(crate) async fn open_totp(
    keyring: &Keyring,
    user: UserId,
    secret_enc: Option<&[u8]>,
) -> Result<crypto::Secret<Vec<u8>>, StoreError> {
    let Some(sealed) = secret_enc else {
        tracing::error!(%user, "a TOTP secret is still sealed by the retired identity key: run `chartroom keys encrypt-existing` with secrets/identity.key in place");
        return Err(StoreError::Corrupt(
            "a TOTP secret is still sealed by the retired identity key (secrets/identity.key): run `chartroom keys encrypt-existing`",
        ));
    };
    keyring
        .open_installation_secret(InstallationSecret::Totp(user), sealed)
        .await
        .map_err(|e| crypto_error(&e))
}

impl UserTx {
    /// The lookup tag of `value` (already normalized) under the installation's lookup-tag key
    /// (created on first use), read in this transaction. Decrypts the key, nothing else.
    pub async fn lookup_tag(
        &mut self,
        keyring: &Keyring,
        kind: LookupKind,
        value: &str,
    ) -> Result<LookupTag, StoreError> {
        Ok(lookup_key(self.conn(), keyring, None)
            .await?
            .tag(kind, value))
    }
}

impl TenantTx {
    /// [`UserTx::lookup_tag`] inside a practice's transaction.
    pub async fn lookup_tag(
        &mut self,
        keyring: &Keyring,
        kind: LookupKind,
        value: &str,
    ) -> Result<LookupTag, StoreError> {
        Ok(lookup_key(self.conn(), keyring, None)
            .await?
            .tag(kind, value))
    }
}

impl Store {
    /// `serve`'s start-up, as the runtime role: makes sure the installation's lookup-tag key
    /// exists, importing it from the retired key file at `legacy_key_file` if there is one
    /// and the key is missing (without an owner role the migration has not run, and pending
    /// invitations must keep their tags). Never removes the file.
    pub async fn prepare_installation_secrets(
        &self,
        legacy_key_file: &Path,
    ) -> Result<(), StoreError> {
        let legacy = LegacyIdentityKey::read(legacy_key_file).map_err(|e| crypto_error(&e))?;
        let mut conn = self.pool.acquire().await?;
        lookup_key(&mut conn, self.keyring()?, legacy.as_ref()).await?;
        Ok(())
    }
}

impl Store {
    /// The installation's VAPID key pair (RFC 8292) for Web Push, as the runtime role: opened
    /// from `installation_secret` (sealed under the installation data key, bound to its name),
    /// or generated from the OS CSPRNG and stored on first use (race-safe: the loser of a
    /// concurrent creation reads the winner's key). Never changed afterwards, so browsers'
    /// subscriptions (made with its public key) keep working. Decrypts the key only; audits
    /// nothing (like the lookup-tag key).
    ///
    /// # Errors
    /// Database and key errors; a stored key that is not a P-256 key ([`StoreError::Corrupt`]).
    pub async fn vapid_key(&self) -> Result<egress::webpush::VapidKey, StoreError> {
        let keyring = self.keyring()?;
        let mut conn = self.pool.acquire().await?;
        let select = "select secret_enc from installation_secret where name = $1";
        let name = InstallationSecret::VAPID_KEY_NAME;
        let found: Option<Vec<u8>> = sqlx::query_scalar(select)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        let sealed = if let Some(sealed) = found {
            sealed
        } else {
            let fresh = egress::webpush::VapidKey::generate()
                .map_err(|_| StoreError::Corrupt("no VAPID key could be generated"))?;
            let sealed = keyring
                .seal_installation_secret(InstallationSecret::VapidKey, fresh.private_key())
                .await
                .map_err(|e| crypto_error(&e))?;
            sqlx::query(
                "insert into installation_secret (name, secret_enc) values ($1, $2)
                 on conflict (name) do nothing",
            )
            .bind(name)
            .bind(&sealed)
            .execute(&mut *conn)
            .await?;
            sqlx::query_scalar(select)
                .bind(name)
                .fetch_one(&mut *conn)
                .await?
        };
        let private = keyring
            .open_installation_secret(InstallationSecret::VapidKey, &sealed)
            .await
            .map_err(|e| crypto_error(&e))?;
        egress::webpush::VapidKey::from_private_key(private.expose_secret())
            .map_err(|_| StoreError::Corrupt("the stored VAPID key is not a P-256 key"))
    }
}

/// What [`OwnerStore::migrate_installation_secrets`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstallationMigration {
    /// TOTP secrets re-sealed from the retired identity key under the installation data key.
    pub totp_resealed: u64,
    /// TOTP secrets still sealed by the retired identity key (it is missing, or they do not
    /// open under it): those users sign in with a passkey or a recovery code and re-enroll.
    pub totp_left: u64,
    /// Whether the retired key file was removed (nothing sealed by it is left).
    pub legacy_key_removed: bool,
}

impl OwnerStore {
    /// Start-up job (`serve`, and `keys encrypt-existing`): provisions the installation data
    /// key and the lookup-tag key (imported from the retired key file at `legacy_key_file` when
    /// it exists), re-seals every TOTP secret still sealed by that file under the installation
    /// data key, and then — when none is left — removes the file. Idempotent: a second run
    /// finds nothing to do. Audited as `key.encrypt_existing` on the installation's log when
    /// anything was re-sealed.
    pub async fn migrate_installation_secrets(
        &self,
        legacy_key_file: &Path,
    ) -> Result<InstallationMigration, StoreError> {
        let keyring = self.keyring()?;
        let legacy = LegacyIdentityKey::read(legacy_key_file).map_err(|e| crypto_error(&e))?;
        keyring
            .ensure_installation_key()
            .await
            .map_err(|e| crypto_error(&e))?;
        let mut conn = self.pool.acquire().await?;
        lookup_key(&mut conn, keyring, legacy.as_ref()).await?;
        let rows: Vec<(UserId, Vec<u8>)> = sqlx::query_as(
            "select user_id, secret_sealed from user_totp where secret_sealed is not null
              order by user_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut report = InstallationMigration::default();
        for (user, old) in rows {
            let opened = legacy.as_ref().map(|l| l.open_totp(user, &old));
            let secret = match opened {
                Some(Ok(secret)) => secret,
                Some(Err(e)) => {
                    tracing::error!(%user, code = e.code(), error = %e, "a TOTP secret does not open under secrets/identity.key; left as it is");
                    report.totp_left += 1;
                    continue;
                }
                None => {
                    report.totp_left += 1;
                    continue;
                }
            };
            let sealed = seal_totp(keyring, user, secret.expose_secret()).await?;
            // Compare-and-swap: a user who re-enrolled meanwhile keeps the new secret.
            report.totp_resealed += sqlx::query(
                "update user_totp set secret_enc = $2, secret_sealed = null
                  where user_id = $1 and secret_sealed = $3",
            )
            .bind(user)
            .bind(&sealed)
            .bind(&old)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
        drop(conn);
        if report.totp_resealed > 0 {
            self.audit_system_event(
                domain::AuditAction::KeyEncryptExisting,
                serde_json::json!({"totp_secrets": report.totp_resealed}),
            )
            .await?;
        }
        if report.totp_left > 0 {
            tracing::warn!(
                left = report.totp_left,
                "TOTP secrets are still sealed by the retired identity key (secrets/identity.key missing or not theirs): those users need a passkey or a recovery code, then re-enroll"
            );
        } else if legacy.is_some() {
            LegacyIdentityKey::remove(legacy_key_file).map_err(|e| crypto_error(&e))?;
            report.legacy_key_removed = true;
            tracing::info!(
                resealed = report.totp_resealed,
                "installation secrets moved under the installation data key; removed the retired identity key file"
            );
        }
        Ok(report)
    }
}
