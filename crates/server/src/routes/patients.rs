//! Patients: demographics and contact details (clinician or reception).
#![allow(
    clippy::option_option,
    reason = "a PATCH tells an absent field (keep) from null (clear)"
)]

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use domain::values::{Email, ValueError, phone, single_line};
use domain::{AuditAction, PatientId, PracticeId};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Ctx, Scheduling};
use crate::identity::{QuotaKind, admit_quota};
use crate::views::{Page, PatientView};
use crate::{AppError, AppState};

/// Longest given name, family name or name query (characters).
pub const NAME_MAX: usize = 100;

/// A given or family name (`field`): one line, 1–[`NAME_MAX`] characters, trimmed.
pub fn name(field: &'static str, s: &str) -> Result<String, ValueError> {
    single_line(field, s, NAME_MAX)
}

/// A date of birth: from 1900-01-01 to `today` (the practice's clock).
pub fn date_of_birth(d: NaiveDate, today: NaiveDate) -> Result<NaiveDate, ValueError> {
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default();
    if d < earliest || d > today {
        return Err(ValueError::new(
            "date_of_birth",
            "must be between 1900-01-01 and today",
        ));
    }
    Ok(d)
}

/// A contact phone number (`phone`): digits and `+ - . ( )`, 5–32 characters.
pub fn contact_phone(s: &str) -> Result<String, ValueError> {
    phone("phone", s)
}

/// A contact email address (`email`), normalized to lower case.
pub fn contact_email(s: &str) -> Result<String, ValueError> {
    Email::parse("email", s).map(String::from)
}

/// The refusal of a search with no criterion at all.
pub const NO_CRITERION: ValueError = ValueError::new(
    "search",
    "give at least one of name_prefix, date_of_birth, phone",
);

/// Search criteria from what a caller sent: a name prefix with a usable word (two or more
/// letters), an exact date of birth, a phone number that is a valid number; at least one
/// ([`NO_CRITERION`] otherwise). The error names the field (`name_prefix`, `phone`).
pub fn search_criteria(
    name_prefix: Option<&str>,
    date_of_birth: Option<NaiveDate>,
    phone_number: Option<&str>,
) -> Result<store::patients::PatientSearch, ValueError> {
    let name_prefix = name_prefix
        .map(|n| single_line("name_prefix", n, NAME_MAX))
        .transpose()?;
    if name_prefix
        .as_deref()
        .is_some_and(|n| !store::patients::name_query_usable(n))
    {
        return Err(ValueError::new(
            "name_prefix",
            "needs a word of at least 2 letters",
        ));
    }
    let phone_q = phone_number.map(|p| phone("phone", p)).transpose()?;
    if phone_q
        .as_deref()
        .is_some_and(|p| !store::patients::phone_searchable(p))
    {
        return Err(ValueError::new("phone", "not a valid phone number"));
    }
    if name_prefix.is_none() && date_of_birth.is_none() && phone_q.is_none() {
        return Err(NO_CRITERION);
    }
    Ok(store::patients::PatientSearch {
        name_prefix,
        date_of_birth,
        phone: phone_q,
    })
}

fn dob(d: NaiveDate, today: NaiveDate) -> Result<NaiveDate, AppError> {
    Ok(date_of_birth(d, today)?)
}

/// The error for a patient that is not readable: 410 when deleted, 404 when unknown here.
async fn missing(tx: &mut store::TenantTx, id: PatientId) -> AppError {
    match store::patients::is_deleted(tx, id).await {
        Ok(true) => AppError::Gone("patient"),
        Ok(false) => AppError::NotFound("patient"),
        Err(e) => e.into(),
    }
}

/// Paging.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// Skip this many (default 0).
    offset: Option<i64>,
    /// At most this many, 1–100 (default 50).
    limit: Option<i64>,
}

/// Patients of the practice by family name, paginated. Every patient shown is audited. Counts
/// against the member's patient-lookup quota (429 `RATE-0001` past it).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid), PageQuery),
    responses((status = 200, body = Page<PatientView>), (status = 401, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 429, body = crate::views::ErrorBody)))]
pub(crate) async fn patient_list(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<PatientView>>, AppError> {
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50);
    if offset < 0 || !(1..=100).contains(&limit) {
        return Err(AppError::Invalid(
            "offset must be ≥ 0 and limit 1 to 100".into(),
        ));
    }
    let mut tx = ctx.tx;
    admit_quota(&state, &tx, QuotaKind::PatientLookup).await?;
    let items = list_patients(&mut tx, state.store.keyring()?, offset, limit).await?;
    tx.commit().await?;
    let full = i64::try_from(items.len()).unwrap_or(0) == limit;
    Ok(Json(Page {
        next_offset: full.then_some(offset + limit),
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// A new patient.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatientCreate {
    /// Given name (1–100 characters).
    given_name: String,
    /// Family name (1–100 characters).
    family_name: String,
    /// Date of birth, YYYY-MM-DD.
    date_of_birth: Option<NaiveDate>,
    /// Phone.
    phone: Option<String>,
    /// Email.
    email: Option<String>,
}

/// Registers a patient.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid)), request_body = PatientCreate,
    responses((status = 201, body = PatientView), (status = 400, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody)))]
pub(crate) async fn patient_create(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiJson(req): ApiJson<PatientCreate>,
) -> Result<(StatusCode, Json<PatientView>), AppError> {
    let today = ctx.tx.now().date_naive();
    let new = store::patients::NewPatient {
        given_name: name("given_name", &req.given_name)?,
        family_name: name("family_name", &req.family_name)?,
        date_of_birth: req.date_of_birth.map(|d| dob(d, today)).transpose()?,
        phone: req.phone.as_deref().map(contact_phone).transpose()?,
        email: req.email.as_deref().map(contact_email).transpose()?,
    };
    let mut tx = ctx.tx;
    let p = register_patient(&mut tx, state.store.keyring()?, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// One patient. 410 once deleted.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PatientView), (status = 401, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 410, body = crate::views::ErrorBody)))]
pub(crate) async fn patient_get(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, id)): ApiPath<(PracticeId, PatientId)>,
) -> Result<Json<PatientView>, AppError> {
    let mut tx = ctx.tx;
    let p = read_patient(&mut tx, state.store.keyring()?, id).await?;
    tx.commit().await?;
    Ok(Json(p.into()))
}

/// Changes to a patient; omitted fields stay, `null` clears an optional field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatientUpdate {
    /// Given name.
    given_name: Option<String>,
    /// Family name.
    family_name: Option<String>,
    /// Date of birth (`null` clears).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    date_of_birth: Option<Option<NaiveDate>>,
    /// Phone (`null` clears).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    phone: Option<Option<String>>,
    /// Email (`null` clears).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Updates a patient's demographics or contact details. 410 once deleted.
#[utoipa::path(patch, path = "/api/v1/practices/{practice_id}/patients/{patient_id}", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = PatientUpdate,
    responses((status = 200, body = PatientView), (status = 400, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 410, body = crate::views::ErrorBody)))]
pub(crate) async fn patient_update(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiPath((_, id)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<PatientUpdate>,
) -> Result<Json<PatientView>, AppError> {
    let today = ctx.tx.now().date_naive();
    let patch = store::patients::PatientPatch {
        given_name: req
            .given_name
            .as_deref()
            .map(|n| name("given_name", n))
            .transpose()?,
        family_name: req
            .family_name
            .as_deref()
            .map(|n| name("family_name", n))
            .transpose()?,
        date_of_birth: req
            .date_of_birth
            .map(|d| d.map(|d| dob(d, today)).transpose())
            .transpose()?,
        phone: req
            .phone
            .map(|p| p.as_deref().map(contact_phone).transpose())
            .transpose()?,
        email: req
            .email
            .map(|e| e.as_deref().map(contact_email).transpose())
            .transpose()?,
    };
    let mut tx = ctx.tx;
    let p = update_patient(&mut tx, state.store.keyring()?, id, &patch).await?;
    tx.commit().await?;
    Ok(Json(p.into()))
}

/// Deletes a patient (soft, req INT-02): reads then answer 410, lists and search leave them
/// out; their notes, exams, disclosures and audit trail stay for those allowed to see them.
/// The retention job purges the record once the practice's retention windows have passed
/// (never while a legal hold is on it). 410 if already deleted.
#[utoipa::path(delete, path = "/api/v1/practices/{practice_id}/patients/{patient_id}", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 404, body = crate::views::ErrorBody), (status = 410, body = crate::views::ErrorBody)))]
pub(crate) async fn patient_delete(
    ctx: Ctx<Scheduling>,
    ApiPath((_, id)): ApiPath<(PracticeId, PatientId)>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    delete_patient(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Search criteria: every given criterion must match; at least one is required. Sent in the
/// body, never the URL (no PHI in URLs, OPS-05).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatientSearchRequest {
    /// Name prefix: each word (two or more characters) must start a word of the given or
    /// family name; case, accents and punctuation are ignored.
    name_prefix: Option<String>,
    /// Exact date of birth, YYYY-MM-DD.
    date_of_birth: Option<NaiveDate>,
    /// Phone number, any formatting.
    phone: Option<String>,
    /// At most this many, 1–100 (default 50).
    limit: Option<i64>,
}

/// Finds patients by name prefix, date of birth or phone through blind indexes (no plaintext
/// is stored or sent to the database). Every patient shown is audited (`patient.list`). Counts
/// against the member's patient-lookup quota (429 `RATE-0001` past it).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/search", tag = "patients",
    params(("practice_id" = String, Path, format = Uuid)), request_body = PatientSearchRequest,
    responses((status = 200, body = Page<PatientView>), (status = 400, body = crate::views::ErrorBody), (status = 401, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 429, body = crate::views::ErrorBody)))]
pub(crate) async fn patient_search(
    State(state): State<AppState>,
    ctx: Ctx<Scheduling>,
    ApiJson(req): ApiJson<PatientSearchRequest>,
) -> Result<Json<Page<PatientView>>, AppError> {
    let limit = req.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::Invalid("limit must be 1 to 100".into()));
    }
    let q = search_criteria(
        req.name_prefix.as_deref(),
        req.date_of_birth,
        req.phone.as_deref(),
    )
    .map_err(|e| {
        if e == NO_CRITERION {
            AppError::Invalid(e.rule.into())
        } else {
            e.into()
        }
    })?;
    let mut tx = ctx.tx;
    admit_quota(&state, &tx, QuotaKind::PatientLookup).await?;
    let items = search_patients(&mut tx, state.store.keyring()?, &q, limit).await?;
    tx.commit().await?;
    Ok(Json(Page {
        next_offset: None,
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// The practice's patients by family name, `limit` from `offset`, auditing `patient.list`
/// naming every patient shown: the one path of the API and the web pages (paging already
/// checked). The caller commits.
pub async fn list_patients(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    offset: i64,
    limit: i64,
) -> Result<Vec<store::patients::Patient>, AppError> {
    let items = store::patients::list(tx, keyring, offset, limit).await?;
    tx.audit_patients(AuditAction::PatientList, items.iter().map(|p| p.patient_id))
        .await?;
    Ok(items)
}

/// The patients matching `query` (at most `limit`), auditing `patient.list` naming every
/// patient shown: the one path of the API and the web pages (criteria already checked with
/// [`search_criteria`]). The caller commits.
pub async fn search_patients(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    query: &store::patients::PatientSearch,
    limit: i64,
) -> Result<Vec<store::patients::Patient>, AppError> {
    let items = store::patients::search(tx, keyring, query, limit).await?;
    tx.audit_patients(AuditAction::PatientList, items.iter().map(|p| p.patient_id))
        .await?;
    Ok(items)
}

/// Registers `new` and audits `patient.create`: the one path of the API and the web pages
/// (fields already checked with the [`name`], [`date_of_birth`], [`contact_phone`] and
/// [`contact_email`] rules). The caller commits.
pub async fn register_patient(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    new: &store::patients::NewPatient,
) -> Result<store::patients::Patient, AppError> {
    let p = store::patients::create(tx, keyring, new).await?;
    tx.audit_patient(AuditAction::PatientCreate, p.patient_id)
        .await?;
    Ok(p)
}

/// Patient `id`, audited `patient.read`: the one path of the API and the web pages. `410`
/// once deleted, `404` when unknown here. The caller commits.
pub async fn read_patient(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: PatientId,
) -> Result<store::patients::Patient, AppError> {
    let Some(p) = store::patients::get(tx, keyring, id).await? else {
        return Err(missing(tx, id).await);
    };
    tx.audit_patient(AuditAction::PatientRead, id).await?;
    Ok(p)
}

/// Applies `patch` to patient `id` and audits `patient.update`: the one path of the API and
/// the web pages. `410` once deleted, `404` when unknown here. The caller commits.
pub async fn update_patient(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: PatientId,
    patch: &store::patients::PatientPatch,
) -> Result<store::patients::Patient, AppError> {
    let Some(p) = store::patients::update(tx, keyring, id, patch).await? else {
        return Err(missing(tx, id).await);
    };
    tx.audit_patient(AuditAction::PatientUpdate, id).await?;
    Ok(p)
}

/// Soft-deletes patient `id` and audits `patient.delete`: the one path of the API and the
/// web pages. `410` if already deleted, `404` when unknown here. The caller commits.
pub async fn delete_patient(tx: &mut store::TenantTx, id: PatientId) -> Result<(), AppError> {
    if !store::patients::delete(tx, id).await? {
        return Err(missing(tx, id).await);
    }
    tx.audit_patient(AuditAction::PatientDelete, id).await?;
    Ok(())
}
