//! Memberships: the member directory (any member) and its management (owner or admin).
//! People join by invitation ([`super::invitations`]); the operator CLI adds members directly.

use axum::Json;
use axum::http::StatusCode;
use domain::{AuditAction, AuditObject, PracticeId, Role, RoleSet, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::extract::{AnyMember, ApiJson, ApiPath, Ctx, Manage};
use crate::views::MemberView;
use crate::{AppError, AppState};
use axum::extract::State;

/// Roles from a request: one to four known role names (`400` otherwise). Shared with the
/// web pages ([`crate::rules::memberships`]).
pub fn parse_roles(roles: &[String]) -> Result<RoleSet, AppError> {
    if roles.is_empty() || roles.len() > 4 {
        return Err(AppError::Invalid(
            "roles: give one to four of owner, admin, clinician, reception".into(),
        ));
    }
    roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<RoleSet, _>>()
        .map_err(|_| {
            AppError::Invalid(
                "roles: each role must be one of owner, admin, clinician, reception".into(),
            )
        })
}

/// The practice's members (any member).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/memberships", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<MemberView>), (status = 401, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn membership_list(
    ctx: Ctx<AnyMember>,
) -> Result<Json<Vec<MemberView>>, AppError> {
    let mut tx = ctx.tx;
    let members = list_members(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(members.into_iter().map(Into::into).collect()))
}

/// One member (any member).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/memberships/{user_id}", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = MemberView), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn membership_get(
    ctx: Ctx<AnyMember>,
    ApiPath((_, user)): ApiPath<(PracticeId, UserId)>,
) -> Result<Json<MemberView>, AppError> {
    let mut tx = ctx.tx;
    let m = read_member(&mut tx, user).await?;
    tx.commit().await?;
    Ok(Json(m.into()))
}

/// New roles for a member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembershipUpdate {
    /// Roles: one to four of `owner`, `admin`, `clinician`, `reception`.
    roles: Vec<String>,
}

/// Replaces a member's roles (owner or admin). The last owner keeps `owner`.
#[utoipa::path(patch, path = "/api/v1/practices/{practice_id}/memberships/{user_id}", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)), request_body = MembershipUpdate,
    responses((status = 200, body = MemberView), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn membership_update(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath((_, user)): ApiPath<(PracticeId, UserId)>,
    ApiJson(req): ApiJson<MembershipUpdate>,
) -> Result<Json<MemberView>, AppError> {
    // Changing roles needs a recent second factor.
    ctx.require_step_up(&state)?;
    let roles = parse_roles(&req.roles)?;
    let mut tx = ctx.tx;
    let m = set_member_roles(&mut tx, user, roles).await?;
    tx.commit().await?;
    Ok(Json(m.into()))
}

/// Removes a member (owner or admin). The last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/practices/{practice_id}/memberships/{user_id}", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn membership_delete(
    ctx: Ctx<Manage>,
    ApiPath((_, user)): ApiPath<(PracticeId, UserId)>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    remove_member(&mut tx, user).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The practice's members, audited `membership.list`: the one path of the API and the web
/// pages. The caller commits.
pub async fn list_members(
    tx: &mut store::TenantTx,
) -> Result<Vec<store::memberships::Member>, AppError> {
    let members = store::memberships::list(tx).await?;
    tx.audit(AuditAction::MembershipList, None, None).await?;
    Ok(members)
}

/// One member, audited `membership.list` naming them: the one path of the API and the web
/// pages. `404` when `user` is not a member here. The caller commits.
pub async fn read_member(
    tx: &mut store::TenantTx,
    user: UserId,
) -> Result<store::memberships::Member, AppError> {
    let m = store::memberships::get(tx, user)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    tx.audit(
        AuditAction::MembershipList,
        None,
        Some(AuditObject::user(user)),
    )
    .await?;
    Ok(m)
}

/// Replaces `user`'s roles and audits `membership.update`: the one path of the API and the
/// web pages. `404` for no such member; `409` for taking `owner` from the last owner
/// (checked before any change). The caller checks step-up and commits.
pub async fn set_member_roles(
    tx: &mut store::TenantTx,
    user: UserId,
    roles: RoleSet,
) -> Result<store::memberships::Member, AppError> {
    let m = store::memberships::set_roles(tx, user, roles)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    tx.audit(
        AuditAction::MembershipUpdate,
        None,
        Some(AuditObject::user(user)),
    )
    .await?;
    Ok(m)
}

/// Removes `user` from the practice and audits `membership.delete`: the one path of the API
/// and the web pages. `404` for no such member; `409` for the last owner or a clinician with
/// appointments (the transaction may then be aborted). The caller commits.
pub async fn remove_member(tx: &mut store::TenantTx, user: UserId) -> Result<(), AppError> {
    if !store::memberships::remove(tx, user).await? {
        return Err(AppError::NotFound("member"));
    }
    tx.audit(
        AuditAction::MembershipDelete,
        None,
        Some(AuditObject::user(user)),
    )
    .await?;
    Ok(())
}
