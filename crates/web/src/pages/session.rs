//! The session's idle timeout in the browser (issue 17.7): every signed-in page carries the
//! idle timeout the session check enforces there (`data-idle-seconds`, from `app.enter`), the
//! page script warns before it runs out and offers to stay signed in (`POST
//! /app/session/keep-alive`, which is a request like any other and so counts as activity), and
//! when it has run out the page signs out and says why (`/app/signed-out`), so no patient data
//! stays on an unattended screen.

use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Chrome, SignedIn, html};
use crate::{Assets, WebError, assets};

/// `POST /app/session/keep-alive`: the session check itself records the activity (at most
/// once per `SessionPolicy::activity_granularity`); nothing else is read or written. `204`.
pub(crate) async fn keep_alive(SignedIn(session): SignedIn) -> Result<Response, WebError> {
    session.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Why the user was signed out, from the sign-out redirect.
#[derive(Deserialize)]
pub(crate) struct SignedOutQuery {
    /// `idle`: the page signed out after the idle timeout.
    #[serde(default)]
    after: Option<String>,
}

/// The signed-out page.
#[derive(Template)]
#[template(path = "signed_out.html")]
pub(crate) struct SignedOutPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    idle: bool,
}

/// `GET /app/signed-out`: says the session has ended (and, after the idle timeout, why).
pub(crate) async fn signed_out(Query(q): Query<SignedOutQuery>) -> Result<Response, WebError> {
    html(&SignedOutPage {
        assets: assets(),
        chrome: None,
        idle: q.after.as_deref() == Some("idle"),
    })
}
