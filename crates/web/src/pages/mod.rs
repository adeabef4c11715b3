//! Page handlers, their templates, and the extractors that wrap the API's own guards so a
//! refusal answers as a page (or a redirect to sign-in) instead of JSON.

pub(crate) mod auth;
pub(crate) mod home;
pub(crate) mod patients;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use domain::{PracticeId, Privilege, RoleSet};
use server::AppState;
use server::extract::{Ctx, Guard, Session};

use crate::{Assets, WebError};

/// A signed-in user, second factor or not ([`Session`], the API's own check); anonymous
/// requests are redirected to sign-in.
pub(crate) struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        Ok(Self(Session::from_request_parts(parts, state).await?))
    }
}

/// A member of the practice in the path holding `G`'s privilege, checked by the API's
/// [`Ctx`] extractor (session, second factor, membership → 404, role → 403, audited
/// denials), answered as pages.
pub(crate) struct Member<G: Guard>(pub Ctx<G>);

impl<G: Guard> FromRequestParts<AppState> for Member<G> {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        Ok(Self(Ctx::<G>::from_request_parts(parts, state).await?))
    }
}

/// A request made by htmx (`HX-Request: true`), which fragment routes require (`400`
/// otherwise, before anything is read).
pub(crate) struct Fragment;

impl<S: Send + Sync> FromRequestParts<S> for Fragment {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        if parts
            .headers
            .get("hx-request")
            .is_some_and(|v| v.as_bytes() == b"true")
        {
            Ok(Self)
        } else {
            Err(WebError(server::AppError::Invalid(
                "this address serves page fragments only".into(),
            )))
        }
    }
}

/// A link in the practice menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavItem {
    /// The text.
    pub label: &'static str,
    /// The target.
    pub href: String,
}

/// The practice menu for `roles`: only what the role may open, decided here and not in a
/// template. Reception and clinicians get the patients list; owners and admins, whose
/// screens come later, get nothing yet; no clinical entry exists for anyone yet.
#[must_use]
pub fn nav(practice: PracticeId, roles: RoleSet) -> Vec<NavItem> {
    let mut items = Vec::new();
    if Privilege::Scheduling.allows(roles) {
        items.push(NavItem {
            label: "Patients",
            href: format!("/app/practices/{practice}/patients"),
        });
    }
    items
}

/// Who and where: shown in every signed-in page's header.
#[derive(Debug)]
pub(crate) struct Chrome {
    /// The signed-in user's display name.
    pub user: String,
    /// The practice the page is in, when it is in one: its id and name.
    pub practice: Option<(PracticeId, String)>,
    /// The practice menu.
    pub nav: Vec<NavItem>,
}

/// The error page (rendered by the frame, which knows the request id).
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub assets: &'static Assets,
    pub status: u16,
    pub reason: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub request_id: String,
    /// Always `None`: no session lookup on an error path.
    pub chrome: Option<Chrome>,
}

/// Renders `t` as an HTML response.
pub(crate) fn html(t: &impl Template) -> Result<Response, WebError> {
    Ok(Html(t.render()?).into_response())
}
