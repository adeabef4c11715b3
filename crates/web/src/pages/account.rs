//! `/app/account` (issue 17): the signed-in user's own account, outside any practice — their
//! live sessions (end one, end all others), their second factors as the API reports them,
//! and the password change. Every change goes through the API's own steps
//! ([`server::signin::end_session`], [`server::signin::end_other_sessions`],
//! [`server::signin::change_password`]): the same second-factor and step-up rules, the same
//! audit events, nothing changed on a refusal.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;
use server::extract::Session;
use server::identity::Client;
use server::{AppError, AppState, signin};
use zeroize::Zeroizing;

use super::step_up::{StepUpField, StepUpSession};
use super::{Chrome, Field, FieldErrors, SignedIn, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// The page's own path.
pub(crate) const ACCOUNT_PATH: &str = "/app/account";

/// One live session, as the API's session list shows it.
#[derive(Debug)]
pub(crate) struct SessionRow {
    id: uuid::Uuid,
    created: String,
    last_seen: String,
    client: String,
    current: bool,
}

/// The second factors, as the API's factors report them.
#[derive(Debug)]
pub(crate) struct FactorsView {
    totp: bool,
    passkeys: i64,
    recovery_codes: i64,
}

/// The account page.
#[derive(Template)]
#[template(path = "account.html")]
pub(crate) struct AccountPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    sessions: Vec<SessionRow>,
    factors: FactorsView,
    fields: Vec<Field>,
    step_up: StepUpField,
    done: Option<&'static str>,
    /// The user's passkeys, as the API lists them.
    passkeys: Vec<PasskeyRow>,
    /// A second factor was presented within the step-up window: second factors may change.
    fresh: bool,
    /// A passkey may be registered now (the API's rule: a recent second factor, or none yet).
    can_register: bool,
    /// Why the step-up (the "confirm it is you" form) was refused.
    confirm_error: Option<String>,
    /// Why a change to the second factors was refused.
    factor_error: Option<String>,
}

/// One passkey, as the API's passkey list shows it.
#[derive(Debug)]
pub(crate) struct PasskeyRow {
    credential_id: String,
    name: String,
    created: String,
    last_used: String,
}

/// `?done=…` after a change.
#[derive(Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

/// The password form.
#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The page for `session` (which it consumes: the reads commit), with the password form's
/// refusals.
async fn page(
    state: &AppState,
    mut session: Session,
    errors: &FieldErrors,
    step_up: Option<StepUpField>,
    done: Option<&'static str>,
) -> Result<AccountPage, WebError> {
    let step_up = step_up.unwrap_or_else(|| StepUpField {
        needed: session.require_step_up(state).is_err(),
        error: None,
    });
    let fresh = session.require_step_up(state).is_ok();
    let (_, user) = session.tx.profile().await?;
    let list = session.tx.sessions(session.auth.session_id).await?;
    let recording = super::recording_probe(&session.tx.my_practices().await?);
    let f = session.tx.factors().await?;
    let passkeys = signin::passkeys(&mut session)
        .await?
        .into_iter()
        .map(|p| PasskeyRow {
            credential_id: p.credential_id,
            name: p.name,
            created: when(p.created_at),
            last_used: p.last_used_at.map_or_else(|| "never".to_owned(), when),
        })
        .collect();
    session.tx.commit().await?;
    let sessions = list
        .into_iter()
        .map(|s| SessionRow {
            id: s.session_id,
            created: when(s.created_at),
            last_seen: when(s.last_seen_at),
            client: s.user_agent.unwrap_or_else(|| "Unknown browser".to_owned()),
            current: s.current,
        })
        .collect();
    let fields = vec![
        Field::new(
            "current_password",
            "Current password",
            "password",
            "",
            errors,
        )
        .attrs("autocomplete=\"current-password\" required"),
        Field::new("new_password", "New password", "password", "", errors)
            .attrs("autocomplete=\"new-password\" required minlength=\"12\""),
    ];
    Ok(AccountPage {
        assets: assets(),
        chrome: Some(Chrome {
            user,
            practice: None,
            nav: Vec::new(),
            switch: Vec::new(),
            idle_seconds: Some(session.auth.idle.num_seconds()),
            recording,
        }),
        sessions,
        fields,
        step_up,
        done,
        passkeys,
        fresh,
        can_register: fresh || !f.any(),
        confirm_error: None,
        factor_error: None,
        factors: FactorsView {
            totp: f.totp,
            passkeys: f.passkeys,
            recovery_codes: f.recovery_codes,
        },
    })
}

/// My account again after a change to the second factors was refused (`e`'s status): a
/// stale second factor asks for the step-up (with the refused code's message), any other
/// refusal is shown above the second factors. Nothing was changed.
pub(crate) async fn refused(
    state: &AppState,
    session: Session,
    e: &AppError,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    let mut p = page(state, session, &FieldErrors::default(), None, None).await?;
    if matches!(e, AppError::StepUpRequired) {
        p.confirm_error = Some(code_error.unwrap_or_else(|| {
            "Confirm it is you first: enter a code from your authenticator app or use a passkey."
                .to_owned()
        }));
    } else {
        p.factor_error = Some(format!("{e}; nothing was changed."));
    }
    html_status(e.status(), &p)
}

/// `GET /app/account` (second factor done, else redirected to it).
pub(crate) async fn account_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    axum::extract::Query(q): axum::extract::Query<Done>,
) -> Result<Response, WebError> {
    session.require_mfa()?;
    let done = match q.done.as_str() {
        "password" => Some("Your password was changed; your other sessions were ended."),
        "session" => Some("The session was ended."),
        "others" => Some("All your other sessions were ended."),
        "passkey" => Some("Your new passkey was added."),
        "passkey-removed" => Some("The passkey was removed."),
        "confirmed" => {
            Some("Confirmed: you can change your second factors for the next few minutes.")
        }
        _ => None,
    };
    let p = page(&state, session, &FieldErrors::default(), None, done).await?;
    super::html(&p)
}

/// `POST /app/account/sessions/{session_id}/end`: ends one of the user's sessions
/// ([`signin::end_session`]); ending the current one signs out (cookie cleared).
pub(crate) async fn session_end(
    client: Client,
    SignedIn(session): SignedIn,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    let id: uuid::Uuid = path_id(&raw, "session")?;
    let current = session.auth.session_id == id;
    signin::end_session(&client, session, id).await?;
    if current {
        let mut res = redirect(crate::SIGN_IN_PATH);
        if let Ok(v) = HeaderValue::from_str(signin::CLEARED_SESSION_COOKIE) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        return Ok(res);
    }
    Ok(redirect(&format!("{ACCOUNT_PATH}?done=session")))
}

/// `POST /app/account/sessions/end-others`: ends every other session of the user
/// ([`signin::end_other_sessions`]); this one stays.
pub(crate) async fn sessions_end_others(
    client: Client,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    signin::end_other_sessions(&client, session).await?;
    Ok(redirect(&format!("{ACCOUNT_PATH}?done=others")))
}

/// `POST /app/account/password`: the API's password change ([`signin::change_password`]:
/// a recent second factor — asked for in the form when needed —, the current password, the
/// password policy; the other sessions end). A refusal shows the page again with the message
/// beside its field and nothing changed.
pub(crate) async fn password_change(
    State(state): State<AppState>,
    client: Client,
    step: StepUpSession<PasswordForm>,
) -> Response {
    let renewed = step.renewed;
    renewed.attach(change(&state, &client, step.session, step.form, step.code_error).await)
}

async fn change(
    state: &AppState,
    client: &Client,
    mut session: Session,
    form: PasswordForm,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    session.require_mfa()?;
    let current = Zeroizing::new(form.current_password);
    let new = Zeroizing::new(form.new_password);
    match signin::change_password(state, client, &mut session, current, new, true).await {
        Ok(()) => {
            session.tx.commit().await?;
            Ok(redirect(&format!("{ACCOUNT_PATH}?done=password")))
        }
        Err(e @ AppError::StepUpRequired) => {
            let step_up = Some(StepUpField::refused(code_error));
            let p = page(state, session, &FieldErrors::default(), step_up, None).await?;
            html_status(e.status(), &p)
        }
        Err(e @ (AppError::BadCredentials | AppError::PasswordRejected(_))) => {
            let mut errors = FieldErrors::default();
            if matches!(e, AppError::BadCredentials) {
                errors.add(
                    "current_password",
                    "The current password is incorrect; nothing was changed.",
                );
            } else {
                errors.add("new_password", format!("New password: {e}."));
            }
            let p = page(state, session, &errors, None, None).await?;
            html_status(e.status(), &p)
        }
        Err(e) => Err(e.into()),
    }
}
