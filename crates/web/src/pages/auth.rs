//! Sign-in (password, then the second factor; a first sign-in enrolls TOTP — or a passkey,
//! see [`super::passkeys`] — and shows the recovery codes once) and sign-out, through the
//! API's own steps ([`server::signin`]): the same throttling, generic failures, audit events
//! and token rotation.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use server::extract::{ReqId, Session};
use server::identity::Client;
use server::signin::{self, NextStep};
use server::{AppError, AppState};
use zeroize::Zeroizing;

use super::{Chrome, SignedIn, html};
use crate::error::see_other;
use crate::{Assets, WebError, assets};

const SECOND_FACTOR_PATH: &str = "/app/sign-in/second-factor";
const ENROLL_PATH: &str = "/app/sign-in/enroll";

/// The sign-in form.
#[derive(Template)]
#[template(path = "sign_in.html")]
pub(crate) struct SignInPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    error: Option<String>,
}

/// The second-factor form.
#[derive(Template)]
#[template(path = "second_factor.html")]
pub(crate) struct SecondFactorPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    error: Option<String>,
    /// The user has an authenticator app (the code form is shown).
    totp: bool,
    /// The user has a passkey (the passkey button is shown).
    passkey: bool,
}

/// The start of TOTP enrollment (a button: starting it changes state, so it is a POST).
#[derive(Template)]
#[template(path = "enroll_start.html")]
pub(crate) struct EnrollStartPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    error: Option<String>,
}

/// The QR code, the secret for manual entry, and the confirmation form.
#[derive(Template)]
#[template(path = "enroll.html")]
pub(crate) struct EnrollPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    qr_svg: String,
    secret: String,
    otpauth_uri: String,
}

/// The recovery codes, shown this once.
#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub(crate) struct RecoveryCodesPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    codes: Vec<String>,
    next: &'static str,
}

impl RecoveryCodesPage {
    /// The page for `codes`, whose "continue" link goes to `next`.
    pub(crate) fn new(codes: Vec<String>, next: &'static str) -> Self {
        Self {
            assets: assets(),
            chrome: None,
            codes,
            next,
        }
    }
}

/// A sign-in form post.
#[derive(Deserialize)]
pub(crate) struct SignInForm {
    email: String,
    password: String,
}

/// A one-time code form post.
#[derive(Deserialize)]
pub(crate) struct CodeForm {
    code: String,
}

fn with_status(status: StatusCode, res: Result<Response, WebError>) -> Result<Response, WebError> {
    res.map(|mut r| {
        *r.status_mut() = status;
        r
    })
}

fn set_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
}

/// `GET /app/sign-in`.
pub(crate) async fn sign_in_page() -> Result<Response, WebError> {
    html(&SignInPage {
        assets: assets(),
        chrome: None,
        error: None,
    })
}

/// `POST /app/sign-in`: the password step ([`signin::sign_in_with_password`]). Success sets
/// the session cookie and goes to the second factor (or its enrollment); failure shows the
/// API's one generic message (`401`), or the throttle's wait (`429` with `Retry-After`).
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    ReqId(request): ReqId,
    Form(form): Form<SignInForm>,
) -> Result<Response, WebError> {
    let password = Zeroizing::new(form.password);
    match signin::sign_in_with_password(&state, &client, request, &form.email, password).await {
        Ok(s) => {
            let next = match s.next {
                NextStep::SecondFactor => SECOND_FACTOR_PATH,
                NextStep::EnrollSecondFactor => ENROLL_PATH,
                NextStep::Done => crate::APP_PATH,
            };
            let mut res = see_other(next);
            let max_age = (s.expires_at - state.clock.now()).num_seconds();
            set_cookie(&mut res, &signin::session_cookie(&s.token, max_age));
            Ok(res)
        }
        Err(e @ (AppError::BadCredentials | AppError::Throttled(_))) => {
            let mut res = with_status(
                e.status(),
                html(&SignInPage {
                    assets: assets(),
                    chrome: None,
                    error: Some(e.to_string()),
                }),
            )?;
            if let AppError::Throttled(secs) = e
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /app/sign-in/second-factor`: the code form (a session whose second factor is done
/// goes on to the app; one without any factor goes to enrollment).
pub(crate) async fn second_factor_page(
    SignedIn(mut session): SignedIn,
) -> Result<Response, WebError> {
    if session.auth.mfa_done() {
        return Ok(see_other(crate::APP_PATH));
    }
    let f = session.tx.factors().await?;
    if !f.any() {
        return Ok(see_other(ENROLL_PATH));
    }
    html(&SecondFactorPage {
        assets: assets(),
        chrome: None,
        error: None,
        totp: f.totp,
        passkey: f.passkeys > 0,
    })
}

/// `POST /app/sign-in/second-factor`: presents the code ([`signin::present_totp`]: single
/// use, audited, new token); a wrong code shows the API's message with `401`.
pub(crate) async fn second_factor(
    State(state): State<AppState>,
    client: Client,
    SignedIn(mut session): SignedIn,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    let code = Zeroizing::new(form.code);
    let f = session.tx.factors().await?;
    match signin::present_totp(&state, &client, session, code.trim()).await {
        Ok(s) => {
            let mut res = see_other(crate::APP_PATH);
            let max_age = (s.expires_at - state.clock.now()).num_seconds();
            set_cookie(&mut res, &signin::session_cookie(&s.token, max_age));
            Ok(res)
        }
        Err(e @ AppError::SecondFactorFailed) => with_status(
            e.status(),
            html(&SecondFactorPage {
                assets: assets(),
                chrome: None,
                error: Some(e.to_string()),
                totp: f.totp,
                passkey: f.passkeys > 0,
            }),
        ),
        Err(e) => Err(e.into()),
    }
}

/// `GET /app/sign-in/enroll`: offers to set up an authenticator app, for a user with no
/// second factor yet (anyone else is sent to the second-factor step).
pub(crate) async fn enroll_page(SignedIn(mut session): SignedIn) -> Result<Response, WebError> {
    if session.tx.factors().await?.any() {
        return Ok(see_other(SECOND_FACTOR_PATH));
    }
    html(&EnrollStartPage {
        assets: assets(),
        chrome: None,
        error: None,
    })
}

/// The base32 secret in an `otpauth://` URI (for typing it into an app by hand).
fn secret_of(uri: &str) -> String {
    uri.split_once('?')
        .map_or("", |(_, q)| q)
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap_or("")
        .to_owned()
}

/// Drops the XML declaration (not allowed inside an HTML document's body).
fn inline_svg(svg: &str) -> String {
    match svg.find("<svg") {
        Some(at) => svg.get(at..).unwrap_or("").to_owned(),
        None => String::new(),
    }
}

/// `POST /app/sign-in/enroll`: starts TOTP enrollment ([`signin::begin_totp_enrollment`])
/// and shows the QR code (SVG rendered on the server) and the secret.
pub(crate) async fn enroll_begin(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    match signin::begin_totp_enrollment(&state, session).await {
        Ok(e) => html(&EnrollPage {
            assets: assets(),
            chrome: None,
            qr_svg: inline_svg(&e.qr_svg),
            secret: secret_of(&e.otpauth_uri),
            otpauth_uri: e.otpauth_uri.clone(),
        }),
        // Already enrolled, or enrolling another factor needs the first one now.
        Err(AppError::Conflict(_) | AppError::StepUpRequired | AppError::MfaRequired) => {
            Ok(see_other(SECOND_FACTOR_PATH))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /app/sign-in/enroll/confirm`: confirms with a first code
/// ([`signin::confirm_totp_enrollment`]); the session becomes full (new cookie) and the
/// recovery codes are shown this once. A wrong code offers to start again (`401`).
pub(crate) async fn enroll_confirm(
    State(state): State<AppState>,
    client: Client,
    SignedIn(session): SignedIn,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    let code = Zeroizing::new(form.code);
    match signin::confirm_totp_enrollment(&state, &client, session, code.trim()).await {
        Ok((token, codes)) => {
            let mut res = match codes {
                Some(codes) => html(&RecoveryCodesPage::new(codes, crate::APP_PATH))?,
                None => see_other(crate::APP_PATH),
            };
            set_cookie(
                &mut res,
                &signin::session_cookie(&token, state.sessions.absolute.num_seconds()),
            );
            Ok(res)
        }
        Err(e @ AppError::SecondFactorFailed) => with_status(
            e.status(),
            html(&EnrollStartPage {
                assets: assets(),
                chrome: None,
                error: Some(format!("{e}. Start again to get a new code.")),
            }),
        ),
        Err(e) => Err(e.into()),
    }
}

/// The sign-out form: the page script sets `reason=idle` when the idle timeout ran out.
#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    #[serde(default)]
    reason: Option<String>,
}

/// Where an idle sign-out lands: the page that says why.
const SIGNED_OUT_IDLE_PATH: &str = "/app/signed-out?after=idle";

/// `POST /app/sign-out`: ends the session ([`signin::sign_out`], audited), clears the
/// cookie, and goes to the sign-in page (also when there was no session).
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    client: Client,
    session: Result<Session, AppError>,
    form: Result<Form<SignOutForm>, FormRejection>,
) -> Result<Response, WebError> {
    if let Ok(session) = session {
        signin::sign_out(&state, &client, session).await?;
    }
    let idle = form.is_ok_and(|Form(f)| f.reason.as_deref() == Some("idle"));
    let mut res = see_other(if idle {
        SIGNED_OUT_IDLE_PATH
    } else {
        crate::SIGN_IN_PATH
    });
    set_cookie(&mut res, signin::CLEARED_SESSION_COOKIE);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 17 — the secret shown for manual entry is the URI's.
    #[test]
    fn secret_and_svg_for_the_page() {
        assert_eq!(
            secret_of("otpauth://totp/Chartroom:a%40b?secret=ABC234&issuer=Chartroom"),
            "ABC234"
        );
        assert_eq!(secret_of("otpauth://totp/x"), "");
        assert_eq!(
            inline_svg("<?xml version=\"1.0\"?><svg x=\"1\"/>"),
            "<svg x=\"1\"/>"
        );
        assert_eq!(inline_svg("<script>"), "");
    }
}
