//! WebAuthn passkeys (req AU-01): registration, listing and removal, a passkey as the second
//! factor after a password, and passwordless sign-in with a discoverable passkey.
//!
//! Every ceremony is two requests. `…/begin` answers `{challenge_id, options}`: `options` is
//! the JSON to hand to `navigator.credentials.create()` / `.get()`, and the server keeps the
//! ceremony state (`auth_challenge`, single use, five minutes). `…/finish` takes the
//! `challenge_id` and the authenticator's response.
//!
//! # Guarantees
//! - User verification (PIN or biometric) is required at registration and at every use, so a
//!   passkey is a second factor by itself: a passkey session is a full session (amr `hwk`).
//! - A ceremony's state is taken (deleted) before it is checked: a `challenge_id` works once,
//!   a replayed or expired one fails like a bad signature.
//! - Every successful authentication hands out a new token; the old one stops working
//!   (req AC-12). The signature counter is stored after every use, so a cloned authenticator
//!   that replays an old counter is refused.
//! - Passwordless sign-in answers an unknown credential exactly like a wrong password
//!   (`AUTH-0002`), and records the attempt on the installation's log.
//! - Passwordless sign-in is not subject to the password throttle: it is how a user whose
//!   password sign-in is being throttled by an attacker still gets in. It cannot be guessed
//!   (each attempt needs the authenticator's private key).
//! - Nothing here logs a credential, a challenge or a ceremony state.
//!
//! When the server runs without a relying party (`Identity::webauthn` is `None`), every route
//! here answers 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use domain::{AuditAction, Outcome, UserId};
use serde::{Deserialize, Serialize};
use store::identity::{PasskeyRecord, SecurityEvent};
use store::{AuthMethod, SessionToken, UserTx};
use utoipa::ToSchema;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
};

use super::auth::{
    NextStep, ReqIdOf, SignedIn, complete_second_factor, details, enroll_done, enrollment_response,
    methods, signed_in_response,
};
use crate::extract::{ApiJson, ApiPath, MfaSession, Session};
use crate::identity::Client;
use crate::{AppError, AppState};

/// How long a ceremony may take: the W3C WebAuthn Level 3 recommended ceremony timeout when
/// user verification is required (300 seconds, "Recommended Range for Ceremony Timeouts";
/// also webauthn-rs `DEFAULT_AUTHENTICATOR_TIMEOUT`).
const CEREMONY_TTL_SECONDS: i64 = 300;

/// At most this many passkeys per user (bounds the stored rows and every ceremony's size).
const MAX_PASSKEYS: usize = 20;

/// Longest passkey name, in characters (the `user_passkey.name` check).
const MAX_NAME_CHARS: usize = 100;

/// Longest credential id accepted in a path, in base64url characters (1023 bytes, the
/// `user_passkey.credential_id` check; WebAuthn Level 3 caps credential ids at 1023 bytes).
const MAX_CREDENTIAL_ID_CHARS: usize = 1364;

const KIND_REGISTER: &str = "passkey_register";
const KIND_SECOND_FACTOR: &str = "passkey_second_factor";
const KIND_SIGN_IN: &str = "passkey_sign_in";

/// The first half of a ceremony.
#[derive(Serialize, ToSchema, Debug)]
pub struct CeremonyStart {
    /// Send it back with the authenticator's response (single use, valid five minutes).
    pub challenge_id: uuid::Uuid,
    /// The WebAuthn options (`{"publicKey": …}`) for `navigator.credentials.create()` or
    /// `navigator.credentials.get()`.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// A new passkey: the authenticator's response to `…/register/begin`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinish {
    /// The `challenge_id` from `…/register/begin`.
    challenge_id: uuid::Uuid,
    /// A name for the passkey, shown in the list (1–100 characters, one line).
    name: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create()`, as JSON.
    #[schema(value_type = Object)]
    credential: RegisterPublicKeyCredential,
}

/// An assertion: the authenticator's response to a `…/begin`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionFinish {
    /// The `challenge_id` from the matching `…/begin`.
    challenge_id: uuid::Uuid,
    /// The `PublicKeyCredential` from `navigator.credentials.get()`, as JSON.
    #[schema(value_type = Object)]
    credential: PublicKeyCredential,
}

/// One of the caller's passkeys.
#[derive(Serialize, ToSchema, Debug)]
pub struct PasskeyView {
    /// The credential id (base64url, no padding): use it to remove the passkey.
    pub credential_id: String,
    /// The name given at registration.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it was last used to sign in or as a second factor.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The relying party, or 404 when passkeys are disabled on this server.
fn relying_party(state: &AppState) -> Result<&Webauthn, AppError> {
    state
        .identity
        .webauthn
        .as_ref()
        .ok_or(AppError::NotFound("passkeys"))
}

fn internal(context: &'static str) -> impl FnOnce(serde_json::Error) -> AppError {
    move |e| AppError::Internal(format!("{context}: {e}"))
}

/// The stored passkeys of the acting user, parsed.
async fn stored_passkeys(tx: &mut UserTx) -> Result<Vec<(PasskeyRecord, Passkey)>, AppError> {
    tx.passkeys()
        .await?
        .into_iter()
        .map(|rec| {
            let key = serde_json::from_value(rec.passkey.clone())
                .map_err(internal("stored passkey does not parse"))?;
            Ok((rec, key))
        })
        .collect()
}

/// Stores the state of a ceremony and answers its first half.
async fn start_ceremony<T: Serialize>(
    state: &AppState,
    user: Option<UserId>,
    kind: &'static str,
    ceremony: &T,
    options: serde_json::Value,
) -> Result<CeremonyStart, AppError> {
    let saved = serde_json::to_value(ceremony).map_err(internal("ceremony state"))?;
    let expires = state.clock.now() + Duration::seconds(CEREMONY_TTL_SECONDS);
    let challenge_id = state
        .store
        .challenge_put(user, kind, &saved, expires)
        .await?;
    Ok(CeremonyStart {
        challenge_id,
        options,
    })
}

/// Checks a passkey name: trimmed, 1–100 characters, no line breaks or control characters.
fn passkey_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0
        || count > MAX_NAME_CHARS
        || name
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(AppError::Invalid(
            "name must be 1 to 100 characters on a single line".into(),
        ));
    }
    Ok(name.to_owned())
}

/// Starts registering a passkey for the caller. On a password-only session this is allowed
/// only while the user has no second factor (a passkey can be the first one); otherwise it
/// needs a step-up. The passkey requires user verification and is created discoverable when
/// the authenticator can, so it also works for passwordless sign-in. Finish with
/// `POST /auth/passkeys/register/finish` within five minutes.
#[utoipa::path(post, path = "/api/v1/auth/passkeys/register/begin", tag = "auth",
    responses((status = 200, body = CeremonyStart), (status = 401, body = crate::views::ErrorBody),
              (status = 404, body = crate::views::ErrorBody),
              (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn passkey_register_begin(
    State(state): State<AppState>,
    session: Session,
) -> Result<axum::Json<CeremonyStart>, AppError> {
    Ok(axum::Json(
        begin_passkey_registration(&state, session).await?,
    ))
}

/// Starts registering a passkey on `session`, shared by the API and the web pages: allowed on
/// a password-only session only while the user has no second factor, otherwise it needs a
/// step-up; at most twenty passkeys. The ceremony state is kept server-side (single use, five
/// minutes); finish with [`finish_passkey_registration`].
pub async fn begin_passkey_registration(
    state: &AppState,
    mut session: Session,
) -> Result<CeremonyStart, AppError> {
    let webauthn = relying_party(state)?;
    let factors = session.tx.factors().await?;
    if factors.any() {
        session.require_step_up(state)?;
    }
    let existing = stored_passkeys(&mut session.tx).await?;
    if existing.len() >= MAX_PASSKEYS {
        return Err(AppError::Conflict(format!(
            "you already have {MAX_PASSKEYS} passkeys; remove one before adding another"
        )));
    }
    let exclude: Vec<_> = existing.iter().map(|(_, k)| k.cred_id().clone()).collect();
    let (email, display_name) = session.tx.profile().await?;
    let user = session.tx.user();
    session.tx.commit().await?;
    let (options, registration): (_, PasskeyRegistration) = webauthn
        .start_passkey_registration(
            user.as_uuid(),
            &email,
            &display_name,
            (!exclude.is_empty()).then_some(exclude),
        )
        .map_err(|e| AppError::Internal(format!("passkey registration start: {e}")))?;
    let mut options = serde_json::to_value(options).map_err(internal("ceremony options"))?;
    // Discoverable when possible, so the same passkey signs in without a password; not
    // required, so security keys without resident storage still register. (webauthn-rs asks
    // for "discouraged"; the registration state does not depend on it.)
    if let Some(sel) = options
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(serde_json::Value::as_object_mut)
    {
        sel.insert("residentKey".into(), "preferred".into());
        sel.insert("requireResidentKey".into(), false.into());
    }
    start_ceremony(state, Some(user), KIND_REGISTER, &registration, options).await
}

/// Finishes registering a passkey. On success the passkey is stored and audited
/// (`mfa.enroll`), the session becomes a full session with a new token (the old one stops
/// working), and, when this is the user's first second factor, ten recovery codes are returned
/// once. A response that does not verify, or an unknown, expired or reused `challenge_id`, is
/// 401 `AUTH-0005`.
#[utoipa::path(post, path = "/api/v1/auth/passkeys/register/finish", tag = "auth",
    request_body = RegisterFinish,
    responses((status = 200, body = super::auth::EnrollmentDone),
              (status = 400, body = crate::views::ErrorBody),
              (status = 401, body = crate::views::ErrorBody),
              (status = 404, body = crate::views::ErrorBody),
              (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn passkey_register_finish(
    State(state): State<AppState>,
    client: Client,
    session: Session,
    ApiJson(req): ApiJson<RegisterFinish>,
) -> Result<Response, AppError> {
    let (token, codes) = finish_passkey_registration(&state, &client, session, &req).await?;
    Ok(enrollment_response(&state, &token, codes))
}

/// Finishes registering a passkey on `session`, shared by the API and the web pages: the name
/// checked (`400`), the step-up rule checked again, the ceremony taken (single use) and the
/// response verified (`AUTH-0005` otherwise). The passkey is stored and audited
/// (`mfa.enroll`); the session becomes a full session under the returned new token (the old
/// one stops working); for the user's first second factor, also the ten recovery codes, to
/// show this once.
pub async fn finish_passkey_registration(
    state: &AppState,
    client: &Client,
    mut session: Session,
    req: &RegisterFinish,
) -> Result<(SessionToken, Option<Vec<String>>), AppError> {
    let webauthn = relying_party(state)?;
    let name = passkey_name(&req.name)?;
    let now = state.clock.now();
    let user = session.tx.user();
    let before = session.tx.factors().await?;
    // Checked again here: a factor enrolled elsewhere since `begin` must not let a
    // password-only session finish.
    if before.any() {
        session.require_step_up(state)?;
    }
    if usize::try_from(before.passkeys).unwrap_or(usize::MAX) >= MAX_PASSKEYS {
        return Err(AppError::Conflict(format!(
            "you already have {MAX_PASSKEYS} passkeys; remove one before adding another"
        )));
    }
    let Some((Some(owner), saved)) = state
        .store
        .challenge_take(req.challenge_id, KIND_REGISTER, now)
        .await?
    else {
        return Err(AppError::SecondFactorFailed);
    };
    if owner != user {
        return Err(AppError::SecondFactorFailed);
    }
    let registration: PasskeyRegistration =
        serde_json::from_value(saved).map_err(internal("registration state"))?;
    let passkey = match webauthn.finish_passkey_registration(&req.credential, &registration) {
        Ok(p) => p,
        Err(e) => {
            // The error kind only: never the credential or the challenge.
            tracing::info!(error = %e, "passkey registration did not verify");
            return Err(AppError::SecondFactorFailed);
        }
    };
    let stored = serde_json::to_value(&passkey).map_err(internal("passkey"))?;
    session
        .tx
        .passkey_add(passkey.cred_id().as_slice(), &name, &stored)
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(_) => {
                AppError::Conflict("this passkey is already registered".into())
            }
            e => e.into(),
        })?;
    let codes = enroll_done(&mut session, client, before, "passkey").await?;
    session.tx.commit().await?;
    let token = state
        .store
        .rotate_session(&session.token, AuthMethod::Passkey, now)
        .await?;
    Ok((token, codes))
}

/// Lists the caller's passkeys, oldest first.
#[utoipa::path(get, path = "/api/v1/auth/passkeys", tag = "auth",
    responses((status = 200, body = [PasskeyView]), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn passkey_list(
    MfaSession(mut session): MfaSession,
) -> Result<axum::Json<Vec<PasskeyView>>, AppError> {
    let list = passkeys(&mut session).await?;
    session.tx.commit().await?;
    Ok(axum::Json(list))
}

/// The signed-in user's passkeys, oldest first, shared by the API and the web pages (second
/// factor required, `AUTH-0003`). Reads only; the caller commits.
pub async fn passkeys(session: &mut Session) -> Result<Vec<PasskeyView>, AppError> {
    session.require_mfa()?;
    Ok(session
        .tx
        .passkeys()
        .await?
        .into_iter()
        .map(|p| PasskeyView {
            credential_id: URL_SAFE_NO_PAD.encode(&p.credential_id),
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        })
        .collect())
}

/// Removes one of the caller's passkeys (step-up required). Refused (409) when it is the only
/// second factor: enroll an authenticator app or another passkey first.
#[utoipa::path(delete, path = "/api/v1/auth/passkeys/{credential_id}", tag = "auth",
    params(("credential_id" = String, Path, description = "The credential id (base64url)")),
    responses((status = 204), (status = 401, body = crate::views::ErrorBody),
              (status = 404, body = crate::views::ErrorBody),
              (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn passkey_remove(
    State(state): State<AppState>,
    client: Client,
    MfaSession(mut session): MfaSession,
    ApiPath(credential_id): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    remove_passkey(&state, &client, &mut session, &credential_id).await?;
    session.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes one of the signed-in user's passkeys by its credential id (base64url), shared by
/// the API and the web pages: a step-up (`AUTH-0004`), a passkey of theirs (`404`
/// otherwise) that is not their only second factor (`409`), in that order; every refusal
/// comes before any write. Audited as `mfa.remove`. The caller commits `session.tx`.
pub async fn remove_passkey(
    state: &AppState,
    client: &Client,
    session: &mut Session,
    credential_id: &str,
) -> Result<(), AppError> {
    session.require_step_up(state)?;
    let id = Some(credential_id)
        .filter(|s| s.len() <= MAX_CREDENTIAL_ID_CHARS)
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .ok_or(AppError::NotFound("passkey"))?;
    let factors = session.tx.factors().await?;
    let known = session
        .tx
        .passkeys()
        .await?
        .iter()
        .any(|p| p.credential_id == id);
    if !known {
        return Err(AppError::NotFound("passkey"));
    }
    if !factors.totp && factors.passkeys <= 1 {
        return Err(AppError::Conflict(
            "this is your only second factor; add an authenticator app or another passkey before removing it"
                .into(),
        ));
    }
    if !session.tx.passkey_remove(&id).await? {
        return Err(AppError::NotFound("passkey"));
    }
    session
        .tx
        .audit_security(
            AuditAction::MfaRemove,
            details(client, &[("method", "passkey")]),
        )
        .await?;
    Ok(())
}

/// Starts presenting a passkey as the second factor (after a password), or as the step-up
/// on a full session. Finish with `POST /auth/second-factor/passkey/finish`.
#[utoipa::path(post, path = "/api/v1/auth/second-factor/passkey/begin", tag = "auth",
    responses((status = 200, body = CeremonyStart), (status = 401, body = crate::views::ErrorBody),
              (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn second_factor_passkey_begin(
    State(state): State<AppState>,
    session: Session,
) -> Result<axum::Json<CeremonyStart>, AppError> {
    Ok(axum::Json(
        begin_passkey_second_factor(&state, session).await?,
    ))
}

/// Starts presenting a passkey on `session` (the second factor after a password, or the
/// step-up on a full session), shared by the API and the web pages; `404` when the user has
/// no passkey. Finish with [`present_passkey`].
pub async fn begin_passkey_second_factor(
    state: &AppState,
    mut session: Session,
) -> Result<CeremonyStart, AppError> {
    let webauthn = relying_party(state)?;
    let keys: Vec<Passkey> = stored_passkeys(&mut session.tx)
        .await?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    let user = session.tx.user();
    session.tx.commit().await?;
    if keys.is_empty() {
        return Err(AppError::NotFound("passkey"));
    }
    let (options, authentication): (_, PasskeyAuthentication) = webauthn
        .start_passkey_authentication(&keys)
        .map_err(|e| AppError::Internal(format!("passkey authentication start: {e}")))?;
    let options = serde_json::to_value(options).map_err(internal("ceremony options"))?;
    start_ceremony(
        state,
        Some(user),
        KIND_SECOND_FACTOR,
        &authentication,
        options,
    )
    .await
}

/// Presents a passkey on the current session: completes sign-in after a password, or is the
/// step-up for a sensitive change. Returns a new token; the old one stops working (req AC-12).
/// A response that does not verify, or an unknown, expired or reused `challenge_id`, is 401
/// `AUTH-0005` and is recorded.
#[utoipa::path(post, path = "/api/v1/auth/second-factor/passkey/finish", tag = "auth",
    request_body = AssertionFinish,
    responses((status = 200, body = super::auth::LoginResponse),
              (status = 401, body = crate::views::ErrorBody),
              (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn second_factor_passkey_finish(
    State(state): State<AppState>,
    client: Client,
    session: Session,
    ApiJson(req): ApiJson<AssertionFinish>,
) -> Result<Response, AppError> {
    let signed_in = present_passkey(&state, &client, session, &req).await?;
    Ok(signed_in_response(&state, signed_in))
}

/// Presents a passkey assertion on `session`, shared by the API and the web pages: completes
/// sign-in after a password, or is the step-up for a sensitive change. The ceremony is taken
/// first (single use); the signature counter is stored; success and failure
/// ([`AppError::SecondFactorFailed`]) are audited; the old token stops working (req AC-12).
pub async fn present_passkey(
    state: &AppState,
    client: &Client,
    mut session: Session,
    req: &AssertionFinish,
) -> Result<SignedIn, AppError> {
    let webauthn = relying_party(state)?;
    let now = state.clock.now();
    let user = session.tx.user();
    let accepted = match state
        .store
        .challenge_take(req.challenge_id, KIND_SECOND_FACTOR, now)
        .await?
    {
        Some((Some(owner), saved)) if owner == user => {
            let authentication: PasskeyAuthentication =
                serde_json::from_value(saved).map_err(internal("authentication state"))?;
            match webauthn.finish_passkey_authentication(&req.credential, &authentication) {
                Ok(result) => record_use(&mut session.tx, &result).await?,
                Err(e) => {
                    tracing::info!(error = %e, "passkey assertion did not verify");
                    false
                }
            }
        }
        _ => false,
    };
    complete_second_factor(state, session, client, accepted, AuthMethod::Passkey).await
}

/// Stores the updated counter of the passkey that just verified. `false` when the user no
/// longer has it (removed since the ceremony began): the assertion is then refused.
async fn record_use(tx: &mut UserTx, result: &AuthenticationResult) -> Result<bool, AppError> {
    let keys = stored_passkeys(tx).await?;
    let Some((rec, mut key)) = keys
        .into_iter()
        .find(|(_, k)| k.cred_id() == result.cred_id())
    else {
        return Ok(false);
    };
    key.update_credential(result);
    let stored = serde_json::to_value(&key).map_err(internal("passkey"))?;
    tx.passkey_used(&rec.credential_id, &stored).await?;
    Ok(true)
}

/// Starts a passwordless sign-in with a discoverable passkey. Public: no session needed. The
/// options name no credential; the authenticator offers the user's passkeys for this site
/// (they are marked for conditional mediation, i.e. autofill). Finish with
/// `POST /auth/passkey/finish`.
#[utoipa::path(post, path = "/api/v1/auth/passkey/begin", tag = "auth", security(()),
    responses((status = 200, body = CeremonyStart), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn passkey_sign_in_begin(
    State(state): State<AppState>,
) -> Result<axum::Json<CeremonyStart>, AppError> {
    Ok(axum::Json(begin_passkey_sign_in(&state).await?))
}

/// Starts a passwordless sign-in with a discoverable passkey, shared by the API and the web
/// pages (public: no session). Finish with [`sign_in_with_passkey`].
pub async fn begin_passkey_sign_in(state: &AppState) -> Result<CeremonyStart, AppError> {
    let webauthn = relying_party(state)?;
    let (options, authentication): (_, DiscoverableAuthentication) = webauthn
        .start_discoverable_authentication()
        .map_err(|e| AppError::Internal(format!("passkey sign-in start: {e}")))?;
    let options = serde_json::to_value(options).map_err(internal("ceremony options"))?;
    start_ceremony(state, None, KIND_SIGN_IN, &authentication, options).await
}

/// What checking a passwordless sign-in found.
enum SignIn {
    /// The passkey verified: the user, the credential and the passkey with its new counter
    /// (serialized, to store).
    Verified(UserId, Vec<u8>, serde_json::Value),
    /// It did not; the user when the credential is known.
    Denied(Option<UserId>),
}

async fn check_sign_in(
    state: &AppState,
    webauthn: &Webauthn,
    req: &AssertionFinish,
    now: DateTime<Utc>,
) -> Result<SignIn, AppError> {
    // Taken first, so a replayed challenge fails whatever else is wrong.
    let Some((None, saved)) = state
        .store
        .challenge_take(req.challenge_id, KIND_SIGN_IN, now)
        .await?
    else {
        return Ok(SignIn::Denied(None));
    };
    let Ok((handle, credential_id)) =
        webauthn.identify_discoverable_authentication(&req.credential)
    else {
        return Ok(SignIn::Denied(None));
    };
    let Some((user, stored)) = state.store.passkey_owner(credential_id).await? else {
        return Ok(SignIn::Denied(None));
    };
    // The user handle the authenticator returned must be the owner of the credential.
    if user.as_uuid() != handle {
        return Ok(SignIn::Denied(Some(user)));
    }
    let mut key: Passkey =
        serde_json::from_value(stored).map_err(internal("stored passkey does not parse"))?;
    let authentication: DiscoverableAuthentication =
        serde_json::from_value(saved).map_err(internal("sign-in state"))?;
    match webauthn.finish_discoverable_authentication_v2(&req.credential, authentication, &key) {
        Ok(result) => {
            key.update_credential(&result);
            let stored = serde_json::to_value(&key).map_err(internal("passkey"))?;
            Ok(SignIn::Verified(user, credential_id.to_vec(), stored))
        }
        Err(e) => {
            tracing::info!(error = %e, "passkey sign-in did not verify");
            Ok(SignIn::Denied(Some(user)))
        }
    }
}

/// Signs in with a discoverable passkey alone (no password): the passkey verified the user
/// with a PIN or biometric, so the session is a full session (amr `hwk`) at once. Public. Any
/// failure, an unknown credential included, answers exactly like a wrong password (401
/// `AUTH-0002`) and is recorded on the installation's log. Not subject to the password
/// throttle: this is the way in for a user whose password sign-in an attacker is throttling.
#[utoipa::path(post, path = "/api/v1/auth/passkey/finish", tag = "auth", security(()),
    request_body = AssertionFinish,
    responses((status = 200, body = super::auth::LoginResponse),
              (status = 401, body = crate::views::ErrorBody),
              (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn passkey_sign_in_finish(
    State(state): State<AppState>,
    client: Client,
    ReqIdOf(request): ReqIdOf,
    ApiJson(req): ApiJson<AssertionFinish>,
) -> Result<Response, AppError> {
    let signed_in = sign_in_with_passkey(&state, &client, request, &req).await?;
    Ok(signed_in_response(&state, signed_in))
}

/// Signs in with a discoverable passkey alone, shared by the API and the web pages: the
/// session is a full session at once (amr `hwk`). Any failure, an unknown credential
/// included, is [`AppError::BadCredentials`] exactly like a wrong password, and is recorded
/// on the installation's log. Not subject to the password throttle.
pub async fn sign_in_with_passkey(
    state: &AppState,
    client: &Client,
    request: domain::RequestId,
    req: &AssertionFinish,
) -> Result<SignedIn, AppError> {
    let webauthn = relying_party(state)?;
    let now = state.clock.now();
    let (user, credential_id, stored) = match check_sign_in(state, webauthn, req, now).await? {
        SignIn::Verified(user, credential_id, stored) => (user, credential_id, stored),
        SignIn::Denied(actor) => {
            let event = SecurityEvent {
                action: AuditAction::AuthSignIn,
                outcome: Outcome::Denied,
                actor,
                request,
                at: now,
                details: details(client, &[("method", "hwk"), ("reason", "bad_credentials")]),
            };
            state.store.audit_security(&event, false).await?;
            return Err(AppError::BadCredentials);
        }
    };
    let (token, mut tx) =
        super::auth::start_session(state, client, request, user, AuthMethod::Passkey).await?;
    tx.passkey_used(&credential_id, &stored).await?;
    let factors = tx.factors().await?;
    tx.commit().await?;
    Ok(SignedIn {
        token,
        user,
        expires_at: now + state.sessions.absolute,
        next: NextStep::Done,
        methods: methods(&factors),
    })
}
