//! Audit actions, outcomes and object kinds: closed sets of stable strings; typed object
//! references.

use serde::{Deserialize, Serialize};

use crate::{
    AppointmentId, InvitationId, NoteId, PatientId, PerioExamId, PracticeId, UserId, VisitId,
};

macro_rules! actions {
    ($($(#[$m:meta])* $variant:ident => $name:literal,)*) => {
        /// What an audit event records. Stored as its stable name; never free text.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum AuditAction {
            $($(#[$m])* #[serde(rename = $name)] $variant,)*
        }

        impl AuditAction {
            /// Every action.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// Whether this is access to clinical records (notes, visits, perio exams): its
            /// audit event is flagged as emergency access when made through break-glass.
            #[must_use]
            pub fn is_clinical(self) -> bool {
                let n = self.as_str();
                n.starts_with("note.")
                    || n.starts_with("perio_exam.")
                    || n.starts_with("visit.")
                    || n.starts_with("note_draft.")
                    || n.starts_with("transcript.")
                    || n.starts_with("assistant.")
                    || n.starts_with("capture.")
                    || n.starts_with("recording_consent.")
                    || n == "patient.export"
            }

            /// The stable name stored in `audit_event.action`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $name,)* }
            }
        }
    };
}

actions! {
    /// The practice's settings were read.
    PracticeRead => "practice.read",
    /// The practice's settings were changed.
    PracticeUpdate => "practice.update",
    /// The member directory was listed.
    MembershipList => "membership.list",
    /// A member was added (role granted).
    MembershipCreate => "membership.create",
    /// A member's roles were changed.
    MembershipUpdate => "membership.update",
    /// A member was removed.
    MembershipDelete => "membership.delete",
    /// An owner or admin invited an email address to join with roles (the address is not
    /// logged).
    InvitationCreate => "invitation.create",
    /// The practice's invitations were listed.
    InvitationList => "invitation.list",
    /// An owner or admin revoked a pending invitation.
    InvitationRevoke => "invitation.revoke",
    /// The invitee accepted an invitation (a `membership.create` event follows it).
    InvitationAccept => "invitation.accept",
    /// The invitee declined an invitation.
    InvitationDecline => "invitation.decline",
    /// A patient's record was read.
    PatientRead => "patient.read",
    /// A patient appeared in a list or search result.
    PatientList => "patient.list",
    /// A patient was created.
    PatientCreate => "patient.create",
    /// A patient's demographics or contact details were changed.
    PatientUpdate => "patient.update",
    /// A patient was deleted (soft: reads answer 410, history stays; the retention job
    /// purges the record later).
    PatientDelete => "patient.delete",
    /// An appointment was read.
    AppointmentRead => "appointment.read",
    /// An appointment appeared in a list.
    AppointmentList => "appointment.list",
    /// An appointment was created.
    AppointmentCreate => "appointment.create",
    /// An appointment was changed (time, status).
    AppointmentUpdate => "appointment.update",
    /// A clinical note was read.
    NoteRead => "note.read",
    /// A clinical note appeared in a list.
    NoteList => "note.list",
    /// A clinical note was created.
    NoteCreate => "note.create",
    /// A draft note was saved (a new version).
    NoteUpdate => "note.update",
    /// A note was signed (and locked).
    NoteSign => "note.sign",
    /// A signed note was amended (a new signed version; the details say whether it was
    /// AI-assisted).
    NoteAmend => "note.amend",
    /// An addendum was added to a signed note.
    NoteAddendum => "note.addendum",
    /// A draft note was deleted (soft).
    NoteDelete => "note.delete",
    /// A note's version hashes were verified (the details carry the result).
    NoteVerify => "note.verify",
    /// A clinician opened a patient outside their care team by break-glass (an alert is
    /// raised; the grant awaits review).
    BreakGlassOpen => "break_glass.open",
    /// The break-glass review list was read.
    BreakGlassReview => "break_glass.review",
    /// An owner or admin acknowledged a break-glass grant.
    BreakGlassAcknowledge => "break_glass.acknowledge",
    /// An owner approved vendor support access (scope, duration; the reason is not logged).
    SupportGrantApprove => "support_grant.approve",
    /// The practice's support grants were listed.
    SupportGrantList => "support_grant.list",
    /// A support grant was revoked.
    SupportGrantRevoke => "support_grant.revoke",
    /// An AI provider was registered (the details name its posture flags, never its key).
    AiProviderRegister => "ai_provider.register",
    /// An AI provider's posture was changed (the details name the changed fields, never
    /// values or the key).
    AiProviderUpdate => "ai_provider.update",
    /// The practice's AI providers were listed.
    AiProviderList => "ai_provider.list",
    /// A patient's assigned clinician (care team) was set or cleared.
    CareTeamAssign => "care_team.assign",
    /// A visit (encounter) was recorded.
    VisitCreate => "visit.create",
    /// A patient's visits were listed.
    VisitList => "visit.list",
    /// A patient's perio exams were listed (ids and dates, no chart values).
    PerioExamList => "perio_exam.list",
    /// A perio exam was created (with its session settings).
    PerioExamCreate => "perio_exam.create",
    /// A perio exam's chart and derived values were read.
    PerioExamRead => "perio_exam.read",
    /// A perio exam's charting session was acted on: a final, a confirmation, a decline or
    /// an undo (the details name which, and the outcome status — never values or words).
    PerioExamUpdate => "perio_exam.update",
    /// A perio exam was exported as FHIR R4 `Observation` resources.
    PerioExamExport => "perio_exam.export",
    /// A recording consent was recorded for a visit (who consented as a role, how, under
    /// which rule: closed vocabularies, never a name).
    RecordingConsentRecord => "recording_consent.record",
    /// A recording consent was withdrawn (any open capture of the visit stops at once and its
    /// audio is purged).
    RecordingConsentWithdraw => "recording_consent.withdraw",
    /// A capture (recording) of a visit started.
    CaptureStart => "capture.start",
    /// A live capture was paused.
    CapturePause => "capture.pause",
    /// A paused capture was resumed.
    CaptureResume => "capture.resume",
    /// A capture stopped (the details name why: clinician, consent withdrawn, maximum
    /// duration, abandoned).
    CaptureStop => "capture.stop",
    /// An audio chunk of a capture was stored (sequence number and sizes only).
    CaptureChunk => "capture.chunk",
    /// A capture's audio was deleted (retention, consent withdrawn).
    CaptureAudioPurge => "capture.audio_purge",
    /// A capture's state and chunk counts were read.
    CaptureRead => "capture.read",
    /// The practice's scribe policy (consent rule, audio retention, longest capture) was set.
    ScribePolicyUpdate => "scribe_policy.update",
    /// An attempt was refused (wrong role, or not a member of the practice).
    AccessDenied => "access.denied",
    /// The audit log was read (a report).
    AuditRead => "audit.read",
    /// The audit log was exported (FHIR `AuditEvent` NDJSON).
    AuditExport => "audit.export",
    /// An inclusion or consistency proof was produced.
    AuditProof => "audit.proof",
    /// Audit rows older than the retention window were pruned.
    AuditPrune => "audit.prune",
    /// A legal hold was placed on a patient (or its category changed): nothing of the patient
    /// is purged while it holds.
    LegalHoldPlace => "legal_hold.place",
    /// A legal hold was released.
    LegalHoldRelease => "legal_hold.release",
    /// The practice's retention windows and legal holds were read.
    RetentionRead => "retention.read",
    /// The retention job purged a record past its retention window (one event per record,
    /// ids only; the record's earlier audit events stay).
    RetentionPurge => "retention.purge",
    /// A disclosure outside the practice was recorded.
    DisclosureCreate => "disclosure.create",
    /// A patient's accounting of disclosures was produced.
    DisclosureReport => "disclosure.report",
    /// A sign-in attempt (password or passkey): success, or denied with a reason.
    AuthSignIn => "auth.sign_in",
    /// A second factor was verified on a session (completing sign-in, or a step-up).
    AuthSecondFactor => "auth.second_factor",
    /// Sign-in attempts were throttled after repeated failures (an alert is raised once per
    /// burst).
    AuthThrottled => "auth.throttled",
    /// A session was ended by its user (logout).
    AuthSignOut => "auth.sign_out",
    /// A session was revoked from the session list.
    SessionRevoke => "session.revoke",
    /// The user changed their password.
    PasswordChange => "password.change",
    /// A second factor was enrolled (TOTP, passkey).
    MfaEnroll => "mfa.enroll",
    /// A second factor was removed.
    MfaRemove => "mfa.remove",
    /// A recovery code was used.
    MfaRecoveryUsed => "mfa.recovery_used",
    /// A new set of recovery codes replaced the old one.
    MfaRecoveryRegenerate => "mfa.recovery_regenerate",
    /// Rows that still held plaintext were encrypted (`chartroom keys`, the start-up job, or
    /// installation secrets moved under the installation data key; the details carry counts).
    KeyEncryptExisting => "key.encrypt_existing",
    /// The key-encryption key was rotated and the practice's data keys rewrapped under it.
    KeyRotateKek => "key.rotate_kek",
    /// A new version of the practice's data key was added.
    KeyRotateDataKey => "key.rotate_data_key",
    /// The practice's sealed rows and blobs were re-encrypted under the active data key
    /// (counts in the details).
    KeyReencrypt => "key.reencrypt",
    /// Data key versions older than the active one were retired.
    KeyRetireDataKey => "key.retire_data_key",
    /// Every data key of the practice was destroyed (crypto-shredding).
    KeyShred => "key.shred",
    /// An AI call was made or refused (an assistant turn: provider, model, purpose and
    /// outcome in the details; the prompt and output are sealed in the turn, never logged).
    AssistantTurn => "assistant.turn",
    /// A capture's transcript was read (segments decrypted).
    TranscriptRead => "transcript.read",
    /// A transcript segment was corrected (a new revision; the earlier text is kept).
    TranscriptCorrect => "transcript.correct",
    /// A note draft was written for a visit (AI-written or the default draft).
    NoteDraftCreate => "note_draft.create",
    /// A note draft (its sentences, evidence and flags) was read.
    NoteDraftRead => "note_draft.read",
    /// A draft sentence was accepted or edited by the clinician (the details say which).
    NoteDraftUpdate => "note_draft.update",
    /// A backup archive was written (installation log; ids and counts).
    BackupCreate => "backup.create",
    /// A backup archive was restored (installation log; ids and counts).
    BackupRestore => "backup.restore",
    /// The practice's online-booking rules, services or clinicians' hours were changed.
    BookingSetup => "booking.setup",
    /// A client booked (or asked for) an appointment on the practice's public page.
    BookingCreate => "booking.create",
    /// Online bookings were listed for review.
    BookingList => "booking.list",
    /// The practice approved or declined a requested online booking.
    BookingDecide => "booking.decide",
    /// A patient's state of residence was recorded (a two-letter code; for breach counts).
    PatientResidenceUpdate => "patient.residence_update",
    /// A security incident was recorded (its discovery time starts every clock).
    IncidentCreate => "incident.create",
    /// Incidents were listed.
    IncidentList => "incident.list",
    /// An incident (its sealed notes decrypted) was read.
    IncidentRead => "incident.read",
    /// An incident's status, response or outcome notes changed (the new status in the details).
    IncidentUpdate => "incident.update",
    /// The four-factor risk assessment of an incident was recorded.
    IncidentAssess => "incident.assess",
    /// The patients an incident affected were found from the audit log (counts in the details).
    IncidentScope => "incident.scope",
    /// A notification letter (or batch) was recorded as sent (recipient kind and count).
    IncidentLetter => "incident.letter",
    /// An incident was closed, as a breach or not (which, in the details).
    IncidentClose => "incident.close",
    /// A breach clock of an incident came due and its alert was raised (the clock in the
    /// details).
    IncidentAlert => "incident.alert",
    /// Emergency mode (read-only operation) was switched on or off, for the installation or
    /// a practice (scope and new state in the details).
    EmergencySwitch => "emergency.switch",
    /// An intake form was requested for a patient (a request and its link were made; the
    /// token is never logged).
    IntakeRequest => "intake.request",
    /// A link holder opened their intake form (the prefill from the chart was shown).
    IntakeOpen => "intake.open",
    /// A link holder signed and submitted their intake form.
    IntakeSubmit => "intake.submit",
    /// The intake review queue was listed.
    IntakeList => "intake.list",
    /// A submitted intake form (its answers) was opened by staff.
    IntakeRead => "intake.read",
    /// Staff accepted an intake form (it is on the chart from now on) or rejected it.
    IntakeDecide => "intake.decide",
    /// A link holder confirmed, cancelled or rescheduled their appointment through a manage
    /// link (the details say which, and whether the cancellation was late).
    BookingManage => "booking.manage",
    /// A job queued a message to a client (a booking reminder), reading the client's contact
    /// points to address it; the details carry the template and channels only.
    OutboxQueue => "outbox.queue",
    /// The outbox job opened a queued message (recipient and slots) to send it; the details
    /// carry the template and channel only.
    OutboxSend => "outbox.send",
    /// The outbound scanner refused a message: nothing was sent (the finding's kind in the
    /// details, never the payload).
    OutboxRefused => "outbox.refused",
    /// A client was put on the booking waitlist.
    WaitlistAdd => "waitlist.add",
    /// The waitlist was listed (ids, services, windows and states only).
    WaitlistList => "waitlist.list",
    /// A client was taken off the waitlist.
    WaitlistRemove => "waitlist.remove",
    /// A freed slot was offered to a waitlist entry (its link made and its message queued;
    /// the token is never logged).
    WaitlistOffer => "waitlist.offer",
    /// A client opened a waitlist offer, accepted it (the slot was booked), or found the
    /// slot taken (the details say which).
    WaitlistAccept => "waitlist.accept",
    /// Staff revoked an outstanding client link (intake, manage): it stops working at once
    /// (the details name its purpose; the token is never logged).
    ClientLinkRevoke => "client_link.revoke",
    /// A member registered a Web Push subscription for this practice (the push service's host
    /// in the details; the endpoint and keys are sealed, never logged).
    PushSubscribe => "push.subscribe",
    /// A Web Push subscription was removed: by its member, or by the outbox job because the
    /// push service answered that it is gone (`404`/`410`; the details say which).
    PushUnsubscribe => "push.unsubscribe",
    /// The practice's outbox (states, channels, times) was listed.
    OutboxList => "outbox.list",
    /// The templates preview was shown: every template rendered with sample slots and scanned
    /// with the practice's own clients opened (their count in the details; no client named).
    OutboxPreview => "outbox.preview",
    /// A client's SMS opt-out changed (STOP / START from the carrier; no number kept).
    SmsOptOut => "sms.opt_out",
    /// A patient's right-of-access request was recorded (its form; whether a third party is
    /// to receive the copy; never the recipient).
    AccessRequestCreate => "access_request.create",
    /// The practice's right-of-access requests were listed (nothing decrypted).
    AccessRequestList => "access_request.list",
    /// A right-of-access request (its recipient and written reasons decrypted) was read.
    AccessRequestRead => "access_request.read",
    /// A right-of-access request's deadline was extended once by 30 days (the written reason
    /// is sealed with the request, never logged).
    AccessRequestExtend => "access_request.extend",
    /// A right-of-access request was denied (the written reason is sealed with the request).
    AccessRequestDeny => "access_request.deny",
    /// A right-of-access request was fulfilled: the copy was produced (a `patient.export`
    /// event precedes it).
    AccessRequestFulfil => "access_request.fulfil",
    /// A right-of-access request came due unanswered and its overdue alert was raised (once).
    AccessRequestOverdue => "access_request.overdue",
    /// A patient's amendment request was recorded (the kind of record it names; never the
    /// change asked for).
    AmendmentRequestCreate => "amendment_request.create",
    /// The practice's amendment requests were listed (nothing decrypted).
    AmendmentRequestList => "amendment_request.list",
    /// An amendment request (the change asked for and every written statement decrypted) was
    /// read.
    AmendmentRequestRead => "amendment_request.read",
    /// An amendment request's deadline was extended once by 30 days (the written reason is
    /// sealed with the request, never logged).
    AmendmentRequestExtend => "amendment_request.extend",
    /// An amendment request was accepted: the change landed as the named note version (a
    /// `note.amend` or `note.addendum` event precedes it), or on a record of another kind.
    AmendmentRequestAccept => "amendment_request.accept",
    /// An amendment request was denied (the written reason is sealed with the request).
    AmendmentRequestDeny => "amendment_request.deny",
    /// The patient's statement of disagreement with a denial was linked to the request
    /// (sealed).
    AmendmentRequestDisagreement => "amendment_request.disagreement",
    /// The practice's rebuttal of a statement of disagreement was linked to the request
    /// (sealed).
    AmendmentRequestRebuttal => "amendment_request.rebuttal",
    /// An amendment request came due unanswered and its overdue alert was raised (once).
    AmendmentRequestOverdue => "amendment_request.overdue",
    /// A patient's designated record set was exported (FHIR R4 Bundle or its HTML rendering;
    /// the format and resource counts in the details).
    PatientExport => "patient.export",
    /// A verified payment-processor event settled a booking's payment (paid, card saved,
    /// failed, expired); the details carry the outcome and the event kind, never an amount
    /// holder's detail.
    PaymentSettle => "payment.settle",
    /// An unpaid hold ran out and was released (its slot freed) by the job.
    PaymentExpire => "payment.expire",
    /// The outbound scanner refused a payment-processor request: nothing was sent.
    PaymentRefused => "payment.refused",
    /// A booking's payment records (states, amounts, processor ids) were read by staff.
    PaymentList => "payment.list",
    /// The payments job asked the processor for a fee (off session, with the card saved at
    /// booking) or a refund, or found nothing to ask with; the details carry the kind, the
    /// resulting state and its reason, never an amount holder's detail.
    PaymentCharge => "payment.charge",
}

macro_rules! object_kinds {
    ($($(#[$m:meta])* $variant:ident => $name:literal,)*) => {
        /// The kind of object an audit event is about: a closed set, stored as
        /// `audit_event.object_type`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ObjectKind {
            $($(#[$m])* $variant,)*
        }

        impl ObjectKind {
            /// Every kind.
            pub const ALL: &'static [ObjectKind] = &[$(ObjectKind::$variant,)*];

            /// The stable name stored in `audit_event.object_type`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(ObjectKind::$variant => $name,)* }
            }
        }
    };
}

object_kinds! {
    /// A practice (its settings, its keys, its log).
    Practice => "practice",
    /// A user account (a member, an invitee who accepted).
    User => "user",
    /// An invitation to join a practice.
    Invitation => "invitation",
    /// A patient record.
    Patient => "patient",
    /// An appointment.
    Appointment => "appointment",
    /// A visit (encounter).
    Visit => "visit",
    /// A clinical note.
    Note => "note",
    /// A perio exam.
    PerioExam => "perio_exam",
    /// A break-glass grant.
    BreakGlass => "break_glass",
    /// A vendor support grant.
    SupportGrant => "support_grant",
    /// An AI provider of the practice.
    AiProvider => "ai_provider",
    /// A recorded disclosure.
    Disclosure => "disclosure",
    /// A patient's legal hold (its id is the patient's).
    LegalHold => "legal_hold",
    /// An assistant turn (one AI call).
    AssistantTurn => "assistant_turn",
    /// A recording consent of a visit.
    RecordingConsent => "recording_consent",
    /// A capture (recording) of a visit; its transcript is named by it.
    Capture => "capture",
    /// A transcript segment.
    TranscriptSegment => "transcript_segment",
    /// A note draft.
    NoteDraft => "note_draft",
    /// An online booking (its id is the booking's).
    OnlineBooking => "online_booking",
    /// A security incident.
    Incident => "incident",
    /// An intake request (its response is named by it).
    IntakeRequest => "intake_request",
    /// A message in the outbox.
    OutboxMessage => "outbox_message",
    /// A patient's right-of-access request.
    AccessRequest => "access_request",
    /// A patient's amendment request.
    AmendmentRequest => "amendment_request",
    /// A payment of an online booking.
    BookingPayment => "booking_payment",
    /// A waitlist entry.
    WaitlistEntry => "waitlist_entry",
    /// A waitlist offer.
    WaitlistOffer => "waitlist_offer",
    /// A client link (never its token).
    ClientLink => "client_link",
    /// A member's Web Push subscription.
    PushSubscription => "push_subscription",
}

/// What an audit event is about: a kind from a closed set and the object's id. Built from the
/// typed id of each kind, so an event cannot name a note by a patient's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AuditObject {
    kind: ObjectKind,
    id: uuid::Uuid,
}

impl AuditObject {
    /// An object of `kind` with a bare id: for kinds without an id type of their own (grants,
    /// disclosures) and for records a job names by kind (retention purges).
    #[must_use]
    pub const fn new(kind: ObjectKind, id: uuid::Uuid) -> Self {
        Self { kind, id }
    }

    /// A practice.
    #[must_use]
    pub fn practice(id: PracticeId) -> Self {
        Self::new(ObjectKind::Practice, id.as_uuid())
    }

    /// A user account.
    #[must_use]
    pub fn user(id: UserId) -> Self {
        Self::new(ObjectKind::User, id.as_uuid())
    }

    /// An invitation.
    #[must_use]
    pub fn invitation(id: InvitationId) -> Self {
        Self::new(ObjectKind::Invitation, id.as_uuid())
    }

    /// A patient record.
    #[must_use]
    pub fn patient(id: PatientId) -> Self {
        Self::new(ObjectKind::Patient, id.as_uuid())
    }

    /// An appointment.
    #[must_use]
    pub fn appointment(id: AppointmentId) -> Self {
        Self::new(ObjectKind::Appointment, id.as_uuid())
    }

    /// An online booking.
    #[must_use]
    pub fn online_booking(id: crate::BookingId) -> Self {
        Self::new(ObjectKind::OnlineBooking, id.as_uuid())
    }

    /// A payment of an online booking.
    #[must_use]
    pub fn booking_payment(id: crate::PaymentId) -> Self {
        Self::new(ObjectKind::BookingPayment, id.as_uuid())
    }

    /// An intake request.
    #[must_use]
    pub fn intake_request(id: crate::IntakeRequestId) -> Self {
        Self::new(ObjectKind::IntakeRequest, id.as_uuid())
    }

    /// A waitlist entry.
    #[must_use]
    pub fn waitlist_entry(id: crate::WaitlistEntryId) -> Self {
        Self::new(ObjectKind::WaitlistEntry, id.as_uuid())
    }

    /// A waitlist offer.
    #[must_use]
    pub fn waitlist_offer(id: crate::WaitlistOfferId) -> Self {
        Self::new(ObjectKind::WaitlistOffer, id.as_uuid())
    }

    /// A client link.
    #[must_use]
    pub fn client_link(id: crate::ClientLinkId) -> Self {
        Self::new(ObjectKind::ClientLink, id.as_uuid())
    }

    /// A Web Push subscription.
    #[must_use]
    pub fn push_subscription(id: crate::PushSubscriptionId) -> Self {
        Self::new(ObjectKind::PushSubscription, id.as_uuid())
    }

    /// A visit.
    #[must_use]
    pub fn visit(id: VisitId) -> Self {
        Self::new(ObjectKind::Visit, id.as_uuid())
    }

    /// A clinical note.
    #[must_use]
    pub fn note(id: NoteId) -> Self {
        Self::new(ObjectKind::Note, id.as_uuid())
    }

    /// A perio exam.
    #[must_use]
    pub fn perio_exam(id: PerioExamId) -> Self {
        Self::new(ObjectKind::PerioExam, id.as_uuid())
    }

    /// A recording consent.
    #[must_use]
    pub fn recording_consent(id: crate::ConsentId) -> Self {
        Self::new(ObjectKind::RecordingConsent, id.as_uuid())
    }

    /// A capture (and its transcript).
    #[must_use]
    pub fn capture(id: crate::CaptureId) -> Self {
        Self::new(ObjectKind::Capture, id.as_uuid())
    }

    /// A patient's legal hold (named by the patient).
    #[must_use]
    pub fn legal_hold(patient: PatientId) -> Self {
        Self::new(ObjectKind::LegalHold, patient.as_uuid())
    }

    /// An assistant turn.
    #[must_use]
    pub fn assistant_turn(id: crate::AssistantTurnId) -> Self {
        Self::new(ObjectKind::AssistantTurn, id.as_uuid())
    }

    /// A transcript segment.
    #[must_use]
    pub fn transcript_segment(id: crate::SegmentId) -> Self {
        Self::new(ObjectKind::TranscriptSegment, id.as_uuid())
    }

    /// A note draft.
    #[must_use]
    pub fn note_draft(id: crate::DraftId) -> Self {
        Self::new(ObjectKind::NoteDraft, id.as_uuid())
    }

    /// The kind.
    #[must_use]
    pub const fn kind(self) -> ObjectKind {
        self.kind
    }

    /// The object's id.
    #[must_use]
    pub const fn id(self) -> uuid::Uuid {
        self.id
    }
}

/// How the audited attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was carried out.
    Success,
    /// The action was refused (authorization).
    Denied,
}

impl Outcome {
    /// The stable name stored in `audit_event.outcome`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
        }
    }
}
