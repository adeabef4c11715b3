//! The authorization matrix for every route, derived from the router's own OpenAPI document:
//! a route missing from the table below fails the test.
//! req: AC-02, AC-03, AC-04 — deny by default, object-level authorization, cross-tenant → 404

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use domain::{Clock as _, Role, RoleSet};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Public,
    /// A session of the caller's own (sign-in steps, second factors, own sessions): the matrix
    /// checks anonymous and malformed tokens; each route's success and step-up rules are
    /// exercised in `identity` and `passkeys`.
    Account,
    Session,
    Member,
    Scheduling,
    Clinical,
    Manage,
    /// Clinicians (who use them), owners and admins: the AI provider registry's list.
    ClinicalOrManage,
}

impl Needs {
    fn right(self) -> &'static [&'static str] {
        match self {
            Needs::Public | Needs::Account | Needs::Session | Needs::Member => {
                &["owner", "admin", "clinician", "reception"]
            }
            Needs::Scheduling => &["clinician", "reception"],
            Needs::Clinical => &["clinician"],
            Needs::Manage => &["owner", "admin"],
            Needs::ClinicalOrManage => &["owner", "admin", "clinician"],
        }
    }
    fn wrong(self) -> Vec<&'static str> {
        ["owner", "admin", "clinician", "reception"]
            .into_iter()
            .filter(|r| !self.right().contains(r))
            .collect()
    }
}

/// Every route: method, OpenAPI path, what it needs, whether success must leave an audit row,
/// and the action prefix of that row.
const ROUTES: &[(&str, &str, Needs, Option<&str>)] = &[
    ("POST", "/api/v1/auth/login", Needs::Public, None),
    ("POST", "/api/v1/auth/logout", Needs::Session, None),
    (
        "POST",
        "/api/v1/auth/second-factor/totp",
        Needs::Account,
        None,
    ),
    (
        "POST",
        "/api/v1/auth/second-factor/recovery",
        Needs::Account,
        None,
    ),
    ("POST", "/api/v1/auth/mfa/totp", Needs::Account, None),
    ("DELETE", "/api/v1/auth/mfa/totp", Needs::Account, None),
    (
        "POST",
        "/api/v1/auth/mfa/totp/confirm",
        Needs::Account,
        None,
    ),
    (
        "POST",
        "/api/v1/auth/mfa/recovery-codes",
        Needs::Account,
        None,
    ),
    ("POST", "/api/v1/auth/password", Needs::Account, None),
    ("GET", "/api/v1/auth/sessions", Needs::Account, None),
    (
        "DELETE",
        "/api/v1/auth/sessions/{session_id}",
        Needs::Account,
        None,
    ),
    (
        "POST",
        "/api/v1/auth/passkeys/register/begin",
        Needs::Account,
        None,
    ),
    (
        "POST",
        "/api/v1/auth/passkeys/register/finish",
        Needs::Account,
        None,
    ),
    ("GET", "/api/v1/auth/passkeys", Needs::Account, None),
    (
        "DELETE",
        "/api/v1/auth/passkeys/{credential_id}",
        Needs::Account,
        None,
    ),
    (
        "POST",
        "/api/v1/auth/second-factor/passkey/begin",
        Needs::Account,
        None,
    ),
    (
        "POST",
        "/api/v1/auth/second-factor/passkey/finish",
        Needs::Account,
        None,
    ),
    // Passwordless sign-in: public like the password sign-in (tested in `passkeys`).
    ("POST", "/api/v1/auth/passkey/begin", Needs::Public, None),
    ("POST", "/api/v1/auth/passkey/finish", Needs::Public, None),
    ("GET", "/api/v1/me", Needs::Session, None),
    // The API description itself.
    ("GET", "/api/v1/openapi.json", Needs::Public, None),
    // Invitations addressed to the caller (issue 14.5; decisions are tested in `invitations`).
    ("GET", "/api/v1/invitations", Needs::Session, None),
    (
        "POST",
        "/api/v1/invitations/{invitation_id}/accept",
        Needs::Account,
        None,
    ),
    (
        "POST",
        "/api/v1/invitations/{invitation_id}/decline",
        Needs::Account,
        None,
    ),
    ("GET", "/api/v1/practices", Needs::Session, None),
    (
        "GET",
        "/api/v1/practices/{practice_id}",
        Needs::Member,
        Some("practice.read"),
    ),
    (
        "PATCH",
        "/api/v1/practices/{practice_id}",
        Needs::Manage,
        Some("practice.update"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/security",
        Needs::Manage,
        Some("practice.read"),
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/security",
        Needs::Manage,
        Some("practice.update"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/memberships",
        Needs::Member,
        Some("membership.list"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/invitations",
        Needs::Manage,
        Some("invitation.list"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/invitations",
        Needs::Manage,
        Some("invitation.create"),
    ),
    (
        "DELETE",
        "/api/v1/practices/{practice_id}/invitations/{invitation_id}",
        Needs::Manage,
        Some("invitation.revoke"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/memberships/{user_id}",
        Needs::Member,
        Some("membership.list"),
    ),
    (
        "PATCH",
        "/api/v1/practices/{practice_id}/memberships/{user_id}",
        Needs::Manage,
        Some("membership.update"),
    ),
    (
        "DELETE",
        "/api/v1/practices/{practice_id}/memberships/{user_id}",
        Needs::Manage,
        Some("membership.delete"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients",
        Needs::Scheduling,
        Some("patient.list"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients",
        Needs::Scheduling,
        Some("patient.create"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/search",
        Needs::Scheduling,
        Some("patient.list"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}",
        Needs::Scheduling,
        Some("patient.read"),
    ),
    (
        "PATCH",
        "/api/v1/practices/{practice_id}/patients/{patient_id}",
        Needs::Scheduling,
        Some("patient.update"),
    ),
    (
        "DELETE",
        "/api/v1/practices/{practice_id}/patients/{patient_id}",
        Needs::Scheduling,
        Some("patient.delete"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/appointments",
        Needs::Scheduling,
        Some("appointment.list"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/appointments",
        Needs::Scheduling,
        Some("appointment.create"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/appointments/{appointment_id}",
        Needs::Scheduling,
        Some("appointment.read"),
    ),
    (
        "PATCH",
        "/api/v1/practices/{practice_id}/appointments/{appointment_id}",
        Needs::Scheduling,
        Some("appointment.update"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/notes",
        Needs::Clinical,
        Some("note.list"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/notes",
        Needs::Clinical,
        Some("note.create"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/notes/{note_id}",
        Needs::Clinical,
        Some("note.read"),
    ),
    // Notes: the seeded note in A is saved, read back, signed, amended, given an addendum and
    // verified in this order; DELETE targets a spare draft.
    (
        "GET",
        "/api/v1/practices/{practice_id}/note-templates",
        Needs::Clinical,
        None,
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/notes/{note_id}",
        Needs::Clinical,
        Some("note.update"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/notes/{note_id}/versions",
        Needs::Clinical,
        Some("note.read"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/notes/{note_id}/sign",
        Needs::Clinical,
        Some("note.sign"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/notes/{note_id}/amendments",
        Needs::Clinical,
        Some("note.amend"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/notes/{note_id}/addenda",
        Needs::Clinical,
        Some("note.addendum"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/notes/{note_id}/rendering",
        Needs::Clinical,
        Some("note.read"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/notes/{note_id}/verify",
        Needs::Clinical,
        Some("note.verify"),
    ),
    (
        "DELETE",
        "/api/v1/practices/{practice_id}/notes/{note_id}",
        Needs::Clinical,
        Some("note.delete"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/support-grants",
        Needs::Manage,
        Some("support_grant.list"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/support-grants",
        Needs::Manage,
        Some("support_grant.approve"),
    ),
    (
        "DELETE",
        "/api/v1/practices/{practice_id}/support-grants/{support_grant_id}",
        Needs::Manage,
        Some("support_grant.revoke"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/ai-providers",
        Needs::ClinicalOrManage,
        Some("ai_provider.list"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/ai-providers",
        Needs::Manage,
        Some("ai_provider.register"),
    ),
    (
        "PATCH",
        "/api/v1/practices/{practice_id}/ai-providers/{provider_id}",
        Needs::Manage,
        Some("ai_provider.update"),
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/assigned-clinician",
        Needs::Scheduling,
        Some("care_team.assign"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/break-glass",
        Needs::Clinical,
        Some("break_glass.open"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/break-glass",
        Needs::Manage,
        Some("break_glass.review"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/break-glass/{grant_id}/acknowledge",
        Needs::Manage,
        Some("break_glass.acknowledge"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/visits",
        Needs::Clinical,
        Some("visit.list"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/visits",
        Needs::Clinical,
        Some("visit.create"),
    ),
    // Perio: the seeded exam in A holds a final for confirmation; the matrix's own final
    // holds another, confirm applies it, decline finds nothing held, undo takes it back.
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams",
        Needs::Clinical,
        Some("perio_exam.list"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams",
        Needs::Clinical,
        Some("perio_exam.create"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}",
        Needs::Clinical,
        Some("perio_exam.read"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/finals",
        Needs::Clinical,
        Some("perio_exam.update"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/confirm",
        Needs::Clinical,
        Some("perio_exam.update"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/decline",
        Needs::Clinical,
        Some("perio_exam.update"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/undo",
        Needs::Clinical,
        Some("perio_exam.update"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/fhir",
        Needs::Clinical,
        Some("perio_exam.export"),
    ),
    // The scribe's capture path: its routes need a consent, a capture and WAV bodies, in
    // order; their matrix is `capture_api::capture_authorization_matrix` (see SCRIBE).
    (
        "GET",
        "/api/v1/practices/{practice_id}/visits/{visit_id}/consents",
        Needs::Clinical,
        None,
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/visits/{visit_id}/consents",
        Needs::Clinical,
        Some("recording_consent.record"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/visits/{visit_id}/consents/{consent_id}/withdraw",
        Needs::Clinical,
        Some("recording_consent.withdraw"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/visits/{visit_id}/captures",
        Needs::Clinical,
        None,
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/visits/{visit_id}/captures",
        Needs::Clinical,
        Some("capture.start"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/captures/{capture_id}",
        Needs::Clinical,
        Some("capture.read"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/captures/{capture_id}/pause",
        Needs::Clinical,
        Some("capture.pause"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/captures/{capture_id}/resume",
        Needs::Clinical,
        Some("capture.resume"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/captures/{capture_id}/stop",
        Needs::Clinical,
        Some("capture.stop"),
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/captures/{capture_id}/chunks/{seq}",
        Needs::Clinical,
        Some("capture.chunk"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/me/capture",
        Needs::Clinical,
        None,
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/scribe-policy",
        Needs::Member,
        None,
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/scribe-policy",
        Needs::Manage,
        Some("scribe_policy.update"),
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/disclosures",
        Needs::Scheduling,
        Some("disclosure.create"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/disclosures",
        Needs::Scheduling,
        Some("disclosure.report"),
    ),
    // Retention and legal hold: PUT holds A's patient, DELETE releases the spare patient
    // (deleted above, still holdable) whether or not a hold was on it.
    (
        "GET",
        "/api/v1/practices/{practice_id}/retention",
        Needs::Manage,
        Some("retention.read"),
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/legal-hold",
        Needs::Manage,
        Some("legal_hold.place"),
    ),
    (
        "DELETE",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/legal-hold",
        Needs::Manage,
        Some("legal_hold.release"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/audit/events",
        Needs::Manage,
        Some("audit.read"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/audit/fhir",
        Needs::Manage,
        Some("audit.export"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/audit/proofs/inclusion",
        Needs::Manage,
        Some("audit.proof"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/audit/proofs/consistency",
        Needs::Manage,
        Some("audit.proof"),
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/audit/checkpoint",
        Needs::Manage,
        Some("audit.proof"),
    ),
];

/// Routes whose authorization matrix is tested in their own module, with the objects it
/// seeds (anonymous 401, other practice 404, wrong role 403 and audited, right role 2xx with
/// its audit events): the scribe's transcripts and drafts
/// (`scribe_drafting::scribe_routes_authorization_matrix`).
const MATRIX_ELSEWHERE: &[(&str, &str)] = &[
    // Emergency mode: its matrix is in `emergency` (switching it on stops every other change).
    ("GET", "/api/v1/practices/{practice_id}/emergency-mode"),
    ("PUT", "/api/v1/practices/{practice_id}/emergency-mode"),
    // Incidents: their matrix is in `incidents` (each route needs an incident in the right
    // state for the owner and the admin).
    ("GET", "/api/v1/practices/{practice_id}/incidents"),
    ("POST", "/api/v1/practices/{practice_id}/incidents"),
    (
        "GET",
        "/api/v1/practices/{practice_id}/incidents/{incident_id}",
    ),
    (
        "PATCH",
        "/api/v1/practices/{practice_id}/incidents/{incident_id}",
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/incidents/{incident_id}/assessment",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/incidents/{incident_id}/scope",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/incidents/{incident_id}/letters",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/incidents/{incident_id}/close",
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/residence",
    ),
    // Right of access: its matrix is in `access_requests` (each route that closes a request
    // needs an open one per role; the copy needs a clinician with the patient on their team).
    ("GET", "/api/v1/practices/{practice_id}/access-requests"),
    ("POST", "/api/v1/practices/{practice_id}/access-requests"),
    (
        "GET",
        "/api/v1/practices/{practice_id}/access-requests/{request_id}",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/access-requests/{request_id}/extend",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/access-requests/{request_id}/deny",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/access-requests/{request_id}/fulfil",
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/export",
    ),
    // Amendment requests: their matrix is in `amendment_requests` (each route that closes a
    // request needs an open one per role; the statements need a denied one).
    ("GET", "/api/v1/practices/{practice_id}/amendment-requests"),
    ("POST", "/api/v1/practices/{practice_id}/amendment-requests"),
    (
        "GET",
        "/api/v1/practices/{practice_id}/amendment-requests/{request_id}",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/extend",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/deny",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/accept",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/disagreement",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/amendment-requests/{request_id}/rebuttal",
    ),
    // Online booking: its matrix is in `booking_api` (the public routes answer without a
    // session; the setup needs a clinician with hours).
    ("GET", "/api/v1/practices/{practice_id}/booking/settings"),
    ("PUT", "/api/v1/practices/{practice_id}/booking/settings"),
    ("GET", "/api/v1/practices/{practice_id}/booking/services"),
    ("POST", "/api/v1/practices/{practice_id}/booking/services"),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/booking/services/{service_id}",
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/booking/hours/{user_id}",
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/booking/hours/{user_id}",
    ),
    ("GET", "/api/v1/practices/{practice_id}/booking/bookings"),
    (
        "POST",
        "/api/v1/practices/{practice_id}/booking/bookings/{booking_id}/decision",
    ),
    // Its matrix is in `payments` (a held booking through the Stripe stand-in).
    (
        "GET",
        "/api/v1/practices/{practice_id}/booking/bookings/{booking_id}/payments",
    ),
    ("GET", "/api/v1/public/practices/{practice_id}/booking"),
    ("POST", "/api/v1/public/practices/{practice_id}/booking"),
    (
        "GET",
        "/api/v1/public/practices/{practice_id}/booking/slots",
    ),
    // Its matrix is in `waitlist_join` (no session; a practice that books online).
    ("POST", "/api/v1/public/practices/{practice_id}/waitlist"),
    // The waitlist: its matrix is in `waitlist` (reception, owners and admins; an entry needs
    // a service set up).
    ("GET", "/api/v1/practices/{practice_id}/waitlist"),
    ("POST", "/api/v1/practices/{practice_id}/waitlist"),
    (
        "DELETE",
        "/api/v1/practices/{practice_id}/waitlist/{entry_id}",
    ),
    // Intake forms and client links for staff: `intake_api::intake_api_authorization_matrix`
    // (submitted forms and live links per role).
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/intake-requests",
    ),
    ("GET", "/api/v1/practices/{practice_id}/intake-requests"),
    (
        "GET",
        "/api/v1/practices/{practice_id}/intake-requests/{request_id}",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/intake-requests/{request_id}/accept",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/intake-requests/{request_id}/reject",
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/client-links",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/client-links/{link_id}/revoke",
    ),
    // Web Push subscriptions (any member, their own): `push::push_routes_authorization_matrix`
    // (needs Web Push enabled and the push-service stand-in).
    ("GET", "/api/v1/practices/{practice_id}/push-subscriptions"),
    ("POST", "/api/v1/practices/{practice_id}/push-subscriptions"),
    (
        "DELETE",
        "/api/v1/practices/{practice_id}/push-subscriptions/{subscription_id}",
    ),
    // Its matrix is in `perio_dictation` (a clip body and a recognizer stand-in).
    (
        "POST",
        "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/voice",
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/captures/{capture_id}/transcript",
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/transcript-segments/{segment_id}",
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/transcript-segments/{segment_id}/revisions",
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/visits/{visit_id}/drafts",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/visits/{visit_id}/drafts",
    ),
    ("GET", "/api/v1/practices/{practice_id}/drafts/{draft_id}"),
    (
        "POST",
        "/api/v1/practices/{practice_id}/drafts/{draft_id}/sentences/{idx}/accept",
    ),
    (
        "PUT",
        "/api/v1/practices/{practice_id}/drafts/{draft_id}/sentences/{idx}",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/drafts/{draft_id}/note",
    ),
    (
        "GET",
        "/api/v1/practices/{practice_id}/notes/{note_id}/draft-changes",
    ),
    // `scribe_assist::assist_routes_authorization_matrix`.
    (
        "POST",
        "/api/v1/practices/{practice_id}/drafts/{draft_id}/assist",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/drafts/{draft_id}/assist/{turn_id}/accept",
    ),
    (
        "POST",
        "/api/v1/practices/{practice_id}/notes/{note_id}/assist",
    ),
];
/// Routes whose matrix runs in `capture_api::capture_authorization_matrix` (they need a
/// consent, a capture and WAV bodies, in order).
fn scribe(path: &str) -> bool {
    [
        "{visit_id}",
        "{capture_id}",
        "/me/capture",
        "/scribe-policy",
    ]
    .iter()
    .any(|p| path.contains(p))
}

/// Object ids in practice A (and B, for cross-tenant object references).
struct Objects {
    appointment: [uuid::Uuid; 2],
    note: [uuid::Uuid; 2],
    perio_exam: [uuid::Uuid; 2],
    spare_member: uuid::Uuid,
    spare_patient: uuid::Uuid,
    spare_note: uuid::Uuid,
    grant: [uuid::Uuid; 2],
    support_grant: [uuid::Uuid; 2],
    support_email: String,
    invitation: [uuid::Uuid; 2],
    ai_provider: [uuid::Uuid; 2],
}

async fn objects(db: &TestDb, w: &World) -> Objects {
    let owner = db.owner().await;
    let now = Utc::now();
    let mut appointment = [uuid::Uuid::nil(); 2];
    let mut note = [uuid::Uuid::nil(); 2];
    let mut perio_exam = [uuid::Uuid::nil(); 2];
    for (i, p) in [&w.a, &w.b].into_iter().enumerate() {
        owner
            .seed_appointment(
                p.id,
                p.patient,
                p.user("clinician"),
                now + Duration::days(1),
                30,
                now,
            )
            .await
            .unwrap();
        note[i] = owner
            .seed_note(p.id, p.patient, p.user("clinician"), "fixture note", now)
            .await
            .unwrap()
            .as_uuid();
        perio_exam[i] = owner
            .seed_perio_exam(
                p.id,
                p.patient,
                p.user("clinician"),
                perio::Settings::default(),
                &["tooth three buccal three two four", "three fourteen four"],
                now,
            )
            .await
            .unwrap()
            .as_uuid();
    }
    let mut su = db.superuser_unsafe().await;
    let mut invitation = [uuid::Uuid::nil(); 2];
    let mut ai_provider = [uuid::Uuid::nil(); 2];
    for (i, p) in [&w.a, &w.b].into_iter().enumerate() {
        ai_provider[i] = sqlx::query_scalar(
            "insert into ai_provider (practice_id, provider_id, label, adapter, purpose, base_url, model,
                 hosting, vendor, created_at, updated_at)
             values ($1, gen_random_uuid(), 'Local whisper', 'openai_transcription', 'transcription',
                 'http://127.0.0.1:9', 'whisper-base', 'self_hosted', 'Operator', $2, $2)
             returning provider_id",
        )
        .bind(p.id)
        .bind(now)
        .fetch_one(&mut su)
        .await
        .unwrap();
        appointment[i] = sqlx::query_scalar(
            "select appointment_id from appointment where practice_id = $1 limit 1",
        )
        .bind(p.id)
        .fetch_one(&mut su)
        .await
        .unwrap();
        invitation[i] = sqlx::query_scalar(
            "insert into membership_invitation (practice_id, invitation_id, email_tag, roles, invited_by, created_at, expires_at)
             values ($1, gen_random_uuid(), sha256(gen_random_uuid()::text::bytea), array['reception'], $2, $3, $3 + interval '7 days')
             returning invitation_id",
        )
        .bind(p.id)
        .bind(p.user("owner"))
        .bind(now)
        .fetch_one(&mut su)
        .await
        .unwrap();
    }
    let spare_member_email = format!(
        "spare.{}@test.example.invalid",
        uuid::Uuid::new_v4().simple()
    );
    let spare = owner
        .create_user(&spare_member_email, "spare", testkit::password_hash(), now)
        .await
        .unwrap();
    owner
        .add_member(w.a.id, spare, RoleSet::from_iter([Role::Reception]), now)
        .await
        .unwrap();
    let spare_patient = owner
        .seed_patient(
            w.a.id,
            &domain::synthetic::Generator::new(99).patient().into(),
            now,
        )
        .await
        .unwrap();
    let mut grant = [uuid::Uuid::nil(); 2];
    for (i, p) in [&w.a, &w.b].into_iter().enumerate() {
        grant[i] = owner
            .seed_break_glass(
                p.id,
                p.user("clinician"),
                p.patient,
                "Fixture emergency",
                now,
            )
            .await
            .unwrap();
    }
    let support_email = format!(
        "support.{}@test.example.invalid",
        uuid::Uuid::new_v4().simple()
    );
    let support = owner
        .create_support_user(
            &support_email,
            "Vendor Support",
            testkit::password_hash(),
            now,
        )
        .await
        .unwrap();
    let mut support_grant = [uuid::Uuid::nil(); 2];
    for (i, p) in [&w.a, &w.b].into_iter().enumerate() {
        support_grant[i] = owner
            .seed_support_grant(p.id, support, p.user("owner"), "scheduling", now)
            .await
            .unwrap();
    }
    let spare_note = owner
        .seed_note(
            w.a.id,
            w.a.patient,
            w.a.user("clinician"),
            "spare draft",
            now,
        )
        .await
        .unwrap()
        .as_uuid();
    owner.close().await;
    Objects {
        invitation,
        ai_provider,
        spare_note,
        grant,
        support_grant,
        support_email,
        appointment,
        note,
        perio_exam,
        spare_member: spare.as_uuid(),
        spare_patient: spare_patient.as_uuid(),
    }
}

/// The concrete path and body for a route. `target` is the practice in the path (A or B's
/// id); `foreign` substitutes practice B's object ids while keeping practice A in the path.
fn request(
    method: &str,
    path: &str,
    w: &World,
    o: &Objects,
    practice: uuid::Uuid,
    foreign: bool,
    new_email: &str,
) -> (String, Option<Value>) {
    let i = usize::from(foreign);
    let pat = if foreign {
        w.b.patient.as_uuid()
    } else {
        w.a.patient.as_uuid()
    };
    let member = if foreign {
        w.b.user("reception").as_uuid()
    } else {
        w.a.user("reception").as_uuid()
    };
    // State-changing calls on members and patients target spare fixtures, so the roles and
    // records the rest of the matrix relies on stay as they are.
    let patient_id = if method == "DELETE" && !foreign {
        o.spare_patient
    } else {
        pat
    };
    let user_id = if (method == "DELETE" || method == "PATCH") && !foreign {
        o.spare_member
    } else {
        member
    };
    let concrete = path
        .replace("{practice_id}", &practice.to_string())
        .replace("{patient_id}", &patient_id.to_string())
        .replace("{user_id}", &user_id.to_string())
        .replace("{appointment_id}", &o.appointment[i].to_string())
        .replace(
            "{note_id}",
            &if method == "DELETE" && !foreign {
                o.spare_note
            } else {
                o.note[i]
            }
            .to_string(),
        )
        .replace("{exam_id}", &o.perio_exam[i].to_string())
        .replace("{grant_id}", &o.grant[i].to_string())
        .replace("{support_grant_id}", &o.support_grant[i].to_string())
        .replace("{invitation_id}", &o.invitation[i].to_string())
        .replace("{provider_id}", &o.ai_provider[i].to_string())
        .replace("{session_id}", &uuid::Uuid::new_v4().to_string())
        .replace("{credential_id}", "AAAAAAAAAAAAAAAAAAAAAA");
    let concrete = match path {
        "/api/v1/practices/{practice_id}/audit/proofs/inclusion" => format!("{concrete}?seq=0"),
        "/api/v1/practices/{practice_id}/audit/proofs/consistency" => format!("{concrete}?first=1"),
        _ => concrete,
    };
    let starts = Utc::now() + Duration::days(2);
    let body = match (method, path) {
        ("PATCH", "/api/v1/practices/{practice_id}") => Some(json!({"name": "Renamed practice"})),
        ("PUT", "/api/v1/practices/{practice_id}/security") => Some(json!({
            "session_idle_minutes": 30, "session_lifetime_hours": 12, "require_passkey_for_managers": false
        })),
        ("POST", "/api/v1/practices/{practice_id}/invitations") => {
            Some(json!({"email": new_email, "roles": ["reception"]}))
        }
        ("PATCH", "/api/v1/practices/{practice_id}/memberships/{user_id}") => {
            Some(json!({"roles": ["reception", "clinician"]}))
        }
        ("POST", "/api/v1/practices/{practice_id}/patients") => Some(
            json!({"given_name": "Iris", "family_name": "Testwhistle", "date_of_birth": "1980-02-03"}),
        ),
        ("PATCH", "/api/v1/practices/{practice_id}/patients/{patient_id}") => {
            Some(json!({"phone": "+1 555 0100"}))
        }
        ("POST", "/api/v1/practices/{practice_id}/patients/search") => {
            Some(json!({"name_prefix": "Testwhistle"}))
        }
        ("POST", "/api/v1/practices/{practice_id}/appointments") => Some(json!({
            "patient_id": pat, "clinician_id": w.a.user("clinician"),
            "starts_at": starts, "ends_at": starts + Duration::minutes(30)
        })),
        ("PATCH", "/api/v1/practices/{practice_id}/appointments/{appointment_id}") => {
            Some(json!({"status": "arrived"}))
        }
        ("POST", "/api/v1/practices/{practice_id}/patients/{patient_id}/notes") => Some(
            json!({"template": "dental_hygiene", "content": {"subjective": "Synthetic note text.", "fields": {"calculus": "light"}}}),
        ),
        ("PUT", "/api/v1/practices/{practice_id}/notes/{note_id}") => {
            Some(json!({"content": {"subjective": "Synthetic note, saved.", "plan": "Recall."}}))
        }
        ("POST", "/api/v1/practices/{practice_id}/notes/{note_id}/amendments") => Some(
            json!({"content": {"subjective": "Synthetic note, amended.", "plan": "Recall."}, "reason": "Typo"}),
        ),
        ("POST", "/api/v1/practices/{practice_id}/notes/{note_id}/addenda") => {
            Some(json!({"text": "Synthetic addendum.", "reason": "Late entry"}))
        }
        ("POST", "/api/v1/practices/{practice_id}/patients/{patient_id}/visits") => Some(json!({})),
        ("PUT", "/api/v1/practices/{practice_id}/patients/{patient_id}/assigned-clinician") => {
            Some(json!({"clinician_id": w.a.user("clinician")}))
        }
        ("POST", "/api/v1/practices/{practice_id}/ai-providers") => Some(json!({
            "label": "Drafting stand-in", "adapter": "openai_chat", "base_url": "http://127.0.0.1:9",
            "model": "standin", "hosting": "self_hosted", "vendor": "Operator"
        })),
        ("PATCH", "/api/v1/practices/{practice_id}/ai-providers/{provider_id}") => {
            Some(json!({"training_disabled": true}))
        }
        ("POST", "/api/v1/practices/{practice_id}/support-grants") => Some(json!({
            "support_email": o.support_email, "scope": "scheduling", "reason": "Import help", "hours": 4
        })),
        ("POST", "/api/v1/practices/{practice_id}/patients/{patient_id}/break-glass") => {
            Some(json!({"reason": "Synthetic emergency"}))
        }
        ("POST", "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams") => {
            Some(json!({}))
        }
        (
            "POST",
            "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/finals",
        ) => Some(json!({"text": "three fourteen four"})),
        ("PUT", "/api/v1/practices/{practice_id}/patients/{patient_id}/legal-hold") => {
            Some(json!({"category": "litigation"}))
        }
        ("POST", "/api/v1/practices/{practice_id}/patients/{patient_id}/disclosures") => Some(
            json!({"recipient": "Synthetic Insurance Co.", "description": "Visit summary", "purpose": "Claim review"}),
        ),
        _ => None,
    };
    (concrete, body)
}

/// Sends a request; returns the status and the request id.
async fn send(
    app: &TestApp,
    m: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (StatusCode, String) {
    let mut req = app
        .http
        .request(method(m), app.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    (
        res.status(),
        res.headers()["x-request-id"].to_str().unwrap().to_owned(),
    )
}

/// The audit rows a request left in `practice`: (actor, action, outcome).
async fn audit_rows(
    su: &mut sqlx::PgConnection,
    practice: uuid::Uuid,
    request_id: &str,
) -> Vec<(Option<uuid::Uuid>, String, String)> {
    sqlx::query_as("select actor_id, action, outcome from audit_event where practice_id = $1 and request_id = $2")
        .bind(practice)
        .bind(uuid::Uuid::parse_str(request_id).unwrap())
        .fetch_all(su)
        .await
        .unwrap()
}

fn method(m: &str) -> Method {
    m.parse().unwrap()
}

#[tokio::test]
async fn every_route_has_a_matrix_entry() {
    let doc = serde_json::to_value(server::openapi()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&m.as_str()) {
                documented.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, ..)| ((*m).to_owned(), (*p).to_owned()))
        .chain(
            MATRIX_ELSEWHERE
                .iter()
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    assert_eq!(
        documented, listed,
        "the router and the authorization matrix must list the same routes"
    );
    let public: Vec<_> = ROUTES
        .iter()
        .filter(|r| r.2 == Needs::Public)
        .map(|r| r.1)
        .collect();
    assert_eq!(
        public,
        [
            "/api/v1/auth/login",
            "/api/v1/auth/passkey/begin",
            "/api/v1/auth/passkey/finish",
            "/api/v1/openapi.json"
        ],
        "the public allowlist is exactly sign-in (password or passkey) and the API description"
    );
}

// req: AC-02, AC-03, AC-04, AU-01
#[tokio::test]
async fn authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let o = objects(&db, &w).await;
    let app = TestApp::start(&db).await;
    let mut tokens = std::collections::HashMap::new();
    for role in ["owner", "admin", "clinician", "reception"] {
        tokens.insert(("a", role), app.token(w.a.user(role)).await);
        tokens.insert(("b", role), app.token(w.b.user(role)).await);
    }
    let nobody = app.token(w.nobody).await;
    let mut password_only = std::collections::HashMap::new();
    for role in ["owner", "admin", "clinician", "reception"] {
        password_only.insert(role, app.password_only_token(w.a.user(role)).await);
    }
    // Sequence what the fixtures logged and sign a checkpoint, so the proof routes have a tree.
    app.store.sequence_pending(Utc::now()).await.unwrap();
    let cp = server::checkpoint::Checkpointer::new(
        std::sync::Arc::new(audit::checkpoint::Signer::generate("chartroom-test").unwrap()),
        audit::store::DirStore::new(&app.checkpoint_dir),
        "test/audit",
    );
    cp.checkpoint(&app.store, w.a.id).await.unwrap();
    let mut su = db.superuser_unsafe().await;
    let a = w.a.id.as_uuid();
    // Every answer the matrix saw, to check against the API description (issue 14.7).
    let mut seen: BTreeSet<(&str, &str, u16)> = BTreeSet::new();

    for &(m, path, needs, audit) in ROUTES {
        let label = format!("{m} {path}");
        if needs == Needs::Public || scribe(path) {
            continue;
        }
        let new_email = format!("new.{}@test.example.invalid", uuid::Uuid::new_v4().simple());
        if needs == Needs::Manage && m == "POST" {
            db.owner()
                .await
                .create_user(
                    &new_email,
                    "new member",
                    testkit::password_hash(),
                    app.clock.now(),
                )
                .await
                .unwrap();
        }
        let (own_path, body) = request(m, path, &w, &o, a, false, &new_email);

        // Anonymous → 401, and a malformed token → 401.
        let (s, _) = call(&app, method(m), &own_path, None, body.as_ref()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{label}: anonymous");
        seen.insert((m, path, s.as_u16()));
        let (s, _) = call(
            &app,
            method(m),
            &own_path,
            Some("not-a-token"),
            body.as_ref(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{label}: malformed token");
        if needs == Needs::Account {
            continue;
        }
        // AU-01: a password-only session opens no practice route, whatever the role.
        if path.starts_with("/api/v1/practices/{practice_id}") {
            for role in needs.right() {
                let (s, err) = call(
                    &app,
                    method(m),
                    &own_path,
                    Some(&password_only[role]),
                    body.as_ref(),
                )
                .await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{label}: password-only {role}");
                assert_eq!(err["error"]["code"], "AUTH-0003", "{label}");
            }
        }

        if needs != Needs::Session {
            // Other practice: B's members (even with the right role) and a member of no
            // practice get 404 on A's routes.
            for role in needs.right() {
                let (s, _) = call(
                    &app,
                    method(m),
                    &own_path,
                    Some(&tokens[&("b", *role)]),
                    body.as_ref(),
                )
                .await;
                assert_eq!(s, StatusCode::NOT_FOUND, "{label}: B's {role} on A");
                seen.insert((m, path, s.as_u16()));
            }
            let res = send(&app, m, &own_path, &nobody, body.as_ref()).await;
            assert_eq!(res.0, StatusCode::NOT_FOUND, "{label}: no-membership user");
            let rows = audit_rows(&mut su, a, &res.1).await;
            assert_eq!(
                rows,
                [(
                    Some(w.nobody.as_uuid()),
                    "access.denied".to_owned(),
                    "denied".to_owned()
                )],
                "{label}: attempt on A not audited"
            );
            // A's member naming B's object inside A's path → 404.
            if path.matches('{').count() > 1 {
                let (foreign_path, fbody) = request(m, path, &w, &o, a, true, &new_email);
                let right = needs.right()[0];
                let (s, _) = call(
                    &app,
                    method(m),
                    &foreign_path,
                    Some(&tokens[&("a", right)]),
                    fbody.as_ref(),
                )
                .await;
                assert_eq!(
                    s,
                    StatusCode::NOT_FOUND,
                    "{label}: A's {right} naming B's object"
                );
            }
            // Wrong role → 403, and the denial is on A's audit trail (req AUD-01).
            for role in needs.wrong() {
                let res = send(&app, m, &own_path, &tokens[&("a", role)], body.as_ref()).await;
                assert_eq!(res.0, StatusCode::FORBIDDEN, "{label}: wrong role {role}");
                seen.insert((m, path, res.0.as_u16()));
                let rows = audit_rows(&mut su, a, &res.1).await;
                assert_eq!(rows.len(), 1, "{label}: denial of {role} not audited");
                assert_eq!(
                    rows[0],
                    (
                        Some(w.a.user(role).as_uuid()),
                        "access.denied".to_owned(),
                        "denied".to_owned()
                    ),
                    "{label}"
                );
            }
        }

        // Right role → 2xx, with its audit row (actor, practice, action, outcome, request id).
        let rights: Vec<&str> = if m == "GET" {
            needs.right().to_vec()
        } else {
            vec![needs.right()[0]]
        };
        for role in rights {
            let token = if needs == Needs::Session && m == "POST" {
                app.token(w.a.user(role)).await // logout consumes its token
            } else {
                tokens[&("a", role)].clone()
            };
            let mut req = app
                .http
                .request(method(m), app.url(&own_path))
                .bearer_auth(&token)
                .header("if-match", "*");
            if let Some(b) = &body {
                req = req.json(b);
            }
            let res = req.send().await.unwrap();
            let status = res.status();
            let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            let text = res.text().await.unwrap();
            assert!(
                status.is_success(),
                "{label}: right role {role} got {status}: {text}"
            );
            seen.insert((m, path, status.as_u16()));
            if let Some(action) = audit {
                let rows = audit_rows(&mut su, a, &request_id).await;
                assert!(!rows.is_empty(), "{label}: success left no audit row");
                for (actor, act, outcome) in rows {
                    assert_eq!(actor, Some(w.a.user(role).as_uuid()), "{label}");
                    assert_eq!(act, action, "{label}");
                    assert_eq!(outcome, "success", "{label}");
                }
                // A route about one patient names that patient in its audit row, with a time.
                if path.contains("{patient_id}") {
                    let (patient, at): (Option<uuid::Uuid>, Option<chrono::DateTime<Utc>>) = sqlx::query_as(
                        "select patient_id, occurred_at from audit_event where practice_id = $1 and request_id = $2 limit 1",
                    )
                    .bind(a)
                    .bind(uuid::Uuid::parse_str(&request_id).unwrap())
                    .fetch_one(&mut su)
                    .await
                    .unwrap();
                    let expected = if m == "DELETE" {
                        o.spare_patient
                    } else {
                        w.a.patient.as_uuid()
                    };
                    assert_eq!(
                        patient,
                        Some(expected),
                        "{label}: audit row must name the patient"
                    );
                    assert!(at.is_some());
                }
            }
        }
    }
    // Every answer seen is in the API description of its route (issue 14.7).
    let doc = serde_json::to_value(server::openapi()).unwrap();
    for (m, path, status) in &seen {
        let responses = &doc["paths"][*path][m.to_lowercase()]["responses"];
        assert!(
            responses.get(status.to_string()).is_some(),
            "{m} {path} answered {status}, which the API description does not document"
        );
    }
}

/// A list never includes another practice's rows.
// req: AC-04
#[tokio::test]
async fn lists_never_include_other_practices_rows() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let _o = objects(&db, &w).await;
    let app = TestApp::start(&db).await;
    let t = app.token(w.a.user("clinician")).await;
    let base = format!("/api/v1/practices/{}", w.a.id);
    let (_, patients) = call(
        &app,
        Method::GET,
        &format!("{base}/patients"),
        Some(&t),
        None,
    )
    .await;
    let ids: Vec<&str> = patients["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["patient_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&w.a.patient.to_string().as_str()));
    assert!(!ids.contains(&w.b.patient.to_string().as_str()));
    let from = (Utc::now() - Duration::days(1)).to_rfc3339();
    let (s, appts) = call(
        &app,
        Method::GET,
        &format!("{base}/appointments?from={}", urlencode(&from)),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{appts}");
    assert!(!appts.as_array().unwrap().is_empty());
    for appt in appts.as_array().unwrap() {
        assert_eq!(
            appt["patient_id"],
            json!(w.a.patient),
            "only A's patient has appointments in A"
        );
    }
    let (_, members) = call(
        &app,
        Method::GET,
        &format!("{base}/memberships"),
        Some(&t),
        None,
    )
    .await;
    for m in members.as_array().unwrap() {
        let id: domain::UserId = serde_json::from_value(m["user_id"].clone()).unwrap();
        assert!(
            !w.b.users.values().any(|u| *u == id),
            "B's member listed in A"
        );
    }
    let (_, mine) = call(&app, Method::GET, "/api/v1/practices", Some(&t), None).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
