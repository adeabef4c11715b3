//! Client links: what an SMS or email carries to a client (an intake form, a booking to
//! manage), and the holder's way in.
//!
//! # Guarantees
//! - A link's token comes from [`LinkToken::generate`] (256 bits from the OS CSPRNG); the
//!   database keeps only its SHA-256 digest, never the token, and the URL carries nothing but
//!   the token ([`OpaqueLink`]).
//! - A link is bound to its purpose ([`Purpose`]): the holder enters through
//!   `app.enter_link(digest, purpose, now)` (`crate::entry::enter_link`), which admits only a
//!   live link (not expired, used or revoked) *of that purpose*, so a booking link never opens
//!   an intake form. Unknown, expired, used, revoked and wrong-purpose links are not told
//!   apart.
//! - The holder's transaction has the `client_link` pseudo-role and no actor; the policies give
//!   it its own link, its own request or appointment and its own patient's prefill, nothing
//!   else, in the practice that made the link only.
//! - Making a link is audited by what it is for (`intake.request`, the booking's events).

use chrono::{DateTime, Duration, Utc};
use domain::{AppointmentId, ClientLinkId, PatientId, PracticeId, UserId};
use outbound::{LinkOrigin, LinkPurpose, LinkToken, OpaqueLink};
use sqlx::PgConnection;

use crate::{StoreError, TenantTx};

/// How long an intake link works.
pub const INTAKE_LINK_TTL_DAYS: i64 = 14;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Fill in and sign an intake form.
    Intake,
    /// Confirm, cancel or reschedule a booking.
    BookingManage,
    /// See how a booking's payment stands (the payment page's return link).
    BookingPay,
    /// Accept a freed slot offered from the waitlist.
    Offer,
    /// Leave the waitlist one joined on the public booking page.
    Waitlist,
}

impl Purpose {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Intake => "intake",
            Self::BookingManage => "booking_manage",
            Self::BookingPay => "booking_pay",
            Self::Offer => "offer",
            Self::Waitlist => "waitlist",
        }
    }

    /// The path the link opens (`/intake/…`, `/manage/…`, `/pay/…`, `/offer/…`,
    /// `/waitlist/…`).
    #[must_use]
    pub const fn outbound(self) -> LinkPurpose {
        match self {
            Self::Intake => LinkPurpose::Intake,
            Self::BookingManage => LinkPurpose::Manage,
            Self::BookingPay => LinkPurpose::Pay,
            Self::Offer => LinkPurpose::Offer,
            Self::Waitlist => LinkPurpose::Waitlist,
        }
    }
}

/// A link just made: its id and its token (to put into a message; never stored).
#[derive(Debug)]
pub struct NewLink {
    /// The link.
    pub link_id: ClientLinkId,
    /// The token (its `Debug` prints `***`).
    pub token: LinkToken,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl NewLink {
    /// The URL for the message: `{origin}/{purpose}/{token}`.
    #[must_use]
    pub fn url(&self, origin: &LinkOrigin, purpose: Purpose) -> OpaqueLink {
        OpaqueLink::new(origin, purpose.outbound(), &self.token)
    }
}

/// Inserts a new link of `purpose` for `patient` opening `subject`, live until `expires_at`;
/// only the token's digest is stored.
#[expect(
    clippy::too_many_arguments,
    reason = "one row's columns, called by this crate's modules only"
)]
pub(crate) async fn insert(
    conn: &mut PgConnection,
    practice: PracticeId,
    purpose: Purpose,
    patient: PatientId,
    subject: uuid::Uuid,
    created_by: Option<UserId>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<NewLink, StoreError> {
    let token = LinkToken::generate();
    let link_id = ClientLinkId::new();
    sqlx::query(
        "insert into client_link (practice_id, link_id, purpose, digest, patient_id, subject_id,
                created_by, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(practice)
    .bind(link_id)
    .bind(purpose.as_str())
    .bind(token.digest().as_slice())
    .bind(patient)
    .bind(subject)
    .bind(created_by)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(NewLink {
        link_id,
        token,
        expires_at,
    })
}

/// Marks the holder's link used (the transaction entered through it).
pub(crate) async fn mark_used(
    conn: &mut PgConnection,
    practice: PracticeId,
    link: ClientLinkId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update client_link set used_at = $3
          where practice_id = $1 and link_id = $2 and used_at is null",
    )
    .bind(practice)
    .bind(link)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The end of an appointment and its patient, when it exists in the connection's practice
/// and the caller may read it.
async fn appointment(
    conn: &mut PgConnection,
    practice: PracticeId,
    appointment: AppointmentId,
) -> Result<Option<(PatientId, DateTime<Utc>)>, StoreError> {
    Ok(sqlx::query_as(
        "select patient_id, ends_at from appointment where practice_id = $1 and appointment_id = $2",
    )
    .bind(practice)
    .bind(appointment)
    .fetch_optional(conn)
    .await?)
}

/// A manage link for `appointment` (confirm, cancel, reschedule), for the confirmation and
/// reminder messages: live until the appointment ends. In the caller's transaction (the
/// scheduling roles); `None` when there is no such appointment. The caller queues the message
/// in the same transaction; the token is never stored.
pub async fn create_booking_manage_link(
    tx: &mut TenantTx,
    appointment_id: AppointmentId,
) -> Result<Option<LinkToken>, StoreError> {
    let practice = tx.practice();
    let (actor, now) = (tx.actor(), tx.now());
    let Some((patient, ends_at)) = appointment(tx.conn(), practice, appointment_id).await? else {
        return Ok(None);
    };
    let expires_at = ends_at.max(now + Duration::hours(1));
    let link = insert(
        tx.conn(),
        practice,
        Purpose::BookingManage,
        patient,
        appointment_id.as_uuid(),
        Some(actor),
        now,
        expires_at,
    )
    .await?;
    Ok(Some(link.token))
}

/// [`create_booking_manage_link`] for a booking the public page just made (its own
/// appointment, so its end is known).
pub(crate) async fn manage_link_for_new_booking(
    conn: &mut PgConnection,
    practice: PracticeId,
    patient: PatientId,
    appointment_id: AppointmentId,
    now: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> Result<LinkToken, StoreError> {
    let link = insert(
        conn,
        practice,
        Purpose::BookingManage,
        patient,
        appointment_id.as_uuid(),
        None,
        now,
        ends_at.max(now + Duration::hours(1)),
    )
    .await?;
    Ok(link.token)
}

/// Most links [`for_patient`] lists.
pub const MAX_LISTED: i64 = 100;

/// A link as staff see it: what it opens and its state, never its token (which is not
/// stored) nor its digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ClientLinkRow)]
pub struct LinkRow {
    /// The link.
    pub link_id: ClientLinkId,
    /// What it is for: `intake`, `booking_manage` (or a later purpose).
    pub purpose: String,
    /// The intake request or appointment it opens.
    pub subject_id: uuid::Uuid,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When the client used it up (an intake form submitted), if so.
    pub used_at: Option<DateTime<Utc>>,
    /// When staff revoked it, if so.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether it still opens anything now (not expired, used or revoked).
    pub outstanding: bool,
}

type LinkTuple = (
    ClientLinkId,
    String,
    uuid::Uuid,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// A link row with its patient first.
type WithPatient = (
    PatientId,
    ClientLinkId,
    String,
    uuid::Uuid,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn link_row(
    now: DateTime<Utc>,
    (link_id, purpose, subject_id, created_at, expires_at, used_at, revoked_at): LinkTuple,
) -> LinkRow {
    LinkRow {
        outstanding: used_at.is_none() && revoked_at.is_none() && expires_at > now,
        link_id,
        purpose,
        subject_id,
        created_at,
        expires_at,
        used_at,
        revoked_at,
    }
}

const LINK_COLUMNS: &str =
    "link_id, purpose, subject_id, created_at, expires_at, used_at, revoked_at";

/// A patient's client links, newest first (at most [`MAX_LISTED`]). The scheduling roles (the
/// RLS policy); nothing decrypted, no audit event of its own: the caller's page or route
/// audits the patient it shows.
///
/// # Errors
/// Database errors.
pub async fn for_patient(
    tx: &mut TenantTx,
    patient: PatientId,
) -> Result<Vec<LinkRow>, StoreError> {
    let (practice, now) = (tx.practice(), tx.now());
    let rows: Vec<LinkTuple> = sqlx::query_as(&format!(
        "select {LINK_COLUMNS} from client_link where practice_id = $1 and patient_id = $2
          order by created_at desc, link_id limit $3"
    ))
    .bind(practice)
    .bind(patient)
    .bind(MAX_LISTED)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|r| link_row(now, r)).collect())
}

/// Revokes an outstanding link: from this transaction's commit on, `app.enter_link` refuses
/// it exactly like an expired one (the client sees the one generic "link does not work"
/// page) and nothing it opened changes. The scheduling roles (the RLS policy); appends
/// `client_link.revoke` naming the patient and the link (its purpose in the details, never
/// the token). `None` when there is no such link in the practice;
/// [`StoreError::Conflict`] (`client_link_not_outstanding`) when it was already used,
/// revoked or expired (nothing changes).
///
/// # Errors
/// Database errors.
pub async fn revoke(tx: &mut TenantTx, link: ClientLinkId) -> Result<Option<LinkRow>, StoreError> {
    let (practice, now) = (tx.practice(), tx.now());
    let found: Option<(PatientId, LinkTuple)> = sqlx::query_as::<_, WithPatient>(&format!(
        "select patient_id, {LINK_COLUMNS} from client_link
          where practice_id = $1 and link_id = $2 for update"
    ))
    .bind(practice)
    .bind(link)
    .fetch_optional(tx.conn())
    .await?
    .map(|(patient, a, b, c, d, e, f, g)| (patient, (a, b, c, d, e, f, g)));
    let Some((patient, tuple)) = found else {
        return Ok(None);
    };
    let before = link_row(now, tuple);
    if !before.outstanding {
        return Err(StoreError::Conflict("client_link_not_outstanding".into()));
    }
    sqlx::query(
        "update client_link set revoked_at = $3
          where practice_id = $1 and link_id = $2 and revoked_at is null",
    )
    .bind(practice)
    .bind(link)
    .bind(now)
    .execute(tx.conn())
    .await?;
    tx.audit_details(
        domain::AuditAction::ClientLinkRevoke,
        Some(patient),
        Some(domain::AuditObject::client_link(link)),
        Some(serde_json::json!({"purpose": before.purpose})),
    )
    .await?;
    Ok(Some(LinkRow {
        revoked_at: Some(now),
        outstanding: false,
        ..before
    }))
}
