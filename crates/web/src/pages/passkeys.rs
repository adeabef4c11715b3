//! Passkeys and recovery codes in the web app (issue 17): passwordless sign-in with a
//! discoverable passkey, a passkey or a recovery code as the second factor, a passkey as the
//! first second factor at enrollment, and on My account the passkey list, registering and
//! removing one, and new recovery codes.
//!
//! Every step is the API's own ([`server::signin`]): the same ceremony state (kept by the
//! server, single use, five minutes), the same step-up and "only second factor" rules, the
//! same generic failures (an unknown passkey answers like a wrong password), the same audit
//! events and token rotation.
//!
//! A WebAuthn ceremony is two JSON posts made by `static/js/passkey.js` (same-origin `fetch`,
//! so the frame's cross-site check applies as to any form): `…/begin` answers the API's
//! `{challenge_id, options}`, `…/finish` takes `{challenge_id, credential}` and answers where
//! the page goes next ([`Finished`]). A refusal answers the API's error body
//! `{"error": {"code", "message"}}` with its status; a missing session redirects to sign-in
//! as every page does.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use server::extract::{ApiJson, ReqId, Session};
use server::identity::Client;
use server::signin::{self, AssertionFinish, CeremonyStart, RegisterFinish};
use server::{AppError, AppState};
use zeroize::Zeroizing;

use super::account::ACCOUNT_PATH;
use super::auth::RecoveryCodesPage;
use super::step_up::StepUpSession;
use super::{SignedIn, html, html_status, redirect};
use crate::error::see_other;
use crate::{Assets, WebError, assets};

/// Where a user without any second factor enrolls one.
const ENROLL_PATH: &str = "/app/sign-in/enroll";

/// The second half of a ceremony went through: where the page goes next, and (after a first
/// second factor) the ten recovery codes, shown this once.
#[derive(Serialize, Debug)]
pub(crate) struct Finished {
    next: &'static str,
    recovery_codes: Option<Vec<String>>,
}

/// A refusal of a JSON route: the API's error body (stable code and message, never a
/// submitted value) with its status; no session (or no second factor) redirects like a page.
#[derive(Debug)]
pub(crate) struct JsonError(AppError);

impl From<AppError> for JsonError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        match self.0 {
            e @ (AppError::Unauthenticated | AppError::MfaRequired) => WebError(e).into_response(),
            e => {
                let status = e.status();
                let body = serde_json::json!({
                    "error": {"code": e.code(), "message": e.to_string()}
                });
                // Logs a 5xx cause as the API does; the body says only "internal error".
                drop(e.into_response());
                (status, axum::Json(body)).into_response()
            }
        }
    }
}

fn set_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `answer` as JSON, handing the browser the new session cookie.
fn finished(state: &AppState, token: &store::SessionToken, answer: &Finished) -> Response {
    let mut res = axum::Json(answer).into_response();
    set_cookie(
        &mut res,
        &signin::session_cookie(token, state.sessions.absolute.num_seconds()),
    );
    res
}

type JsonResult<T> = Result<T, JsonError>;

/// `POST /app/sign-in/passkey/begin` (public): starts a passwordless sign-in
/// ([`signin::begin_passkey_sign_in`]).
pub(crate) async fn sign_in_begin(
    State(state): State<AppState>,
) -> JsonResult<axum::Json<CeremonyStart>> {
    Ok(axum::Json(signin::begin_passkey_sign_in(&state).await?))
}

/// `POST /app/sign-in/passkey/finish` (public): signs in with the passkey
/// ([`signin::sign_in_with_passkey`]: a full session at once); any failure is the API's one
/// generic answer (`401`, as a wrong password).
pub(crate) async fn sign_in_finish(
    State(state): State<AppState>,
    client: Client,
    ReqId(request): ReqId,
    body: Result<ApiJson<AssertionFinish>, AppError>,
) -> JsonResult<Response> {
    let ApiJson(req) = body?;
    let s = signin::sign_in_with_passkey(&state, &client, request, &req).await?;
    let next = Finished {
        next: crate::APP_PATH,
        recovery_codes: None,
    };
    Ok(finished(&state, &s.token, &next))
}

/// `POST /app/sign-in/second-factor/passkey/begin`: starts presenting a passkey on the
/// session ([`signin::begin_passkey_second_factor`]): the second factor after the password,
/// or the step-up of a full session.
pub(crate) async fn second_factor_begin(
    State(state): State<AppState>,
    session: Result<Session, AppError>,
) -> JsonResult<axum::Json<CeremonyStart>> {
    Ok(axum::Json(
        signin::begin_passkey_second_factor(&state, session?).await?,
    ))
}

/// `POST /app/sign-in/second-factor/passkey/finish`: presents the passkey
/// ([`signin::present_passkey`]: single use, audited, new token).
pub(crate) async fn second_factor_finish(
    State(state): State<AppState>,
    client: Client,
    session: Result<Session, AppError>,
    body: Result<ApiJson<AssertionFinish>, AppError>,
) -> JsonResult<Response> {
    let session = session?;
    let ApiJson(req) = body?;
    let s = signin::present_passkey(&state, &client, session, &req).await?;
    let next = Finished {
        next: crate::APP_PATH,
        recovery_codes: None,
    };
    Ok(finished(&state, &s.token, &next))
}

/// `POST /app/account/passkeys/begin`: starts registering a passkey
/// ([`signin::begin_passkey_registration`]: on a password-only session only as the first
/// second factor, otherwise with a recent second factor).
pub(crate) async fn register_begin(
    State(state): State<AppState>,
    session: Result<Session, AppError>,
) -> JsonResult<axum::Json<CeremonyStart>> {
    Ok(axum::Json(
        signin::begin_passkey_registration(&state, session?).await?,
    ))
}

/// `POST /app/account/passkeys/finish`: stores the new passkey
/// ([`signin::finish_passkey_registration`]: name checked, audited, new token); a first
/// second factor also answers the recovery codes, shown this once.
pub(crate) async fn register_finish(
    State(state): State<AppState>,
    client: Client,
    session: Result<Session, AppError>,
    body: Result<ApiJson<RegisterFinish>, AppError>,
) -> JsonResult<Response> {
    let session = session?;
    let ApiJson(req) = body?;
    let (token, codes) =
        signin::finish_passkey_registration(&state, &client, session, &req).await?;
    let next = Finished {
        next: if codes.is_some() {
            crate::APP_PATH
        } else {
            "/app/account?done=passkey"
        },
        recovery_codes: codes,
    };
    Ok(finished(&state, &token, &next))
}

/// The recovery-code form of sign-in.
#[derive(Template)]
#[template(path = "recovery_sign_in.html")]
pub(crate) struct RecoverySignInPage {
    assets: &'static Assets,
    chrome: Option<super::Chrome>,
    error: Option<String>,
}

/// A recovery code form post.
#[derive(Deserialize)]
pub(crate) struct RecoveryForm {
    #[serde(default)]
    code: String,
}

/// `GET /app/sign-in/recovery`: the recovery-code form (a full session goes on to the app;
/// one without any second factor to enrollment).
pub(crate) async fn recovery_page(SignedIn(mut session): SignedIn) -> Result<Response, WebError> {
    if session.auth.mfa_done() {
        return Ok(see_other(crate::APP_PATH));
    }
    if !session.tx.factors().await?.any() {
        return Ok(see_other(ENROLL_PATH));
    }
    html(&RecoverySignInPage {
        assets: assets(),
        chrome: None,
        error: None,
    })
}

/// `POST /app/sign-in/recovery`: presents a recovery code as the second factor
/// ([`signin::present_recovery_code`]: each code works once, audited, new token); a wrong or
/// used code shows the API's message with `401`.
pub(crate) async fn recovery_sign_in(
    State(state): State<AppState>,
    client: Client,
    SignedIn(session): SignedIn,
    Form(form): Form<RecoveryForm>,
) -> Result<Response, WebError> {
    if session.auth.mfa_done() {
        return Ok(see_other(crate::APP_PATH));
    }
    let code = Zeroizing::new(form.code);
    match signin::present_recovery_code(&state, &client, session, code.trim()).await {
        Ok(s) => {
            let mut res = see_other(crate::APP_PATH);
            let max_age = (s.expires_at - state.clock.now()).num_seconds();
            set_cookie(&mut res, &signin::session_cookie(&s.token, max_age));
            Ok(res)
        }
        Err(e @ AppError::SecondFactorFailed) => html_status(
            e.status(),
            &RecoverySignInPage {
                assets: assets(),
                chrome: None,
                error: Some(format!("{e}. Each recovery code works once.")),
            },
        ),
        Err(e) => Err(e.into()),
    }
}

/// A form without fields (a button), besides the step-up code.
#[derive(Deserialize)]
pub(crate) struct NoFields {}

/// `POST /app/account/passkeys/{credential_id}/remove`: removes one of the user's passkeys
/// ([`signin::remove_passkey`]: a recent second factor — the code may come with the form —,
/// one of theirs, not their only second factor). A refusal shows My account again with the
/// message and nothing changed.
pub(crate) async fn remove(
    State(state): State<AppState>,
    client: Client,
    Path(credential_id): Path<String>,
    step: StepUpSession<NoFields>,
) -> Response {
    let res = remove_passkey(
        &state,
        &client,
        step.session,
        &credential_id,
        step.code_error,
    )
    .await;
    step.renewed.attach(res)
}

async fn remove_passkey(
    state: &AppState,
    client: &Client,
    mut session: Session,
    credential_id: &str,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    session.require_mfa()?;
    match signin::remove_passkey(state, client, &mut session, credential_id).await {
        Ok(()) => {
            session.tx.commit().await?;
            Ok(redirect(&format!("{ACCOUNT_PATH}?done=passkey-removed")))
        }
        Err(e @ (AppError::StepUpRequired | AppError::Conflict(_))) => {
            super::account::refused(state, session, &e, code_error).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /app/account/recovery-codes`: replaces the recovery codes by ten new ones
/// ([`signin::regenerate_recovery_codes`]: a recent second factor) and shows them this once.
pub(crate) async fn recovery_regenerate(
    State(state): State<AppState>,
    client: Client,
    step: StepUpSession<NoFields>,
) -> Response {
    let res = regenerate(&state, &client, step.session, step.code_error).await;
    step.renewed.attach(res)
}

async fn regenerate(
    state: &AppState,
    client: &Client,
    mut session: Session,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    session.require_mfa()?;
    match signin::regenerate_recovery_codes(state, client, &mut session).await {
        Ok(codes) => {
            session.tx.commit().await?;
            html(&RecoveryCodesPage::new(codes, ACCOUNT_PATH))
        }
        Err(e @ AppError::StepUpRequired) => {
            super::account::refused(state, session, &e, code_error).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /app/account/confirm`: the step-up on its own — the code presented (by
/// [`StepUpSession`], as the API's step-up route does), then back to My account, where the
/// changes to second factors are now open. A missing or refused code shows the page again
/// (`401`).
pub(crate) async fn confirm(
    State(state): State<AppState>,
    step: StepUpSession<NoFields>,
) -> Response {
    let res = confirmed(&state, step.session, step.code_error).await;
    step.renewed.attach(res)
}

async fn confirmed(
    state: &AppState,
    session: Session,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    session.require_mfa()?;
    if code_error.is_none() && session.require_step_up(state).is_ok() {
        return Ok(redirect(&format!("{ACCOUNT_PATH}?done=confirmed")));
    }
    super::account::refused(state, session, &AppError::StepUpRequired, code_error).await
}
