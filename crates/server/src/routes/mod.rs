//! Route registrations. Each handler carries a `#[utoipa::path]` so the OpenAPI document and
//! the router come from the same list ([`registrations`]; tests derive the authorization
//! matrix from it), and [`finish`] adds what the extractors guarantee for every route of a
//! kind (security, and the error answers they give), so the document stays true.

pub(crate) mod amendments;
pub(crate) mod appointments;
pub(crate) mod assist;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod booking;
pub(crate) mod capture;
pub(crate) mod care_team;
pub(crate) mod disclosures;
pub(crate) mod emergency;
pub(crate) mod incidents;
pub(crate) mod intake;
pub(crate) mod invitations;
pub(crate) mod memberships;
pub(crate) mod notes;
pub(crate) mod passkeys;
pub(crate) mod patients;
pub(crate) mod perio;
pub(crate) mod perio_voice;
pub(crate) mod practices;
pub(crate) mod providers;
pub(crate) mod push;
pub(crate) mod requests;
pub(crate) mod retention;
pub(crate) mod rights;
pub(crate) mod scribe;
pub(crate) mod support;
pub(crate) mod waitlist;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chartroom API",
        description = "Clinical records for small practices. Every route except sign-in needs a session \
                       (bearer token or the __Host-chartroom_session cookie) whose second factor is done. Practice routes answer 404 for \
                       practices the caller does not belong to.",
        license(name = "AGPL-3.0-only")
    ),
    components(schemas(crate::views::ErrorBody, crate::views::ErrorDetail)),
    tags(
        (name = "auth", description = "Sign-in and sessions"),
        (name = "practices", description = "Practices and memberships"),
        (name = "patients", description = "Demographics and contact details"),
        (name = "appointments", description = "Scheduling"),
        (name = "notes", description = "Clinical notes (clinicians only)"),
        (name = "perio", description = "Periodontal exams charted by voice (clinicians only)"),
        (name = "audit", description = "The audit log (owners and admins)"),
        (name = "retention", description = "Retention windows and legal holds (owners and admins)"),
        (name = "care team", description = "Care teams and break-glass access"),
        (name = "support access", description = "Vendor support grants (owners and admins)"),
        (name = "ai providers", description = "The AI provider registry and its posture (owners and admins change it)"),
        (name = "scribe", description = "Recording consent, captures and audio chunks, the live indicator, the scribe policy, transcripts and evidence-linked note drafts (clinicians; the policy: owners and admins)"),
        (name = "booking", description = "Online booking: services, clinicians' hours and rules (owners and admins), bookings waiting for approval (clinicians and reception), and the public page (no session)"),
        (name = "patient rights", description = "Right-of-access requests with their 30-day deadline and one extension, amendment requests with their 60-day deadline, one extension, acceptance onto the note, denial, statement of disagreement and rebuttal (owners, admins and clinicians; accepting: clinicians), and the export of a patient's designated record set as FHIR R4 or HTML (clinicians)"),
        (name = "incidents", description = "Security incidents, breach clocks, risk assessment, scoping from the audit log and notification letters (owners and admins)"),
        (name = "intake", description = "Intake forms for staff: request a form for a patient, the review queue, one submitted form, accept or reject; a patient's client links and their revocation (clinicians and reception)"),
        (name = "push", description = "Web Push subscriptions of staff (content-free \"you have an update\" notifications; any member, for themselves)"),
        (name = "meta", description = "This description")
    )
)]
struct ApiDoc;

/// Every route registration: handler, method, path and OpenAPI description together. The
/// router and the document are both built from this list only.
#[expect(
    clippy::too_many_lines,
    reason = "the one list of every route, kept whole so nothing is registered elsewhere"
)]
fn registrations() -> Vec<UtoipaMethodRouter<AppState>> {
    vec![
        routes!(openapi_document),
        routes!(auth::login),
        routes!(auth::second_factor_totp),
        routes!(auth::second_factor_recovery),
        routes!(auth::logout),
        routes!(auth::me),
        routes!(auth::totp_enroll, auth::totp_remove),
        routes!(auth::totp_confirm),
        routes!(auth::recovery_regenerate),
        routes!(auth::password_change),
        routes!(auth::session_list),
        routes!(auth::session_revoke),
        routes!(passkeys::passkey_register_begin),
        routes!(passkeys::passkey_register_finish),
        routes!(passkeys::passkey_list),
        routes!(passkeys::passkey_remove),
        routes!(passkeys::second_factor_passkey_begin),
        routes!(passkeys::second_factor_passkey_finish),
        routes!(passkeys::passkey_sign_in_begin),
        routes!(passkeys::passkey_sign_in_finish),
        routes!(invitations::my_invitation_list),
        routes!(invitations::my_invitation_accept),
        routes!(invitations::my_invitation_decline),
        routes!(practices::practice_list),
        routes!(practices::practice_get, practices::practice_update),
        routes!(
            practices::practice_security_get,
            practices::practice_security_put
        ),
        routes!(memberships::membership_list),
        routes!(
            memberships::membership_get,
            memberships::membership_update,
            memberships::membership_delete
        ),
        routes!(invitations::invitation_list, invitations::invitation_create),
        routes!(invitations::invitation_revoke),
        routes!(patients::patient_list, patients::patient_create),
        routes!(
            patients::patient_get,
            patients::patient_update,
            patients::patient_delete
        ),
        routes!(patients::patient_search),
        routes!(
            appointments::appointment_list,
            appointments::appointment_create
        ),
        routes!(
            appointments::appointment_get,
            appointments::appointment_update
        ),
        routes!(notes::note_list, notes::note_create),
        routes!(notes::note_get, notes::note_save, notes::note_delete),
        routes!(notes::note_templates),
        routes!(notes::note_sign),
        routes!(notes::note_amend),
        routes!(notes::note_addendum),
        routes!(notes::note_versions),
        routes!(notes::note_verify),
        routes!(notes::note_rendering),
        routes!(notes::visit_list, notes::visit_create),
        routes!(support::support_grant_list, support::support_grant_create),
        routes!(support::support_grant_revoke),
        routes!(providers::ai_provider_list, providers::ai_provider_register),
        routes!(providers::ai_provider_change),
        routes!(care_team::assign_clinician),
        routes!(care_team::break_glass_open),
        routes!(care_team::break_glass_review),
        routes!(care_team::break_glass_acknowledge),
        routes!(perio::perio_exam_list, perio::perio_exam_create),
        routes!(perio::perio_exam_get),
        routes!(perio::perio_final_create),
        routes!(perio::perio_confirm),
        routes!(perio::perio_decline),
        routes!(perio::perio_undo),
        routes!(perio::perio_exam_fhir),
        routes!(perio_voice::perio_voice_create),
        routes!(scribe::transcript_get),
        routes!(scribe::segment_correct),
        routes!(scribe::segment_revisions),
        routes!(scribe::draft_list, scribe::draft_create),
        routes!(scribe::draft_get),
        routes!(scribe::sentence_accept),
        routes!(scribe::sentence_edit),
        routes!(scribe::draft_note_create),
        routes!(scribe::note_draft_changes),
        routes!(assist::draft_assist),
        routes!(assist::draft_assist_accept),
        routes!(assist::note_assist),
        routes!(capture::consent_list, capture::consent_create),
        routes!(capture::consent_withdraw),
        routes!(capture::capture_list, capture::capture_create),
        routes!(capture::capture_get),
        routes!(capture::capture_pause),
        routes!(capture::capture_resume),
        routes!(capture::capture_stop),
        routes!(capture::chunk_put),
        routes!(capture::my_capture),
        routes!(capture::policy_get, capture::policy_put),
        routes!(
            disclosures::disclosure_create,
            disclosures::disclosure_report
        ),
        routes!(emergency::emergency_get, emergency::emergency_put),
        routes!(incidents::incident_list, incidents::incident_create),
        routes!(incidents::incident_get, incidents::incident_update),
        routes!(incidents::incident_assess),
        routes!(incidents::incident_scope),
        routes!(incidents::incident_letter),
        routes!(incidents::incident_close),
        routes!(incidents::residence_put),
        routes!(rights::access_request_list, rights::access_request_create),
        routes!(rights::access_request_get),
        routes!(rights::access_request_extend),
        routes!(rights::access_request_deny),
        routes!(rights::access_request_fulfil),
        routes!(rights::patient_export),
        routes!(
            amendments::amendment_request_list,
            amendments::amendment_request_create
        ),
        routes!(amendments::amendment_request_get),
        routes!(amendments::amendment_request_extend),
        routes!(amendments::amendment_request_deny),
        routes!(amendments::amendment_request_accept),
        routes!(amendments::amendment_request_disagreement),
        routes!(amendments::amendment_request_rebuttal),
        routes!(retention::retention_get),
        routes!(retention::legal_hold_put, retention::legal_hold_delete),
        routes!(audit::audit_events),
        routes!(audit::audit_fhir),
        routes!(audit::audit_inclusion),
        routes!(audit::audit_consistency),
        routes!(audit::audit_checkpoint),
        routes!(booking::booking_settings_get, booking::booking_settings_put),
        routes!(
            booking::booking_service_list,
            booking::booking_service_create
        ),
        routes!(booking::booking_service_put),
        routes!(booking::booking_hours_get, booking::booking_hours_put),
        routes!(booking::booking_list),
        routes!(booking::booking_decide),
        routes!(booking::booking_payments),
        routes!(booking::public_catalogue, booking::public_book),
        routes!(booking::public_slots),
        routes!(booking::public_waitlist_join),
        routes!(waitlist::waitlist_list, waitlist::waitlist_add),
        routes!(waitlist::waitlist_remove),
        routes!(intake::intake_request_create),
        routes!(intake::intake_queue),
        routes!(intake::intake_response_get),
        routes!(intake::intake_accept),
        routes!(intake::intake_reject),
        routes!(intake::client_link_list),
        routes!(intake::client_link_revoke),
        routes!(push::push_subscription_list, push::push_subscription_create),
        routes!(push::push_subscription_delete),
    ]
}

/// The API routes with their OpenAPI descriptions (the document before [`finish`]).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    registrations()
        .into_iter()
        .fold(OpenApiRouter::with_openapi(ApiDoc::openapi()), |r, reg| {
            r.routes(reg)
        })
}

/// Names given to two different schemas by the route registrations (each registration
/// brings the schemas its handler names; the document keeps only one per name, so a clash
/// silently describes one type with another's shape). Empty when the document is sound.
#[must_use]
pub fn openapi_schema_conflicts() -> Vec<String> {
    let mut seen: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (name, schema) in ApiDoc::openapi()
        .components
        .map(|c| c.schemas.into_iter().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        seen.insert(name, serde_json::to_value(schema).unwrap_or_default());
    }
    let mut conflicts = Vec::new();
    for (schemas, ..) in registrations() {
        for (name, schema) in schemas {
            let shape = serde_json::to_value(schema).unwrap_or_default();
            match seen.get(&name) {
                Some(known) if *known != shape => conflicts.push(name),
                Some(_) => {}
                None => {
                    seen.insert(name, shape);
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    conflicts
}

/// The security scheme names: `Authorization: Bearer <token>`, or the session cookie.
const BEARER: &str = "bearer";
const COOKIE: &str = "session_cookie";

/// The path prefix of practice routes (the [`crate::extract::Ctx`] extractor's `practice_id`).
const PRACTICE_PREFIX: &str = "/api/v1/practices/{practice_id}";

/// The error answers every route of a kind can give, described once and referenced.
const SHARED: &[(&str, &str, &str)] = &[
    (
        "Unauthenticated",
        "401",
        "No valid session (`AUTH-0001`); the session's second factor is not done (`AUTH-0003`); \
         or the change needs a second factor from the last few minutes (`AUTH-0004`)",
    ),
    (
        "Forbidden",
        "403",
        "The caller's role in the practice does not allow this (`AUTHZ-0001`), a support session \
         is read-only, or the practice requires a passkey of its owners and admins (`AUTH-0006`)",
    ),
    (
        "NotFound",
        "404",
        "No such practice for the caller (also another practice, or a malformed practice id), \
         or no such object in it (`NOT-FOUND`)",
    ),
    (
        "BadRequest",
        "400",
        "A value broke a rule (`INPUT-0001`), a path id or query parameter is malformed or \
         unknown (`INPUT-0001`), or the body is not the JSON this route expects (`INPUT-0002`)",
    ),
    (
        "TooLarge",
        "413",
        "The body is larger than 64 KiB (`INPUT-0003`)",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "The body is not `application/json` (`INPUT-0004`)",
    ),
    (
        "Internal",
        "500",
        "Internal error (`INTERNAL`); the body carries only the request id",
    ),
    (
        "Timeout",
        "503",
        "Not answered within the server's request timeout (`TIMEOUT`); a change not yet \
         committed was rolled back",
    ),
];

fn add_shared(op: &mut Operation, name: &str) {
    if let Some((_, status, _)) = SHARED.iter().find(|(n, ..)| *n == name) {
        op.responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}

/// Completes the document with what the extractors guarantee for every route of a kind, so
/// it cannot drift from them: the security schemes, applied to every route that is not
/// explicitly public (`security(())`); `401` on those; `403` and `404` on practice routes;
/// `400` wherever a path id, a query or a body is parsed; `413` and `415` with a body; `500`
/// and `503` everywhere.
fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The opaque session token from sign-in, as `Authorization: Bearer <token>`",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::extract::SESSION_COOKIE,
            "The same session token in the session cookie",
        ))),
    );
    for (name, _, description) in SHARED {
        components.responses.insert(
            (*name).to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(*description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            ),
        );
    }
    let authenticated = vec![
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
        SecurityRequirement::new(COOKIE, Vec::<String>::new()),
    ];
    for (path, item) in &mut doc.paths.paths {
        let practice_route = path.starts_with(PRACTICE_PREFIX);
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            if op.security.is_none() {
                op.security = Some(authenticated.clone());
                add_shared(op, "Unauthenticated");
            }
            if practice_route {
                add_shared(op, "Forbidden");
                add_shared(op, "NotFound");
            }
            let parses_input = op.request_body.is_some()
                || op.parameters.iter().flatten().any(|p| {
                    p.parameter_in == ParameterIn::Query
                        || (p.parameter_in == ParameterIn::Path && p.name != "practice_id")
                });
            if parses_input {
                add_shared(op, "BadRequest");
            }
            if op.request_body.is_some() {
                add_shared(op, "TooLarge");
                add_shared(op, "UnsupportedMediaType");
            }
            add_shared(op, "Internal");
            add_shared(op, "Timeout");
        }
    }
    doc
}

/// The finished document, built once.
fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| finish(router().split_for_parts().1))
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
async fn openapi_document() -> axum::Json<&'static utoipa::openapi::OpenApi> {
    axum::Json(document())
}

/// The OpenAPI 3.1 document (also served at `/api/v1/openapi.json`).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    document().clone()
}
