//! Vendor support access: an owner approves a time-boxed grant (scope, reason, at most 72
//! hours, fresh second factor); owners and admins list and revoke grants; a revoked or expired
//! grant stops working on the very next request. Support sessions are read-only and every
//! access under a grant is audited as support access and disclosed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AuditAction, AuditObject, ObjectKind, PracticeId, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, Ctx, Manage};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// A grant to approve.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantCreate {
    /// The support staff member's sign-in email.
    support_email: String,
    /// `scheduling` (demographics and scheduling) or `clinical` (clinical records too).
    scope: String,
    /// Why (required, at most 2 KiB).
    reason: String,
    /// How long, 1–72 hours.
    hours: i64,
}

/// A support grant.
#[derive(Serialize, ToSchema)]
#[schema(as = SupportGrantView)]
pub(crate) struct GrantView {
    grant_id: uuid::Uuid,
    support_user_id: UserId,
    scope: String,
    reason: String,
    approved_by: UserId,
    approved_at: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
    revoked_by: Option<UserId>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<store::support::SupportGrant> for GrantView {
    fn from(g: store::support::SupportGrant) -> Self {
        Self {
            grant_id: g.grant_id,
            support_user_id: g.support_user_id,
            scope: g.scope,
            reason: g.reason,
            approved_by: g.approved_by,
            approved_at: g.approved_at,
            expires_at: g.expires_at,
            revoked_by: g.revoked_by,
            revoked_at: g.revoked_at,
        }
    }
}

/// What refuses a grant whose email names no support staff account.
pub const NO_SUPPORT_ACCOUNT: &str = "support_email: no support staff account has that email";

/// A grant to approve, checked.
#[derive(Debug)]
pub struct GrantInput {
    /// The support staff member's sign-in email (one line, at most 254 bytes).
    pub support_email: String,
    /// `scheduling` or `clinical`.
    pub scope: String,
    /// Why (at most 2 KiB).
    pub reason: String,
    /// How long, 1–72 hours.
    pub hours: i64,
}

/// Checks a grant to approve (shared with the web pages, [`crate::rules::support`]): a reason
/// of at most 2 KiB, the scope `scheduling` or `clinical`, 1–72 hours, a one-line email.
pub fn grant_input(
    support_email: &str,
    scope: &str,
    reason: &str,
    hours: i64,
) -> Result<GrantInput, AppError> {
    let reason = domain::values::free_text("reason", reason, 2048)?;
    if !matches!(scope, "scheduling" | "clinical") {
        return Err(AppError::Invalid(
            "scope: must be scheduling or clinical".into(),
        ));
    }
    if !(1..=72).contains(&hours) {
        return Err(AppError::Invalid("hours: must be 1 to 72".into()));
    }
    let support_email = domain::values::single_line("support_email", support_email, 254)?;
    Ok(GrantInput {
        support_email,
        scope: scope.to_owned(),
        reason,
        hours,
    })
}

/// Approves vendor support access to this practice (owners only, fresh second factor).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/support-grants", tag = "support access",
    params(("practice_id" = String, Path, format = Uuid)), request_body = GrantCreate,
    responses((status = 201, body = GrantView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn support_grant_create(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath(_): ApiPath<PracticeId>,
    ApiJson(req): ApiJson<GrantCreate>,
) -> Result<(StatusCode, Json<GrantView>), AppError> {
    if !ctx.roles.contains(Role::Owner) {
        return Err(AppError::Forbidden);
    }
    ctx.require_step_up(&state)?;
    let g = grant_input(&req.support_email, &req.scope, &req.reason, req.hours)?;
    let mut tx = ctx.tx;
    let g = approve_support(&mut tx, state.store.keyring()?, &g).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(g.into())))
}

/// The practice's support grants (owners and admins).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/support-grants", tag = "support access",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<GrantView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn support_grant_list(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath(_): ApiPath<PracticeId>,
) -> Result<Json<Vec<GrantView>>, AppError> {
    let mut tx = ctx.tx;
    let grants = list_support(&mut tx, state.store.keyring()?).await?;
    tx.commit().await?;
    Ok(Json(grants.into_iter().map(Into::into).collect()))
}

/// Revokes a support grant at once (owners and admins).
#[utoipa::path(delete, path = "/api/v1/practices/{practice_id}/support-grants/{support_grant_id}", tag = "support access",
    params(("practice_id" = String, Path, format = Uuid), ("support_grant_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn support_grant_revoke(
    ctx: Ctx<Manage>,
    ApiPath((_, grant)): ApiPath<(PracticeId, uuid::Uuid)>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    revoke_support(&mut tx, grant).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Approves support access as `g` says (rules already checked with [`grant_input`]; the
/// caller checked the owner role and the step-up) and audits `support_grant.approve`: the one
/// path of the API and the web pages. An unknown support account is refused with the same
/// message either way. The caller commits.
pub async fn approve_support(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    g: &GrantInput,
) -> Result<store::support::SupportGrant, AppError> {
    let g = store::support::approve(tx, keyring, &g.support_email, &g.scope, &g.reason, g.hours)
        .await?
        .map_err(|_| AppError::Invalid(NO_SUPPORT_ACCOUNT.into()))?;
    tx.audit_details(
        AuditAction::SupportGrantApprove,
        None,
        Some(AuditObject::new(ObjectKind::SupportGrant, g.grant_id)),
        Some(serde_json::json!({
            "support_user_id": g.support_user_id, "scope": g.scope, "expires_at": g.expires_at
        })),
    )
    .await?;
    Ok(g)
}

/// The practice's support grants (reasons decrypted), audited `support_grant.list` with how
/// many were read: the one path of the API and the web pages. The caller commits.
pub async fn list_support(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
) -> Result<Vec<store::support::SupportGrant>, AppError> {
    let grants = store::support::list(tx, keyring).await?;
    tx.audit_details(
        AuditAction::SupportGrantList,
        None,
        None,
        Some(serde_json::json!({ "grants": grants.len() })),
    )
    .await?;
    Ok(grants)
}

/// Revokes support grant `grant` at once and audits `support_grant.revoke`: the one path of
/// the API and the web pages. `404` for an unknown or already revoked grant. The caller
/// commits.
pub async fn revoke_support(tx: &mut store::TenantTx, grant: uuid::Uuid) -> Result<(), AppError> {
    if !store::support::revoke(tx, grant).await? {
        return Err(AppError::NotFound("support grant"));
    }
    tx.audit(
        AuditAction::SupportGrantRevoke,
        None,
        Some(AuditObject::new(ObjectKind::SupportGrant, grant)),
    )
    .await?;
    Ok(())
}
