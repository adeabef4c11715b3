//! Practice settings (owners and admins): the practice's name and clinical scope (the API's
//! practice update, no step-up there), and its security settings — session idle timeout,
//! session lifetime, passkeys required of owners and admins — with the API's step-up. Through
//! the API's actions (`server::actions::{read_practice, read_practice_security,
//! update_practice, set_practice_security}`) and its input rules (`PracticeSettings::parse`,
//! [`server::rules::practices::security_input`]), so the same audit events (`practice.read`,
//! `practice.update`).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::Response;
use domain::PracticeId;
use domain::practice::{ClinicalScope, PracticeSettings};
use serde::Deserialize;
use server::extract::{Ctx, Manage};
use server::{AppError, AppState};
use store::TenantTx;

use super::step_up::{StepUp, StepUpField};
use super::{Chrome, Member, chrome, filled, html, html_status, redirect};
use crate::{Assets, WebError, assets};

/// The practice form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct PracticeForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    clinical_scope: String,
    #[serde(default)]
    time_zone: String,
}

/// The security form as typed (blank timeouts: the server's defaults).
#[derive(Deserialize, Default)]
pub(crate) struct SecurityForm {
    #[serde(default)]
    idle_minutes: String,
    #[serde(default)]
    lifetime_hours: String,
    #[serde(default)]
    require_passkey: Option<String>,
}

/// The settings page.
#[derive(Template)]
#[template(path = "settings.html")]
pub(crate) struct SettingsPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    practice: PracticeForm,
    practice_error: Option<String>,
    security: SecurityForm,
    security_error: Option<String>,
    step_up: StepUpField,
    done: Option<&'static str>,
}

/// `?done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "practice" => Some("Practice settings saved."),
        "security" => Some("Security settings saved. They apply from each member's next request."),
        _ => None,
    }
}

fn scope_name(s: ClinicalScope) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Reads both forms' current values through the API's two reads (each audited
/// `practice.read`).
async fn current(tx: &mut TenantTx) -> Result<(PracticeForm, SecurityForm), WebError> {
    let p = server::actions::read_practice(tx).await?;
    let s = server::actions::read_practice_security(tx).await?;
    Ok((
        PracticeForm {
            name: p.name,
            clinical_scope: scope_name(p.settings.clinical_scope),
            time_zone: p.settings.time_zone.clone().unwrap_or_default(),
        },
        SecurityForm {
            idle_minutes: s
                .session_idle_seconds
                .map(|v| (v / 60).to_string())
                .unwrap_or_default(),
            lifetime_hours: s
                .session_absolute_seconds
                .map(|v| (v / 3600).to_string())
                .unwrap_or_default(),
            require_passkey: s.require_passkey_for_managers.then(|| "on".to_owned()),
        },
    ))
}

/// `GET /app/practices/{practice_id}/settings`: both forms with the values in force (the
/// security form with the step-up field when the API would ask for it).
pub(crate) async fn settings_page(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let step_up = StepUpField::for_ctx(&ctx, &state);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let (practice, security) = current(&mut tx).await?;
    tx.commit().await?;
    html(&SettingsPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        practice,
        practice_error: None,
        security,
        security_error: None,
        step_up,
        done: done_message(q.done.as_deref()),
    })
}

/// `POST /app/practices/{practice_id}/settings`: renames the practice and sets its clinical
/// scope as the API's update does (`single_line` name of at most 200 characters,
/// `PracticeSettings::parse`, [`server::actions::update_practice`], audited
/// `practice.update`), then the
/// page (`303`). Refused: `400`, the page with the message, nothing changed.
pub(crate) async fn practice_update(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Form(form): Form<PracticeForm>,
) -> Result<Response, WebError> {
    let step_up = StepUpField::for_ctx(&ctx, &state);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let checked = domain::values::single_line("name", &form.name, 200)
        .map_err(AppError::from)
        .and_then(|name| {
            let mut doc = serde_json::Map::new();
            doc.insert("clinical_scope".into(), form.clinical_scope.trim().into());
            if !form.time_zone.trim().is_empty() {
                doc.insert("time_zone".into(), form.time_zone.trim().into());
            }
            let settings = PracticeSettings::parse(&serde_json::Value::Object(doc))?;
            Ok((name, settings))
        });
    match checked {
        Ok((name, settings)) => {
            server::actions::update_practice(&mut tx, Some(&name), Some(&settings)).await?;
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice_id}/settings?done=practice"
            )))
        }
        Err(e) => {
            let chrome = chrome(&mut tx).await?;
            let (_, security) = current(&mut tx).await?;
            tx.commit().await?;
            html_status(
                e.status(),
                &SettingsPage {
                    assets: assets(),
                    chrome: Some(chrome),
                    practice_id,
                    practice: form,
                    practice_error: Some(format!("Nothing was saved: {e}.")),
                    security,
                    security_error: None,
                    step_up,
                    done: None,
                },
            )
        }
    }
}

/// A whole number from a form field (blank: `None`), or the API's message for `field`.
fn number(raw: &str, refusal: &str) -> Result<Option<i32>, AppError> {
    filled(raw)
        .map(|v| {
            v.parse::<i32>()
                .map_err(|_| AppError::Invalid(refusal.into()))
        })
        .transpose()
}

/// `POST /app/practices/{practice_id}/settings/security`: replaces the security settings as
/// the API does (step-up, [`server::rules::practices::security_input`],
/// [`server::actions::set_practice_security`], audited `practice.update`), then the page
/// (`303`).
/// Refused: `400` / `401`, the page with what was typed, nothing changed.
pub(crate) async fn security_update(
    State(state): State<AppState>,
    step: StepUp<Manage, SecurityForm>,
) -> Response {
    let renewed = step.renewed;
    renewed.attach(set_security(&state, step.ctx, step.form, step.code_error).await)
}

async fn set_security(
    state: &AppState,
    ctx: Ctx<Manage>,
    form: SecurityForm,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    let stepped = ctx.require_step_up(state);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let checked = stepped.map_err(|e| (e, code_error)).and_then(|()| {
        let idle = number(
            &form.idle_minutes,
            "session_idle_minutes: must be between 2 and 60",
        )
        .map_err(|e| (e, None))?;
        let lifetime = number(
            &form.lifetime_hours,
            "session_lifetime_hours: must be between 1 and 24",
        )
        .map_err(|e| (e, None))?;
        server::rules::practices::security_input(idle, lifetime, form.require_passkey.is_some())
            .map_err(|e| (e, None))
    });
    match checked {
        Ok(settings) => {
            server::actions::set_practice_security(&mut tx, &settings).await?;
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice_id}/settings?done=security"
            )))
        }
        Err((e, code_error)) => {
            let (step_up, security_error) = match e {
                AppError::StepUpRequired => (StepUpField::refused(code_error), None),
                ref other => (
                    StepUpField {
                        needed: false,
                        error: None,
                    },
                    Some(format!("Nothing was saved: {other}.")),
                ),
            };
            let chrome = chrome(&mut tx).await?;
            let (practice, _) = current(&mut tx).await?;
            tx.commit().await?;
            html_status(
                e.status(),
                &SettingsPage {
                    assets: assets(),
                    chrome: Some(chrome),
                    practice_id,
                    practice,
                    practice_error: None,
                    security: form,
                    security_error,
                    step_up,
                    done: None,
                },
            )
        }
    }
}
