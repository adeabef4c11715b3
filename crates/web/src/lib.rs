//! Chartroom's web app: server-rendered pages for the people of a practice, served by the same
//! binary as the JSON API (`/api/v1`), under `/app`.
//!
//! Askama templates (in `templates/`, compiled into the binary) render what the handlers
//! read through the **same** extractors, sign-in steps and service steps as the API
//! ([`server::extract::Ctx`], [`server::signin`], [`server::actions`]: each store call with
//! its refusals and its audit event, one function both faces call): one service layer, two
//! faces. htmx (vendored, pinned, license kept) adds partial updates; a few small
//! hand-written modules do the rest. The build needs cargo only.
//!
//! # Guarantees
//! - **Same rules as the API.** Every practice page enters the practice through
//!   [`server::extract::Ctx`] with the privilege its handler names, so the session check,
//!   the second factor, membership (another practice is `404`), the role (`403`), denied-
//!   attempt auditing and the tenant transaction are the API's own. Every patient shown is
//!   audited in the read's transaction, as in the API.
//! - **Same input rules as the API.** Forms are checked by [`server::rules`], the functions
//!   the API's handlers call; a refused form answers `400` with each message next to its
//!   field (`aria-describedby`) and nothing changed.
//! - **Anonymous → sign-in.** A page that needs a session redirects (`303`) to
//!   [`SIGN_IN_PATH`]; a password-only session is sent to the second-factor step.
//! - **Strict CSP on every response** ([`CONTENT_SECURITY_POLICY`]): scripts and styles only
//!   from this origin (scripts also pinned by SRI `integrity`), no inline script, style or
//!   handler attributes, no plugins, no framing, no `<base>`, forms only to this origin,
//!   Trusted Types enforced, violations reported to [`CSP_REPORT_PATH`] (logged without PHI:
//!   the directive and the blocked resource's origin only; bodies over
//!   [`CSP_REPORT_MAX_BYTES`] refused).
//! - **Trusted Types and htmx.** htmx 2 turns response HTML into nodes with
//!   `DOMParser.parseFromString`, a Trusted Types sink, and does not create a policy itself.
//!   The only policy the CSP allows is `default`, created by `static/js/tt-policy.js` before
//!   htmx loads; it passes HTML through **for that parser only** (Chromium names the sink
//!   `DOMParser parseFromString` or `Document parseHTMLUnsafe`; a parsed document is inert,
//!   and htmx runs with `allowScriptTags:false` and `allowEval:false`) and refuses every other
//!   HTML sink and every script or script-URL conversion. The browser test proves both: the
//!   htmx search swaps rows with zero violations, and an `insertAdjacentHTML` is blocked.
//! - **No PHI in caches or URLs.** Pages are `Cache-Control: no-store` (except the public
//!   `/subprocessors` and `/trust` pages, which hold no PHI and may be cached for five
//!   minutes); htmx keeps no
//!   history cache (`historyCacheSize:0`); searches are `POST`, as in the API. Static assets
//!   are served under content-hashed URLs with `public, max-age=31536000, immutable`.
//! - **CSRF.** The session is the API's `__Host-` cookie (`Secure`, `HttpOnly`,
//!   `SameSite=Strict`, `Path=/`); on top of it every state-changing request (`POST`, `PUT`,
//!   `PATCH`, `DELETE`) must come from this origin by Fetch Metadata (`Sec-Fetch-Site:
//!   same-origin`) or, without it, by `Origin`; otherwise `403` before any handler runs.
//!   Fragment routes also require `HX-Request`. The passkey ceremonies' JSON posts
//!   (`static/js/passkey.js`, same-origin `fetch`) pass the same check; their refusals are
//!   the API's JSON error body, which the frame leaves as it is.
//! - **Passkeys with the browser's own parsers.** `passkey.js` hands the server's WebAuthn
//!   options to `PublicKeyCredential.parse…OptionsFromJSON` and posts `credential.toJSON()`;
//!   it writes text only (no HTML sink), so Trusted Types stay as strict as above.
//! - **Step-up where the API demands it.** Granting roles, inviting, approving support
//!   access and changing security settings need a second factor from the last few minutes
//!   (`AUTH-0004`), checked by the API's own `require_step_up`; when it is stale the form
//!   carries a code field, and the code is presented through the API's step-up
//!   ([`server::signin::present_totp`]: single use, throttled, audited, token rotated)
//!   before the change is attempted. Without it: `401`, the form again, nothing changed.
//! - **The idle timeout is the server's.** Every signed-in page carries the idle timeout the
//!   session check enforced for it (`app.enter` returns it); the page warns before it runs
//!   out, offers to stay signed in (a request like any other, so activity), and signs out
//!   when it has run out, so nothing stays on an unattended screen.
//! - Errors render a page with the stable code and the request id; 5xx pages say only
//!   "internal error".
//!
//! # Never
//! - A rule that lives only in a template: what a role may see is decided in the handlers
//!   (e.g. [`nav`]).
//! - `hx-on`, `style=`, `on…=` attributes or inline `<script>` in a template (a test scans
//!   them).
//!
//! # Example
//! ```no_run
//! # async fn f(state: server::AppState) -> std::io::Result<()> {
//! let app = web::router(state.clone(), server::Limits::default()).merge(server::app(state));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

mod assets;
mod error;
mod frame;
mod pages;
mod report;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use server::AppState;

pub use assets::{ASSET_PREFIX, Asset, Assets, assets};
pub use error::WebError;
pub use frame::{CONTENT_SECURITY_POLICY, same_origin_request};
pub use pages::nav;
pub use report::CSP_REPORT_MAX_BYTES;

/// Where the app lives.
pub const APP_PATH: &str = "/app";
/// The sign-in page.
pub const SIGN_IN_PATH: &str = "/app/sign-in";
/// The CSP violation report endpoint (`report-uri` and `report-to`).
pub const CSP_REPORT_PATH: &str = "/app/csp-report";

/// The web app's routes and layers, to merge beside [`server::app`] (its routes are under
/// `/app`, plus `/` redirecting there and the public `/subprocessors` and `/trust` pages; unknown `/app/…` paths get the web's own 404 page).
pub fn router(state: AppState, limits: server::Limits) -> Router {
    let app = Router::new()
        .route("/", get(pages::home::home))
        .route(
            "/sign-in",
            get(pages::auth::sign_in_page).post(pages::auth::sign_in),
        )
        .route(
            "/sign-in/second-factor",
            get(pages::auth::second_factor_page).post(pages::auth::second_factor),
        )
        .route(
            "/sign-in/enroll",
            get(pages::auth::enroll_page).post(pages::auth::enroll_begin),
        )
        .route("/sign-in/enroll/confirm", post(pages::auth::enroll_confirm))
        .route("/sign-out", post(pages::auth::sign_out))
        .route("/signed-out", get(pages::session::signed_out))
        .route("/session/keep-alive", post(pages::session::keep_alive))
        .route("/account", get(pages::account::account_page))
        .route(
            "/account/sessions/end-others",
            post(pages::account::sessions_end_others),
        )
        .route(
            "/account/sessions/{session_id}/end",
            post(pages::account::session_end),
        )
        .route("/account/password", post(pages::account::password_change))
        .route(
            "/practices/{practice_id}/patients",
            get(pages::patients::patients_page).post(pages::patients::patient_create),
        )
        .route(
            "/practices/{practice_id}/patients/new",
            get(pages::patients::patient_new_page),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}",
            get(pages::patients::patient_page).post(pages::patients::patient_update),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/delete",
            get(pages::patients::patient_delete_page).post(pages::patients::patient_delete),
        )
        .route(
            "/practices/{practice_id}/patients/search",
            post(pages::patients::patients_search),
        )
        .route(
            "/practices/{practice_id}/patients/search/rows",
            post(pages::patients::patients_search_rows),
        )
        .route(
            "/practices/{practice_id}/schedule",
            get(pages::schedule::week_page),
        )
        .route(
            "/practices/{practice_id}/schedule/day",
            get(pages::schedule::day_page),
        )
        .route(
            "/practices/{practice_id}/appointments",
            post(pages::schedule::appointment_create),
        )
        .route(
            "/practices/{practice_id}/appointments/new",
            get(pages::schedule::appointment_new_page).post(pages::schedule::appointment_find),
        )
        .route(
            "/practices/{practice_id}/appointments/{appointment_id}/move",
            get(pages::schedule::appointment_move_page).post(pages::schedule::appointment_move),
        )
        .route(
            "/practices/{practice_id}/appointments/{appointment_id}/cancel",
            get(pages::schedule::appointment_cancel_page).post(pages::schedule::appointment_cancel),
        )
        .merge(manage_routes())
        .merge(pages::chart::router())
        .merge(pages::perio::router())
        .merge(pages::scribe::router())
        .merge(pages::capture::router())
        .merge(pages::subprocessors::router())
        .merge(passkey_routes())
        .route("/static/{file}", get(assets::serve))
        .route(
            "/csp-report",
            post(report::csp_report).layer(DefaultBodyLimit::max(CSP_REPORT_MAX_BYTES)),
        )
        .fallback(|| async { WebError(server::AppError::NotFound("page")) });
    Router::new()
        .nest(APP_PATH, app)
        .merge(public_routes(state.clone()))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to(APP_PATH) }),
        )
        .route("/subprocessors", get(pages::subprocessors::public_page))
        .layer(DefaultBodyLimit::max(server::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(limits, frame::frame))
        .with_state(state)
}

/// Passkeys and recovery codes (issue 17): sign-in with a passkey, a passkey or a recovery
/// code as the second factor, and the user's own second factors on My account. The ceremony
/// routes (`…/begin`, `…/finish`) take and answer JSON, posted by `static/js/passkey.js`.
fn passkey_routes() -> Router<AppState> {
    use pages::passkeys as p;
    Router::new()
        .route("/sign-in/passkey/begin", post(p::sign_in_begin))
        .route("/sign-in/passkey/finish", post(p::sign_in_finish))
        .route(
            "/sign-in/second-factor/passkey/begin",
            post(p::second_factor_begin),
        )
        .route(
            "/sign-in/second-factor/passkey/finish",
            post(p::second_factor_finish),
        )
        .route(
            "/sign-in/recovery",
            get(p::recovery_page).post(p::recovery_sign_in),
        )
        .route("/account/passkeys/begin", post(p::register_begin))
        .route("/account/passkeys/finish", post(p::register_finish))
        .route("/account/passkeys/{credential_id}/remove", post(p::remove))
        .route("/account/recovery-codes", post(p::recovery_regenerate))
        .route("/account/confirm", post(p::confirm))
}

/// The owner and admin screens (issue 17.6), each behind the API's privilege in its handler
/// (`Manage`; the accounting of disclosures, like the API's, `Scheduling`).
/// The online-booking screens: the setup (owners and admins), the requests (clinicians and
/// reception), the outbox of messages to clients and the templates preview (reception,
/// owners and admins).
fn booking_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/practices/{practice_id}/booking",
            get(pages::booking::setup_page),
        )
        .route(
            "/practices/{practice_id}/booking/settings",
            post(pages::booking::settings_save),
        )
        .route(
            "/practices/{practice_id}/booking/services",
            post(pages::booking::service_add),
        )
        .route(
            "/practices/{practice_id}/booking/hours/{user_id}",
            post(pages::booking::hours_save),
        )
        .route(
            "/practices/{practice_id}/outbox",
            get(pages::outbox::outbox_page),
        )
        .route(
            "/practices/{practice_id}/waitlist",
            get(pages::waitlist::waitlist_page).post(pages::waitlist::waitlist_add),
        )
        .route(
            "/practices/{practice_id}/waitlist/{entry_id}/remove",
            post(pages::waitlist::waitlist_remove),
        )
        .route(
            "/practices/{practice_id}/templates",
            get(pages::outbox::templates_page),
        )
        .route(
            "/practices/{practice_id}/booking/requests",
            get(pages::booking::requests_page),
        )
        .route(
            "/practices/{practice_id}/booking/requests/{booking_id}/{decision}",
            post(pages::booking::decide),
        )
}

/// Intake forms (issue 19): a patient's requests, the review queue, one form, the decision
/// (clinicians and reception).
fn intake_routes() -> Router<AppState> {
    use pages::intake as i;
    Router::new()
        .route(
            "/practices/{practice_id}/patients/{patient_id}/intake",
            get(i::patient_page).post(i::request_create),
        )
        .route("/practices/{practice_id}/intake", get(i::queue_page))
        .route(
            "/practices/{practice_id}/intake/{request_id}",
            get(i::review_page),
        )
        .route(
            "/practices/{practice_id}/intake/{request_id}/{decision}",
            post(i::decide),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/links/{link_id}/revoke",
            post(i::link_revoke),
        )
}

/// The public client pages' limit per address ([`server::extract::admit_public_client`], the
/// sign-in throttle's mechanism): `429` with `Retry-After` and a page saying how long to wait.
async fn public_limit(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut parts, body) = req.into_parts();
    match server::extract::admit_public_client(&mut parts, &state).await {
        Ok(_) => {
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(server::AppError::Throttled(secs)) => pages::intake::wait_page(secs),
        Err(e) => axum::response::IntoResponse::into_response(WebError(e)),
    }
}

/// The public pages clients reach without an account (a practice's booking page, an intake
/// link), outside `/app`, under the same frame (CSP, same-origin posts) and limited per client
/// address ([`public_limit`]).
fn public_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/trust", get(pages::trust::public_page))
        .route(
            "/intake/{token}",
            get(pages::intake::form).post(pages::intake::submit),
        )
        .route("/offer/{token}", get(pages::offer::offer_page))
        .route("/offer/{token}/accept", post(pages::offer::accept))
        .route("/manage/{token}", get(pages::manage::manage_page))
        .route("/manage/{token}/confirm", post(pages::manage::confirm))
        .route("/manage/{token}/cancel", post(pages::manage::cancel))
        .route(
            "/manage/{token}/reschedule",
            get(pages::manage::times_page).post(pages::manage::reschedule),
        )
        .route("/pay/{token}", get(pages::pay::pay_page))
        .route("/book/{practice_id}", get(pages::book::services_page))
        .route(
            "/book/{practice_id}/services/{service_id}",
            get(pages::book::times_page),
        )
        .route(
            "/book/{practice_id}/services/{service_id}/at/{start}",
            get(pages::book::details_page).post(pages::book::book),
        )
        .route(
            "/book/{practice_id}/services/{service_id}/waitlist",
            get(pages::book::waitlist_page).post(pages::book::waitlist_join),
        )
        .route("/waitlist/{token}", get(pages::waitlist_link::entry_page))
        .route("/waitlist/{token}/leave", post(pages::waitlist_link::leave))
        .layer(axum::middleware::from_fn_with_state(state, public_limit))
}

/// The incident screens (owners and admins): the list and its form, an incident's page and
/// its forms (status and notes, assessment, scoping, letters, closing).
fn incident_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/practices/{practice_id}/incidents",
            get(pages::incidents::incidents_page).post(pages::incidents::incident_create),
        )
        .route(
            "/practices/{practice_id}/incidents/{incident_id}",
            get(pages::incidents::incident_page),
        )
        .route(
            "/practices/{practice_id}/incidents/{incident_id}/update",
            post(pages::incidents::incident_update),
        )
        .route(
            "/practices/{practice_id}/incidents/{incident_id}/assessment",
            post(pages::incidents::incident_assess),
        )
        .route(
            "/practices/{practice_id}/incidents/{incident_id}/scope",
            post(pages::incidents::incident_scope),
        )
        .route(
            "/practices/{practice_id}/incidents/{incident_id}/letters",
            post(pages::incidents::incident_letter),
        )
        .route(
            "/practices/{practice_id}/incidents/{incident_id}/close",
            post(pages::incidents::incident_close),
        )
}

fn manage_routes() -> Router<AppState> {
    booking_routes()
        .merge(intake_routes())
        .merge(incident_routes())
        .merge(pages::requests::router())
        .route(
            "/practices/{practice_id}/patients/{patient_id}/disclosures",
            get(pages::disclosures::disclosures_page).post(pages::disclosures::disclosure_create),
        )
        .route(
            "/practices/{practice_id}/retention",
            get(pages::retention::retention_page),
        )
        .route(
            "/practices/{practice_id}/legal-holds",
            post(pages::retention::hold_place),
        )
        .route(
            "/practices/{practice_id}/legal-holds/{patient_id}/release",
            post(pages::retention::hold_release),
        )
        .route(
            "/practices/{practice_id}/break-glass",
            get(pages::break_glass::review_page),
        )
        .route(
            "/practices/{practice_id}/break-glass/{grant_id}/acknowledge",
            post(pages::break_glass::acknowledge),
        )
        .route(
            "/practices/{practice_id}/settings",
            get(pages::settings::settings_page).post(pages::settings::practice_update),
        )
        .route(
            "/practices/{practice_id}/settings/security",
            post(pages::settings::security_update),
        )
        .route(
            "/practices/{practice_id}/members",
            get(pages::members::members_page),
        )
        .route(
            "/practices/{practice_id}/members/{user_id}",
            get(pages::members::member_page).post(pages::members::member_update),
        )
        .route(
            "/practices/{practice_id}/members/{user_id}/remove",
            get(pages::members::member_remove_page).post(pages::members::member_remove),
        )
        .route(
            "/practices/{practice_id}/invitations",
            post(pages::members::invitation_create),
        )
        .route(
            "/practices/{practice_id}/invitations/{invitation_id}/revoke",
            post(pages::members::invitation_revoke),
        )
        .route(
            "/practices/{practice_id}/support",
            get(pages::support::support_page),
        )
        .route(
            "/practices/{practice_id}/support-grants",
            post(pages::support::support_grant_create),
        )
        .route(
            "/practices/{practice_id}/support-grants/{grant_id}/revoke",
            post(pages::support::support_grant_revoke),
        )
        .route(
            "/practices/{practice_id}/ai-providers",
            get(pages::providers::providers_page).post(pages::providers::provider_register),
        )
        .route(
            "/practices/{practice_id}/ai-providers/{provider_id}",
            post(pages::providers::provider_change),
        )
        .route(
            "/practices/{practice_id}/audit",
            get(pages::audit::audit_page),
        )
        .route(
            "/practices/{practice_id}/audit/fhir",
            get(pages::audit::audit_fhir),
        )
}
