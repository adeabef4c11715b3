//! Sign-in, second factors, sign-out, the caller's profile and sessions.
//!
//! Sign-in is two steps (req AU-01): `POST /auth/login` with email and password gives a
//! password-only session that can do nothing but present or enroll a second factor;
//! `POST /auth/second-factor/totp` (or `…/recovery`, or a passkey) replaces it by a full
//! session with a new token. The same second-factor routes on a full session are the step-up
//! that sensitive changes need.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::values::Email;
use domain::{AuditAction, Outcome, UserId};
use serde::{Deserialize, Serialize};
use store::identity::SecurityEvent;
use store::{AuthMethod, SessionToken};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::extract::{ApiJson, ApiPath, MfaSession, SESSION_COOKIE, Session};
use crate::identity::{Client, recovery, totp::TotpKey};
use crate::views::MyPracticeView;
use crate::{AppError, AppState};

/// Sign-in credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// Account email.
    email: String,
    /// Password.
    password: String,
}

/// What the session can do next.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum NextStep {
    /// Present a second factor (`/auth/second-factor/...`).
    SecondFactor,
    /// Enroll a second factor first (`/auth/mfa/totp` or a passkey).
    EnrollSecondFactor,
    /// Nothing: the session is complete.
    Done,
}

/// A new session.
#[derive(Serialize, ToSchema)]
pub(crate) struct LoginResponse {
    /// The session token (also set as the `__Host-chartroom_session` cookie). Send it as
    /// `Authorization: Bearer <token>`. Any earlier token of this sign-in no longer works.
    token: String,
    /// The signed-in user.
    user_id: UserId,
    /// When the session ends at the latest (it also ends after the idle timeout).
    expires_at: DateTime<Utc>,
    /// What is left to do before practice routes open.
    next: NextStep,
    /// The second factors the user can present (`totp`, `passkey`, `recovery_code`).
    methods: Vec<&'static str>,
}

/// The `Set-Cookie` value that hands `token` to a browser: the `__Host-` session cookie
/// (`Secure`, `HttpOnly`, `SameSite=Strict`, `Path=/`, no `Domain`), for `max_age_secs`.
#[must_use]
pub fn session_cookie(token: &SessionToken, max_age_secs: i64) -> String {
    format!(
        "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        token.expose(),
        max_age_secs.max(0),
    )
}

/// The `Set-Cookie` value that removes the session cookie from a browser.
pub const CLEARED_SESSION_COOKIE: &str =
    "__Host-chartroom_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0";

/// A sign-in step that succeeded: the new session (any earlier token of this sign-in no
/// longer works) and what is left to do. `Debug` never prints the token.
#[derive(Debug)]
pub struct SignedIn {
    /// The new session token: hand it to the client once.
    pub token: SessionToken,
    /// The signed-in user.
    pub user: UserId,
    /// When the session ends at the latest.
    pub expires_at: DateTime<Utc>,
    /// What is left to do before practice routes open.
    pub next: NextStep,
    /// The second factors the user can present (`totp`, `passkey`, `recovery_code`).
    pub methods: Vec<&'static str>,
}

pub(crate) fn signed_in_response(state: &AppState, s: SignedIn) -> Response {
    session_response(state, &s.token, s.user, s.expires_at, s.next, s.methods)
}

fn session_response(
    state: &AppState,
    token: &SessionToken,
    user: UserId,
    expires_at: DateTime<Utc>,
    next: NextStep,
    methods: Vec<&'static str>,
) -> Response {
    let cookie = session_cookie(token, (expires_at - state.clock.now()).num_seconds());
    let mut res = axum::Json(LoginResponse {
        token: token.expose().to_owned(),
        user_id: user,
        expires_at,
        next,
        methods,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

pub(crate) fn details(client: &Client, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut m = client.details();
    for (k, v) in extra {
        m.insert((*k).to_owned(), (*v).into());
    }
    serde_json::Value::Object(m)
}

/// Signs in with email and password. Every failure gets the same status and message, and the
/// same work is done for unknown emails (req AU-04). Repeated failures are throttled (429,
/// req AU-03). The session it returns has no second factor yet: `next` says what to do.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::views::ErrorBody),
              (status = 429, body = crate::views::ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: Client,
    ReqIdOf(request): ReqIdOf,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, AppError> {
    let password = Zeroizing::new(req.password);
    let signed_in = sign_in_with_password(&state, &client, request, &req.email, password).await?;
    Ok(signed_in_response(&state, signed_in))
}

/// The password step of sign-in, shared by the API and the web pages: one generic failure
/// ([`AppError::BadCredentials`]) with the same work for unknown emails (req AU-04),
/// throttling (req AU-03, [`AppError::Throttled`]), every attempt audited. The session it
/// opens has no second factor yet: [`SignedIn::next`] says what to do.
pub async fn sign_in_with_password(
    state: &AppState,
    client: &Client,
    request: domain::RequestId,
    email: &str,
    password: Zeroizing<String>,
) -> Result<SignedIn, AppError> {
    let now = state.clock.now();
    let id = &state.identity;
    id.throttle
        .check(&state.store, email, client.ip, now)
        .await?;
    // A malformed email is treated like an unknown one: same work, same answer.
    let candidate = match Email::parse("email", email) {
        Ok(email) if password.len() <= crate::password::MAX_BYTES => {
            state.store.sign_in_candidate(email.as_str()).await?
        }
        _ => None,
    };
    let (user, stored) = match candidate {
        Some(c) => (Some(c.user_id), Some(c.password_hash)),
        None => (None, None),
    };
    let ok = state.passwords.verify(password, stored).await;
    let Some(user) = user.filter(|_| ok) else {
        let burst = id
            .throttle
            .fail(&state.store, email, client.ip, now)
            .await?;
        let event = SecurityEvent {
            action: AuditAction::AuthSignIn,
            outcome: Outcome::Denied,
            actor: user,
            request,
            at: now,
            details: details(client, &[("method", "pwd"), ("reason", "bad_credentials")]),
        };
        state.store.audit_security(&event, false).await?;
        if burst.burst_started {
            // One alert per burst (req AUD-07): operators route `security.alert` to paging.
            tracing::warn!(
                target: "security.alert",
                ip = ?client.ip,
                "repeated sign-in failures: throttling started"
            );
            let event = SecurityEvent {
                action: AuditAction::AuthThrottled,
                outcome: Outcome::Denied,
                actor: user,
                request,
                at: now,
                details: details(client, &[]),
            };
            state.store.audit_security(&event, false).await?;
        }
        return Err(AppError::BadCredentials);
    };
    id.throttle.succeed(&state.store, email).await?;
    let (token, mut tx) = start_session(state, client, request, user, AuthMethod::Password).await?;
    let factors = tx.factors().await?;
    tx.commit().await?;
    let next = if factors.any() {
        NextStep::SecondFactor
    } else {
        NextStep::EnrollSecondFactor
    };
    Ok(SignedIn {
        token,
        user,
        expires_at: now + state.sessions.absolute,
        next,
        methods: methods(&factors),
    })
}

/// Opens a session for `user` after `method` verified them (password, or a passkey for
/// passwordless sign-in) and records the sign-in on the audit trail, in the returned
/// transaction (the caller commits it).
pub(crate) async fn start_session(
    state: &AppState,
    client: &Client,
    request: domain::RequestId,
    user: UserId,
    method: AuthMethod,
) -> Result<(SessionToken, store::UserTx), AppError> {
    let now = state.clock.now();
    let token = state
        .store
        .create_session(
            user,
            method,
            client.user_agent.as_deref(),
            now,
            &state.sessions,
        )
        .await?;
    let (mut tx, _) = state
        .store
        .authenticate(&token.hash(), now, &state.sessions, request)
        .await?;
    tx.audit_security(
        AuditAction::AuthSignIn,
        details(client, &[("method", method.as_str())]),
    )
    .await?;
    Ok((token, tx))
}

pub(crate) fn methods(f: &store::identity::Factors) -> Vec<&'static str> {
    let mut m = Vec::new();
    if f.totp {
        m.push("totp");
    }
    if f.passkeys > 0 {
        m.push("passkey");
    }
    if f.recovery_codes > 0 {
        m.push("recovery_code");
    }
    m
}

/// The request id (for handlers that have no session yet).
pub(crate) struct ReqIdOf(pub domain::RequestId);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ReqIdOf {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &S,
    ) -> Result<Self, AppError> {
        let r = crate::extract::ReqId::from_request_parts(parts, s).await?;
        Ok(Self(r.0))
    }
}

/// A one-time code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeRequest {
    /// The code (six digits for TOTP; a recovery code as shown).
    code: String,
}

/// Presents a TOTP code on the current session: completes sign-in after a password, or is
/// the step-up for a sensitive change. A code is accepted once (req AU-02). Returns a new
/// token; the old one stops working (req AC-12).
#[utoipa::path(post, path = "/api/v1/auth/second-factor/totp", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn second_factor_totp(
    State(state): State<AppState>,
    client: Client,
    session: Session,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<Response, AppError> {
    let code = Zeroizing::new(req.code);
    let signed_in = present_totp(&state, &client, session, &code).await?;
    Ok(signed_in_response(&state, signed_in))
}

/// Presents a TOTP code on `session`, shared by the API and the web pages: completes sign-in
/// after a password, or is the step-up for a sensitive change. A code is accepted once (req
/// AU-02); success and failure are audited. The old token stops working (req AC-12).
pub async fn present_totp(
    state: &AppState,
    client: &Client,
    mut session: Session,
    code: &str,
) -> Result<SignedIn, AppError> {
    let accepted = accept_totp(state, &mut session, code, false).await?;
    complete_second_factor(state, session, client, accepted, AuthMethod::Totp).await
}

/// Presents a recovery code (single use) on the current session, like a TOTP code. Returns a
/// new token.
#[utoipa::path(post, path = "/api/v1/auth/second-factor/recovery", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn second_factor_recovery(
    State(state): State<AppState>,
    client: Client,
    session: Session,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<Response, AppError> {
    let code = Zeroizing::new(req.code);
    let signed_in = present_recovery_code(&state, &client, session, &code).await?;
    Ok(signed_in_response(&state, signed_in))
}

/// Presents a recovery code on `session`, shared by the API and the web pages: like a TOTP
/// code (completes sign-in, or is the step-up), but each code works once and is then gone.
/// Use and failure are audited (`mfa.recovery_used`, a denied second factor); the old token
/// stops working (req AC-12).
pub async fn present_recovery_code(
    state: &AppState,
    client: &Client,
    mut session: Session,
    code: &str,
) -> Result<SignedIn, AppError> {
    let accepted = match recovery::hash(code) {
        Some(h) => session.tx.recovery_consume(&h).await?,
        None => false,
    };
    if accepted {
        session
            .tx
            .audit_security(AuditAction::MfaRecoveryUsed, details(client, &[]))
            .await?;
    }
    complete_second_factor(state, session, client, accepted, AuthMethod::RecoveryCode).await
}

/// Ends a second-factor step: on success audits it, commits, rotates the token and returns
/// the new session; on failure audits the failure and returns
/// [`AppError::SecondFactorFailed`].
pub(crate) async fn complete_second_factor(
    state: &AppState,
    mut session: Session,
    client: &Client,
    accepted: bool,
    method: AuthMethod,
) -> Result<SignedIn, AppError> {
    let now = state.clock.now();
    let user = session.tx.user();
    if !accepted {
        drop(session.tx);
        let event = SecurityEvent {
            action: AuditAction::AuthSecondFactor,
            outcome: Outcome::Denied,
            actor: Some(user),
            request: session.request_id,
            at: now,
            details: details(client, &[("method", method.as_str())]),
        };
        state.store.audit_security(&event, false).await?;
        return Err(AppError::SecondFactorFailed);
    }
    session
        .tx
        .audit_security(
            AuditAction::AuthSecondFactor,
            details(client, &[("method", method.as_str())]),
        )
        .await?;
    let factors = session.tx.factors().await?;
    session.tx.commit().await?;
    let token = state
        .store
        .rotate_session(&session.token, method, now)
        .await?;
    let (tx, auth) = state
        .store
        .authenticate(&token.hash(), now, &state.sessions, session.request_id)
        .await?;
    tx.commit().await?;
    let expires_at = session_expiry(state, &auth, now);
    Ok(SignedIn {
        token,
        user,
        expires_at,
        next: NextStep::Done,
        methods: methods(&factors),
    })
}

fn session_expiry(
    state: &AppState,
    _auth: &store::SessionAuth,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    // The absolute lifetime runs from sign-in; the response reports the server's bound.
    now + state.sessions.absolute
}

/// Checks a TOTP code against the user's authenticator (a confirmed one, or with `confirm`
/// the pending enrollment) and accepts its time step once (req AU-02).
async fn accept_totp(
    state: &AppState,
    session: &mut Session,
    code: &str,
    confirm: bool,
) -> Result<bool, AppError> {
    let Some(rec) = session.tx.totp(state.store.keyring()?).await? else {
        return Ok(false);
    };
    if rec.confirmed == confirm {
        return Ok(false);
    }
    let key = TotpKey::new(rec.secret.expose_secret(), &state.identity.issuer, "")
        .map_err(|e| AppError::Internal(e.to_string()))?;
    match key.check(code, state.clock.now()) {
        Some(step) => Ok(session.tx.totp_accept_step(step, confirm).await?),
        None => Ok(false),
    }
}

/// Ends the current session at once; the token stops working on the next request.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    client: Client,
    session: Session,
) -> Result<Response, AppError> {
    sign_out(&state, &client, session).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(CLEARED_SESSION_COOKIE),
    );
    Ok(res)
}

/// Ends `session` at once (audited), shared by the API and the web pages; its token stops
/// working on the next request.
pub async fn sign_out(
    state: &AppState,
    client: &Client,
    mut session: Session,
) -> Result<(), AppError> {
    session
        .tx
        .audit_security(AuditAction::AuthSignOut, details(client, &[]))
        .await?;
    session.tx.commit().await?;
    state
        .store
        .revoke_session(&session.token, state.clock.now())
        .await?;
    Ok(())
}

/// The caller's profile and practices.
#[derive(Serialize, ToSchema)]
pub(crate) struct MeView {
    /// The user.
    user_id: UserId,
    /// Sign-in email.
    email: String,
    /// Display name.
    display_name: String,
    /// Practices and roles.
    practices: Vec<MyPracticeView>,
    /// Whether this session's second factor is done.
    second_factor_done: bool,
    /// The second factors the user has.
    methods: Vec<&'static str>,
}

/// Who am I: profile, practices and second factors. Works on a password-only session (so a
/// client can tell what to enroll).
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = MeView), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn me(mut session: Session) -> Result<axum::Json<MeView>, AppError> {
    let (email, display_name) = session.tx.profile().await?;
    let practices = session
        .tx
        .my_practices()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let factors = session.tx.factors().await?;
    let user_id = session.tx.user();
    session.tx.commit().await?;
    Ok(axum::Json(MeView {
        user_id,
        email,
        display_name,
        practices,
        second_factor_done: session.auth.mfa_done(),
        methods: methods(&factors),
    }))
}

/// TOTP enrollment: the secret as an `otpauth://` URI and a QR code.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// The `otpauth://totp/...` URI (contains the secret: show it to the user only).
    pub otpauth_uri: String,
    /// The same URI as a QR code (an SVG document).
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment(***)")
    }
}

/// Starts TOTP enrollment. On a password-only session this is allowed only while the user has
/// no second factor; otherwise it needs a step-up. Confirm with
/// `POST /auth/mfa/totp/confirm`.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp", tag = "auth",
    responses((status = 200, body = TotpEnrollment), (status = 401, body = crate::views::ErrorBody),
              (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn totp_enroll(
    State(state): State<AppState>,
    session: Session,
) -> Result<axum::Json<TotpEnrollment>, AppError> {
    Ok(axum::Json(begin_totp_enrollment(&state, session).await?))
}

/// Starts TOTP enrollment on `session`, shared by the API and the web pages: allowed on a
/// password-only session only while the user has no second factor, otherwise it needs a
/// step-up. The pending secret is sealed as an installation secret; confirm it with
/// [`confirm_totp_enrollment`].
pub async fn begin_totp_enrollment(
    state: &AppState,
    mut session: Session,
) -> Result<TotpEnrollment, AppError> {
    let factors = session.tx.factors().await?;
    if factors.any() {
        session.require_step_up(state)?;
    }
    let (email, _) = session.tx.profile().await?;
    let secret = TotpKey::generate_secret();
    let keyring = state.store.keyring()?;
    session
        .tx
        .totp_begin(keyring, &secret)
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(_) => AppError::Conflict(
                "an authenticator is already enrolled; remove it first to replace it".into(),
            ),
            e => e.into(),
        })?;
    let key = TotpKey::new(&secret, &state.identity.issuer, &email)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let uri = key.uri().map_err(|e| AppError::Internal(e.to_string()))?;
    let qr_svg = key
        .qr_svg()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    session.tx.commit().await?;
    Ok(TotpEnrollment {
        otpauth_uri: uri.as_str().to_owned(),
        qr_svg,
    })
}

/// The result of confirming a first second factor.
#[derive(Serialize, ToSchema)]
pub(crate) struct EnrollmentDone {
    /// The new session token (the old one no longer works).
    token: String,
    /// Ten single-use recovery codes, shown this once (only when this is the user's first
    /// second factor).
    recovery_codes: Option<Vec<String>>,
}

/// Confirms TOTP enrollment with a first code. The session becomes a full session (new token);
/// for a first second factor, ten recovery codes are returned once.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/confirm", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = EnrollmentDone), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn totp_confirm(
    State(state): State<AppState>,
    client: Client,
    session: Session,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<Response, AppError> {
    let code = Zeroizing::new(req.code);
    let (token, codes) = confirm_totp_enrollment(&state, &client, session, &code).await?;
    Ok(enrollment_response(&state, &token, codes))
}

/// Confirms a pending TOTP enrollment with a first code (accepted once, req AU-02), shared by
/// the API and the web pages: audited; the session becomes a full session under the returned
/// new token (the old one stops working). For the user's first second factor, also the ten
/// single-use recovery codes, to show this once (only their hashes are stored).
pub async fn confirm_totp_enrollment(
    state: &AppState,
    client: &Client,
    mut session: Session,
    code: &str,
) -> Result<(SessionToken, Option<Vec<String>>), AppError> {
    let now = state.clock.now();
    let before = session.tx.factors().await?;
    let accepted = accept_totp(state, &mut session, code, true).await?;
    if !accepted {
        return Err(AppError::SecondFactorFailed);
    }
    let codes = enroll_done(&mut session, client, before, "totp").await?;
    session.tx.commit().await?;
    let token = state
        .store
        .rotate_session(&session.token, AuthMethod::Totp, now)
        .await?;
    Ok((token, codes))
}

/// After a second factor was added: audit, and recovery codes for a first factor.
pub(crate) async fn enroll_done(
    session: &mut Session,
    client: &Client,
    before: store::identity::Factors,
    method: &str,
) -> Result<Option<Vec<String>>, AppError> {
    session
        .tx
        .audit_security(
            AuditAction::MfaEnroll,
            details(client, &[("method", method)]),
        )
        .await?;
    if before.any() {
        return Ok(None);
    }
    let (codes, hashes) = recovery::generate();
    session.tx.recovery_replace(&hashes).await?;
    Ok(Some(codes.iter().map(|c| c.as_str().to_owned()).collect()))
}

pub(crate) fn enrollment_response(
    state: &AppState,
    token: &SessionToken,
    recovery_codes: Option<Vec<String>>,
) -> Response {
    let cookie = session_cookie(token, state.sessions.absolute.num_seconds());
    let mut res = axum::Json(EnrollmentDone {
        token: token.expose().to_owned(),
        recovery_codes,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Removes the TOTP authenticator (step-up required). Refused when it is the only second
/// factor: enroll a passkey first.
#[utoipa::path(delete, path = "/api/v1/auth/mfa/totp", tag = "auth",
    responses((status = 204), (status = 401, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody),
              (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn totp_remove(
    State(state): State<AppState>,
    client: Client,
    MfaSession(mut session): MfaSession,
) -> Result<StatusCode, AppError> {
    session.require_step_up(&state)?;
    let factors = session.tx.factors().await?;
    if !factors.totp {
        return Err(AppError::NotFound("authenticator"));
    }
    if factors.passkeys == 0 {
        return Err(AppError::Conflict(
            "this is your only second factor; register a passkey before removing it".into(),
        ));
    }
    session.tx.totp_remove().await?;
    session
        .tx
        .audit_security(
            AuditAction::MfaRemove,
            details(&client, &[("method", "totp")]),
        )
        .await?;
    session.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// New recovery codes.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecoveryCodes {
    /// Ten single-use codes, shown this once; the old ones no longer work.
    recovery_codes: Vec<String>,
}

/// Replaces the recovery codes by ten new ones (step-up required).
#[utoipa::path(post, path = "/api/v1/auth/mfa/recovery-codes", tag = "auth",
    responses((status = 200, body = RecoveryCodes), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn recovery_regenerate(
    State(state): State<AppState>,
    client: Client,
    MfaSession(mut session): MfaSession,
) -> Result<axum::Json<RecoveryCodes>, AppError> {
    let recovery_codes = regenerate_recovery_codes(&state, &client, &mut session).await?;
    session.tx.commit().await?;
    Ok(axum::Json(RecoveryCodes { recovery_codes }))
}

/// Replaces the signed-in user's recovery codes by ten new ones, shared by the API and the
/// web pages: a step-up first (`AUTH-0004`, before any write). Returns the codes to show this
/// once (only their hashes are stored; the old codes stop working). Audited as
/// `mfa.recovery_regenerate`. The caller commits `session.tx`.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    client: &Client,
    session: &mut Session,
) -> Result<Vec<String>, AppError> {
    session.require_step_up(state)?;
    let (codes, hashes) = recovery::generate();
    session.tx.recovery_replace(&hashes).await?;
    session
        .tx
        .audit_security(AuditAction::MfaRecoveryRegenerate, details(client, &[]))
        .await?;
    Ok(codes.iter().map(|c| c.as_str().to_owned()).collect())
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    /// The current password.
    current_password: String,
    /// The new password (policy: at least 12 characters, not common, not guessable).
    new_password: String,
    /// End every other session of this user (default true).
    #[serde(default = "yes")]
    end_other_sessions: bool,
}

fn yes() -> bool {
    true
}

/// Changes the caller's own password (step-up and the current password required). There is
/// no route for anyone to set another user's password (req AU-07).
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204), (status = 401, body = crate::views::ErrorBody),
              (status = 422, body = crate::views::ErrorBody)))]
pub(crate) async fn password_change(
    State(state): State<AppState>,
    client: Client,
    MfaSession(mut session): MfaSession,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<StatusCode, AppError> {
    change_password(
        &state,
        &client,
        &mut session,
        Zeroizing::new(req.current_password),
        Zeroizing::new(req.new_password),
        req.end_other_sessions,
    )
    .await?;
    session.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the signed-in user's own password, shared by the API and the web pages: a second
/// factor within the step-up window (`AUTH-0004`), the current password (`AUTH-0002`
/// otherwise) and the password policy (`AUTH-0008`) are required, in that order; nothing
/// changes on a refusal. With `end_other_sessions`, every other session of the user ends.
/// Audited as `password_change` with the number of sessions ended (never a password). The
/// caller commits `session.tx` on success; a refusal comes before any write, so the
/// transaction can still read (a page shows the form again from it).
pub async fn change_password(
    state: &AppState,
    client: &Client,
    session: &mut Session,
    current: Zeroizing<String>,
    new: Zeroizing<String>,
    end_other_sessions: bool,
) -> Result<(), AppError> {
    session.require_step_up(state)?;
    let stored = session.tx.own_password_hash().await?;
    if !state.passwords.verify(current, stored).await {
        return Err(AppError::BadCredentials);
    }
    let (email, name) = session.tx.profile().await?;
    state
        .identity
        .policy
        .check(&new, &email, &name)
        .map_err(AppError::PasswordRejected)?;
    let hash = state
        .passwords
        .hash(new)
        .await
        .map_err(AppError::Internal)?;
    session.tx.set_own_password(&hash).await?;
    let ended = if end_other_sessions {
        session
            .tx
            .revoke_other_sessions(session.auth.session_id)
            .await?
    } else {
        0
    };
    let ended = ended.to_string();
    session
        .tx
        .audit_security(
            AuditAction::PasswordChange,
            details(client, &[("other_sessions_ended", &ended)]),
        )
        .await?;
    Ok(())
}

/// Ends one of the signed-in user's sessions by its public id (another device, or this one),
/// shared by the API and the web pages; `404` when the user has no such live session.
/// Audited as `session_revoke` with the session's public id.
pub async fn end_session(
    client: &Client,
    mut session: Session,
    id: uuid::Uuid,
) -> Result<(), AppError> {
    session.require_mfa()?;
    if !session.tx.revoke_session_id(id).await? {
        return Err(AppError::NotFound("session"));
    }
    let sid = id.to_string();
    session
        .tx
        .audit_security(
            AuditAction::SessionRevoke,
            details(client, &[("session_id", &sid)]),
        )
        .await?;
    session.tx.commit().await?;
    Ok(())
}

/// Ends every session of the signed-in user but the one making the request (second factor
/// required); returns how many ended. Audited as `session_revoke` with the count.
pub async fn end_other_sessions(client: &Client, mut session: Session) -> Result<u64, AppError> {
    session.require_mfa()?;
    let ended = session
        .tx
        .revoke_other_sessions(session.auth.session_id)
        .await?;
    let n = ended.to_string();
    session
        .tx
        .audit_security(
            AuditAction::SessionRevoke,
            details(client, &[("other_sessions_ended", &n)]),
        )
        .await?;
    session.tx.commit().await?;
    Ok(ended)
}

/// One of the caller's sessions.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionView {
    /// Public id (use it to revoke).
    session_id: uuid::Uuid,
    /// Sign-in time.
    created_at: DateTime<Utc>,
    /// Last activity.
    last_seen_at: DateTime<Utc>,
    /// Ends at the latest.
    expires_at: DateTime<Utc>,
    /// Methods presented (`pwd`, `otp`, `hwk`, `rec`).
    methods: Vec<&'static str>,
    /// The browser or client at sign-in.
    user_agent: Option<String>,
    /// Whether this is the session making the request.
    current: bool,
}

/// Lists the caller's live sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, body = [SessionView]), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn session_list(
    MfaSession(mut session): MfaSession,
) -> Result<axum::Json<Vec<SessionView>>, AppError> {
    let list = session.tx.sessions(session.auth.session_id).await?;
    session.tx.commit().await?;
    Ok(axum::Json(
        list.into_iter()
            .map(|s| SessionView {
                session_id: s.session_id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                methods: s.amr.iter().map(|m| m.as_str()).collect(),
                user_agent: s.user_agent,
                current: s.current,
            })
            .collect(),
    ))
}

/// Ends one of the caller's sessions at once (another device, or this one).
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{session_id}", tag = "auth",
    params(("session_id" = uuid::Uuid, Path, description = "The session's public id")),
    responses((status = 204), (status = 401, body = crate::views::ErrorBody),
              (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn session_revoke(
    client: Client,
    MfaSession(session): MfaSession,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<StatusCode, AppError> {
    end_session(&client, session, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
