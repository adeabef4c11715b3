//! Page handlers, their templates, and the extractors that wrap the API's own guards so a
//! refusal answers as a page (or a redirect to sign-in) instead of JSON.

pub(crate) mod account;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod book;
pub(crate) mod booking;
pub(crate) mod break_glass;
pub(crate) mod capture;
pub(crate) mod chart;
pub(crate) mod disclosures;
pub(crate) mod home;
pub(crate) mod incidents;
pub(crate) mod intake;
pub(crate) mod manage;
pub(crate) mod members;
pub(crate) mod offer;
pub(crate) mod outbox;
pub(crate) mod passkeys;
pub(crate) mod patients;
pub(crate) mod pay;
pub(crate) mod perio;
pub(crate) mod providers;
pub(crate) mod requests;
pub(crate) mod retention;
pub(crate) mod schedule;
pub(crate) mod scribe;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod step_up;
pub(crate) mod subprocessors;
pub(crate) mod support;
pub(crate) mod trust;
pub(crate) mod waitlist;
pub(crate) mod waitlist_link;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use std::str::FromStr;

use domain::values::ValueError;
use domain::{PracticeId, Privilege, RoleSet};
use server::AppState;
use server::extract::{Ctx, Guard, Session};
use store::TenantTx;

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
/// template. Reception and clinicians (the API's scheduling privilege) get the patients list
/// and the schedule; owners and admins (the API's manage privilege) get their screens
/// (members, …); clinicians, owners and admins get patients' requests (the API's
/// patient-rights routes; never reception); no clinical entry exists for anyone yet.
#[must_use]
pub fn nav(practice: PracticeId, roles: RoleSet) -> Vec<NavItem> {
    let mut items = Vec::new();
    if Privilege::Scheduling.allows(roles) {
        items.push(NavItem {
            label: "Patients",
            href: format!("/app/practices/{practice}/patients"),
        });
        items.push(NavItem {
            label: "Schedule",
            href: format!("/app/practices/{practice}/schedule"),
        });
        items.push(NavItem {
            label: "Booking requests",
            href: format!("/app/practices/{practice}/booking/requests"),
        });
        items.push(NavItem {
            label: "Intake review",
            href: format!("/app/practices/{practice}/intake"),
        });
    }
    if Privilege::Manage.allows(roles) {
        for (label, page) in MANAGE_PAGES {
            items.push(NavItem {
                label,
                href: format!("/app/practices/{practice}/{page}"),
            });
        }
    }
    // Patients' requests: owners, admins and clinicians (the API's patient-rights routes).
    if Privilege::Clinical.allows(roles) || Privilege::Manage.allows(roles) {
        items.push(NavItem {
            label: "Patient requests",
            href: format!("/app/practices/{practice}/requests"),
        });
    }
    if roles.contains(domain::Role::Reception) || Privilege::Manage.allows(roles) {
        items.push(NavItem {
            label: "Outbox",
            href: format!("/app/practices/{practice}/outbox"),
        });
        items.push(NavItem {
            label: "Waitlist",
            href: format!("/app/practices/{practice}/waitlist"),
        });
    }
    items
}

/// The owner and admin screens (the API's `Manage` privilege): menu label and path.
const MANAGE_PAGES: [(&str, &str); 11] = [
    ("Members", "members"),
    ("Settings", "settings"),
    ("Online booking", "booking"),
    ("Support access", "support"),
    ("AI providers", "ai-providers"),
    ("Audit log", "audit"),
    ("Break-glass review", "break-glass"),
    ("Retention", "retention"),
    ("Incidents", "incidents"),
    ("Scribe", "scribe"),
    ("Notices", "notices"),
];

/// The header of a practice page: the practice's name and the actor's display name.
pub(crate) async fn chrome(tx: &mut TenantTx) -> Result<Chrome, WebError> {
    let practice = store::practices::get(tx).await?;
    let user = store::practices::actor_display_name(tx).await?;
    let mine = store::practices::actor_practices(tx).await?;
    let switch = if mine.len() > 1 {
        mine.into_iter()
            .map(|p| PracticeLink {
                current: p.practice_id == practice.practice_id,
                href: landing(p.practice_id, &p.roles),
                name: p.name,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Chrome {
        user,
        switch,
        nav: nav(practice.practice_id, tx.roles()),
        practice: Some((practice.practice_id, practice.name)),
        idle_seconds: tx.session_idle().map(|d| d.num_seconds()),
        recording: recording(tx).await?,
    })
}

/// An id from the path; a malformed one is unknown (`404`), as in the API.
pub(crate) fn path_id<T: FromStr>(raw: &str, what: &'static str) -> Result<T, WebError> {
    raw.parse()
        .map_err(|_| WebError(server::AppError::NotFound(what)))
}

/// The messages of a form that was refused, by field (the field's `id` in the page). Each is
/// shown next to its field and tied to it with `aria-describedby`; nothing was changed.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    /// Records `message` for `field` (the first message per field is kept).
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        if self.get(field).is_none() {
            self.0.push((field, message.into()));
        }
    }

    /// Records a rule's refusal for `field`, labelled `label` ("Phone: not a valid …").
    pub fn refused(&mut self, field: &'static str, label: &str, e: &ValueError) {
        self.add(field, format!("{label}: {}.", e.rule));
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Whether nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `Some(trimmed)` for a filled form field, `None` for an empty one.
pub(crate) fn filled(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

/// A `303 See Other` to a page of the app (after a successful form post).
pub(crate) fn redirect(location: &str) -> Response {
    let mut res = axum::http::StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(location) {
        res.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    res
}

/// Renders `t` as an HTML response with `status` (a refused form is `400`).
pub(crate) fn html_status(
    status: axum::http::StatusCode,
    t: &impl Template,
) -> Result<Response, WebError> {
    let mut res = html(t)?;
    *res.status_mut() = status;
    Ok(res)
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
    /// The user's practices, to switch between (empty unless there is more than one).
    pub switch: Vec<PracticeLink>,
    /// How long the session may stay idle here, in seconds (what the session check enforces):
    /// the page warns before it ends. `None` shows no warning.
    pub idle_seconds: Option<i64>,
    /// The live recording indicator, for clinicians (`None`: no indicator on this page).
    pub recording: Option<Recording>,
}

/// The live recording indicator's first paint (kept current by `static/js/indicator.js`).
#[derive(Debug)]
pub(crate) struct Recording {
    /// The state endpoint the script polls (the API's `…/me/capture`).
    pub src: String,
    /// `live`, `paused` or `none`.
    pub state: &'static str,
    /// Recorded time so far (ms).
    pub elapsed_ms: i64,
    /// The same as `mm:ss`.
    pub elapsed: String,
    /// Whether the script asks the server at once (pages outside a practice, whose first
    /// paint cannot read a practice's captures).
    pub probe: bool,
}

/// The indicator of a page outside any practice (home, account): the state endpoint of the
/// first practice where the user is a clinician, asked by the script as the page loads.
pub(crate) fn recording_probe(mine: &[store::practices::MyPractice]) -> Option<Recording> {
    mine.iter()
        .find(|p| RoleSet::parse(&p.roles).is_ok_and(|r| Privilege::Clinical.allows(r)))
        .map(|p| Recording {
            src: format!("/api/v1/practices/{}/me/capture", p.practice_id),
            state: "none",
            elapsed_ms: 0,
            elapsed: clock(0),
            probe: true,
        })
}

/// `mm:ss` (or `h:mm:ss`) of `ms`.
pub(crate) fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// The indicator's state for the actor in this practice: clinicians only (the API's clinical
/// privilege; the state endpoint is theirs), read from the server's capture state (ids and
/// times only, not audited).
pub(crate) async fn recording(tx: &mut TenantTx) -> Result<Option<Recording>, WebError> {
    if !Privilege::Clinical.allows(tx.roles()) {
        return Ok(None);
    }
    let now = tx.now();
    let open = server::actions::capture::live_capture(tx).await?;
    let elapsed_ms = open.map_or(0, |c| c.elapsed_ms_at(now));
    Ok(Some(Recording {
        src: format!("/api/v1/practices/{}/me/capture", tx.practice()),
        state: open.map_or("none", |c| c.state.as_str()),
        elapsed_ms,
        elapsed: clock(elapsed_ms),
        probe: false,
    }))
}

/// A practice in the header's switcher.
#[derive(Debug)]
pub(crate) struct PracticeLink {
    /// The practice's name.
    pub name: String,
    /// Its first page for the user's roles there.
    pub href: String,
    /// Whether it is the practice of the page.
    pub current: bool,
}

/// The first page `roles` open in `practice` (its first menu entry), or the home page's list
/// when none does.
fn landing(practice: PracticeId, roles: &[String]) -> String {
    let roles = RoleSet::parse(roles).unwrap_or_default();
    nav(practice, roles)
        .into_iter()
        .next()
        .map_or_else(|| crate::APP_PATH.to_owned(), |i| i.href)
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

/// One input of a form, with its label, its value as typed and its refusal, rendered by
/// `fields.html` (the message is tied to the input with `aria-describedby`).
#[derive(Debug)]
pub(crate) struct Field {
    /// The input's `id` and `name`.
    pub id: &'static str,
    /// The label.
    pub label: &'static str,
    /// The input `type`.
    pub kind: &'static str,
    /// The value.
    pub value: String,
    /// Further attributes (fixed text from the code, never user input).
    pub attrs: &'static str,
    /// Why the value was refused.
    pub error: Option<String>,
}

impl Field {
    /// A field named `id` with `value` and the refusal recorded for it in `errors`.
    pub fn new(
        id: &'static str,
        label: &'static str,
        kind: &'static str,
        value: &str,
        errors: &FieldErrors,
    ) -> Self {
        Self {
            id,
            label,
            kind,
            value: value.to_owned(),
            attrs: "",
            error: errors.get(id).map(str::to_owned),
        }
    }

    /// With further attributes.
    #[must_use]
    pub fn attrs(mut self, attrs: &'static str) -> Self {
        self.attrs = attrs;
        self
    }

    /// The id of the message that describes the input, when it was refused.
    pub fn describedby(&self) -> Option<String> {
        self.error.as_ref().map(|_| format!("{}-error", self.id))
    }
}

#[cfg(test)]
mod tests {
    use domain::Role;

    use super::*;

    // issue 17 — the menu holds what the role may open under the API's privileges: patients
    // and the schedule for reception and clinicians (scheduling), the owner and admin screens
    // for owners and admins (manage) only, patients' requests for clinicians, owners and
    // admins (never reception), the outbox for reception, owners and admins, nothing clinical
    // for anyone.
    #[test]
    fn the_menu_follows_the_scheduling_privilege() {
        let p = PracticeId::new();
        let manage: Vec<&str> = MANAGE_PAGES
            .iter()
            .map(|(l, _)| *l)
            .chain(["Patient requests", "Outbox", "Waitlist"])
            .collect();
        let front_desk = vec![
            "Patients",
            "Schedule",
            "Booking requests",
            "Intake review",
            "Outbox",
            "Waitlist",
        ];
        for (roles, want) in [
            (vec![Role::Reception], front_desk.clone()),
            (
                vec![Role::Clinician],
                vec![
                    "Patients",
                    "Schedule",
                    "Booking requests",
                    "Intake review",
                    "Patient requests",
                ],
            ),
            (vec![Role::Owner], manage.clone()),
            (vec![Role::Admin], manage.clone()),
            (
                vec![Role::Owner, Role::Reception],
                [
                    vec!["Patients", "Schedule", "Booking requests", "Intake review"],
                    manage.clone(),
                ]
                .concat(),
            ),
            (vec![], vec![]),
        ] {
            let items = nav(p, roles.iter().copied().collect());
            let labels: Vec<&str> = items.iter().map(|i| i.label).collect();
            assert_eq!(labels, want, "{roles:?}");
            for i in &items {
                assert!(i.href.starts_with(&format!("/app/practices/{p}/")), "{i:?}");
            }
        }
    }

    // issue 17 — a refused field keeps its first message and is described by it.
    #[test]
    fn refused_fields_are_described_by_their_message() {
        let mut errors = FieldErrors::default();
        assert!(errors.is_empty());
        errors.refused("phone", "Phone", &ValueError::new("phone", "is too long"));
        errors.add("phone", "a second message");
        assert_eq!(errors.get("phone"), Some("Phone: is too long."));
        assert_eq!(errors.get("email"), None);
        let refused = Field::new("phone", "Phone", "tel", "5550", &errors);
        assert_eq!(refused.describedby().as_deref(), Some("phone-error"));
        let fine = Field::new("email", "Email", "email", "", &errors);
        assert_eq!(fine.describedby(), None);
        assert_eq!(filled("  "), None);
        assert_eq!(filled(" a "), Some("a"));
    }
}
