//! `/app`: who you are and the practices you belong to, each with the entries its role
//! opens.

use askama::Template;
use axum::response::Response;
use domain::RoleSet;

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
}

/// `GET /app` (second factor done, else redirected to it).
pub(crate) async fn home(SignedIn(mut session): SignedIn) -> Result<Response, WebError> {
    session.require_mfa()?;
    let (_, user) = session.tx.profile().await?;
    let mine = session.tx.my_practices().await?;
    session.tx.commit().await?;
    let recording = super::recording_probe(&mine);
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
    })
}
