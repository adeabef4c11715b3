//! Opaque session tokens: 256 bits from the OS CSPRNG, handed to the client once, stored only
//! as their SHA-256 hash (req AU-08, AC-12).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use domain::{PracticeId, RequestId, RoleSet, UserId};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use zeroize::Zeroizing;

use crate::tenant::{TenantTx, UserTx};
use crate::{Store, StoreError};

/// Length of the encoded token: 32 bytes in base64url without padding.
const TOKEN_CHARS: usize = 43;

/// A session token as handed to the client. `Debug` never prints it.
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// A new random token (256 bits, OS CSPRNG).
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0_u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
    }

    /// The token text, to send to the client once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash stored server-side.
    #[must_use]
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

/// The SHA-256 of a session token: what the database stores and looks up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a token presented by a client. Anything that is not the shape of a token
    /// (43 base64url characters) is refused without touching the database.
    #[must_use]
    pub fn from_presented(token: &str) -> Option<Self> {
        if token.len() != TOKEN_CHARS
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        Some(Self(Sha256::digest(token.as_bytes()).into()))
    }

    fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(***)")
    }
}

/// Session lifetimes (req AC-09): a session ends after `idle` without a request, and after
/// `absolute` whatever happens.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    /// Idle timeout.
    pub idle: Duration,
    /// Absolute lifetime.
    pub absolute: Duration,
    /// Activity is written at most this often per session (so parallel requests on one
    /// session do not queue on its row); the idle timeout errs early by at most this much.
    pub activity_granularity: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        // HIPAA 164.312(a)(2)(iii) automatic logoff; ASVS 7.3.1/7.3.2.
        Self {
            idle: Duration::minutes(15),
            absolute: Duration::hours(12),
            activity_granularity: Duration::seconds(5),
        }
    }
}

/// The outcome of entering a practice with a valid session.
#[derive(Debug)]
pub enum Entry {
    /// A member: the tenant transaction.
    Member(TenantTx),
    /// A signed-in user who is not a member of the practice (or it does not exist).
    NotMember(UserId),
}

/// What sign-in needs to check a password: the user and their stored hash.
#[derive(Debug)]
pub struct SignInCandidate {
    /// The user.
    pub user_id: UserId,
    /// The stored argon2id PHC string.
    pub password_hash: String,
}

impl Store {
    /// Finds an active user by normalized email for sign-in, with their password hash.
    /// `None` when there is no such active user or no password is set.
    pub async fn sign_in_candidate(
        &self,
        email: &str,
    ) -> Result<Option<SignInCandidate>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.lookup_email', $1, true)")
            .bind(email)
            .execute(&mut *tx)
            .await?;
        let user: Option<(UserId,)> =
            sqlx::query_as("select user_id from app_user where email = $1 and status = 'active'")
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((user_id,)) = user else {
            return Ok(None);
        };
        sqlx::query("select set_config('chartroom.actor_id', $1, true)")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        let hash: Option<(String,)> =
            sqlx::query_as("select hash from user_password where user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(hash.map(|(password_hash,)| SignInCandidate {
            user_id,
            password_hash,
        }))
    }

    /// Creates a session for `user` (after the caller verified their credentials) and returns
    /// the token to hand out. A new token at every sign-in (req AC-12).
    pub async fn create_session(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        policy: &SessionPolicy,
    ) -> Result<SessionToken, StoreError> {
        let token = SessionToken::generate();
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.actor_id', $1, true)")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into session (token_hash, user_id, created_at, last_seen_at, expires_at)
             values ($1, $2, $3, $3, $4)",
        )
        .bind(token.hash().0.as_slice())
        .bind(user)
        .bind(now)
        .bind(now + policy.absolute)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Checks a session and opens a transaction acting as its user, outside any practice.
    /// Fails closed: unknown, revoked, idle or expired → [`StoreError::Unauthenticated`].
    pub async fn authenticate(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
        policy: &SessionPolicy,
        request: RequestId,
    ) -> Result<UserTx, StoreError> {
        let (tx, user, _) = enter(&self.pool, token, None, now, policy).await?;
        Ok(UserTx::new(tx, user, request, now))
    }

    /// Checks a session and opens a transaction acting as its user inside `practice`, in one
    /// round trip (`app.enter`). Errors: [`StoreError::Unauthenticated`] for a bad session;
    /// [`StoreError::NotMember`] when the user is not a member of `practice` (or it does not
    /// exist), which the API reports as 404 so another practice's existence is not revealed.
    pub async fn enter_practice(
        &self,
        token: &TokenHash,
        practice: PracticeId,
        now: DateTime<Utc>,
        policy: &SessionPolicy,
        request: RequestId,
    ) -> Result<Entry, StoreError> {
        let (tx, user, roles) = enter(&self.pool, token, Some(practice), now, policy).await?;
        let Some(roles) = roles else {
            return Ok(Entry::NotMember(user));
        };
        let roles = RoleSet::parse(&roles).map_err(|_| StoreError::Corrupt("membership.roles"))?;
        Ok(Entry::Member(TenantTx::new(
            tx, practice, user, roles, request, now,
        )))
    }

    /// Ends a session at once (logout). Idempotent.
    pub async fn revoke_session(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.session_hash', $1, true)")
            .bind(token.hex())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "update session set revoked_at = $2 where token_hash = $1 and revoked_at is null",
        )
        .bind(token.0.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn enter(
    pool: &PgPool,
    token: &TokenHash,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
    policy: &SessionPolicy,
) -> Result<(Transaction<'static, Postgres>, UserId, Option<Vec<String>>), StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<(UserId, Option<Vec<String>>)> =
        sqlx::query_as("select user_id, roles from app.enter($1, $2, $3, $4, $5)")
            .bind(token.0.as_slice())
            .bind(practice)
            .bind(now)
            .bind(policy.idle)
            .bind(policy.activity_granularity)
            .fetch_optional(&mut *tx)
            .await?;
    let (user, roles) = row.ok_or(StoreError::Unauthenticated)?;
    Ok((tx, user, roles))
}
