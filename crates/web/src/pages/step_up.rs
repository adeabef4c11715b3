//! Step-up on a form: the re-authentication the API demands (`AUTH-0004`, a second factor
//! within the last few minutes) for granting roles, approving support access and changing
//! security settings, done inside the form that needs it.
//!
//! A page whose change needs a step-up asks the API's own check ([`Ctx::require_step_up`])
//! when it renders: if the last second factor is too old, the form carries one more field,
//! `code`, for the code from the authenticator app ([`StepUpField`]). The post is taken by
//! [`StepUp`], which — when a code came with it — first presents it exactly as the API's
//! step-up route does ([`server::signin::present_totp`]: single use, throttled, audited, the
//! session token rotated) and only then enters the practice through the API's [`Ctx`] with
//! the new token; the handler then asks [`Ctx::require_step_up`] as the API's handler does.
//! A missing or refused code answers `401` with the form again, what was typed kept, and
//! nothing changed. The new session cookie rides on whatever response the request ends in
//! ([`Renewed::attach`]), so a refused change does not sign the user out.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use server::extract::{Ctx, Guard, SESSION_COOKIE, Session};
use server::identity::Client;
use server::{AppError, AppState};
use zeroize::Zeroizing;

use crate::WebError;

/// The step-up field of a form, when the form needs one now.
#[derive(Debug)]
pub(crate) struct StepUpField {
    /// Whether the code must come with the form (the last second factor is too old).
    pub needed: bool,
    /// Why an earlier code or post was refused.
    pub error: Option<String>,
}

impl StepUpField {
    /// The field as the API's check decides it for `ctx` now.
    pub fn for_ctx<G: Guard>(ctx: &Ctx<G>, state: &AppState) -> Self {
        Self {
            needed: ctx.require_step_up(state).is_err(),
            error: None,
        }
    }

    /// The field after a post refused for want of a fresh second factor.
    pub fn refused(error: Option<String>) -> Self {
        Self {
            needed: true,
            error: Some(error.unwrap_or_else(|| {
                "Enter the code from your authenticator app to confirm this change.".to_owned()
            })),
        }
    }
}

/// The new session cookie after a step-up (none when no code came with the post).
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Renewed(Option<HeaderValue>);

impl Renewed {
    /// `res` (or the error page), carrying the new session cookie.
    pub fn attach(self, res: Result<Response, WebError>) -> Response {
        let mut res = res.into_response();
        if let Some(v) = self.0 {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }
}

/// A form post to a change that needs a step-up: the code presented (when one came), then
/// the member of the practice holding `G` (the API's [`Ctx`]), then the form `F`.
pub(crate) struct StepUp<G: Guard, F> {
    /// The practice, entered with the (possibly renewed) session.
    pub ctx: Ctx<G>,
    /// The form (the `code` field is not part of it).
    pub form: F,
    /// The new cookie, to attach to the response.
    pub renewed: Renewed,
    /// The API's message when a code came and was refused.
    pub code_error: Option<String>,
}

#[derive(Deserialize)]
struct CodeOnly {
    #[serde(default)]
    code: String,
}

async fn form_of<T: DeserializeOwned>(bytes: &axum::body::Bytes) -> Result<T, WebError> {
    let req = Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(bytes.clone()))
        .map_err(|e| WebError(AppError::Internal(e.to_string())))?;
    axum::Form::<T>::from_request(req, &())
        .await
        .map(|f| f.0)
        .map_err(|_| {
            WebError(AppError::Invalid(
                "the form is incomplete or malformed".into(),
            ))
        })
}

/// The body of a step-up form post, and the code in it presented on the session (the
/// request's cookie replaced by the new token when the code was accepted).
async fn present_code(
    req: Request,
    state: &AppState,
) -> Result<(Parts, axum::body::Bytes, Renewed, Option<String>), Response> {
    let (mut parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, server::MAX_BODY_BYTES)
        .await
        .map_err(|_| WebError(AppError::TooLarge).into_response())?;
    let code = Zeroizing::new(
        form_of::<CodeOnly>(&bytes)
            .await
            .map_err(IntoResponse::into_response)?
            .code,
    );
    let mut renewed = Renewed::default();
    let mut code_error = None;
    if !code.trim().is_empty() {
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| WebError(e).into_response())?;
        let client = Client::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| WebError(e).into_response())?;
        match server::signin::present_totp(state, &client, session, code.trim()).await {
            Ok(s) => {
                let max_age = (s.expires_at - state.clock.now()).num_seconds();
                let cookie = server::signin::session_cookie(&s.token, max_age);
                renewed = Renewed(HeaderValue::from_str(&cookie).ok());
                let presented = format!("{SESSION_COOKIE}={}", s.token.expose());
                let v = HeaderValue::from_str(&presented)
                    .map_err(|e| WebError(AppError::Internal(e.to_string())).into_response())?;
                parts.headers.remove(header::COOKIE);
                parts.headers.insert(header::COOKIE, v);
            }
            Err(e @ (AppError::SecondFactorFailed | AppError::Throttled(_))) => {
                code_error = Some(format!("{e}."));
            }
            Err(e) => return Err(WebError(e).into_response()),
        }
    }
    Ok((parts, bytes, renewed, code_error))
}

impl<G: Guard, F: DeserializeOwned + Send> FromRequest<AppState> for StepUp<G, F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, bytes, renewed, code_error) = present_code(req, state).await?;
        let ctx = match Ctx::<G>::from_request_parts(&mut parts, state).await {
            Ok(ctx) => ctx,
            Err(e) => return Err(renewed.attach(Err(WebError(e)))),
        };
        let form = match form_of::<F>(&bytes).await {
            Ok(f) => f,
            Err(e) => return Err(renewed.attach(Err(e))),
        };
        Ok(Self {
            ctx,
            form,
            renewed,
            code_error,
        })
    }
}

/// A form post to a change of the user's own account that needs a step-up: as [`StepUp`],
/// with the signed-in [`Session`] (outside any practice) in place of a practice.
pub(crate) struct StepUpSession<F> {
    /// The (possibly renewed) session.
    pub session: Session,
    /// The form (the `code` field is not part of it).
    pub form: F,
    /// The new cookie, to attach to the response.
    pub renewed: Renewed,
    /// The API's message when a code came and was refused.
    pub code_error: Option<String>,
}

impl<F: DeserializeOwned + Send> FromRequest<AppState> for StepUpSession<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, bytes, renewed, code_error) = present_code(req, state).await?;
        let session = match Session::from_request_parts(&mut parts, state).await {
            Ok(s) => s,
            Err(e) => return Err(renewed.attach(Err(WebError(e)))),
        };
        let form = match form_of::<F>(&bytes).await {
            Ok(f) => f,
            Err(e) => return Err(renewed.attach(Err(e))),
        };
        Ok(Self {
            session,
            form,
            renewed,
            code_error,
        })
    }
}
