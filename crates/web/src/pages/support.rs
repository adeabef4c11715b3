//! Vendor support access (owners and admins): the practice's grants, approving one (owners
//! only, with the API's step-up) and revoking one — over the API's store calls
//! (`store::support::…`), its input rules ([`server::rules::support`]) and the same audit
//! events (`support_grant.list`, `support_grant.approve`, `support_grant.revoke`). A revoked
//! or expired grant stops working on the support session's very next request (the API's
//! rule, in the store).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::{PracticeId, Role};
use serde::Deserialize;
use server::extract::{Ctx, Manage};
use server::{AppError, AppState};
use store::TenantTx;

use super::step_up::{StepUp, StepUpField};
use super::{Chrome, Member, chrome, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// A grant row.
pub(crate) struct GrantRow {
    id: uuid::Uuid,
    support_user: String,
    scope: String,
    reason: String,
    approved: String,
    expires: String,
    state: &'static str,
    active: bool,
}

/// The approve form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct GrantForm {
    #[serde(default)]
    support_email: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    hours: String,
}

/// The support access page.
#[derive(Template)]
#[template(path = "support.html")]
pub(crate) struct SupportPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    grants: Vec<GrantRow>,
    /// Only owners approve (the API's rule); admins see the list and revoke.
    may_approve: bool,
    form: GrantForm,
    error: Option<String>,
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
        "approved" => Some("Support access approved."),
        "revoked" => Some("Support access revoked. It stopped working at once."),
        _ => None,
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The grants (decrypting their reasons), audited `support_grant.list` after the read, as
/// the API's list.
async fn grants(
    state: &AppState,
    tx: &mut TenantTx,
    now: DateTime<Utc>,
) -> Result<Vec<GrantRow>, WebError> {
    let list = server::actions::list_support(tx, state.store.keyring()?).await?;
    Ok(list
        .into_iter()
        .map(|g| {
            let (state, active) = if g.revoked_at.is_some() {
                ("revoked", false)
            } else if g.expires_at <= now {
                ("expired", false)
            } else {
                ("active", true)
            };
            GrantRow {
                id: g.grant_id,
                support_user: g.support_user_id.to_string(),
                scope: g.scope,
                reason: g.reason,
                approved: when(g.approved_at),
                expires: when(g.expires_at),
                state,
                active,
            }
        })
        .collect())
}

/// `GET /app/practices/{practice_id}/support`: the grants, and for owners the approve form
/// (with the step-up field when the API would ask for it).
pub(crate) async fn support_page(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let step_up = StepUpField::for_ctx(&ctx, &state);
    let may_approve = ctx.roles.contains(Role::Owner);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let now = tx.now();
    let chrome = chrome(&mut tx).await?;
    let grants = grants(&state, &mut tx, now).await?;
    tx.commit().await?;
    html(&SupportPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        grants,
        may_approve,
        form: GrantForm {
            scope: "scheduling".into(),
            hours: "4".into(),
            ..GrantForm::default()
        },
        error: None,
        step_up,
        done: done_message(q.done.as_deref()),
    })
}

/// `POST /app/practices/{practice_id}/support-grants`: approves support access as the API
/// does (owners only, else `403`; then the step-up; then
/// [`server::rules::support::grant_input`]; `store::support::approve`; audited
/// `support_grant.approve`), then the list (`303`). Refused: the page again (`400`, `401`)
/// with what was typed, nothing approved.
pub(crate) async fn support_grant_create(
    State(state): State<AppState>,
    step: StepUp<Manage, GrantForm>,
) -> Response {
    let renewed = step.renewed;
    renewed.attach(approve(&state, step.ctx, step.form, step.code_error).await)
}

async fn approve(
    state: &AppState,
    ctx: Ctx<Manage>,
    form: GrantForm,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    if !ctx.roles.contains(Role::Owner) {
        return Err(AppError::Forbidden.into());
    }
    let stepped = ctx.require_step_up(state);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let checked = stepped.map_err(|e| (e, code_error)).and_then(|()| {
        let hours = form
            .hours
            .trim()
            .parse::<i64>()
            .map_err(|_| (AppError::Invalid("hours: must be 1 to 72".into()), None))?;
        server::rules::support::grant_input(&form.support_email, &form.scope, &form.reason, hours)
            .map_err(|e| (e, None))
    });
    let refusal = match checked {
        Ok(g) => {
            match server::actions::approve_support(&mut tx, state.store.keyring()?, &g).await {
                Ok(_) => {
                    tx.commit().await?;
                    return Ok(redirect(&format!(
                        "/app/practices/{practice_id}/support?done=approved"
                    )));
                }
                Err(e @ AppError::Invalid(_)) => (e, None),
                Err(e) => return Err(e.into()),
            }
        }
        Err(refusal) => refusal,
    };
    let (e, code_error) = refusal;
    let (step_up, error) = match e {
        AppError::StepUpRequired => (StepUpField::refused(code_error), None),
        ref other => (
            StepUpField {
                needed: false,
                error: None,
            },
            Some(format!("Nothing was approved: {other}.")),
        ),
    };
    let now = tx.now();
    let chrome = chrome(&mut tx).await?;
    let grants = grants(state, &mut tx, now).await?;
    tx.commit().await?;
    html_status(
        e.status(),
        &SupportPage {
            assets: assets(),
            chrome: Some(chrome),
            practice_id,
            grants,
            may_approve: true,
            form,
            error,
            step_up,
            done: None,
        },
    )
}

/// `POST /app/practices/{practice_id}/support-grants/{grant_id}/revoke`: revokes the grant at
/// once as the API does (`store::support::revoke`, audited `support_grant.revoke`), then the
/// list (`303`); an unknown or already revoked grant is `404`.
pub(crate) async fn support_grant_revoke(
    Member(ctx): Member<Manage>,
    Path((_, grant)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let grant: uuid::Uuid = path_id(&grant, "support grant")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    server::actions::revoke_support(&mut tx, grant).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice_id}/support?done=revoked"
    )))
}
