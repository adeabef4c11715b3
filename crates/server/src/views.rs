//! What the API returns. Views are separate from database rows so the shape a role receives is
//! decided here, not by the schema.

use chrono::{DateTime, NaiveDate, Utc};
use domain::{AppointmentId, NoteId, PatientId, PracticeId, UserId};
use serde::Serialize;
use utoipa::ToSchema;

/// A patient's demographics and contact details.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatientView {
    /// Id.
    pub patient_id: PatientId,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth (YYYY-MM-DD).
    pub date_of_birth: Option<NaiveDate>,
    /// Phone.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<store::patients::Patient> for PatientView {
    fn from(p: store::patients::Patient) -> Self {
        Self {
            patient_id: p.patient_id,
            given_name: p.given_name,
            family_name: p.family_name,
            date_of_birth: p.date_of_birth,
            phone: p.phone,
            email: p.email,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// An appointment.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentView {
    /// Id.
    pub appointment_id: AppointmentId,
    /// The patient.
    pub patient_id: PatientId,
    /// The clinician.
    pub clinician_id: UserId,
    /// Start (RFC 3339).
    pub starts_at: DateTime<Utc>,
    /// End (RFC 3339).
    pub ends_at: DateTime<Utc>,
    /// `booked`, `arrived`, `completed`, `cancelled` or `no_show`.
    pub status: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<store::appointments::Appointment> for AppointmentView {
    fn from(a: store::appointments::Appointment) -> Self {
        Self {
            appointment_id: a.appointment_id,
            patient_id: a.patient_id,
            clinician_id: a.clinician_id,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            status: a.status,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A clinical note: current content, state, the signature manifestation of the signed
/// version, and every amendment (with its word-level diff against the signed version) and
/// addendum.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteView {
    /// Id.
    pub note_id: NoteId,
    /// The patient.
    pub patient_id: PatientId,
    /// The author.
    pub author_id: UserId,
    /// The template.
    pub template: domain::notes::Template,
    /// The visit it documents.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub visit_id: Option<domain::VisitId>,
    /// `draft`, `signed` or `deleted`.
    pub status: domain::notes::NoteStatus,
    /// Whether the signed note has amendments.
    pub amended: bool,
    /// The newest version (also the `ETag`).
    pub version: i32,
    /// The current content (the newest amendment, else the signed version, else the draft).
    pub content: domain::notes::NoteContent,
    /// The signature of the signed version: printed name, credential, date and time with
    /// zone, meaning.
    pub signature: Option<domain::notes::Signature>,
    /// The signed version's number.
    pub signed_version: Option<i32>,
    /// The content exactly as signed, when amendments replaced it.
    pub signed_content: Option<domain::notes::NoteContent>,
    /// Amendments, oldest first.
    pub amendments: Vec<AmendmentView>,
    /// Addenda, oldest first.
    pub addenda: Vec<AddendumView>,
    /// The patient's amendment requests that name this note, oldest first (req SIG-07): the
    /// request, and the denial, statement of disagreement and rebuttal linked to it, are read
    /// at `…/amendment-requests/{request_id}` and exported with the note.
    pub amendment_requests: Vec<LinkedAmendmentView>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// An amendment request linked to a note: where it stands and which documents it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedAmendmentView {
    /// The request.
    #[schema(value_type = String, format = Uuid)]
    pub request_id: domain::AmendmentRequestId,
    /// `open`, `extended`, `granted` (accepted) or `denied`.
    pub status: domain::rights::Status,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The note version that carries the accepted change.
    pub landed_version: Option<i32>,
    /// Whether the patient's statement of disagreement is linked.
    pub disagreement: bool,
    /// Whether the practice's rebuttal is linked.
    pub rebuttal: bool,
}

/// A signed amendment.
#[derive(Debug, Serialize, ToSchema)]
pub struct AmendmentView {
    /// Its version.
    pub version: i32,
    /// Its author and signer.
    pub author_id: UserId,
    /// Why.
    pub reason: String,
    /// Whether an AI assistant drafted it.
    pub ai_assisted: bool,
    /// The assistant turn it came from.
    pub assistant_turn_id: Option<uuid::Uuid>,
    /// Its signature.
    pub signature: domain::notes::Signature,
    /// The amended content.
    pub content: domain::notes::NoteContent,
    /// Word-level diff against the signed version.
    pub diff: Vec<domain::notes::DiffOp>,
}

/// A signed addendum.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddendumView {
    /// Its version.
    pub version: i32,
    /// Its author and signer.
    pub author_id: UserId,
    /// Why.
    pub reason: String,
    /// The text.
    pub text: String,
    /// Its signature.
    pub signature: domain::notes::Signature,
}

impl From<store::notes::Note> for NoteView {
    fn from(n: store::notes::Note) -> Self {
        Self {
            note_id: n.note_id,
            patient_id: n.patient_id,
            author_id: n.author_id,
            template: n.template,
            visit_id: n.visit_id,
            status: n.status,
            amended: !n.amendments.is_empty(),
            version: n.version,
            content: n.content,
            signature: n.signature,
            signed_version: n.signed_version,
            signed_content: n.signed_content,
            amendments: n
                .amendments
                .into_iter()
                .map(|a| AmendmentView {
                    version: a.version,
                    author_id: a.author_id,
                    reason: a.reason,
                    ai_assisted: a.ai_assisted,
                    assistant_turn_id: a.assistant_turn_id,
                    signature: a.signature,
                    content: a.content,
                    diff: a.diff,
                })
                .collect(),
            addenda: n
                .addenda
                .into_iter()
                .map(|a| AddendumView {
                    version: a.version,
                    author_id: a.author_id,
                    reason: a.reason,
                    text: a.text,
                    signature: a.signature,
                })
                .collect(),
            amendment_requests: n
                .amendment_requests
                .into_iter()
                .map(|r| LinkedAmendmentView {
                    request_id: r.request_id,
                    status: r.status,
                    received_at: r.received_at,
                    landed_version: r.landed_version,
                    disagreement: r.disagreement_at.is_some(),
                    rebuttal: r.rebuttal_at.is_some(),
                })
                .collect(),
            created_at: n.created_at,
        }
    }
}

/// A member of a practice.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// The user.
    pub user_id: UserId,
    /// Sign-in email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Roles in this practice.
    pub roles: Vec<String>,
    /// Member since.
    pub created_at: DateTime<Utc>,
}

impl From<store::memberships::Member> for MemberView {
    fn from(m: store::memberships::Member) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            display_name: m.display_name,
            roles: m.roles,
            created_at: m.created_at,
        }
    }
}

/// A practice.
#[derive(Debug, Serialize, ToSchema)]
pub struct PracticeView {
    /// Id.
    pub practice_id: PracticeId,
    /// Name.
    pub name: String,
    /// Settings.
    pub settings: domain::practice::PracticeSettings,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<store::practices::Practice> for PracticeView {
    fn from(p: store::practices::Practice) -> Self {
        Self {
            practice_id: p.practice_id,
            name: p.name,
            settings: p.settings,
            created_at: p.created_at,
        }
    }
}

/// A practice the caller belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyPracticeView {
    /// Id.
    pub practice_id: PracticeId,
    /// Name.
    pub name: String,
    /// The caller's roles there.
    pub roles: Vec<String>,
}

impl From<store::practices::MyPractice> for MyPracticeView {
    fn from(p: store::practices::MyPractice) -> Self {
        Self {
            practice_id: p.practice_id,
            name: p.name,
            roles: p.roles,
        }
    }
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
    /// Offset of the next page, when there may be one.
    pub next_offset: Option<i64>,
}

/// The JSON error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Error details.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `AUTH-0001`.
    pub code: String,
    /// What happened and what to do.
    pub message: String,
    /// The request id (also in `x-request-id`).
    pub request_id: String,
}
