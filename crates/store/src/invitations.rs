//! Invitations to join a practice (migration 0017): the practice's owners and admins create,
//! list and revoke them ([`TenantTx`]; enforced by RLS); the invitee lists the pending
//! invitations addressed to their own email and accepts or declines one ([`UserTx`]).
//!
//! The email is never stored: callers pass its keyed lookup tag (32 bytes, computed by the
//! server under an installation key). Nothing here looks up whether an account has that
//! email, so creating an invitation does the same work and gives the same answer either way.
//! The caller audits (ids only).

use chrono::{DateTime, Duration, Utc};
use domain::{AuditAction, AuditObject, InvitationId, PracticeId, RoleSet, UserId};
use serde::Serialize;

use crate::{StoreError, TenantTx, UserTx};

/// How long an invitation stays open.
pub const TTL: Duration = Duration::days(7);

/// Most pending (unexpired, undecided) invitations a practice may have at once.
pub const MAX_PENDING: i64 = 100;

/// A lookup tag of an invited email address (HMAC-SHA256 under the installation's key).
pub type EmailTag = [u8; 32];

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    /// Open: neither decided nor revoked, not expired.
    Pending,
    /// The invitee accepted it (and became a member).
    Accepted,
    /// The invitee declined it.
    Declined,
    /// The practice revoked it.
    Revoked,
    /// Nobody decided it in time.
    Expired,
}

/// An invitation as the practice sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    /// The invitation.
    pub invitation_id: InvitationId,
    /// The roles it grants on acceptance.
    pub roles: Vec<String>,
    /// The owner or admin who sent it.
    pub invited_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Until when it can be accepted.
    pub expires_at: DateTime<Utc>,
    /// Where it stands now.
    pub state: InvitationState,
    /// When it was accepted, declined or revoked.
    pub decided_at: Option<DateTime<Utc>>,
}

type InvitationRow = (
    InvitationId,
    Vec<String>,
    UserId,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const COLUMNS: &str = "invitation_id, roles, invited_by, created_at, expires_at, accepted_at, declined_at, revoked_at";

fn invitation(r: InvitationRow, now: DateTime<Utc>) -> Invitation {
    let (state, decided_at) = match (r.5, r.6, r.7) {
        (Some(t), _, _) => (InvitationState::Accepted, Some(t)),
        (_, Some(t), _) => (InvitationState::Declined, Some(t)),
        (_, _, Some(t)) => (InvitationState::Revoked, Some(t)),
        _ if r.4 <= now => (InvitationState::Expired, None),
        _ => (InvitationState::Pending, None),
    };
    Invitation {
        invitation_id: r.0,
        roles: r.1,
        invited_by: r.2,
        created_at: r.3,
        expires_at: r.4,
        state,
        decided_at,
    }
}

/// Creates an invitation of `tag` with `roles`, open for [`TTL`] from the request time.
/// A conflict (`invitation_limit`) when the practice already has [`MAX_PENDING`] pending.
pub async fn create(
    tx: &mut TenantTx,
    tag: &EmailTag,
    roles: RoleSet,
) -> Result<Invitation, StoreError> {
    let now = tx.now();
    let (pending,): (i64,) = sqlx::query_as(
        "select count(*) from membership_invitation
          where practice_id = $1 and accepted_at is null and declined_at is null
            and revoked_at is null and expires_at > $2",
    )
    .bind(tx.practice())
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    if pending >= MAX_PENDING {
        return Err(StoreError::Conflict("invitation_limit".into()));
    }
    let row: InvitationRow = sqlx::query_as(&format!(
        "insert into membership_invitation
           (practice_id, invitation_id, email_tag, roles, invited_by, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(InvitationId::new())
    .bind(tag.as_slice())
    .bind(roles.names())
    .bind(tx.actor())
    .bind(now)
    .bind(now + TTL)
    .fetch_one(tx.conn())
    .await?;
    Ok(invitation(row, now))
}

/// The practice's invitations, newest first (at most 500).
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Invitation>, StoreError> {
    let now = tx.now();
    let rows: Vec<InvitationRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from membership_invitation where practice_id = $1
          order by created_at desc, invitation_id desc limit 500"
    ))
    .bind(tx.practice())
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|r| invitation(r, now)).collect())
}

/// What revoking found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// It was pending (or expired undecided) and is now revoked.
    Done,
    /// No such invitation in this practice.
    NotFound,
    /// It was already accepted, declined or revoked.
    AlreadyDecided,
}

/// Revokes an invitation that nobody decided yet (expired ones too: harmless, and final).
pub async fn revoke(tx: &mut TenantTx, id: InvitationId) -> Result<Revoked, StoreError> {
    let now = tx.now();
    let done = sqlx::query(
        "update membership_invitation set revoked_at = $3, decided_by = $4
          where practice_id = $1 and invitation_id = $2
            and accepted_at is null and declined_at is null and revoked_at is null",
    )
    .bind(tx.practice())
    .bind(id)
    .bind(now)
    .bind(tx.actor())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Revoked::Done);
    }
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from membership_invitation where practice_id = $1 and invitation_id = $2)",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_one(tx.conn())
    .await?;
    Ok(if exists {
        Revoked::AlreadyDecided
    } else {
        Revoked::NotFound
    })
}

/// A pending invitation as its invitee sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PendingInvitation {
    /// The invitation.
    pub invitation_id: InvitationId,
    /// The inviting practice.
    pub practice_id: PracticeId,
    /// Its name.
    pub practice_name: String,
    /// The roles it grants.
    pub roles: Vec<String>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// Until when it can be accepted.
    pub expires_at: DateTime<Utc>,
}

/// The invitee's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Join the practice with the invited roles.
    Accept,
    /// Do not join.
    Decline,
}

impl UserTx {
    /// The pending, unexpired invitations addressed to `tag` — the caller passes the tag of
    /// the signed-in user's own email (at most 100, oldest first).
    pub async fn invitations(
        &mut self,
        tag: &EmailTag,
    ) -> Result<Vec<PendingInvitation>, StoreError> {
        let now = self.now();
        Ok(sqlx::query_as(
            "select invitation_id, practice_id, practice_name, roles, created_at, expires_at
               from app.invitations_for($1, $2)",
        )
        .bind(tag.as_slice())
        .bind(now)
        .fetch_all(self.conn())
        .await?)
    }

    /// Accepts or declines the pending invitation `id` addressed to `tag` (the signed-in
    /// user's own email), and audits the decision on the inviting practice's log
    /// (`invitation.accept` followed by `membership.create`, or `invitation.decline`).
    /// `Ok(None)` when there is no such pending invitation for this address; a conflict
    /// (`membership_pkey`) when accepting makes an existing member a member again.
    pub async fn decide_invitation(
        &mut self,
        id: InvitationId,
        tag: &EmailTag,
        decision: Decision,
    ) -> Result<Option<(PracticeId, Vec<String>)>, StoreError> {
        let now = self.now();
        let row: Option<(PracticeId, Vec<String>)> =
            sqlx::query_as("select practice_id, roles from app.invitation_decide($1, $2, $3, $4)")
                .bind(id)
                .bind(tag.as_slice())
                .bind(now)
                .bind(decision == Decision::Accept)
                .fetch_optional(self.conn())
                .await?;
        let Some((practice, roles)) = row else {
            return Ok(None);
        };
        let invitation = Some(AuditObject::invitation(id));
        match decision {
            Decision::Accept => {
                self.audit_in(practice, AuditAction::InvitationAccept, invitation)
                    .await?;
                let user = Some(AuditObject::user(self.user()));
                self.audit_in(practice, AuditAction::MembershipCreate, user)
                    .await?;
            }
            Decision::Decline => {
                self.audit_in(practice, AuditAction::InvitationDecline, invitation)
                    .await?;
            }
        }
        Ok(Some((practice, roles)))
    }
}
