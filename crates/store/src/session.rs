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

use crate::entry::Access;
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

/// How a session was authenticated (RFC 8176 method names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A password (`pwd`).
    Password,
    /// A TOTP code (`otp`).
    Totp,
    /// A WebAuthn passkey (`hwk`): phishing-resistant, and a second factor by itself (the
    /// authenticator verified the user with a biometric or PIN).
    Passkey,
    /// A recovery code (`rec`).
    RecoveryCode,
}

impl AuthMethod {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::Totp => "otp",
            Self::Passkey => "hwk",
            Self::RecoveryCode => "rec",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pwd" => Self::Password,
            "otp" => Self::Totp,
            "hwk" => Self::Passkey,
            "rec" => Self::RecoveryCode,
            _ => return None,
        })
    }
}

/// What the session check learned about how the session was authenticated.
#[derive(Clone, Debug)]
pub struct SessionAuth {
    /// The session's public id (for listing and revoking; never the token).
    pub session_id: uuid::Uuid,
    /// The methods presented on this session.
    pub amr: Vec<AuthMethod>,
    /// When a second factor (or a passkey) was last presented; `None` for a password-only
    /// session, which may only enroll a second factor (req AU-01).
    pub mfa_at: Option<DateTime<Utc>>,
    /// Whether the practice entered requires a passkey of its owners and admins.
    pub practice_requires_passkey: bool,
    /// The support grant the practice was entered through (vendor support access), if any.
    pub support_grant: Option<uuid::Uuid>,
    /// How long the session may stay idle where it was entered (the practice's own idle
    /// timeout for its members, the installation's otherwise): the value the check enforced.
    pub idle: Duration,
}

impl SessionAuth {
    /// Whether a second factor was presented.
    #[must_use]
    pub fn mfa_done(&self) -> bool {
        self.mfa_at.is_some()
    }

    /// Whether the second factor is at most `window` old at `now` (step-up).
    #[must_use]
    pub fn fresh(&self, now: DateTime<Utc>, window: Duration) -> bool {
        self.mfa_at.is_some_and(|t| now - t <= window)
    }

    /// Whether a passkey was used on this session.
    #[must_use]
    pub fn used(&self, method: AuthMethod) -> bool {
        self.amr.contains(&method)
    }
}

/// The outcome of entering a practice with a valid session.
#[derive(Debug)]
pub enum Entry {
    /// A member: the tenant transaction and how the session was authenticated.
    Member(TenantTx, SessionAuth),
    /// A signed-in user who is not a member of the practice (or it does not exist).
    NotMember(UserId, SessionAuth),
}

/// A session as its owner sees it in their list.
#[derive(Debug)]
pub struct SessionSummary {
    /// The public id.
    pub session_id: uuid::Uuid,
    /// When it was created (sign-in).
    pub created_at: DateTime<Utc>,
    /// Last activity (to the activity granularity).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends at the latest.
    pub expires_at: DateTime<Utc>,
    /// Methods presented.
    pub amr: Vec<AuthMethod>,
    /// The client's user agent at sign-in (truncated).
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
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
    /// `None` when there is no such active user or no password is set. Does the same queries
    /// whether or not the email exists, so timing does not tell (req AU-04).
    pub async fn sign_in_candidate(
        &self,
        email: &str,
    ) -> Result<Option<SignInCandidate>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.lookup_email', $1, true)")
            .bind(email)
            .execute(&mut *tx)
            .await?;
        let user: Option<UserId> = sqlx::query_scalar(
            "select user_id from app_user where email = $1 and status = 'active'",
        )
        .bind(email)
        .fetch_optional(&mut *tx)
        .await?;
        // The nil id for an unknown email: the same statements run either way.
        let probe = user.map_or_else(uuid::Uuid::nil, |u| u.as_uuid());
        sqlx::query("select set_config('chartroom.actor_id', $1, true)")
            .bind(probe.to_string())
            .execute(&mut *tx)
            .await?;
        let hash: Option<String> =
            sqlx::query_scalar("select hash from user_password where user_id = $1")
                .bind(probe)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(user
            .zip(hash)
            .map(|(user_id, password_hash)| SignInCandidate {
                user_id,
                password_hash,
            }))
    }

    /// Creates a session for `user` (after the caller verified `method`) and returns the
    /// token to hand out. A new token at every sign-in (req AC-12). A password session has no
    /// second factor yet; a passkey session has one.
    pub async fn create_session(
        &self,
        user: UserId,
        method: AuthMethod,
        user_agent: Option<&str>,
        now: DateTime<Utc>,
        policy: &SessionPolicy,
    ) -> Result<SessionToken, StoreError> {
        let token = SessionToken::generate();
        let mfa_at = (method != AuthMethod::Password).then_some(now);
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.actor_id', $1, true)")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into session (token_hash, user_id, created_at, last_seen_at, expires_at, amr, mfa_at, user_agent)
             values ($1, $2, $3, $3, $4, $5, $6, $7)",
        )
        .bind(token.hash().0.as_slice())
        .bind(user)
        .bind(now)
        .bind(now + policy.absolute)
        .bind(vec![method.as_str()])
        .bind(mfa_at)
        .bind(user_agent.map(clip_user_agent))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Replaces the session `old` by a new token after `method` was verified on it (second
    /// factor or step-up): the old token stops working at once, the new session keeps the
    /// sign-in time and absolute lifetime, adds `method` and records `now` as its second-factor
    /// time (req AC-12: a new token at every authentication step).
    pub async fn rotate_session(
        &self,
        old: &TokenHash,
        method: AuthMethod,
        now: DateTime<Utc>,
    ) -> Result<SessionToken, StoreError> {
        let token = SessionToken::generate();
        let mut tx = self.pool.begin().await?;
        sqlx::query("select set_config('chartroom.session_hash', $1, true)")
            .bind(old.hex())
            .execute(&mut *tx)
            .await?;
        // The new session is inserted before the old one is revoked: the insert takes the
        // user's session-access lock (migration 0013) before this transaction writes any of
        // their session rows, the lock order that keeps it clear of concurrent membership
        // changes.
        let row: Option<(String,)> = sqlx::query_as(
            "select set_config('chartroom.actor_id', user_id::text, true) from session
              where token_hash = $1 and revoked_at is null and expires_at > $2",
        )
        .bind(old.0.as_slice())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        row.ok_or(StoreError::Unauthenticated)?;
        sqlx::query(
            "insert into session (token_hash, user_id, created_at, last_seen_at, expires_at, amr, mfa_at, user_agent)
             select $2, s.user_id, s.created_at, $3, s.expires_at,
                    (select array_agg(distinct m) from unnest(s.amr || array[$4]) m), $3, s.user_agent
               from session s where s.token_hash = $1",
        )
        .bind(old.0.as_slice())
        .bind(token.hash().0.as_slice())
        .bind(now)
        .bind(method.as_str())
        .execute(&mut *tx)
        .await?;
        // Revoked by a parallel request meanwhile (the same token rotated twice): this one
        // fails and its new session is rolled back.
        let revoked = sqlx::query(
            "update session set revoked_at = $2
              where token_hash = $1 and revoked_at is null and expires_at > $2",
        )
        .bind(old.0.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if revoked.rows_affected() != 1 {
            return Err(StoreError::Unauthenticated);
        }
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
    ) -> Result<(UserTx, SessionAuth), StoreError> {
        let (tx, user, _, auth, _) = enter(&self.pool, token, None, now, policy, false).await?;
        Ok((UserTx::new(tx, user, request, now), auth))
    }

    /// Checks a session and opens a transaction acting as its user inside `practice`, in one
    /// round trip (`app.enter`), applying the practice's own idle timeout and absolute
    /// lifetime. With [`Access::Read`] the transaction is read-only and its audit events are
    /// made durable by the group-commit writer at commit (vendor support access stays a
    /// [`Access::Write`] transaction: each patient it touches is recorded as a disclosure).
    /// Errors: [`StoreError::Unauthenticated`] for a bad session; [`Entry::NotMember`] when
    /// the user is not a member of `practice` (or it does not exist), which the API reports as
    /// 404 so another practice's existence is not revealed.
    pub async fn enter_practice(
        &self,
        token: &TokenHash,
        practice: PracticeId,
        now: DateTime<Utc>,
        policy: &SessionPolicy,
        request: RequestId,
        access: Access,
    ) -> Result<Entry, StoreError> {
        let read = access == Access::Read;
        let (mut tx, user, roles, auth, read_only) =
            enter(&self.pool, token, Some(practice), now, policy, read).await?;
        let Some(roles) = roles else {
            return Ok(Entry::NotMember(user, auth));
        };
        let roles = RoleSet::parse(&roles).map_err(|_| StoreError::Corrupt("membership.roles"))?;
        let support = auth.support_grant;
        let reader = if read && support.is_none() {
            if !read_only {
                // The session check had to write (activity, support lookup): read-only from here.
                sqlx::query("set transaction read only")
                    .execute(&mut *tx)
                    .await?;
            }
            Some(self.writer.clone())
        } else {
            None
        };
        Ok(Entry::Member(
            TenantTx::new(tx, practice, user, roles, request, now, reader)
                .with_support(support, self.keyring.clone())
                .with_session_idle(auth.idle),
            auth,
        ))
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

impl UserTx {
    /// The acting user's live sessions (not revoked, not past their absolute lifetime), newest
    /// first; `current` marks the one with public id `current`.
    pub async fn sessions(
        &mut self,
        current: uuid::Uuid,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let now = self.now();
        let rows: Vec<SessionRow> = sqlx::query_as(
            "select session_id, created_at, last_seen_at, expires_at, amr, user_agent
               from session
              where user_id = app.actor() and revoked_at is null and expires_at > $1
              order by created_at desc, session_id
              limit 100",
        )
        .bind(now)
        .fetch_all(self.conn())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SessionSummary {
                current: r.0 == current,
                session_id: r.0,
                created_at: r.1,
                last_seen_at: r.2,
                expires_at: r.3,
                amr: r.4.iter().filter_map(|m| AuthMethod::parse(m)).collect(),
                user_agent: r.5,
            })
            .collect())
    }

    /// Revokes one of the acting user's sessions by its public id. `false` when the user has
    /// no such live session (another user's session is never found).
    pub async fn revoke_session_id(&mut self, session: uuid::Uuid) -> Result<bool, StoreError> {
        let now = self.now();
        let n = sqlx::query(
            "update session set revoked_at = $2
              where user_id = app.actor() and session_id = $1 and revoked_at is null",
        )
        .bind(session)
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Revokes every live session of the acting user except `keep`; returns how many.
    pub async fn revoke_other_sessions(&mut self, keep: uuid::Uuid) -> Result<u64, StoreError> {
        let now = self.now();
        Ok(sqlx::query(
            "update session set revoked_at = $2
              where user_id = app.actor() and session_id <> $1 and revoked_at is null",
        )
        .bind(keep)
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected())
    }
}

type SessionRow = (
    uuid::Uuid,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
    Vec<String>,
    Option<String>,
);

/// At most 200 characters of a user agent, printable ASCII only (log-injection safe).
fn clip_user_agent(ua: &str) -> String {
    ua.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}

type EnterRow = (
    UserId,
    Option<Vec<String>>,
    Vec<String>,
    Option<DateTime<Utc>>,
    uuid::Uuid,
    bool,
    bool,
    i64,
    bool,
);

/// Opens a transaction and checks the session in it (`app.enter`: one statement, which sets the
/// actor, the practice and the actor's roles there for the rest of the transaction). Two more
/// statements only when needed: the activity update, at most once per
/// [`SessionPolicy::activity_granularity`] per session, and, for a signed-in user who is not a
/// member of `practice`, the support-grant lookup (`app.enter_support`). With `read`, the same
/// statement also makes the transaction read-only when neither follows (the last value
/// returned says whether it did).
async fn enter(
    pool: &PgPool,
    token: &TokenHash,
    practice: Option<PracticeId>,
    now: DateTime<Utc>,
    policy: &SessionPolicy,
    read: bool,
) -> Result<
    (
        Transaction<'static, Postgres>,
        UserId,
        Option<Vec<String>>,
        SessionAuth,
        bool,
    ),
    StoreError,
> {
    let mut tx = pool.begin().await?;
    let row: Option<EnterRow> = sqlx::query_as(
        "select user_id, roles, amr, mfa_at, session_id, require_passkey, touch,
                extract(epoch from idle)::int8,
                $6 and not touch and roles is not null
                   and set_config('transaction_read_only',
                                  case when $6 and not touch and roles is not null
                                       then 'on' else 'off' end, true) = 'on'
           from app.enter($1, $2, $3, $4, $5)",
    )
    .bind(token.0.as_slice())
    .bind(practice)
    .bind(now)
    .bind(policy.idle)
    .bind(policy.activity_granularity)
    .bind(read)
    .fetch_optional(&mut *tx)
    .await?;
    let (
        user,
        mut roles,
        amr,
        mfa_at,
        session_id,
        practice_requires_passkey,
        touch,
        idle_seconds,
        read_only,
    ) = row.ok_or(StoreError::Unauthenticated)?;
    if touch {
        // Requests in parallel on one session all see `touch`; the first takes the row and
        // the others skip it instead of queueing behind its commit.
        sqlx::query(
            "update session set last_seen_at = $2
              where token_hash = (select token_hash from session
                                   where token_hash = $1 and last_seen_at < $2
                                   for update skip locked)",
        )
        .bind(token.0.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let mut support_grant = None;
    if roles.is_none() && practice.is_some() {
        let (grant, grant_roles): (Option<uuid::Uuid>, Option<Vec<String>>) =
            sqlx::query_as("select support_grant, roles from app.enter_support($1)")
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
        support_grant = grant;
        roles = grant_roles;
    }
    let auth = SessionAuth {
        session_id,
        amr: amr.iter().filter_map(|m| AuthMethod::parse(m)).collect(),
        mfa_at,
        practice_requires_passkey,
        support_grant,
        idle: Duration::seconds(idle_seconds),
    };
    Ok((tx, user, roles, auth, read_only))
}
