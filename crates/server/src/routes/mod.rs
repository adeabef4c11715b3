//! Route registrations. Each handler carries a `#[utoipa::path]` so the OpenAPI document and
//! the router come from the same list (tests derive the authorization matrix from it).

mod appointments;
pub(crate) mod audit;
mod auth;
mod care_team;
mod disclosures;
mod memberships;
mod notes;
mod passkeys;
mod patients;
mod perio;
mod practices;
mod retention;
mod support;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
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
        (name = "retention", description = "Retention windows and legal holds (owners and admins)")
    )
)]
struct ApiDoc;

/// The API routes with their OpenAPI descriptions.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::second_factor_totp))
        .routes(routes!(auth::second_factor_recovery))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::totp_enroll, auth::totp_remove))
        .routes(routes!(auth::totp_confirm))
        .routes(routes!(auth::recovery_regenerate))
        .routes(routes!(auth::password_change))
        .routes(routes!(auth::session_list))
        .routes(routes!(auth::session_revoke))
        .routes(routes!(passkeys::passkey_register_begin))
        .routes(routes!(passkeys::passkey_register_finish))
        .routes(routes!(passkeys::passkey_list))
        .routes(routes!(passkeys::passkey_remove))
        .routes(routes!(passkeys::second_factor_passkey_begin))
        .routes(routes!(passkeys::second_factor_passkey_finish))
        .routes(routes!(passkeys::passkey_sign_in_begin))
        .routes(routes!(passkeys::passkey_sign_in_finish))
        .routes(routes!(practices::practice_list))
        .routes(routes!(practices::practice_get, practices::practice_update))
        .routes(routes!(
            practices::practice_security_get,
            practices::practice_security_put
        ))
        .routes(routes!(
            memberships::membership_list,
            memberships::membership_create
        ))
        .routes(routes!(
            memberships::membership_get,
            memberships::membership_update,
            memberships::membership_delete
        ))
        .routes(routes!(patients::patient_list, patients::patient_create))
        .routes(routes!(
            patients::patient_get,
            patients::patient_update,
            patients::patient_delete
        ))
        .routes(routes!(patients::patient_search))
        .routes(routes!(
            appointments::appointment_list,
            appointments::appointment_create
        ))
        .routes(routes!(
            appointments::appointment_get,
            appointments::appointment_update
        ))
        .routes(routes!(notes::note_list, notes::note_create))
        .routes(routes!(
            notes::note_get,
            notes::note_save,
            notes::note_delete
        ))
        .routes(routes!(notes::note_templates))
        .routes(routes!(notes::note_sign))
        .routes(routes!(notes::note_amend))
        .routes(routes!(notes::note_addendum))
        .routes(routes!(notes::note_versions))
        .routes(routes!(notes::note_verify))
        .routes(routes!(notes::note_rendering))
        .routes(routes!(notes::visit_list, notes::visit_create))
        .routes(routes!(
            support::support_grant_list,
            support::support_grant_create
        ))
        .routes(routes!(support::support_grant_revoke))
        .routes(routes!(care_team::assign_clinician))
        .routes(routes!(care_team::break_glass_open))
        .routes(routes!(care_team::break_glass_review))
        .routes(routes!(care_team::break_glass_acknowledge))
        .routes(routes!(perio::perio_exam_list, perio::perio_exam_create))
        .routes(routes!(perio::perio_exam_get))
        .routes(routes!(perio::perio_final_create))
        .routes(routes!(perio::perio_confirm))
        .routes(routes!(perio::perio_decline))
        .routes(routes!(perio::perio_undo))
        .routes(routes!(perio::perio_exam_fhir))
        .routes(routes!(
            disclosures::disclosure_create,
            disclosures::disclosure_report
        ))
        .routes(routes!(retention::retention_get))
        .routes(routes!(
            retention::legal_hold_put,
            retention::legal_hold_delete
        ))
        .routes(routes!(audit::audit_events))
        .routes(routes!(audit::audit_fhir))
        .routes(routes!(audit::audit_inclusion))
        .routes(routes!(audit::audit_consistency))
        .routes(routes!(audit::audit_checkpoint))
}

/// The benchmark-only patient read without a session check (see
/// [`crate::unsafe_bench_app_with_unauthenticated_read`]): practice, actor and role are taken
/// from the path on trust.
pub(crate) async fn unsafe_bench_patient_get(
    axum::extract::State(state): axum::extract::State<AppState>,
    crate::extract::ApiPath((practice, patient, user, role)): crate::extract::ApiPath<(
        domain::PracticeId,
        domain::PatientId,
        domain::UserId,
        String,
    )>,
) -> Result<axum::Json<crate::views::PatientView>, crate::AppError> {
    let roles = domain::RoleSet::parse(&[role]).map_err(|_| crate::AppError::NotFound("role"))?;
    let p = state
        .store
        .unsafe_bench_patient_get_unchecked(practice, user, roles, patient)
        .await?
        .ok_or(crate::AppError::NotFound("patient"))?;
    Ok(axum::Json(p.into()))
}

/// The OpenAPI 3.1 document (also served at `/api/v1/openapi.json`).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    router().split_for_parts().1
}
