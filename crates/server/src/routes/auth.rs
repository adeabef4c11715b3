//! Sign-in, sign-out and the caller's profile.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::UserId;
use domain::values::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::extract::{ApiJson, SESSION_COOKIE, Session};
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

/// A new session.
#[derive(Serialize, ToSchema)]
pub(crate) struct LoginResponse {
    /// The session token (also set as the `chartroom_session` cookie). Send it as
    /// `Authorization: Bearer <token>`.
    token: String,
    /// The signed-in user.
    user_id: UserId,
    /// When the session ends at the latest (it also ends after the idle timeout).
    expires_at: DateTime<Utc>,
}

/// Signs in with email and password. Every failure gets the same status and message.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, AppError> {
    let password = Zeroizing::new(req.password);
    if password.len() > crate::password::MAX_BYTES {
        return Err(AppError::BadCredentials);
    }
    // A malformed email is treated like an unknown one: same work, same answer.
    let candidate = match Email::parse("email", &req.email) {
        Ok(email) => state.store.sign_in_candidate(email.as_str()).await?,
        Err(_) => None,
    };
    let (user, stored) = match candidate {
        Some(c) => (Some(c.user_id), Some(c.password_hash)),
        None => (None, None),
    };
    let ok = state.passwords.verify(password, stored).await;
    let Some(user) = user.filter(|_| ok) else {
        return Err(AppError::BadCredentials);
    };
    let now = state.clock.now();
    let token = state
        .store
        .create_session(user, now, &state.sessions)
        .await?;
    let expires_at = now + state.sessions.absolute;
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        token.expose(),
        state.sessions.absolute.num_seconds(),
        if state.secure_cookies { "; Secure" } else { "" }
    );
    let mut res = axum::Json(LoginResponse {
        token: token.expose().to_owned(),
        user_id: user,
        expires_at,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Ends the current session at once; the token stops working on the next request.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, AppError> {
    session.tx.commit().await?;
    state
        .store
        .revoke_session(&session.token, state.clock.now())
        .await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "chartroom_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(res)
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
}

/// Who am I: profile and the practices the caller belongs to.
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
    let user_id = session.tx.user();
    session.tx.commit().await?;
    Ok(axum::Json(MeView {
        user_id,
        email,
        display_name,
        practices,
    }))
}
