//! Chartroom's pure domain types: entity ids, roles and permissions, audit actions, the
//! injected clock, validated input values and the synthetic-patient generator.
//!
//! # Guarantees
//! - Every entity has its own id newtype ([`PracticeId`], [`PatientId`], …), so an id of one
//!   kind can never be passed where another is expected, and a bare `Uuid` never crosses a
//!   crate boundary.
//! - Roles are a closed set ([`Role`]); the privilege a route needs is a [`Privilege`], and
//!   [`Privilege::allows`] is the single place that maps one to the other. The database
//!   enforces the same mapping in its row-level security policies.
//! - Audit actions ([`AuditAction`]) are a closed set of stable strings; an audit row carries an
//!   action, never free text, so it cannot carry PHI.
//! - Time is read only through a [`Clock`], so timeouts and retention are testable without
//!   sleeping.
//! - A note's lifecycle is one table ([`notes::NoteStatus::allows`]); its content hash
//!   ([`notes::content_hash`]) binds the note, the version, the signer and the canonical
//!   content, so a hash moved to another note or signer does not verify.
//!
//! - A practice's settings are a closed, typed set ([`practice::PracticeSettings`]): a key or
//!   value outside it is refused before it can be stored.
//!
//! This crate does no IO.
//!
//! # Example
//! ```
//! use domain::{Privilege, Role, RoleSet};
//! let reception = RoleSet::from_iter([Role::Reception]);
//! assert!(Privilege::Scheduling.allows(reception));
//! assert!(!Privilege::Clinical.allows(reception));
//! ```

mod audit;
pub mod booking;
pub mod clock;
mod ids;
pub mod incident;
pub mod intake;
pub mod notes;
pub mod practice;
pub mod rights;
mod roles;
pub mod synthetic;
pub mod values;

pub use audit::{AuditAction, AuditObject, ObjectKind, Outcome};
pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{
    AccessRequestId, AmendmentRequestId, AppointmentId, AssistantTurnId, AuditEventId, BookingId,
    CaptureId, ClientLinkId, ConsentId, DraftId, IncidentId, IntakeRequestId, InvitationId, NoteId,
    PatientId, PaymentId, PerioExamId, PracticeId, ProviderId, PushSubscriptionId, RequestId,
    SegmentId, ServiceId, UserId, VisitId, WaitlistEntryId, WaitlistOfferId,
};
pub use roles::{Privilege, Role, RoleSet, UnknownRole};
