//! `/app`: who you are and the practices you belong to, each with the entries its role
//! opens; for owners and admins, the recent subprocessor notices
//! ([`super::subprocessors::home_notices`]) with their effective dates.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use domain::{Privilege, RoleSet};
use server::AppState;
use server::subprocessors::PublishedChange;

use super::{Chrome, NavItem, SignedIn, html, nav};
use crate::{Assets, WebError, assets};

/// One practice on the home page.
pub(crate) struct PracticeEntry {
    name: String,
    nav: Vec<NavItem>,
}

/// The home page.
#[derive(Template)]
#[template(path = "home.html")]
pub(crate) struct HomePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practices: Vec<PracticeEntry>,
    /// Recent subprocessor changes (owners and admins only; empty otherwise).
    notices: Vec<PublishedChange>,
    /// The notices screen of the first practice the user manages.
    notices_href: Option<String>,
}

/// `GET /app` (second factor done, else redirected to it).
pub(crate) async fn home(
    State(state): State<AppState>,
    SignedIn(mut session): SignedIn,
) -> Result<Response, WebError> {
    session.require_mfa()?;
    let (_, user) = session.tx.profile().await?;
    let mine = session.tx.my_practices().await?;
    session.tx.commit().await?;
    let recording = super::recording_probe(&mine);
    // Decided here, not in the template: only owners and admins see the notices.
    let notices_href = mine
        .iter()
        .find(|p| Privilege::Manage.allows(RoleSet::parse(&p.roles).unwrap_or_default()))
        .map(|p| format!("/app/practices/{}/notices", p.practice_id));
    let notices = match notices_href {
        Some(_) => super::subprocessors::home_notices(&state).await?,
        None => Vec::new(),
    };
    let practices = mine
        .into_iter()
        .map(|p| PracticeEntry {
            nav: nav(p.practice_id, RoleSet::parse(&p.roles).unwrap_or_default()),
            name: p.name,
        })
        .collect();
    html(&HomePage {
        assets: assets(),
        chrome: Some(Chrome {
            user,
            practice: None,
            nav: Vec::new(),
            switch: Vec::new(),
            idle_seconds: Some(session.auth.idle.num_seconds()),
            recording,
        }),
        practices,
        notices,
        notices_href,
    })
}
