//! Entity id newtypes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (`UUIDv7`) id: index-friendly and never reused.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (from the database or a parsed path).
            #[must_use]
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A practice (tenant).
    PracticeId
);
id_type!(
    /// A person who signs in (global identity; joins practices through memberships).
    UserId
);
id_type!(
    /// A patient of one practice.
    PatientId
);
id_type!(
    /// An appointment of one practice.
    AppointmentId
);
id_type!(
    /// A clinical note.
    NoteId
);
id_type!(
    /// A visit (encounter): one patient seen by one clinician.
    VisitId
);
id_type!(
    /// A periodontal exam (one perio charting session of one patient).
    PerioExamId
);
id_type!(
    /// An invitation to join a practice (addressed to an email; the invitee accepts or
    /// declines it).
    InvitationId
);
id_type!(
    /// An audit event.
    AuditEventId
);
id_type!(
    /// The id of one HTTP request, echoed in `x-request-id`, error bodies and audit rows.
    RequestId
);

impl PracticeId {
    /// The installation's own security log (a practice row of kind `system`, the nil id):
    /// sign-in attempts, throttling and MFA changes are audited there, on the same hash chain
    /// and checkpoints as a practice's log. Nobody can be a member of it.
    pub const SYSTEM: PracticeId = PracticeId(Uuid::nil());

    /// Whether this is [`PracticeId::SYSTEM`].
    #[must_use]
    pub fn is_system(&self) -> bool {
        self.0.is_nil()
    }
}
id_type!(
    /// A recording consent for one visit.
    ConsentId
);
id_type!(
    /// One capture (recording) of a visit.
    CaptureId
);
id_type!(
    /// One transcript segment.
    SegmentId
);
id_type!(
    /// One AI call (an assistant turn).
    AssistantTurnId
);
id_type!(
    /// An AI provider of a practice (a registered subprocessor or a self-hosted service).
    ProviderId
);
id_type!(
    /// A note draft.
    DraftId
);
id_type!(
    /// An online booking.
    BookingId
);
id_type!(
    /// A security incident of a practice.
    IncidentId
);
id_type!(
    /// A client link (an SMS or email link to an intake form or a booking).
    ClientLinkId
);
id_type!(
    /// An intake request: a form sent to a patient.
    IntakeRequestId
);
id_type!(
    /// A staff member's Web Push subscription (one browser) in a practice.
    PushSubscriptionId
);
id_type!(
    /// A bookable service of a practice.
    ServiceId
);
id_type!(
    /// A patient's request for access to their designated record set (HIPAA 164.524).
    AccessRequestId
);
id_type!(
    /// A patient's request to amend a record (HIPAA 164.526).
    AmendmentRequestId
);
id_type!(
    /// A payment of an online booking (a deposit, a prepayment, a card saved): the opaque
    /// reference the payment processor is given.
    PaymentId
);
id_type!(
    /// A client waiting for a time of a service (the booking waitlist).
    WaitlistEntryId
);
id_type!(
    /// A freed slot offered to one waitlist entry.
    WaitlistOfferId
);
