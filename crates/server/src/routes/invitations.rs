//! Invitations: how a person joins a practice over the API (issue 14.5). An owner or admin
//! invites an email address with roles (fresh second factor, like every role grant); the
//! answer is the same whether or not an account has that address, because nothing looks the
//! account up. The invitee, signed in with a second factor, lists the invitations addressed
//! to their own address and accepts or declines; only acceptance creates the membership.
//! Invitations expire after seven days (injected clock), can be revoked by the practice, are
//! decided once, and every step is audited with ids only. The address itself is never stored
//! or logged: only its keyed lookup tag (`store::installation`: HMAC under the installation's
//! lookup-tag key, sealed with the installation data key).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditObject, InvitationId, PracticeId, UserId};
use serde::{Deserialize, Serialize};
use store::invitations::{Decision, EmailTag, InvitationState, Revoked};
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, Ctx, Manage, MfaSession};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// The lookup kind of an invitee's (already normalized) email address.
const EMAIL: store::crypto::LookupKind = store::crypto::LookupKind::InvitationEmail;

/// An invitation to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvitationCreate {
    /// The invitee's email address (whether or not it has a Chartroom account yet; it is not
    /// stored, only a keyed hash of it).
    email: String,
    /// Roles granted on acceptance: one to four of `owner`, `admin`, `clinician`, `reception`.
    roles: Vec<String>,
}

/// The answer to an invitation sent: the same shape and status whoever the address belongs to.
#[derive(Serialize, ToSchema)]
pub(crate) struct InvitationSent {
    /// The invitation (to revoke it).
    #[schema(value_type = String, format = Uuid)]
    invitation_id: InvitationId,
    /// Until when the invitee can accept it.
    expires_at: DateTime<Utc>,
}

/// Invites an email address to join the practice with roles (owner or admin, second factor
/// from the last few minutes). `202 Accepted` whether or not an account has that address: the
/// invitee sees it once they sign in with it.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/invitations", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)), request_body = InvitationCreate,
    responses((status = 202, body = InvitationSent), (status = 409, body = E,
        description = "The practice already has the most pending invitations allowed")))]
pub(crate) async fn invitation_create(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiJson(req): ApiJson<InvitationCreate>,
) -> Result<(StatusCode, Json<InvitationSent>), AppError> {
    // Granting a role needs a recent second factor.
    ctx.require_step_up(&state)?;
    let email = domain::values::Email::parse("email", &req.email)?;
    let roles = super::memberships::parse_roles(&req.roles)?;
    let mut tx = ctx.tx;
    let inv = invite(&mut tx, state.store.keyring()?, &email, roles).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(InvitationSent {
            invitation_id: inv.invitation_id,
            expires_at: inv.expires_at,
        }),
    ))
}

/// Invites `email` with `roles`, storing only the address's keyed tag, and audits
/// `invitation.create`: the one path of the API and the web pages. `409` when the practice
/// already has the most pending invitations allowed. The caller checks step-up and commits.
pub async fn invite(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    email: &domain::values::Email,
    roles: domain::RoleSet,
) -> Result<store::invitations::Invitation, AppError> {
    let tag = tx.lookup_tag(keyring, EMAIL, email.as_str()).await?;
    let inv = store::invitations::create(tx, &tag, roles).await?;
    tx.audit(
        AuditAction::InvitationCreate,
        None,
        Some(AuditObject::invitation(inv.invitation_id)),
    )
    .await?;
    Ok(inv)
}

/// An invitation as the practice sees it (never the address).
#[derive(Serialize, ToSchema)]
pub(crate) struct InvitationView {
    #[schema(value_type = String, format = Uuid)]
    invitation_id: InvitationId,
    /// Roles granted on acceptance.
    roles: Vec<String>,
    /// Who sent it.
    invited_by: UserId,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// `pending`, `accepted`, `declined`, `revoked` or `expired`.
    #[schema(value_type = String)]
    state: InvitationState,
    /// When it was accepted, declined or revoked.
    decided_at: Option<DateTime<Utc>>,
}

impl From<store::invitations::Invitation> for InvitationView {
    fn from(i: store::invitations::Invitation) -> Self {
        Self {
            invitation_id: i.invitation_id,
            roles: i.roles,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
            state: i.state,
            decided_at: i.decided_at,
        }
    }
}

/// The practice's invitations, newest first (owner or admin).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/invitations", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<InvitationView>)))]
pub(crate) async fn invitation_list(
    ctx: Ctx<Manage>,
) -> Result<Json<Vec<InvitationView>>, AppError> {
    let mut tx = ctx.tx;
    let list = list_invitations(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Revokes an invitation nobody has decided yet (owner or admin); `409` once it was accepted,
/// declined or revoked.
#[utoipa::path(delete, path = "/api/v1/practices/{practice_id}/invitations/{invitation_id}", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid), ("invitation_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 409, body = E, description = "Already accepted, declined or revoked")))]
pub(crate) async fn invitation_revoke(
    ctx: Ctx<Manage>,
    ApiPath((_, id)): ApiPath<(PracticeId, InvitationId)>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    revoke_invitation(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The practice's invitations, newest first, audited `invitation.list`: the one path of the
/// API and the web pages. The caller commits.
pub async fn list_invitations(
    tx: &mut store::TenantTx,
) -> Result<Vec<store::invitations::Invitation>, AppError> {
    let list = store::invitations::list(tx).await?;
    tx.audit(AuditAction::InvitationList, None, None).await?;
    Ok(list)
}

/// Revokes invitation `id`, which nobody has decided yet, and audits `invitation.revoke`: the
/// one path of the API and the web pages. `404` for no such invitation, `409` once it was
/// accepted, declined or revoked. The caller commits.
pub async fn revoke_invitation(tx: &mut store::TenantTx, id: InvitationId) -> Result<(), AppError> {
    match store::invitations::revoke(tx, id).await? {
        Revoked::Done => {}
        Revoked::NotFound => return Err(AppError::NotFound("invitation")),
        Revoked::AlreadyDecided => {
            return Err(AppError::Conflict(
                "this invitation was already accepted, declined or revoked".into(),
            ));
        }
    }
    tx.audit(
        AuditAction::InvitationRevoke,
        None,
        Some(AuditObject::invitation(id)),
    )
    .await?;
    Ok(())
}

/// An invitation addressed to the caller.
#[derive(Serialize, ToSchema)]
pub(crate) struct MyInvitationView {
    #[schema(value_type = String, format = Uuid)]
    invitation_id: InvitationId,
    /// The inviting practice.
    practice_id: PracticeId,
    /// Its name.
    practice_name: String,
    /// Roles granted on acceptance.
    roles: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<store::invitations::PendingInvitation> for MyInvitationView {
    fn from(i: store::invitations::PendingInvitation) -> Self {
        Self {
            invitation_id: i.invitation_id,
            practice_id: i.practice_id,
            practice_name: i.practice_name,
            roles: i.roles,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// The caller's own email's tag, read in the caller's transaction.
async fn own_tag(
    state: &AppState,
    session: &mut crate::extract::Session,
) -> Result<EmailTag, AppError> {
    let (email, _) = session.tx.profile().await?;
    let email = domain::values::Email::parse("email", &email)
        .map_err(|_| AppError::Internal("a stored account email is malformed".into()))?;
    Ok(session
        .tx
        .lookup_tag(state.store.keyring()?, EMAIL, email.as_str())
        .await?)
}

/// The pending invitations addressed to the caller's email (second factor required).
#[utoipa::path(get, path = "/api/v1/invitations", tag = "auth",
    responses((status = 200, body = Vec<MyInvitationView>)))]
pub(crate) async fn my_invitation_list(
    State(state): State<AppState>,
    MfaSession(mut session): MfaSession,
) -> Result<Json<Vec<MyInvitationView>>, AppError> {
    let tag = own_tag(&state, &mut session).await?;
    let list = session.tx.invitations(&tag).await?;
    session.tx.commit().await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

async fn decide(
    state: &AppState,
    mut session: crate::extract::Session,
    id: InvitationId,
    decision: Decision,
) -> Result<(PracticeId, Vec<String>), AppError> {
    let tag = own_tag(state, &mut session).await?;
    let decided = session
        .tx
        .decide_invitation(id, &tag, decision)
        .await?
        .ok_or(AppError::NotFound("invitation"))?;
    session.tx.commit().await?;
    Ok(decided)
}

/// What accepting gave.
#[derive(Serialize, ToSchema)]
pub(crate) struct InvitationAccepted {
    /// The practice joined.
    practice_id: PracticeId,
    /// The caller's roles there.
    roles: Vec<String>,
}

/// Accepts an invitation addressed to the caller's email (second factor required): the caller
/// becomes a member with the invited roles at once. `404` for an invitation that is unknown,
/// addressed to someone else, expired, revoked or already decided; `409` when the caller is
/// already a member.
#[utoipa::path(post, path = "/api/v1/invitations/{invitation_id}/accept", tag = "auth",
    params(("invitation_id" = String, Path, format = Uuid)),
    responses((status = 200, body = InvitationAccepted), (status = 404, body = E),
        (status = 409, body = E, description = "Already a member of that practice")))]
pub(crate) async fn my_invitation_accept(
    State(state): State<AppState>,
    MfaSession(session): MfaSession,
    ApiPath(id): ApiPath<InvitationId>,
) -> Result<Json<InvitationAccepted>, AppError> {
    let (practice_id, roles) = decide(&state, session, id, Decision::Accept).await?;
    Ok(Json(InvitationAccepted { practice_id, roles }))
}

/// Declines an invitation addressed to the caller's email (second factor required).
#[utoipa::path(post, path = "/api/v1/invitations/{invitation_id}/decline", tag = "auth",
    params(("invitation_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 404, body = E)))]
pub(crate) async fn my_invitation_decline(
    State(state): State<AppState>,
    MfaSession(session): MfaSession,
    ApiPath(id): ApiPath<InvitationId>,
) -> Result<StatusCode, AppError> {
    decide(&state, session, id, Decision::Decline).await?;
    Ok(StatusCode::NO_CONTENT)
}
