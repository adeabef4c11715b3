//! Members, roles and invitations (owners and admins, the API's `Manage` privilege): the
//! member list, a member's roles (granting roles needs a step-up, as in the API), removing a
//! member, inviting an email address with roles (step-up) and revoking an invitation —
//! through the API's actions (`server::actions::{list_members, read_member,
//! set_member_roles, remove_member, invite, list_invitations, revoke_invitation}`), its input
//! rules ([`server::rules::memberships`]), so the same audit events (`membership.list`,
//! `membership.update`, `membership.delete`, `invitation.list`, `invitation.create`,
//! `invitation.revoke`). The last owner keeps `owner` (the store's rule): the page says so and
//! nothing changes.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use domain::{InvitationId, PracticeId, Role, UserId};
use serde::Deserialize;
use server::extract::Manage;
use server::{AppError, AppState};
use store::TenantTx;

use super::step_up::{StepUp, StepUpField};
use super::{Chrome, Member, chrome, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// A role checkbox.
pub(crate) struct RoleBox {
    name: &'static str,
    label: &'static str,
    checked: bool,
}

const ROLES: [(Role, &str, &str); 4] = [
    (Role::Owner, "owner", "Owner"),
    (Role::Admin, "admin", "Admin"),
    (Role::Clinician, "clinician", "Clinician"),
    (Role::Reception, "reception", "Reception"),
];

/// The role checkboxes of a form (`owner=on`, …), as typed.
#[derive(Deserialize, Default)]
pub(crate) struct RolesForm {
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    admin: Option<String>,
    #[serde(default)]
    clinician: Option<String>,
    #[serde(default)]
    reception: Option<String>,
}

impl RolesForm {
    fn names(&self) -> Vec<String> {
        [
            (&self.owner, "owner"),
            (&self.admin, "admin"),
            (&self.clinician, "clinician"),
            (&self.reception, "reception"),
        ]
        .into_iter()
        .filter(|(v, _)| v.is_some())
        .map(|(_, n)| n.to_owned())
        .collect()
    }

    fn boxes(&self) -> Vec<RoleBox> {
        let chosen = self.names();
        ROLES
            .iter()
            .map(|(_, name, label)| RoleBox {
                name,
                label,
                checked: chosen.iter().any(|c| c == name),
            })
            .collect()
    }

    fn of(roles: &[String]) -> Self {
        let has = |r: &str| roles.iter().any(|x| x == r).then(|| "on".to_owned());
        Self {
            owner: has("owner"),
            admin: has("admin"),
            clinician: has("clinician"),
            reception: has("reception"),
        }
    }
}

/// A member row.
pub(crate) struct MemberRow {
    href: String,
    name: String,
    email: String,
    roles: String,
    is_me: bool,
}

/// An invitation row (never the address: the API keeps only its keyed tag).
pub(crate) struct InvitationRow {
    id: InvitationId,
    roles: String,
    created: String,
    expires: String,
    state: String,
    pending: bool,
}

/// The invite form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(flatten)]
    roles: RolesForm,
}

/// The members page.
#[derive(Template)]
#[template(path = "members.html")]
pub(crate) struct MembersPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    invite_email: String,
    invite_roles: Vec<RoleBox>,
    invite_error: Option<String>,
    step_up: StepUpField,
    done: Option<&'static str>,
}

/// One member's roles.
#[derive(Template)]
#[template(path = "member.html")]
pub(crate) struct MemberPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    user_id: UserId,
    name: String,
    email: String,
    roles: Vec<RoleBox>,
    error: Option<String>,
    step_up: StepUpField,
    done: Option<&'static str>,
}

/// The removal confirmation.
#[derive(Template)]
#[template(path = "member_remove.html")]
pub(crate) struct MemberRemovePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    user_id: UserId,
    name: String,
    error: Option<String>,
}

/// `?done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "roles" => Some("Roles saved."),
        "removed" => Some("Member removed."),
        "invited" => {
            Some("Invitation sent. The person sees it when they sign in with that address.")
        }
        "revoked" => Some("Invitation revoked."),
        _ => None,
    }
}

fn date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Reads the member list and the invitations through the API's list actions (audited
/// `membership.list`, `invitation.list`).
async fn lists(
    tx: &mut TenantTx,
    practice: PracticeId,
) -> Result<(Vec<MemberRow>, Vec<InvitationRow>), WebError> {
    let me = tx.actor();
    let members = server::actions::list_members(tx).await?;
    let invitations = server::actions::list_invitations(tx).await?;
    let members = members
        .into_iter()
        .map(|m| MemberRow {
            href: format!("/app/practices/{practice}/members/{}", m.user_id),
            is_me: m.user_id == me,
            name: m.display_name,
            email: m.email,
            roles: m.roles.join(", "),
        })
        .collect();
    let invitations = invitations
        .into_iter()
        .map(|i| {
            let state = serde_json::to_value(i.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            InvitationRow {
                id: i.invitation_id,
                roles: i.roles.join(", "),
                created: date(i.created_at),
                expires: date(i.expires_at),
                pending: state == "pending",
                state,
            }
        })
        .collect();
    Ok((members, invitations))
}

/// `GET /app/practices/{practice_id}/members`: the members with their roles, the
/// invitations, and the invite form (with the step-up field when the API would ask for it).
pub(crate) async fn members_page(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let step_up = StepUpField::for_ctx(&ctx, &state);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let (members, invitations) = lists(&mut tx, practice_id).await?;
    tx.commit().await?;
    html(&MembersPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        members,
        invitations,
        invite_email: String::new(),
        invite_roles: RolesForm::default().boxes(),
        invite_error: None,
        step_up,
        done: done_message(q.done.as_deref()),
    })
}

/// `POST /app/practices/{practice_id}/invitations`: invites an email address with roles as
/// the API does (step-up; `Email` and [`server::rules::memberships::parse_roles`];
/// [`server::actions::invite`]: only the address's keyed tag is stored, audited
/// `invitation.create`), then the members page
/// (`303`). Refused: the page again with the message, nothing sent.
pub(crate) async fn invitation_create(
    State(state): State<AppState>,
    step: StepUp<Manage, InviteForm>,
) -> Response {
    let renewed = step.renewed;
    renewed.attach(invite(&state, step.ctx, step.form, step.code_error).await)
}

async fn invite(
    state: &AppState,
    ctx: server::extract::Ctx<Manage>,
    form: InviteForm,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    let stepped = ctx.require_step_up(state);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let checked = stepped.map_err(|e| (e, code_error)).and_then(|()| {
        let email = domain::values::Email::parse("email", &form.email)
            .map_err(|e| (AppError::from(e), None))?;
        let roles =
            server::rules::memberships::parse_roles(&form.roles.names()).map_err(|e| (e, None))?;
        Ok((email, roles))
    });
    match checked {
        Ok((email, roles)) => {
            server::actions::invite(&mut tx, state.store.keyring()?, &email, roles).await?;
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice_id}/members?done=invited"
            )))
        }
        Err((e, code_error)) => {
            let step_up = match e {
                AppError::StepUpRequired => StepUpField::refused(code_error),
                _ => StepUpField {
                    needed: false,
                    error: None,
                },
            };
            let status = e.status();
            let invite_error = (!matches!(e, AppError::StepUpRequired)).then(|| format!("{e}."));
            let chrome = chrome(&mut tx).await?;
            let (members, invitations) = lists(&mut tx, practice_id).await?;
            tx.commit().await?;
            html_status(
                status,
                &MembersPage {
                    assets: assets(),
                    chrome: Some(chrome),
                    practice_id,
                    members,
                    invitations,
                    invite_email: form.email,
                    invite_roles: form.roles.boxes(),
                    invite_error,
                    step_up,
                    done: None,
                },
            )
        }
    }
}

/// `POST /app/practices/{practice_id}/invitations/{invitation_id}/revoke`: revokes an
/// invitation nobody has decided yet ([`server::actions::revoke_invitation`], audited
/// `invitation.revoke`); `409` once decided.
pub(crate) async fn invitation_revoke(
    Member(ctx): Member<Manage>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: InvitationId = path_id(&id, "invitation")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    server::actions::revoke_invitation(&mut tx, id).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice_id}/members?done=revoked"
    )))
}

/// `GET /app/practices/{practice_id}/members/{user_id}`: the member's roles as checkboxes
/// (with the step-up field when the API would ask for it).
pub(crate) async fn member_page(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Path((_, user)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let user: UserId = path_id(&user, "member")?;
    let step_up = StepUpField::for_ctx(&ctx, &state);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let m = server::actions::read_member(&mut tx, user).await?;
    tx.commit().await?;
    html(&MemberPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        user_id: user,
        name: m.display_name,
        email: m.email,
        roles: RolesForm::of(&m.roles).boxes(),
        error: None,
        step_up,
        done: done_message(q.done.as_deref()),
    })
}

/// `POST /app/practices/{practice_id}/members/{user_id}`: replaces the member's roles as the
/// API does (step-up, [`server::rules::memberships::parse_roles`],
/// [`server::actions::set_member_roles`], audited `membership.update`), then the member
/// (`303`).
/// Refused (no fresh second factor, no role, the last owner): the form again, nothing
/// changed.
pub(crate) async fn member_update(
    State(state): State<AppState>,
    Path((_, user)): Path<(String, String)>,
    step: StepUp<Manage, RolesForm>,
) -> Response {
    let renewed = step.renewed;
    renewed.attach(set_roles(&state, &user, step.ctx, step.form, step.code_error).await)
}

async fn set_roles(
    state: &AppState,
    user: &str,
    ctx: server::extract::Ctx<Manage>,
    form: RolesForm,
    code_error: Option<String>,
) -> Result<Response, WebError> {
    let user: UserId = path_id(user, "member")?;
    let stepped = ctx.require_step_up(state);
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let outcome = match stepped {
        Err(e) => Err((e, code_error)),
        Ok(()) => match server::rules::memberships::parse_roles(&form.names()) {
            Err(e) => Err((e, None)),
            Ok(roles) => match server::actions::set_member_roles(&mut tx, user, roles).await {
                Ok(_) => Ok(()),
                Err(e @ AppError::Conflict(_)) => Err((e, None)),
                Err(e) => return Err(e.into()),
            },
        },
    };
    match outcome {
        Ok(()) => {
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice_id}/members/{user}?done=roles"
            )))
        }
        Err((e, code_error)) => {
            // Nothing was written: the refusals above come before any change.
            let (step_up, error) = match e {
                AppError::StepUpRequired => (StepUpField::refused(code_error), None),
                ref other => (
                    StepUpField {
                        needed: false,
                        error: None,
                    },
                    Some(format!("Nothing was changed: {other}.")),
                ),
            };
            let chrome = chrome(&mut tx).await?;
            let m = server::actions::read_member(&mut tx, user).await?;
            tx.commit().await?;
            html_status(
                e.status(),
                &MemberPage {
                    assets: assets(),
                    chrome: Some(chrome),
                    practice_id,
                    user_id: user,
                    name: m.display_name,
                    email: m.email,
                    roles: form.boxes(),
                    error,
                    step_up,
                    done: None,
                },
            )
        }
    }
}

/// `GET /app/practices/{practice_id}/members/{user_id}/remove`: asks for confirmation.
pub(crate) async fn member_remove_page(
    Member(ctx): Member<Manage>,
    Path((_, user)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let user: UserId = path_id(&user, "member")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let m = server::actions::read_member(&mut tx, user).await?;
    tx.commit().await?;
    html(&MemberRemovePage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        user_id: user,
        name: m.display_name,
        error: None,
    })
}

/// `POST /app/practices/{practice_id}/members/{user_id}/remove`: removes the member as the
/// API does (no step-up there either; [`server::actions::remove_member`], audited
/// `membership.delete`), then the members page (`303`). The last owner, or a clinician with
/// appointments, is refused (`409`) with the page saying why; nothing changed.
pub(crate) async fn member_remove(
    Member(ctx): Member<Manage>,
    Path((_, user)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let user: UserId = path_id(&user, "member")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    // A refusal (the last owner, a clinician with appointments) may have aborted the
    // transaction: it is dropped with the error, nothing changed.
    server::actions::remove_member(&mut tx, user).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice_id}/members?done=removed"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 17 — the role checkboxes become the API's role names, in a fixed order.
    #[test]
    fn role_checkboxes_become_role_names() {
        let f = RolesForm {
            reception: Some("on".into()),
            owner: Some("on".into()),
            ..RolesForm::default()
        };
        assert_eq!(f.names(), ["owner", "reception"]);
        let boxes = RolesForm::of(&f.names()).boxes();
        let checked: Vec<&str> = boxes.iter().filter(|b| b.checked).map(|b| b.name).collect();
        assert_eq!(checked, ["owner", "reception"]);
        assert!(RolesForm::default().names().is_empty());
    }
}
