//! The one error type of the pages: an [`AppError`] shown as a page, or a redirect to the
//! sign-in step it calls for.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use server::AppError;

/// An error as the pages answer it. [`AppError::Unauthenticated`] redirects (`303`) to the
/// sign-in page and [`AppError::MfaRequired`] to the second-factor step; every other error is
/// its status with an error page (rendered by the frame, which adds the request id) showing
/// the stable code and the message (5xx: "internal error" only).
#[derive(Debug)]
pub struct WebError(pub AppError);

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<store::StoreError> for WebError {
    fn from(e: store::StoreError) -> Self {
        Self(e.into())
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        Self(AppError::Internal(format!("template: {e}")))
    }
}

/// What the frame renders as the error page (kept on the response).
#[derive(Clone, Debug)]
pub(crate) struct PageError {
    pub code: &'static str,
    pub message: String,
}

pub(crate) fn see_other(location: &'static str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    res
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self.0 {
            AppError::Unauthenticated => see_other(crate::SIGN_IN_PATH),
            AppError::MfaRequired => see_other("/app/sign-in/second-factor"),
            e => {
                let code = e.code();
                let message = e.to_string();
                // Logs the cause of a 5xx (inside the request span), keeps the body generic.
                let mut res = e.into_response();
                res.extensions_mut().insert(PageError { code, message });
                res
            }
        }
    }
}
